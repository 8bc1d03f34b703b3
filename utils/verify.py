"""`python -m utils.verify DIR`: the command; its code is `utils.reporting.verify`."""

import runpy

if __name__ == "__main__":
    runpy.run_module("utils.reporting.verify", run_name="__main__", alter_sys=True)
