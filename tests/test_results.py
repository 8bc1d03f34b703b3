import json
import os

import pytest
import torch

from utils.harness.results import (
    Results,
    ResultsFileError,
    load_all_results,
    load_results,
    read_results_file,
    results_problems,
)


def test_claims_metrics_and_failing_claims_are_written(tmp_path, capsys):
    results = Results("99_example", {"seed": 0, "lr": 0.1})
    assert results.claim("same", torch.equal(torch.ones(2), torch.ones(2)), "ones equal ones", {"diff": 0.0})
    assert not results.claim("differs", False, "a claim that does not hold", {"max_abs_diff": torch.tensor(0.5)})
    results.metric("loss", torch.tensor(1.23456789123))
    results.timing("wall_seconds", 3.14159)
    path = results.save(tmp_path)
    data = json.loads(path.read_text())
    assert path.name == "99_example.json"
    assert data["claims"]["differs"] == {"holds": False, "statement": "a claim that does not hold",
                                         "evidence": {"max_abs_diff": 0.5}}
    assert data["metrics"] == {"loss": 1.2345679}
    assert data["timings"] == {"wall_seconds": 3.142}
    assert data["parameters"] == {"seed": 0, "lr": 0.1}
    assert set(data["versions"]) >= {"torch", "transformers"}
    assert results.failed_claims() == ["differs"]
    assert "DOES NOT HOLD" in capsys.readouterr().out


def test_save_is_deterministic_and_leaves_no_temp_files(tmp_path):
    for _ in range(2):
        results = Results("98_example", {"seed": 1})
        results.claim("c", True, "s", {"x": 1 / 3})
        results.save(tmp_path)
    first = (tmp_path / "98_example.json").read_bytes()
    results.save(tmp_path)
    assert (tmp_path / "98_example.json").read_bytes() == first
    assert [p.name for p in tmp_path.iterdir()] == ["98_example.json"]


def test_non_finite_numbers_stay_valid_json(tmp_path):
    results = Results("97_example", {})
    results.metric("loss", float("nan"))
    data = json.loads(results.save(tmp_path).read_text())
    assert data["metrics"]["loss"] == "nan"


def test_load_results_names_missing_file(tmp_path):
    try:
        load_results("01_missing", tmp_path)
    except FileNotFoundError as error:
        assert "01_missing" in str(error) and "utils.run" in str(error)
    else:
        raise AssertionError("expected FileNotFoundError")
    Results("01_a", {}).save(tmp_path)
    assert list(load_all_results(tmp_path)) == ["01_a"]


def test_save_writes_the_usual_file_mode(tmp_path):
    umask = os.umask(0o022)
    try:
        path = Results("96_example", {}).save(tmp_path)
    finally:
        os.umask(umask)
    assert oct(path.stat().st_mode & 0o777) == "0o644"  # tempfile's 0600 is what it must not be


def test_load_all_results_names_the_bad_file_and_what_is_wrong(tmp_path):
    Results("01_a", {}).save(tmp_path)
    bad = tmp_path / "02_b.json"
    bad.write_text('{"notebook": "02_b", "parameters": {}, "claims": []}')
    with pytest.raises(ResultsFileError) as error:
        load_all_results(tmp_path)
    assert str(error.value).startswith(f"{bad}: not a results file of this collection: ")
    assert "'claims' must be an object, got a list; lacks the key 'metrics'" in str(error.value)
    bad.write_text("[1, 2")
    with pytest.raises(ResultsFileError, match=r"02_b.json: not valid JSON \(Expecting"):
        load_results("02_b", tmp_path)
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(ResultsFileError, match="02_b.json: not valid JSON"):
        read_results_file(bad)


def test_results_problems_checks_each_claim():
    data = Results("03_c", {}).to_dict()
    assert results_problems(data, "03_c") == []
    data["claims"] = {"x": {"holds": "yes", "statement": "s"}, "y": 1}
    assert results_problems(data, "03_d") == [
        "'notebook' is '03_c' but the file is named 03_d.json",
        "claim 'x': 'holds' must be true or false, got a string",
        "claim 'y' must be an object, got int",
    ]
    assert results_problems([], "03_c") == ["the top level must be an object, got a list"]


def test_results_differences_names_what_changed():
    from utils.harness.results import results_differences

    run = {"claims": {"a": {"holds": True}}, "metrics": {"x": 1.0}, "timings": {"t": 1}}
    assert results_differences({"01": run}, {"01": {**run, "timings": {"t": 2}}}) == []
    changed = {"claims": {"a": {"holds": False}, "b": {"holds": True}}, "metrics": {"x": 1.5}}
    assert results_differences({"01": run}, {"01": changed, "02": run}) == [
        "01: claim ids differ: ['b']", "01: claim a holds True -> False", "01: metric x 1.0 -> 1.5",
        "02: only in after"]


def test_a_claim_records_the_cell_it_was_made_in():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_cell("from utils.harness.results import Results\nr = Results('01_x', {})", store_history=True)
    outcome = shell.run_cell("r.claim('c', True, 'made here')", store_history=True)
    assert shell.user_ns["r"].claims["c"]["cell"] == outcome.execution_count  # the In[n] the reader sees


def test_a_missing_optional_package_is_recorded_as_absent(tmp_path, monkeypatch):
    """`datasets` is optional: a run on a machine without it still saves its results (issue 21: a GPU training run
    was lost because library_versions() required it)."""
    from importlib import metadata

    from utils.harness import results as results_module

    real_version = metadata.version

    def version_without_datasets(name):
        if name == "datasets":
            raise metadata.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(results_module.metadata, "version", version_without_datasets)
    recorder = Results("99_absent", {"seed": 0})
    recorder.metric("loss", 1.0)
    saved = json.loads(recorder.save(tmp_path).read_text())
    assert saved["versions"]["datasets"] == "absent"
    assert saved["versions"]["torch"] == real_version("torch")
