"""Command: `python -m utils.run ...` starts `utils.harness.run` (the code lives there; nothing is re-exported here)."""

import runpy

if __name__ == "__main__":
    runpy.run_module("utils.harness.run", run_name="__main__", alter_sys=True)
