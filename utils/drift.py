"""`python -m utils.drift --out-dir data/drift --venv 4.46=.venv-tf4.46 ...`: the command behind `make drift`; its code
is `utils.experiments.version_drift` (each environment's Python runs that module in a subprocess)."""

import runpy

if __name__ == "__main__":
    runpy.run_module("utils.experiments.version_drift", run_name="__main__", alter_sys=True)
