"""`python -m utils.verify DIR`: a rerun is compared with the published reports (issue 21)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from utils.reporting.verify import main, verify

ROOT = Path(__file__).resolve().parents[1]


def write(folder: Path, stem: str, claims: dict, metrics: dict, sentences: list | None = None) -> None:
    (folder / "results").mkdir(parents=True, exist_ok=True)
    data = {"notebook": stem, "parameters": {}, "claims": {c: {"holds": h, "statement": c} for c, h in claims.items()},
            "metrics": metrics, "timings": {}, "versions": {}}
    if sentences is not None:
        data["sentences"] = sentences
    (folder / "results" / f"{stem}.json").write_text(json.dumps(data))


@pytest.fixture
def published(tmp_path) -> Path:
    folder = tmp_path / "published"
    write(folder, "04_tinfer_training", {"causal_beats_no_mask": True, "beam_not_worse": False},
          {"causal_greedy_exact_match": 0.92, "causal_greedy_exact_match_interval": [0.88, 0.95],
           "causal_greedy_wer": 0.55, "causal_greedy_wer_ci95": [0.53, 0.58], "loss": 0.5})
    write(folder, "00_findings", {}, {}, [{"id": "answer.t5", "established": True},
                                          {"id": "pitfall.beam", "established": False}])
    return folder


def rerun_of(published: Path, tmp_path: Path, change=None) -> Path:
    folder = tmp_path / "rerun"
    shutil.copytree(published, folder)
    if change is not None:
        path = folder / "results" / f"{change[0]}.json"
        data = json.loads(path.read_text())
        change[1](data)
        path.write_text(json.dumps(data))
    return folder


def test_an_unchanged_copy_verifies(published, tmp_path, capsys):
    assert main([str(rerun_of(published, tmp_path)), "--published", str(published)]) == 0
    assert "reproduces every verdict" in capsys.readouterr().out


def test_a_changed_verdict_is_named(published, tmp_path):
    rerun = rerun_of(published, tmp_path, ("04_tinfer_training",
                                           lambda d: d["claims"]["beam_not_worse"].update(holds=True)))
    result = verify(rerun, published)
    assert result.exit_code == 1 and result.verdict_changes == ["04_tinfer_training:beam_not_worse holds False -> True"]


def test_a_changed_sentence_status_is_named(published, tmp_path):
    rerun = rerun_of(published, tmp_path, ("00_findings", lambda d: d["sentences"][0].update(established=False)))
    result = verify(rerun, published)
    assert result.exit_code == 1 and result.sentence_changes == ["answer.t5: established True -> False"]


@pytest.mark.parametrize("name, value", [("causal_greedy_exact_match", 0.80), ("causal_greedy_wer", 0.60)])
def test_a_headline_number_outside_its_interval_is_listed(published, tmp_path, name, value):
    rerun = rerun_of(published, tmp_path, ("04_tinfer_training", lambda d: d["metrics"].update({name: value})))
    result = verify(rerun, published)
    assert result.exit_code == 1 and len(result.outside_interval) == 1 and name in result.outside_interval[0]


def test_a_number_inside_its_interval_and_other_metric_changes_are_summarised(published, tmp_path, capsys):
    rerun = rerun_of(published, tmp_path, ("04_tinfer_training", lambda d: d["metrics"].update(
        causal_greedy_exact_match=0.90, loss=0.5000001)))
    assert main([str(rerun), "--published", str(published)]) == 0
    out = capsys.readouterr().out
    assert "other metrics that changed: 1" in out and "04_tinfer_training:loss" in out


def test_a_claim_missing_from_the_rerun_fails(published, tmp_path):
    rerun = rerun_of(published, tmp_path, ("04_tinfer_training", lambda d: d["claims"].pop("causal_beats_no_mask")))
    assert verify(rerun, published).missing == ["04_tinfer_training: claim causal_beats_no_mask"]


def test_a_folder_without_results_is_refused(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "no results/ folder" in capsys.readouterr().err


def test_the_command_on_a_copy_of_the_committed_reports_exits_0(tmp_path):
    copy = tmp_path / "reports-copy"
    shutil.copytree(ROOT / "reports" / "results", copy / "results")
    done = subprocess.run([sys.executable, "-m", "utils.verify", str(copy)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
