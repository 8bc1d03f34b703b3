"""Command: `python -m utils.bench ...` starts `utils.experiments.bench` (the code lives there; nothing is re-exported here)."""

import runpy

if __name__ == "__main__":
    runpy.run_module("utils.experiments.bench", run_name="__main__", alter_sys=True)
