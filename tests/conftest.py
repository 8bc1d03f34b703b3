"""Shared fixtures. Notebook tests run each notebook once, with smoke parameters, into one session folder."""

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


# Started first under `-n 2 --dist loadfile` (files are handed out in collection order): the kernel-path runs on one
# worker while notebook 00 runs every notebook's smoke run on the other, then the other long files; the notebooks'
# own test files come last, when their smoke runs are done, so no worker waits on another's lock for long.
FIRST = ("test_kernel_independence.py", "test_notebook_00.py", "test_browser.py", "test_site.py",
         "test_publishing.py", "test_train_command.py", "test_real_data.py", "test_pytest_audit.py")


def pytest_collection_modifyitems(config, items):
    """Order the test files: FIRST, then the unit tests, then the notebooks' (a stable sort keeps the rest in order)."""
    def rank(item) -> int:
        name = item.path.name
        return FIRST.index(name) if name in FIRST else len(FIRST) + name.startswith("test_notebook_")

    items.sort(key=rank)


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny models run fastest on one intra-op thread (no waiting between threads); restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory) -> Path:
    """A folder every pytest-xdist worker of this run shares (`make test` runs `-n 2`): the run's base temp folder."""
    root = tmp_path_factory.getbasetemp()
    return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root  # <run>/popen-gwN -> <run>


@pytest.fixture(scope="session")
def once(shared_dir):
    """`once(name, make)`: the JSON value `make()` returns, computed by one worker of the run under a file lock and
    read from the shared folder by the others (they wait for it), so an expensive fixture is built once per run.
    With `timeout=0` it raises `filelock.Timeout` instead of waiting while another worker is making it."""
    from filelock import FileLock

    def run(name: str, make, timeout: float = -1):
        path = shared_dir / f"{name}.json"
        with FileLock(shared_dir / f".{name}.lock", timeout=timeout):
            if not path.exists():
                path.write_text(json.dumps(make()), encoding="utf-8")
        return json.loads(path.read_text(encoding="utf-8"))

    return run


@pytest.fixture(scope="session")
def rendered_reports(once, shared_dir) -> Path:
    """Fixture reports with the deck and the site built (tests/test_deck.py's `built_reports`), once per test run."""
    from test_deck import built_reports

    return Path(once("rendered_reports", lambda: str(built_reports(shared_dir / "rendered"))))


@pytest.fixture(scope="session")
def smoke_reports(shared_dir):
    """The folder every smoke-run notebook of this session writes to (results/ inside), one for all xdist workers."""
    folder = shared_dir / "smoke_reports"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def smoke_results(smoke_reports, once):
    """`smoke_results("01_shift_right")` -> that notebook's results dict, executing it once per session.

    Once across xdist workers too (`once` keeps each run's exit code): a worker that needs a notebook another worker
    is running waits for it instead of running it again. `smoke_results.all(stems)` runs the free ones first and
    waits for the busy ones last.
    """
    from filelock import Timeout

    from utils.harness.run import main as run_main

    cache = {}

    def finish(stem: str, timeout: float) -> None:
        exit_code = once(f"smoke_run_{stem}", lambda: run_main([stem, "--smoke", "--out", str(smoke_reports),
                                                                "--no-html"]), timeout)
        assert exit_code == 0, f"notebook {stem} failed with smoke parameters (exit code {exit_code})"
        cache[stem] = json.loads((smoke_reports / "results" / f"{stem}.json").read_text(encoding="utf-8"))

    def run(stem: str) -> dict:
        if stem not in cache:
            finish(stem, timeout=-1)
        return cache[stem]

    def run_all(stems: list[str]) -> dict[str, dict]:
        for stem in stems:
            if stem not in cache:
                try:
                    finish(stem, timeout=0)  # runs it unless another worker is running it now
                except Timeout:
                    pass
        return {stem: run(stem) for stem in stems}  # then waits for those

    run.all = run_all
    return run


@pytest.fixture(scope="session")
def assert_claims_hold():
    """`assert_claims_hold(results, ["claim_a", ...])`: each claim is present and holds."""
    return _assert_claims_hold


def _assert_claims_hold(results: dict, claim_ids: list[str]) -> None:
    missing = [c for c in claim_ids if c not in results["claims"]]
    assert not missing, f"claims missing from {results['notebook']}: {missing}"
    failing = {c: results["claims"][c]["evidence"] for c in claim_ids if not results["claims"][c]["holds"]}
    assert not failing, f"claims that do not hold in {results['notebook']}: {failing}"


@pytest.fixture
def simulated_cuda():
    """A CUDA device simulated on the CPU (utils/workbench/simulated_accelerator.py) for the duration of a test."""
    import torch

    from utils.workbench.simulated_accelerator import SimulatedAccelerator

    with SimulatedAccelerator():
        yield torch.device("cuda")
