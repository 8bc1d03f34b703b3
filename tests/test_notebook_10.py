"""Notebook 10 (tinfer on CMUdict) with smoke parameters: the structural claims hold, the metrics are sane.

Twenty training steps teach no model G2P, so the claims about trained outcomes (who has the lowest loss, the worst
WER, the largest exposure gap) are recorded but not asserted here; those about the data, the metrics, the leakage
of each architecture and the pretrained g2p-en model are.
"""

STRUCTURAL_CLAIMS = [
    "dictionary_facts_as_calibrated", "splits_share_no_word", "metrics_hand_cases",
    "no_mask_model_leaks", "causal_model_does_not_leak", "t5_model_does_not_leak", "marian_model_does_not_leak",
    "g2p_en_torch_port_matches_numpy", "g2p_en_passes_the_audit", "g2p_en_model_does_not_leak",
    "g2p_en_beats_the_budget_models",
]
TRAINING_CLAIMS = [
    "no_mask_lowest_teacher_forced_loss", "no_mask_worst_free_running_wer", "no_mask_fails_in_every_seed",
    "causal_learns_the_task", "beam_not_worse_than_greedy_for_causal_models", "leakage_gap_exceeds_exposure_gap",
    "g2p_en_gap_smaller_than_no_mask",
]


def test_10_tinfer_real_data_smoke(smoke_results, assert_claims_hold):
    results = smoke_results("10_tinfer_real_data")
    assert_claims_hold(results, STRUCTURAL_CLAIMS)
    assert set(results["claims"]) == set(STRUCTURAL_CLAIMS + TRAINING_CLAIMS)
    metrics = results["metrics"]
    for variant in ("no_mask", "causal", "t5", "marian"):
        for rate in ("wer", "per"):
            value, (low, high) = metrics[f"{variant}_greedy_{rate}"], metrics[f"{variant}_greedy_{rate}_ci95"]
            assert 0.0 <= low <= value <= high and value >= 0.0
        assert 0.0 <= metrics[f"{variant}_free_running_accuracy"] <= 1.0
    assert metrics["no_mask_max_future_sensitivity"] > 1e-4 and metrics["causal_max_future_sensitivity"] == 0.0
    assert metrics["g2p_en_parity_identical"] == metrics["g2p_en_parity_words"] >= 300
    assert 0.1 < metrics["g2p_en_greedy_wer"] < 0.5 and 0.0 < metrics["g2p_en_greedy_per"] < 0.2
    assert 0.7e6 < metrics["g2p_en_parameters"] < 0.9e6
    assert "wall_seconds" in results["timings"] and "jobs_wall_seconds" in results["timings"]
    for claim_id in ("g2p_en_passes_the_audit", "g2p_en_model_does_not_leak"):  # a GRU cannot leak: sanity only
        assert results["claims"][claim_id]["sanity"] is True, claim_id
    for variant in ("no_mask", "causal", "t5", "marian"):  # seed means, one value per seed, the interval's method
        assert len(metrics[f"{variant}_greedy_wer_per_seed"]) == len(results["parameters"]["seeds"])
        assert metrics[f"{variant}_greedy_wer_interval_method"] in ("two-level bootstrap", "clopper-pearson")
    assert set(metrics["no_mask_greedy_wer_difference"]) == {"causal", "t5", "marian"}
