"""utils.harness.run (and .publishing): parameters refused before anything runs, outputs published only on success.

The fixture notebooks in tests/fixtures/notebooks/ stand in for notebooks/ (utils.harness.parameters.NOTEBOOKS_DIR
is pointed at a copy). Four kernel executions in all: one good run shared by several tests, one
failing run, and a --keep-going run of a failing and a passing notebook.
"""

import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest

import utils.harness.parameters
from utils.harness import publishing, run
from utils.harness.kernel import _installed_kernels
from utils.harness.paths import REPO_ROOT

FIXTURES = Path(__file__).parent / "fixtures" / "notebooks"
KERNEL = "python3"  # the venv's ipykernel; jupyter_client runs it with the current interpreter


def use_notebooks_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    notebooks = tmp_path / "notebooks"
    shutil.copytree(FIXTURES, notebooks)
    monkeypatch.setattr(utils.harness.parameters, "NOTEBOOKS_DIR", notebooks)
    return notebooks


@pytest.fixture
def notebooks(monkeypatch, tmp_path) -> Path:
    return use_notebooks_dir(monkeypatch, tmp_path)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file's bytes, the runner's lock files aside (they stay, empty, in `.staging-locks/`)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and publishing.LOCKS_DIR not in p.relative_to(folder).parts}


@pytest.fixture(scope="module")
def good_report(tmp_path_factory):
    """One successful smoke run of 01_fixture with `-p n 5` (HTML on); yields (notebooks dir, report dir)."""
    tmp_path = tmp_path_factory.mktemp("good")
    with pytest.MonkeyPatch.context() as monkeypatch:
        notebooks = use_notebooks_dir(monkeypatch, tmp_path)
        umask = os.umask(0o022)  # the usual umask: published files must then be 0644, like everything else
        out = tmp_path / "reports"
        (out / "figures" / "01_fixture").mkdir(parents=True)
        (out / "figures" / "01_fixture" / "stale.png").write_bytes(b"old")
        (out / "timings.json").write_text(json.dumps({"99_elsewhere": 12.5}))
        (out / "failed").mkdir()
        (out / "failed" / "01_fixture.ipynb").write_text("{}")  # from an earlier failure: now stale
        try:
            code = run.main(["01", "--smoke", "-p", "n", "5", "--out", str(out), "--kernel", KERNEL])
        finally:
            os.umask(umask)
        yield notebooks, out, code


# ---------------------------------------------------------------- selection and parameters (no kernel)


def test_all_notebooks_run_with_00_last(notebooks):
    assert [p.stem for p in run.select_notebooks()] == ["01_fixture", "02_other", "00_summary"]
    selected = run.select_notebooks(["00", "02_other", "01"])
    assert [p.stem for p in selected] == ["02_other", "01_fixture", "00_summary"]


def test_select_accepts_a_path_and_drops_duplicates(notebooks):
    path = notebooks / "02_other.ipynb"
    assert run.select_notebooks([str(path), "02"]) == [path.resolve()]


def test_unknown_notebook_is_refused(notebooks, tmp_path, capsys):
    assert run.main(["07", "--out", str(tmp_path / "out")]) == 2
    assert "no notebook matches '07'" in capsys.readouterr().err


def test_unknown_parameter_is_refused_listing_allowed_names(notebooks, tmp_path, capsys):
    out = tmp_path / "out"
    assert run.main(["01", "-p", "bogus", "1", "--out", str(out), "--kernel", KERNEL]) == 2
    err = capsys.readouterr().err
    assert "unknown parameter 'bogus'" in err
    assert "allowed: n, name, fail" in err
    assert not out.exists()


