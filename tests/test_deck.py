"""The deck is generated from the findings records: one slide per verdict row, notes everywhere, nothing remote.

`fixture_reports` lays out the committed reports with tests/fixtures/00_findings_sentences.json as the findings
(the committed 00_findings.json has no "sentences" until the findings notebook writes them); `built_reports`
builds the deck and the site from it once per test session (shared with test_site and test_browser).
"""

import atexit
import copy
import functools
import json
import shutil
import tempfile
from pathlib import Path

import pytest

from utils.harness.paths import REPO_ROOT
from utils.harness.results import load_all_results
from utils.reporting.deck import build_deck, inline_markdown, install_reveal, plan_slides
from utils.reporting.sentences import load_sentences
from utils.reporting.site import remote_references

REPORTS = REPO_ROOT / "reports"
FIXTURE = Path(__file__).parent / "fixtures" / "00_findings_sentences.json"
BUILT_HERE = {"slides", "site", "html", "index.html"}  # written by the builders: never links


def fixture_reports(folder: Path, findings: dict | None = None) -> Path:
    """`folder` holding links to the committed reports; 00_findings.json is `findings` if given, else the committed
    one when it has "sentences", else the fixture."""
    (folder / "results").mkdir(parents=True)
    for entry in REPORTS.iterdir():
        if entry.name not in BUILT_HERE | {"results"}:
            (folder / entry.name).symlink_to(entry)
    for result in (REPORTS / "results").glob("*.json"):
        if result.name != "00_findings.json":
            (folder / "results" / result.name).symlink_to(result)
    committed = REPORTS / "results" / "00_findings.json"
    if findings is None and "sentences" in json.loads(committed.read_text(encoding="utf-8")):
        (folder / "results" / "00_findings.json").symlink_to(committed)  # the real records, once they are written
        return folder
    text = FIXTURE.read_text(encoding="utf-8") if findings is None else json.dumps(findings)
    (folder / "results" / "00_findings.json").write_text(text, encoding="utf-8")
    return folder


