"""`python -m utils.bench`: the command; its code is `utils.experiments.bench`."""

import runpy

if __name__ == "__main__":
    runpy.run_module("utils.experiments.bench", run_name="__main__", alter_sys=True)
