"""Command: `python -m utils.audit_model ...` starts `utils.experiments.audit_your_model` (the code lives there; nothing is re-exported here)."""

import runpy

if __name__ == "__main__":
    runpy.run_module("utils.experiments.audit_your_model", run_name="__main__", alter_sys=True)
