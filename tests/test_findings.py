"""The findings: every sentence is generated from the claims that test it, and says so when they fail."""

import copy
import json
import re

import pytest

from utils.harness.paths import REPO_ROOT
from utils.harness.results import load_all_results
from utils.reporting.findings import (
    QUESTIONS,
    ROWS,
    all_sentences,
    answer_blocks,
    failing_claims,
    findings_markdown,
    findings_results,
    missing_claims,
    sanity_claims,
    sentence_records,
    verdict_table,
)
from utils.reporting.provenance import _DIGITS_OUTSIDE, Claim, Sentence, provenance_problems, render


def complete_results() -> dict:
    """Synthetic results in which every cited claim holds and every quoted metric is present."""
    results = {}
    for sentence in all_sentences():
        for claim in sentence.claims:
            entry = results.setdefault(claim.notebook, {"claims": {}, "metrics": {}, "parameters": {}})
            entry["claims"][claim.id] = {"holds": True, "statement": "s", "evidence": None}
        for quoted in sentence.metrics.values():
            entry = results.setdefault(quoted.notebook, {"claims": {}, "metrics": {}, "parameters": {}})
            value = [0.25, 0.75] if "{0[" in quoted.format else 7 if "d}" in quoted.format else 0.5
            entry[quoted.section][quoted.id] = value
            if quoted.interval:
                entry["metrics"][quoted.interval] = [0.25, 0.75]
    return results


def records_by_id(results) -> dict:
    return {record["id"]: record for record in sentence_records(results)}


def test_every_sentence_names_its_claims_and_types_no_number():
    assert provenance_problems(all_sentences()) == []


def test_the_provenance_check_fails_on_a_planted_sentence_without_a_claim():
    planted = Sentence("answer.planted", "answer", "HF's T5 decodes with beams by default.")
    assert provenance_problems([*all_sentences(), planted]) == ["answer.planted: no claim tests it"]


def test_complete_results_establish_every_sentence():
    results = complete_results()
    records = sentence_records(results)
    assert all(record["established"] for record in records), [r["text"] for r in records if not r["established"]]
    table = verdict_table(records)
    assert [row["topic"] for row in table] == [row.verdict.title for row in ROWS]
    assert table[1]["verdict"].startswith("DIFFERS")
    assert missing_claims(results) == [] and failing_claims(results) == []
    assert {record["title"] for record in records if record["section"] == "answer"} == set(QUESTIONS)
    assert "0.50 (95% interval 0.25–0.75)" in records_by_id(results)["answer.t5.outcome"]["text"]


def test_a_failing_claim_turns_its_sentences_into_not_established():
    results = complete_results()
    results["02_causal_mask"]["claims"]["audit_flags_no_mask_model"]["holds"] = False
    records = records_by_id(results)
    assert records["verdict.mask"]["text"].startswith("not established: “DIFFERS")
    assert "02:audit_flags_no_mask_model does not hold" in records["verdict.mask"]["text"]
    row = next(r for r in verdict_table(list(records.values())) if r["topic"] == "Decoder self-attention mask")
    assert "02:audit_flags_no_mask_model ✗" in row["claims"]
    assert failing_claims(results) == ["02_causal_mask:audit_flags_no_mask_model"]
    assert records["answer.t5.same"]["established"]  # sentences that do not cite it are unaffected


def test_a_sanity_check_backs_no_sentence():
    results = complete_results()
    results["01_shift_right"]["claims"]["t5_shift_matches_handwritten"]["sanity"] = True
    row = records_by_id(results)["verdict.input"]
    assert row["cells"]["hf_t5"].startswith("not established") and "sanity check only" in row["cells"]["hf_t5"]
    assert not row["established"]  # the verdict cites the same claim
    assert sanity_claims(results) == ["01_shift_right:t5_shift_matches_handwritten"]


def test_a_missing_notebook_is_named():
    results = copy.deepcopy(complete_results())
    del results["03_loss_masking"]
    assert any(label.startswith("03_loss_masking:") for label in missing_claims(results))
    assert "03:hf_loss_is_token_mean missing" in records_by_id(results)["verdict.loss"]["cells"]["hf_t5"]


def test_user_model_audit_claims_are_not_failures():
    results = complete_results()
    results["09_audit_your_model"]["claims"]["audited_model_has_no_future_leakage"] = {"holds": False,
                                                                                      "statement": "s"}
    assert failing_claims(results) == []


def test_findings_markdown_prints_the_same_sentences_and_the_mapping():
    results = complete_results()
    records = sentence_records(results)
    markdown = findings_markdown(records, results, ["04_tinfer_training/training_loss.png"],
                                 {"claims": 3, "sanity": [], "failing": [], "missing": [], "audited": {}})
    for record in records:
        assert record["text"].replace("|", " / ") in markdown
    assert "## Where each sentence comes from" in markdown and "answer.hf.generate" in markdown
    assert "![04_tinfer_training/training_loss.png](figures/04_tinfer_training/training_loss.png)" in markdown


# ------------------------------------------------------------------ every number of every sentence, re-derived

CITED = re.compile(r"\[[^\]]*§[^\]]*\]")


def body(record: dict) -> str:
    """The sentence itself: a "not established" record quotes it between “ ” and names its problems after it."""
    text = record["text"]
    return text[text.index("“") + 1:text.rindex("”")] if text.startswith("not established") else text


