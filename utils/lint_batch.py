"""`python -m utils.lint_batch BATCH.pt --pad-id ID --start-id ID`: the command; its code is
`utils.experiments.batch_lint`."""

import runpy

if __name__ == "__main__":
    runpy.run_module("utils.experiments.batch_lint", run_name="__main__", alter_sys=True)
