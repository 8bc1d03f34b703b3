"""The deck is generated from the findings records: one slide per verdict row, notes everywhere, nothing remote.

`fixture_reports` lays out the committed reports with tests/fixtures/00_findings_sentences.json as the findings
(the committed 00_findings.json has no "sentences" until the findings notebook writes them); `built_reports`
builds the deck and the site from it (once per test run: conftest's `rendered_reports`, for test_site and test_browser).
"""

import copy
import json
from pathlib import Path

import pytest

from utils.harness.paths import REPO_ROOT
from utils.harness.results import load_all_results
from utils.reporting.deck import (
    BODY_WORDS,
    _fit_words,
    _inline_markdown,
    _install_reveal,
    _plan_slides,
    _word_count,
    build_deck,
)
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


def built_reports(root: Path) -> Path:
    """Fixture reports under `root` with slides/ (deck.pdf too when Chromium is here) and site/ built (the tests
    use the `rendered_reports` fixture of conftest.py, which builds this once per test run)."""
    from utils.reporting.browser import chromium_missing
    from utils.reporting.site import build_site

    reports = fixture_reports(root / "reports")
    build_deck(reports, reports / "slides", pdf=chromium_missing() is None)
    build_site(reports, reports / "site", docs=root / "docs")
    return reports


def fixture_records() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def plan(findings: dict | None = None):
    findings = findings or fixture_records()
    return _plan_slides(findings["sentences"], load_all_results(REPORTS / "results"), REPORTS)


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


def real_data_record() -> dict:
    return {"id": "real_data.outcome", "section": "real_data", "title": "Real data: CMUdict",
            "text": "On real data the result holds: the no-mask model has a greedy word error rate of 0.98 (95% "
                    "interval 0.97–0.99), against 0.41 (95% interval 0.39–0.43) with the causal mask.",
            "established": True, "figure": "figures/10_tinfer_real_data/wer_per_by_variant.png", "notes": "",
            "claims": [{"notebook": "10_tinfer_real_data", "id": "no_mask_worst_free_running_wer", "holds": True,
                        "status": "holds", "statement": "s"}],
            "metrics": [{"notebook": "10_tinfer_real_data", "name": "no_mask_greedy_wer", "value": 0.98,
                         "text": "0.98 (95% interval 0.97–0.99)", "interval": [0.97, 0.99]}], "citations": []}


def test_slides_follow_the_records_in_the_talk_order():
    slides = plan()
    kinds = [slide["kind"] for slide in slides]
    verdicts = [r for r in fixture_records()["sentences"] if r["section"] == "verdict"]
    assert kinds[0] == "title" and kinds.count("verdict") == len(verdicts) == 6
    assert kinds[1:4] == ["answer"] * 3  # answers first, then the evidence
    order = [kind for i, kind in enumerate(kinds) if i == 0 or kinds[i - 1] != kind]
    assert order == ["title", "answer", "verdict", "pitfall", "audit", "real_data_more", "scope", "rerun"]
    assert slides[0]["questions"] == ["Is this what T5 does?", "Is this what the original Transformer does?",
                                      "Is this what T5 and the original Transformer do in Hugging Face?"]
    assert all(slide["notes"].strip() for slide in slides)


def test_a_verdict_slide_has_its_sentence_number_interval_figure_and_claims():
    mask = next(slide for slide in plan() if slide["id"] == "verdict.causal_mask")
    assert "DIFFERS" in mask["headline"] and "verdict-word differs" in mask["headline"]
    assert [(m["number"], m["rest"]) for m in mask["metrics"]][:1] == [("0.00", "(95% interval 0.00–0.01)")]
    assert mask["words"] <= BODY_WORDS  # the second number, if it does not fit, is in the sentence in the notes
    assert mask["figure"] == "figures/04b_tinfer_sweep/exact_match_over_seeds.png"
    shown = mask["claims"]["shown"]
    assert shown and len(shown) + mask["claims"]["more"] == mask["claims"]["total"] == 8  # the rest in the notes
    assert all(claim["holds"] for claim in shown)
    assert "02:audit_flags_no_mask_model" in mask["notes"] and "Vaswani" in mask["notes"]


