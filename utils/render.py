"""Command: `python -m utils.render ...` starts `utils.harness.render` (the code lives there; nothing is re-exported here)."""

import runpy

if __name__ == "__main__":
    runpy.run_module("utils.harness.render", run_name="__main__", alter_sys=True)