def underived_numbers(record: dict, results: dict) -> list[str]:
    """Numbers in the sentence (prose and `code` alike) that no quoted metric produced, after checking that each
    metric's text is its recorded value formatted as the sentence's Metric says."""
    specs = {}
    for sentence in all_sentences():
        for spec in sentence.metrics.values():
            specs.setdefault((spec.notebook, spec.id), []).append(spec)
    text = CITED.sub("", body(record))
    for quoted in record["metrics"]:
        candidates = specs[(quoted["notebook"], quoted["name"])]
        value = results.get(quoted["notebook"], {}).get(candidates[0].section, {}).get(quoted["name"])
        assert quoted["value"] == value, (record["id"], quoted["name"])
        if isinstance(value, int | float) and not isinstance(value, bool):
            assert any(quoted["text"].startswith(spec.format.format(value)) for spec in candidates), record["id"]
    for quoted in sorted(record["metrics"], key=lambda m: -len(m["text"] or "")):  # "0.530" before "0.53"
        if quoted["text"]:
            text = text.replace(quoted["text"], " ")
    return _DIGITS_OUTSIDE.findall(text)


def test_every_number_in_every_sentence_comes_from_the_results():
    results = complete_results()
    for index, (_notebook, data) in enumerate(sorted(results.items())):  # distinct values per notebook
        for section in ("metrics", "parameters"):
            for name, value in data[section].items():
                if isinstance(value, float):
                    data[section][name] = value + index / 100
    records = sentence_records(results)
    assert {r["id"] for r in records} >= {s.id for s in all_sentences() if s.section != "verdict_cell"}
    cells = [render(cell, results) for row in ROWS for cell in (row.hf_t5, row.hf_marian)]
    for record in records + cells:
        assert underived_numbers(record, results) == [], record["id"]


def test_the_committed_findings_quote_only_recorded_numbers():
    results = load_all_results(REPO_ROOT / "reports" / "results")
    results.pop("00_findings", None)
    cells = [render(cell, results) for row in ROWS for cell in (row.hf_t5, row.hf_marian)]
    for record in sentence_records(results) + cells:
        assert underived_numbers(record, results) == [], (record["id"], body(record))


def test_a_planted_typed_number_fails_the_check_in_prose_and_in_code():
    for template in ("A bare `generate()` stops at `max_length=20`.", "Ratio 4.18 at k.", "Labels ≠ `-100`."):
        planted = Sentence("pitfall.planted", "pitfall", template,
                           claims=(Claim("05_decoding", "beam_matches_generate", "r"),))
        assert provenance_problems([planted]) == [
            "pitfall.planted: numbers typed into the template (quote a metric instead)"], template
    planted = Sentence("pitfall.planted", "pitfall", "Typed: 0.93.", claims=(Claim("05_decoding", "x", "r"),))
    results = complete_results()
    record = render(planted, results)
    assert underived_numbers(record | {"metrics": []}, results) == ["0.93"]


def test_a_failing_hf_cell_claim_unestablishes_its_verdict_row():
    results = complete_results()
    results["05_decoding"]["claims"]["bare_generate_is_greedy_with_20_new_tokens"]["holds"] = False
    records = records_by_id(results)
    row = records["verdict.inference"]
    assert not row["established"] and row["text"].startswith("not established: “SAME loop")
    assert "05:bare_generate_is_greedy_with_20_new_tokens does not hold" in row["text"]
    assert row["cells"]["hf_t5"].startswith("not established")
    markdown = findings_markdown(list(records.values()), results, [],
                                 {"claims": 1, "sanity": [], "failing": [], "missing": [], "audited": {}})
    mapping = markdown[markdown.index("## Where each sentence comes from"):]
    assert "| verdict.inference | no |" in mapping
    assert all(r["established"] for r in records.values() if r["section"] == "verdict" and r is not row)


def test_findings_open_with_the_three_answers_each_led_by_a_verdict_and_its_number():
    results = complete_results()
    records = sentence_records(results)
    blocks = answer_blocks(records)
    assert [b["question"] for b in blocks] == list(QUESTIONS)
    for block in blocks:
        assert block["verdict"].startswith("No: ") and "0.50 (95% interval 0.25–0.75)" in block["verdict"]
        assert "decoder is causal" in block["verdict"] and "The rest of the recipe matches" in block["verdict"]
        assert block["details"]
    markdown = findings_markdown(records, results, [], {"claims": 1, "sanity": [], "failing": [], "missing": [],
                                                        "audited": {}})
    assert markdown.index("## Answers") < markdown.index("## Verdict table") < markdown.index("## Scope")
    assert markdown.index(blocks[0]["verdict"]) < markdown.index(blocks[0]["details"][0])
    assert "Yes for training" not in markdown  # answers 1 and 3 speak one language


def test_findings_read_the_long_runs_they_name_and_refuse_a_missing_one(tmp_path):
    results = tmp_path / "reports" / "results"
    long_run = tmp_path / "reports" / "g2p-long" / "results"
    for folder, stem in ((results, "01_x"), (results, "00_findings"), (long_run, "10_y")):
        folder.mkdir(parents=True, exist_ok=True)
        record = {"notebook": stem, "parameters": {}, "claims": {}, "metrics": {}}
        (folder / f"{stem}.json").write_text(json.dumps(record))
    assert set(findings_results(results)) == {"01_x", "g2p-long/10_y"}
    assert set(findings_results(results, "")) == {"01_x"}
    with pytest.raises(FileNotFoundError, match="parameter 'long_runs' names 'g2p-short'"):
        findings_results(results, "g2p-long,g2p-short")
