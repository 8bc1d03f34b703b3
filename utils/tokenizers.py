"""`python -m utils.tokenizers`: the command; its code is `utils.workbench.tokenizers`."""

import runpy

if __name__ == "__main__":
    runpy.run_module("utils.workbench.tokenizers", run_name="__main__", alter_sys=True)
