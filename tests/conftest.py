"""Shared fixtures. Notebook tests run each notebook once, with smoke parameters, into one session folder."""

import json
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`make test` runs `-n 2 --dist loadgroup`) the notebook tests share one worker: they share
    the session's smoke reports (notebook 00 reads every other notebook's), so each notebook still runs once."""
    for item in items:
        if item.path.name.startswith("test_notebook_"):
            item.add_marker(pytest.mark.xdist_group("notebooks"))


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny models run fastest on one intra-op thread (no waiting between threads); restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def smoke_reports(tmp_path_factory):
    """The folder every smoke-run notebook of this session writes to (results/ inside)."""
    return tmp_path_factory.mktemp("smoke_reports")


@pytest.fixture(scope="session")
def smoke_results(smoke_reports):
    """`smoke_results("01_shift_right")` -> that notebook's results dict, executing it once per session."""
    from utils.harness.run import main as run_main

    cache = {}

    def run(stem: str) -> dict:
        if stem not in cache:
            exit_code = run_main([stem, "--smoke", "--out", str(smoke_reports), "--no-html"])
            assert exit_code == 0, f"notebook {stem} failed with smoke parameters (exit code {exit_code})"
            cache[stem] = json.loads((smoke_reports / "results" / f"{stem}.json").read_text(encoding="utf-8"))
        return cache[stem]

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

    torch.__future__.set_overwrite_module_params_on_conversion(True)  # module.to("cuda") makes new Parameters
    try:
        with SimulatedAccelerator():
            yield torch.device("cuda")
    finally:
        torch.__future__.set_overwrite_module_params_on_conversion(False)
