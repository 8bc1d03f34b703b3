"""Command: `python -m utils.tokenizers ...` starts `utils.workbench.tokenizers` (the code lives there; nothing is re-exported here)."""

import runpy

if __name__ == "__main__":
    runpy.run_module("utils.workbench.tokenizers", run_name="__main__", alter_sys=True)
