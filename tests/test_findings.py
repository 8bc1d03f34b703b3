"""The verdict table shows a cell only when its claims hold, and says which claim is missing or failing."""

import copy

from utils.experiments.findings import (
    ROWS,
    answers,
    failing_claims,
    missing_required,
    required_refs,
    verdict_table,
)


def complete_results() -> dict:
    """Synthetic results in which every required claim holds and every quoted metric is present."""
    results = {}
    for ref in required_refs():
        entry = results.setdefault(ref.notebook, {"claims": {}, "metrics": {}})
        if ref.kind == "claim":
            entry["claims"][ref.name] = {"holds": True, "statement": "s", "evidence": None}
        else:
            entry["metrics"][ref.name] = 0.5
    results["04_tinfer_training"]["metrics"].update(t5_greedy_exact_match=0.9, marian_greedy_exact_match=0.8)
    return results


def test_complete_results_give_every_verdict():
    results = complete_results()
    table = verdict_table(results)
    assert [row["topic"] for row in table] == [row.topic for row in ROWS]
    assert all("no verdict" not in row[column] for row in table for column in ("HF T5", "HF Marian", "verdict"))
    assert table[1]["verdict"].startswith("DIFFERS")
    assert missing_required(results) == [] and failing_claims(results) == []
    assert "50%" in answers(results)["Is this what T5 does?"]


def test_failing_claim_replaces_the_verdict_and_is_listed():
    results = complete_results()
    results["02_causal_mask"]["claims"]["audit_flags_no_mask_model"]["holds"] = False
    row = verdict_table(results)[1]
    assert row["verdict"] == "(no verdict: does not hold 02:audit_flags_no_mask_model)"
    assert "02:audit_flags_no_mask_model ✗" in row["evidence"]
    assert failing_claims(results) == ["02_causal_mask:audit_flags_no_mask_model"]
    assert "not established" in answers(results)["Is this what T5 does?"]


def test_missing_notebook_is_named_in_cells_and_required_list():
    results = copy.deepcopy(complete_results())
    del results["03_loss_masking"]
    row = verdict_table(results)[3]
    assert row["HF T5"].startswith("(no verdict: missing 03:")
    assert any(label.startswith("03:") for label in missing_required(results))


def test_user_model_audit_claims_are_not_failures():
    results = complete_results()
    results["09_audit_your_model"] = {"claims": {"audited_model_has_no_future_leakage": {"holds": False}},
                                      "metrics": {}}
    assert failing_claims(results) == []
