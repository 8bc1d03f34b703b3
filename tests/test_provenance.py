"""utils/harness/provenance.py: a sentence shows only what its claims establish, and the reviewer's checks bite."""

from utils.reporting.provenance import Claim, Metric, Sentence, provenance_problems, render

RESULTS = {
    "04_tinfer_training": {
        "claims": {"no_mask_model_leaks": {"holds": True, "statement": "leaks", "cell": 12},
                   "causal_learns": {"holds": False, "statement": "learns"},
                   "definition": {"holds": True, "statement": "1 == 1", "sanity": True}},
        "metrics": {"causal_exact_match": 0.934, "causal_exact_match_ci": [0.9, 0.96]},
    },
}
LEAKS = Claim("04_tinfer_training", "no_mask_model_leaks", "the audit perturbs inputs after t")


def sentence(claims=(LEAKS,), template="Exact match {em}.", metrics=None):
    metrics = {"em": Metric("04_tinfer_training", "causal_exact_match", interval="causal_exact_match_ci")} \
        if metrics is None else metrics
    return Sentence("answer.x", "answer", template, claims=claims, metrics=metrics)


def test_an_established_sentence_quotes_the_metric_with_its_interval():
    record = render(sentence(), RESULTS)
    assert record["established"] and record["text"] == "Exact match 0.93 (95% interval 0.90–0.96)."
    assert record["claims"][0]["cell"] == 12 and record["metrics"][0]["interval"] == [0.9, 0.96]


def test_parameters_and_ranges_are_quoted_from_the_results():
    results = {"04_tinfer_training": {**RESULTS["04_tinfer_training"], "parameters": {"n_train": 4000}}}
    results["04_tinfer_training"]["metrics"] = {**results["04_tinfer_training"]["metrics"], "range": [0.88, 0.93]}
    record = render(sentence(template="{n} pairs, exact match {r}.", metrics={
        "n": Metric("04_tinfer_training", "n_train", "{:d}", section="parameters"),
        "r": Metric("04_tinfer_training", "range", "{0[0]:.2f}–{0[1]:.2f}")}), results)
    assert record["text"] == "4000 pairs, exact match 0.88–0.93."


def test_failing_missing_or_sanity_claims_make_it_not_established():
    for claim_id, status in (("causal_learns", "does not hold"), ("absent", "missing"),
                             ("definition", "sanity check only")):
        record = render(sentence(claims=(LEAKS, Claim("04_tinfer_training", claim_id, "r"))), RESULTS)
        assert not record["established"]
        assert record["text"].startswith("not established: “Exact match") and f"04:{claim_id} {status}" in \
            record["text"]
    missing_metric = render(sentence(metrics={"em": Metric("04_tinfer_training", "nope")}), RESULTS)
    assert not missing_metric["established"] and "metric 04:nope missing" in missing_metric["text"]


def test_provenance_check_rejects_a_planted_sentence_without_a_claim():
    assert provenance_problems([sentence()]) == []
    assert provenance_problems([sentence(claims=())]) == ["answer.x: no claim tests it"]


def test_provenance_check_rejects_typed_numbers_reasonless_claims_and_stray_placeholders():
    assert "numbers typed" in provenance_problems([sentence(template="Exact match {em}, not 93%.")])[0]
    for typed in ("labels `-100` and {em}", "{em} at `max_length=20`", "{em} with `k=2`", "{em}: `4` beams"):
        assert "numbers typed" in provenance_problems([sentence(template=typed)])[0], typed  # code spans too
    assert provenance_problems([sentence(template="labels `{em}` and `max_length={em}`")]) == []
    assert provenance_problems([sentence(template="{em}, beam search [Vaswani et al. §6.1: beam 4]")]) == []
    assert provenance_problems([sentence(template="T5 in fp32 with a 4-D mask: {em}")]) == []  # names, not numbers
    assert "numbers typed" in provenance_problems([sentence(template="{em} at 0.5 or 20 tokens")])[0]
    assert "has no reason" in provenance_problems([sentence(claims=(Claim("04_tinfer_training", "x", " "),))])[0]
    assert "placeholders" in provenance_problems([sentence(template="no number here")])[0]
    assert "duplicate id" in provenance_problems([sentence(), sentence()])[0]
