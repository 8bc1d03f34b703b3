"""The version-drift harness (notebook 13, `make drift`) on the main environment only: the measurement module run by
this Python in a subprocess, one failing behaviour, and environments that are missing, broken or the wrong release."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import transformers

from utils.experiments import version_drift as drift
from utils.experiments.version_drift import (
    BEHAVIOURS,
    CONTROLS,
    UPSTREAM,
    DriftEnvironmentError,
    _drive,
    load_records,
    matrix_rows,
    run_version,
)
from utils.harness.paths import REPO_ROOT

DATA = REPO_ROOT / "data" / "drift"


@pytest.fixture(scope="module")
def main_record():
    """This environment measured through the same subprocess path `make drift` uses for every release."""
    return run_version("main", sys.executable)


def test_the_main_environment_measures_every_behaviour_and_control(main_record):
    assert main_record["transformers"] == transformers.__version__
    assert main_record["label"] == ".".join(transformers.__version__.split(".")[:2])
    assert set(main_record["behaviours"]) == set(BEHAVIOURS) and len(BEHAVIOURS) >= 12
    assert set(main_record["controls"]) == set(CONTROLS)
    failed = {name: cell["error"] for section in ("behaviours", "controls")
              for name, cell in main_record[section].items() if "error" in cell}
    assert not failed, failed
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", main_record["date"])
    assert main_record["versions"]["torch"].startswith("2.13.0")


def test_the_controls_hold_on_the_main_environment(main_record):
    controls = {name: cell["value"] for name, cell in main_record["controls"].items()}
    assert controls["shift_right_t5"] == 0 and controls["shift_right_marian"] == 0
    assert controls["greedy_generate_equals_loop_t5"] is True and controls["greedy_generate_equals_loop_marian"] is True
    assert controls["loss_ignores_minus_100"] < 1e-5
    assert controls["causal_mask_t5"] < 1e-4 and controls["causal_mask_marian"] < 1e-4


def test_the_gradient_accumulation_ratio_is_one_or_k(main_record):
    """Equal-length examples: the accumulated SGD update is exactly 1x (right) or k x (the pitfall) the full one."""
    ratio = main_record["behaviours"]["ga_ratio_sgd"]["value"]
    assert min(abs(ratio - 1), abs(ratio - drift.GA_STEPS)) < 1e-3, ratio
    assert abs(main_record["behaviours"]["ga_ratio_adamw"]["value"] - 1) < 0.01


def test_the_record_cites_installed_source_lines(main_record):
    trainer_lines = main_record["sources"]["ga_ratio_sgd"][0]
    assert trainer_lines["file"] == "transformers/trainer.py"
    source = Path(transformers.__file__).parent / "trainer.py"
    text = source.read_text(encoding="utf-8").splitlines()
    for hit in trainer_lines["lines"]:
        assert hit["text"][:40] in text[hit["line"] - 1].strip(), hit


def test_one_failing_behaviour_records_its_error_and_the_others_run(monkeypatch):
    def broken():
        raise RuntimeError("planted failure")

    monkeypatch.setattr(drift, "_t5_default_attn_implementation", broken)
    record = drift.measure(only=["t5_default_attn_implementation", "shift_right_t5"])
    assert "planted failure" in record["behaviours"]["t5_default_attn_implementation"]["error"]
    assert record["behaviours"]["t5_default_attn_implementation"]["value"] is None
    assert record["controls"]["shift_right_t5"] == {"value": 0, "detail": {}}


def fake_python(folder: Path, script: str, stamp: bool = True) -> Path:
    """A venv-shaped folder whose bin/python is a shell script (a broken or foreign environment)."""
    python = folder / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n" + script + "\n", encoding="utf-8")
    python.chmod(0o755)
    if stamp:
        (folder / ".installed").touch()
    return python


def record_script(label: str, version: str) -> str:
    """A fake interpreter that writes a minimal record to the --out path ($4 of `-m module --out PATH`)."""
    record = {"transformers": version, "label": label, "date": "2026-01-01T00:00:00Z", "versions": {},
              "behaviours": {}, "controls": {}, "sources": {}}
    return f"printf '%s' '{json.dumps(record)}' > \"$4\""


def test_a_missing_environment_names_its_release(tmp_path):
    with pytest.raises(DriftEnvironmentError, match=r"transformers 4\.46: no environment.*requirements/drift-4\.46"):
        run_version("4.46", tmp_path / ".venv-tf4.46" / "bin" / "python")


def test_an_environment_that_cannot_import_names_its_release_and_the_error(tmp_path):
    python = fake_python(tmp_path / "venv", "echo \"ModuleNotFoundError: No module named 'transformers'\" >&2; exit 1")
    with pytest.raises(DriftEnvironmentError) as caught:
        run_version("4.57", python)
    assert "transformers 4.57" in str(caught.value) and "exit code 1" in str(caught.value)
    assert "No module named 'transformers'" in str(caught.value)


def test_an_environment_holding_another_release_is_refused(tmp_path):
    python = fake_python(tmp_path / "venv", record_script("5.24", "5.24.0"))
    with pytest.raises(DriftEnvironmentError, match=r"transformers 4\.46: .* imports transformers 5\.24\.0, not 4\.46"):
        run_version("4.46", python)


def test_drive_reports_a_broken_environment_by_name_and_still_runs_the_others(tmp_path, capsys):
    good = tmp_path / "good"
    fake_python(good, record_script("4.57", "4.57.6"))
    half_installed = tmp_path / "half"
    fake_python(half_installed, record_script("4.51", "4.51.3"), stamp=False)
    out = tmp_path / "records"
    code = _drive({"4.46": str(tmp_path / "missing"), "4.51": str(half_installed), "4.57": str(good)}, out,
                 include_main=False)
    stderr = capsys.readouterr().err
    assert code == 1
    assert "ERROR transformers 4.46: no environment" in stderr
    assert "ERROR transformers 4.51" in stderr and "incomplete" in stderr
    assert [p.name for p in out.iterdir()] == ["4.57.json"]
    assert json.loads((out / "4.57.json").read_text())["transformers"] == "4.57.6"


def test_load_records_orders_releases_and_refuses_a_foreign_file(tmp_path):
    for label in ("5.24", "4.46", "4.57"):
        (tmp_path / f"{label}.json").write_text(json.dumps(
            {"transformers": label + ".0", "label": label, "behaviours": {"x": {"value": label == "5.24"}},
             "controls": {}}))
    records = load_records(tmp_path)
    assert list(records) == ["4.46", "4.57", "5.24"]
    (tmp_path / "notes.json").write_text("{}")
    with pytest.raises(ValueError, match="notes.json is not a version-drift record"):
        load_records(tmp_path)


def test_the_matrix_marks_the_rows_that_differ():
    records = {"4.57": {"behaviours": {"target_tokenizer_context": {"value": "present"}}, "controls": {}},
               "5.24": {"behaviours": {"target_tokenizer_context": {"value": "absent"}}, "controls": {}}}
    rows = {row["id"]: row for row in matrix_rows(records)}
    assert rows["target_tokenizer_context"]["differs"] and rows["target_tokenizer_context"]["5.24"] == "absent"
    assert not rows["shift_right_t5"]["differs"] and rows["shift_right_t5"]["4.57"] == "(not measured)"


def test_the_committed_records_hold_two_4x_releases_and_5_24_with_one_torch():
    records = load_records(DATA)
    assert {"4.46", "4.57", "5.24"} <= set(records)
    assert len({r["versions"]["torch"] for r in records.values()}) == 1
    for label, record in records.items():
        assert record["transformers"].startswith(label + ".") and record["date"]
        assert set(record["behaviours"]) == set(BEHAVIOURS) and set(record["controls"]) == set(CONTROLS), label
    differing = [row["id"] for row in matrix_rows(records) if row["differs"] and row["kind"] == "behaviour"]
    assert "ga_ratio_sgd" in differing
    assert not [name for name in differing if name not in UPSTREAM], "a difference without its upstream change"


def test_make_drift_never_touches_the_main_venv():
    dry_run = subprocess.run(["make", "-n", "drift"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    assert "-m utils.drift --out-dir data/drift" in dry_run
    assert not re.search(r"(^|[\s;])\.venv/bin/python -m pip", dry_run), dry_run
    assert "requirements.txt" not in dry_run and "ipykernel" not in dry_run
