"""The findings: every sentence is generated from the claims that test it, and says so when they fail."""

import copy

from utils.reporting.findings import (
    QUESTIONS,
    ROWS,
    all_sentences,
    failing_claims,
    findings_markdown,
    missing_claims,
    sanity_claims,
    sentence_records,
    verdict_table,
)
from utils.reporting.provenance import Sentence, provenance_problems


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
