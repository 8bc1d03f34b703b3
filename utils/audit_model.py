"""`python -m utils.audit_model`: the command; its code is `utils.experiments.audit_your_model`."""

import runpy

if __name__ == "__main__":
    runpy.run_module("utils.experiments.audit_your_model", run_name="__main__", alter_sys=True)