def test_wrong_type_is_refused_naming_parameter_and_type(notebooks, tmp_path, capsys):
    out = tmp_path / "out"
    assert run.main(["01", "-p", "n", "abc", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "parameter 'n' must be of type int" in err and "'abc'" in err
    assert not out.exists()


def test_parameter_applies_to_each_notebook_declaring_it(notebooks):
    runs = dict(run._prepare_runs(run.select_notebooks(["01", "02"]), False, {"name": "z", "steps": "4"}))
    expected = {"01_fixture": {"name": "z"}, "02_other": {"steps": 4, "name": "z"}}
    assert {p.stem: overrides for p, overrides in runs.items()} == expected


def test_parameter_declared_by_no_selected_notebook_is_refused(notebooks):
    expected = r"'steps' for 01_fixture, 00_summary; allowed: n, name, fail, verbose"
    with pytest.raises(run.ParameterError, match=expected):
        run._prepare_runs(run.select_notebooks(["01", "00"]), False, {"steps": "4"})


def test_smoke_entry_applied_and_overridden_by_cli(notebooks):
    assert run.build_overrides("01", smoke=True, cli_params={}) == {"n": 2, "name": "smoke"}
    assert run.build_overrides("01", smoke=True, cli_params={"n": "7"}) == {"n": 7, "name": "smoke"}
    assert run.build_overrides("01", smoke=False, cli_params={"fail": "true"}) == {"fail": True}
    assert run.build_overrides("02", smoke=True, cli_params={}) == {}


def test_smoke_entry_with_undeclared_parameter_is_refused(notebooks, tmp_path, capsys):
    (notebooks / "smoke.json").write_text(json.dumps({"02_other": {"n_steps": 2}}))
    assert run.main(["02", "--smoke", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "smoke.json entry '02_other'" in err and "unknown parameter 'n_steps'" in err
    assert "allowed: steps, name" in err


def test_smoke_entry_with_wrong_type_is_refused(notebooks):
    (notebooks / "smoke.json").write_text(json.dumps({"01_fixture": {"n": "four"}}))
    with pytest.raises(run.ParameterError, match="parameter 'n' must be of type int"):
        run.build_overrides("01", smoke=True, cli_params={})


def test_list_prints_parameters_like_papermill(notebooks, capsys):
    assert run.main(["01", "--list"]) == 0
    out = capsys.readouterr().out
    assert "  n: int (default 3)  how many  [smoke: 2]" in out
    assert "  name: str (default 'x')  a name" in out


def test_unknown_kernel_is_refused(notebooks, tmp_path, capsys):
    assert run.main(["02", "--kernel", "no-such-kernel", "--out", str(tmp_path / "out")]) == 2
    assert "no Jupyter kernel named 'no-such-kernel'" in capsys.readouterr().err


def test_python3_kernel_is_installed():
    assert KERNEL in _installed_kernels()


def test_source_hash_is_sha256_of_bytes(tmp_path):
    path = tmp_path / "x.ipynb"
    path.write_bytes(b"abc")
    assert run.source_hash(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


# ---------------------------------------------------------------- executing (kernel)


def test_successful_run_publishes_notebook_results_figures_html(good_report):
    notebooks, out, code = good_report
    assert code == 0
    expected = ["01_fixture.ipynb", "figures", "html", "results", "timings.json"]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == expected
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [publishing.LOCKS_DIR]  # no staging folder left
    assert (out / "html" / "01_fixture.html").read_text().startswith("<!DOCTYPE html>")
    # the old figures folder (with stale.png) is replaced whole
    assert [p.name for p in (out / "figures" / "01_fixture").iterdir()] == ["n5.png"]


def test_published_files_have_the_usual_mode(good_report):
    _, out, _ = good_report
    modes = {str(p.relative_to(out)): oct(p.stat().st_mode & 0o777) for p in out.rglob("*")
             if p.is_file() and publishing.LOCKS_DIR not in p.parts}
    assert "results/01_fixture.json" in modes and "timings.json" in modes
    assert modes == dict.fromkeys(modes, "0o644")


def test_executed_notebook_records_source_hash_and_parameters(good_report):
    notebooks, out, _ = good_report
    metadata = json.loads((out / "01_fixture.ipynb").read_text())["metadata"]
    assert metadata["tinfer"] == {
        "source_sha256": run.source_hash(notebooks / "01_fixture.ipynb"),
        "parameters": {"n": 5, "name": "smoke"},
        "smoke": True,
    }
    assert metadata["papermill"]["parameters"] == {"n": 5, "name": "smoke"}


def test_kernel_ran_offline_in_repo_root_with_parameters(good_report):
    _, out, _ = good_report
    results = json.loads((out / "results" / "01_fixture.json").read_text())
    assert results["parameters"] == {"n": 5, "name": "smoke", "fail": False}
    assert results["metrics"]["environment"] == {
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONHASHSEED": "0",
    }
    assert results["metrics"]["cwd"] == str(REPO_ROOT)


def test_timings_merged_with_existing_file(good_report):
    _, out, _ = good_report
    timings = json.loads((out / "timings.json").read_text())
    assert set(timings) == {"99_elsewhere", "01_fixture"} and timings["99_elsewhere"] == 12.5
    assert timings["01_fixture"] > 0


def test_failing_run_keeps_previous_report_and_names_the_cell(good_report, tmp_path, monkeypatch, capsys):
    notebooks, good, _ = good_report
    monkeypatch.setattr(utils.harness.parameters, "NOTEBOOKS_DIR", notebooks)
    out = tmp_path / "reports"
    shutil.copytree(good, out)
    before = snapshot(out)
    code = run.main(["01", "02", "-p", "fail", "true", "--out", str(out), "--kernel", KERNEL, "--no-html"])
    captured = capsys.readouterr()
    assert code == 1
    assert "01_fixture: cell 3 ('if fail:') raised RuntimeError: asked to fail with n=3" in captured.err
    assert "02_other: start" not in captured.out  # stopped at the first failure
    after = snapshot(out)
    failed = after.pop("failed/01_fixture.ipynb")
    assert after == before
    assert json.loads(failed)["metadata"]["tinfer"]["parameters"] == {"fail": True}
    assert [p.name for p in out.glob(".staging-*")] == [publishing.LOCKS_DIR]


def test_keep_going_runs_the_rest_and_00_reads_published_results(good_report, tmp_path, monkeypatch, capsys):
    notebooks, good, _ = good_report
    monkeypatch.setattr(utils.harness.parameters, "NOTEBOOKS_DIR", notebooks)
    out = tmp_path / "reports"
    shutil.copytree(good, out)
    code = run.main(["00", "01", "-p", "fail", "true", "--keep-going", "--out", str(out), "--kernel", KERNEL,
                     "--no-html"])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out.index("01_fixture: FAILED") < captured.out.index("00_summary: ok")
    summary = nbformat.read(out / "00_summary.ipynb", as_version=4)
    printed = "".join(output.get("text", "") for cell in summary.cells for output in cell.get("outputs", []))
    assert "['01_fixture']" in printed
    assert set(json.loads((out / "timings.json").read_text())) == {"99_elsewhere", "01_fixture", "00_summary"}
