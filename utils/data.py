"""Command: `python -m utils.data ...` starts `utils.workbench.data` (the code lives there; nothing is re-exported here)."""

import runpy

if __name__ == "__main__":
    runpy.run_module("utils.workbench.data", run_name="__main__", alter_sys=True)
