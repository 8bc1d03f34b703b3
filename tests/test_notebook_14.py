"""Notebook 14 (tinfer on real English -> German pairs) with smoke parameters: the structural claims hold, the
metrics and their intervals are sane.

Ten training steps teach no model to translate, so the claims about trained outcomes (who has the lowest loss, the
worst chrF, the largest exposure gap) are recorded but not asserted here; those about the data and the leakage of
each architecture are.
"""

STRUCTURAL_CLAIMS = [
    "splits_share_no_source", "at_least_3000_pairs",
    "no_mask_model_leaks", "causal_model_does_not_leak", "t5_model_does_not_leak", "marian_model_does_not_leak",
]
TRAINING_CLAIMS = [
    "no_mask_lowest_teacher_forced_loss", "no_mask_worst_greedy_chrf", "no_mask_fails_in_every_seed",
    "causal_learns_the_task", "causal_beats_copying_the_source", "beam_not_worse_than_greedy_for_causal_models",
    "leakage_gap_exceeds_exposure_gap",
]


def test_14_tinfer_real_translation_smoke(smoke_results, assert_claims_hold):
    results = smoke_results("14_tinfer_real_translation")
    assert_claims_hold(results, STRUCTURAL_CLAIMS)
    assert set(results["claims"]) == set(STRUCTURAL_CLAIMS + TRAINING_CLAIMS)
    metrics = results["metrics"]
    assert metrics["train_pairs"] + metrics["validation_pairs"] + metrics["test_pairs"] >= 3000
    assert metrics["test_pairs_used"] == results["parameters"]["n_test"]
    for variant in ("no_mask", "causal", "t5", "marian"):
        for decoding in ("greedy", "beam"):
            for name, top in (("chrf", 100.0), ("bleu", 100.0), ("exact_match", 1.0)):
                key = f"{variant}_{decoding}_{name}"
                value, (low, high) = metrics[key], metrics[f"{key}_ci95"]
                assert 0.0 <= low <= value <= high <= top, (variant, decoding, name, low, value, high)
        if metrics[f"{variant}_greedy_exact_match"] == 0.0:  # 0/n in every seed: the exact interval, not [0, 0]
            assert metrics[f"{variant}_greedy_exact_match_interval_method"] == "clopper-pearson"
            assert metrics[f"{variant}_greedy_exact_match_ci95"][1] > 0.05
        assert 0.0 <= metrics[f"{variant}_free_running_accuracy"] <= metrics[f"{variant}_teacher_forced_accuracy"] + 1
    assert 0.0 < metrics["copy_source_chrf"] < 100.0
    assert metrics["no_mask_max_future_sensitivity"] > 1e-4 and metrics["causal_max_future_sensitivity"] == 0.0
    assert "wall_seconds" in results["timings"] and "jobs_wall_seconds" in results["timings"]
