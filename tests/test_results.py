import json

import torch

from utils.harness.results import Results, load_all_results, load_results


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