def test_a_failing_backing_claim_is_shown_with_a_cross():
    findings = fixture_records()
    record = findings["sentences"][0]
    record["claims"][0].update(holds=False, status="does not hold")
    record["established"], record["text"] = False, "not established: " + record["text"]
    slide = next(s for s in plan(findings) if s["id"] == record["id"])
    assert slide["claims"]["failing"] == 1 and slide["claims"]["shown"][0]["status"] == "does not hold"
    assert not slide["established"]
    scope = [s for s in plan() if s["kind"] in ("scope", "real_data_more")]
    assert any(not entry["established"] for s in scope for entry in s["entries"])  # the fixture's missing claim


def test_long_sections_are_split_across_slides():
    findings = fixture_records()
    pitfall = next(r for r in findings["sentences"] if r["section"] == "pitfall")
    findings["sentences"] += [dict(copy.deepcopy(pitfall), id=f"pitfall.extra{i}") for i in range(4)]
    titles = [s["title"] for s in plan(findings) if s["kind"] == "pitfall"]
    assert titles == ["Pitfalls (1/4)", "Pitfalls (2/4)", "Pitfalls (3/4)", "Pitfalls (4/4)"]


def test_each_answer_slide_opens_with_its_verdict_line_and_keeps_the_details_in_the_notes():
    findings = fixture_records()
    findings["sentences"] = [r for r in findings["sentences"] if r["section"] != "answer"] + [
        {"id": f"answer.t5.{part}", "section": "answer", "title": "Is this what T5 does?", "text": text,
         "established": True, "claims": [], "metrics": []}
        for part, text in (("outcome", "No: T5's decoder is causal; the researcher's is not. Everything else matches. "
                                       "Greedy exact match 0.00 (95% interval 0.00–0.00) without the mask, 0.92 "
                                       "(95% interval 0.88–0.95) with it."),
                           ("same", "What matches: the whole right-shifted target in one teacher-forced pass."))]
    slide = next(s for s in plan(findings) if s["kind"] == "answer")
    assert slide["text"].startswith("No: T5's decoder is causal") and "0.92 (95% interval 0.88–0.95)" in slide["text"]
    assert "What matches" not in slide["text"] and "Details: What matches" in slide["notes"]


def test_no_slide_body_is_over_the_word_limit_and_nothing_is_lost():
    findings = fixture_records()
    findings["sentences"].append(real_data_record())
    long = next(r for r in findings["sentences"] if r["section"] == "pitfall")
    long["text"] = " ".join(["A long pitfall sentence with many words."] * 12)
    for slide in plan(findings):
        assert slide.get("words", 0) <= BODY_WORDS, (slide["id"], slide.get("words"))
    pitfall = next(s for s in plan(findings) if s["kind"] == "pitfall")
    assert long["text"] in pitfall["notes"]  # what the slide leaves out is in the notes
    shown, rest = _fit_words(long["text"], 20)
    assert _word_count(shown) <= 20 and rest and shown.endswith("words.")


def test_the_real_data_slide_shows_notebook_10s_figure():
    findings = fixture_records()
    findings["sentences"].append(real_data_record())
    slide = next(s for s in plan(findings) if s["kind"] == "real_data")
    assert slide["figure"] == "figures/10_tinfer_real_data/wer_per_by_variant.png"
    assert (REPORTS / slide["figure"]).exists()
    assert [(m["number"], m["rest"]) for m in slide["metrics"]] == [("0.98", "(95% interval 0.97–0.99)")]


def test_inline_markdown_escapes_html_and_keeps_code():
    assert _inline_markdown("a <b> `x < y` **bold**") == "a &lt;b&gt; <code>x &lt; y</code> <strong>bold</strong>"


def test_reveal_comes_from_the_pinned_npm_tarball():
    reveal = _install_reveal()
    # the package's dist/reveal.js keeps 5.1.0 in its banner comment; the version constant inside is the release's
    assert '="5.2.0"' in (reveal / "dist" / "reveal.js").read_text(encoding="utf-8")
    assert (reveal / "plugin" / "notes" / "notes.js").exists() and (reveal / "LICENSE").exists()
    assert (reveal.parent / "reveal.js-5.2.0.tgz").exists()


def test_a_tarball_that_does_not_match_the_registry_integrity_is_refused(tmp_path):
    (tmp_path / "reveal.js-5.2.0.tgz").write_bytes(b"not the package")
    with pytest.raises(RuntimeError, match="integrity"):
        _install_reveal(tmp_path)


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