@functools.cache
def built_reports() -> Path:
    """Fixture reports with slides/ (deck.pdf too when Chromium is here) and site/ built, once per session."""
    from utils.reporting.browser import chromium_missing
    from utils.reporting.site import build_site

    root = Path(tempfile.mkdtemp(prefix="tinfer-render-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    reports = fixture_reports(root / "reports")
    build_deck(reports, reports / "slides", pdf=chromium_missing() is None)
    build_site(reports, reports / "site", docs=root / "docs")
    return reports


def fixture_records() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def plan(findings: dict | None = None):
    findings = findings or fixture_records()
    return plan_slides(findings["sentences"], load_all_results(REPORTS / "results"), REPORTS)


def test_a_findings_file_without_sentences_is_refused_naming_the_file_and_key(tmp_path):
    path = tmp_path / "00_findings.json"
    findings = json.loads((REPORTS / "results" / "00_findings.json").read_text(encoding="utf-8"))
    findings.pop("sentences", None)
    path.write_text(json.dumps(findings), encoding="utf-8")
    with pytest.raises(LookupError, match=r"00_findings\.json has no key 'sentences'"):
        load_sentences(path)
    with pytest.raises(LookupError, match="'sentences'"):
        build_deck(REPORTS, tmp_path / "slides", findings=path, pdf=False)


def test_malformed_records_are_refused_with_what_is_wrong(tmp_path):
    findings = fixture_records()
    del findings["sentences"][0]["claims"]
    findings["sentences"][1]["section"] = "summary"
    path = tmp_path / "00_findings.json"
    path.write_text(json.dumps(findings))
    with pytest.raises(ValueError, match=r"verdict\.decoder_input: missing claims.*section 'summary'"):
        load_sentences(path)


def test_slides_follow_the_records_in_the_talk_order():
    slides = plan()
    kinds = [slide["kind"] for slide in slides]
    verdicts = [r for r in fixture_records()["sentences"] if r["section"] == "verdict"]
    assert kinds[0] == "title" and kinds.count("verdict") == len(verdicts) == 6
    assert kinds.index("answer") > kinds.index("verdict")
    order = [kind for i, kind in enumerate(kinds) if i == 0 or kinds[i - 1] != kind]
    assert order == ["title", "verdict", "answer", "pitfall", "audit", "scope", "rerun"]
    assert slides[0]["questions"] == ["Is this what T5 does?", "Is this what the original Transformer does?",
                                      "Is this what T5 and the original Transformer do in Hugging Face?"]
    assert all(slide["notes"].strip() for slide in slides)


def test_a_verdict_slide_has_its_sentence_number_interval_figure_and_claims():
    mask = next(slide for slide in plan() if slide["id"] == "verdict.causal_mask")
    assert "DIFFERS" in mask["headline"] and "verdict-word differs" in mask["headline"]
    assert [(m["number"], m["rest"]) for m in mask["metrics"]] == [("0.00", "(95% interval 0.00–0.01)"),
                                                                  ("0.93", "(95% interval 0.92–0.94)")]
    assert mask["figure"] == "figures/04b_tinfer_sweep/exact_match_over_seeds.png"
    assert len(mask["claims"]["shown"]) == 7 and mask["claims"]["more"] == 1
    assert all(claim["holds"] for claim in mask["claims"]["shown"])
    assert "02:audit_flags_no_mask_model" in mask["notes"] and "Vaswani" in mask["notes"]


def test_a_failing_backing_claim_is_shown_with_a_cross():
    findings = fixture_records()
    record = findings["sentences"][0]
    record["claims"][0].update(holds=False, status="does not hold")
    record["established"], record["text"] = False, "not established: " + record["text"]
    slide = plan(findings)[1]
    assert slide["claims"]["failing"] == 1 and slide["claims"]["shown"][0]["status"] == "does not hold"
    assert not slide["established"]
    scope = [s for s in plan() if s["kind"] == "scope"]
    assert any(not entry["established"] for s in scope for entry in s["entries"])  # the fixture's missing claim


def test_long_sections_are_split_across_slides():
    findings = fixture_records()
    pitfall = next(r for r in findings["sentences"] if r["section"] == "pitfall")
    findings["sentences"] += [dict(copy.deepcopy(pitfall), id=f"pitfall.extra{i}") for i in range(4)]
    titles = [s["title"] for s in plan(findings) if s["kind"] == "pitfall"]
    assert titles == ["Pitfalls (1/3)", "Pitfalls (2/3)", "Pitfalls (3/3)"]


def test_inline_markdown_escapes_html_and_keeps_code():
    assert inline_markdown("a <b> `x < y` **bold**") == "a &lt;b&gt; <code>x &lt; y</code> <strong>bold</strong>"


def test_reveal_comes_from_the_pinned_wheel():
    reveal = install_reveal()
    assert "reveal.js 5.2.0" in (reveal / "dist" / "reveal.js").read_text(encoding="utf-8")[:200]
    assert (reveal / "plugin" / "notes" / "notes.js").exists() and (reveal / "LICENSE").exists()


def test_the_deck_is_self_contained(tmp_path):
    reports = fixture_reports(tmp_path / "reports")
    deck = build_deck(reports, tmp_path / "slides", pdf=False)
    page = deck.read_text(encoding="utf-8")
    laid_out = json.loads((reports / "results" / "00_findings.json").read_text(encoding="utf-8"))
    slides = plan(laid_out)
    assert remote_references(page) == []
    assert page.count("<section ") == len(slides) and page.count('<aside class="notes">') == len(slides)
    assert 'src="reveal.js/dist/reveal.js"' in page and (tmp_path / "slides" / "reveal.js" / "dist").is_dir()
    figures = [r["figure"] for r in laid_out["sentences"] if r["section"] == "verdict" and r.get("figure")]
    assert figures and all((tmp_path / "slides" / figure).exists() for figure in figures)
    assert not (tmp_path / "slides" / "deck.pdf").exists()
