"""`python -m utils.train`: the training command; its code is `utils.experiments.train_command`."""

import runpy

if __name__ == "__main__":
    runpy.run_module("utils.experiments.train_command", run_name="__main__", alter_sys=True)
