"""`python -m utils.data`: the command; its code is `utils.workbench.data`."""

import runpy

if __name__ == "__main__":
    runpy.run_module("utils.workbench.data", run_name="__main__", alter_sys=True)
