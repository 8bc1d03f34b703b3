"""The committed reports are what `make run` renders from the current sources: none is stale or missing."""

import json

import pytest

from utils.harness.parameters import read_parameters
from utils.harness.paths import NOTEBOOKS_DIR, REPO_ROOT
from utils.harness.run import source_hash

REPORTS = REPO_ROOT / "reports"
SOURCES = sorted(NOTEBOOKS_DIR.glob("[0-9]*.ipynb"))


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_committed_report_matches_its_source(source):
    executed = REPORTS / f"{source.stem}.ipynb"
    assert executed.exists(), f"no committed report for {source.stem}: run `make run` and commit reports/"
    metadata = json.loads(executed.read_text(encoding="utf-8"))["metadata"].get("tinfer", {})
    assert metadata.get("source_sha256") == source_hash(source), (
        f"reports/{source.stem}.ipynb is stale against notebooks/{source.stem}.ipynb: re-run `make run`")
    assert metadata.get("smoke") is False, f"reports/{source.stem}.ipynb was rendered with smoke parameters"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_committed_results_use_default_parameters(source):
    path = REPORTS / "results" / f"{source.stem}.json"
    assert path.exists(), f"no committed results for {source.stem}"
    recorded = json.loads(path.read_text(encoding="utf-8"))["parameters"]
    defaults = {name: parameter.default for name, parameter in read_parameters(source).items()}
    assert recorded == json.loads(json.dumps(defaults)), f"{path.name} was not produced with default parameters"


def test_findings_markdown_is_committed():
    text = (REPORTS / "FINDINGS.md").read_text(encoding="utf-8")
    assert "| topic |" in text and "Is this what T5 does?" in text
    assert text.index("## Answers") < text.index("## Verdict table")  # the answers open the document


def test_committed_findings_report_every_claim_that_does_not_hold():
    """A claim that does not hold is reported, never hidden: the committed findings cite only recorded claims, and
    their list of claims that do not hold is exactly what the committed results say, named in FINDINGS.md."""
    from utils.reporting.findings import failing_claims, findings_results, missing_claims

    results = findings_results(REPORTS / "results")  # the notebooks' results and the long run's, as notebook 00 reads
    findings = json.loads((REPORTS / "results" / "00_findings.json").read_text(encoding="utf-8"))
    present = findings["claims"]["all_cited_claims_present"]
    assert present["holds"] and missing_claims(results) == [], f"cited but not recorded: {present['evidence']}"
    all_hold = findings["claims"]["all_claims_hold"]
    assert all_hold["evidence"]["not_holding"] == failing_claims(results)
    assert all_hold["holds"] == (failing_claims(results) == [])
    markdown = (REPORTS / "FINDINGS.md").read_text(encoding="utf-8")
    assert all(name in markdown for name in failing_claims(results))
    assert len(findings["sentences"]) == findings["metrics"]["sentences"]
