"""`python -m utils.render`: the command; its code is `utils.reporting.render`."""

import runpy

if __name__ == "__main__":
    runpy.run_module("utils.reporting.render", run_name="__main__", alter_sys=True)
