"""`python -m utils.run`: the command; its code is `utils.harness.run`."""

import runpy

if __name__ == "__main__":
    runpy.run_module("utils.harness.run", run_name="__main__", alter_sys=True)
