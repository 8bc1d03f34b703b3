"""Notebooks 04 (tinfer training) and 04b (its sweep) with smoke parameters: claims hold, metrics are sane.

The smoke run trains each model for a few steps only, so the claims about what training produces (who learns
the task, who wins at greedy decoding) are recorded but not asserted here; the structural ones are.
"""

import math

import pytest

from utils.harness.parameters import resolve_notebook
from utils.workbench.variants import VARIANTS

STRUCTURAL_CLAIMS = [
    "no_mask_model_leaks",
    "causal_model_does_not_leak",
    "t5_model_does_not_leak",
    "marian_model_does_not_leak",
    "step_loop_gradients_equal_one_pass",
    "step_loop_gradients_equal_one_pass_hf",
    "no_mask_one_pass_differs_from_step_loop",
    "step_loop_cost_grows_with_length",  # a sanity check (recorded with sanity=True)
]
TRAINING_CLAIMS = [
    "no_mask_looks_best_teacher_forced",
    "causal_learns_the_task",
    "t5_learns_the_task",
    "marian_learns_the_task",
    "no_mask_fails_at_greedy",
    "no_mask_attends_to_next_position",
    "leakage_gap_exceeds_exposure_gap",
    "causal_models_show_exposure_bias",
    "causal_ranks_above_no_mask",
]
REQUIRED_METRICS = [  # the list, and what 00_findings quotes
    "no_mask_train_loss", "no_mask_greedy_exact_match", "causal_train_loss", "causal_greedy_exact_match",
    "t5_greedy_exact_match", "marian_greedy_exact_match", "step_loop_slowdown",
]


def test_04_tinfer_training_smoke(smoke_results, assert_claims_hold):
    results = smoke_results("04_tinfer_training")
    assert_claims_hold(results, STRUCTURAL_CLAIMS)
    assert set(results["claims"]) == set(STRUCTURAL_CLAIMS + TRAINING_CLAIMS)  # recorded even when they fail
    metrics = results["metrics"]
    assert all(name in metrics for name in REQUIRED_METRICS)
    for variant in VARIANTS:
        assert 0.0 <= metrics[f"{variant}_greedy_exact_match"] <= 1.0
        assert 0.0 <= metrics[f"{variant}_greedy_chrf"] <= 100.0
        assert 0.0 < metrics[f"{variant}_train_loss"] < 10 and math.isfinite(metrics[f"{variant}_validation_loss"])
        assert 0.0 <= metrics[f"{variant}_free_running_accuracy"] <= 1.0
    assert metrics["no_mask_max_future_sensitivity"] > 1e-4 and metrics["causal_max_future_sensitivity"] == 0.0
    assert metrics["causal_next_position_attention"] == 0.0 < metrics["no_mask_next_position_attention"]
    assert metrics["causal_step_loop_max_grad_diff"] < 1e-5 < metrics["no_mask_step_loop_max_grad_diff"]
    ratios = metrics["step_loop_flop_ratio_by_length"]
    assert list(ratios) == [str(n) for n in results["parameters"]["timing_lengths"]]
    assert 1.0 < metrics["step_loop_slowdown"] < max(results["parameters"]["timing_lengths"])
    assert metrics["verdict_rows_established"] >= 2  # the one-pass and loss sentences need no trained model
    assert results["claims"]["step_loop_cost_grows_with_length"]["sanity"] is True
    for variant in VARIANTS:
        low, high = metrics[f"{variant}_greedy_exact_match_interval"]
        assert low <= metrics[f"{variant}_greedy_exact_match"] <= high
        low, high = metrics[f"{variant}_greedy_chrf_interval"]
        assert low <= metrics[f"{variant}_greedy_chrf"] <= high
        seeds = results["parameters"]["seeds"]
        assert len(metrics[f"{variant}_greedy_exact_match_per_seed"]) == len(seeds) == 2  # smoke: two seeds
        per_seed = metrics[f"{variant}_greedy_exact_match_per_seed"]
        assert metrics[f"{variant}_greedy_exact_match"] == pytest.approx(sum(per_seed) / 2, rel=1e-6)
        assert metrics[f"{variant}_greedy_exact_match_interval_method"] in ("two-level bootstrap", "clopper-pearson")
    difference = metrics["exact_match_difference_causal_vs_no_mask"]
    assert difference["low"] <= difference["difference"] <= difference["high"] and difference["seeds"] == 2
    gradients = results["claims"]["step_loop_gradients_equal_one_pass"]["evidence"][0]["gradients"]
    assert gradients["ratio_to_allowed"] <= 1.0 and "float32" in gradients["tolerance"]  # the one tolerance model
    assert "wall_seconds" in results["timings"] and "step_loop_wall_slowdown" in results["timings"]
    assert results["parameters"]["save_checkpoints"] is False  # smoke runs never overwrite the real checkpoints


def test_04b_tinfer_sweep_smoke_without_a_sweep(smoke_results, assert_claims_hold):
    smoke_results("04_tinfer_training")  # with no sweep folder, 04b aggregates this one result
    results = smoke_results("04b_tinfer_sweep")
    metrics = results["metrics"]
    assert metrics["n_runs"] == 1 and metrics["sweep_complete"] is False  # one run is not called a sweep
    assert_claims_hold(results, ["no_mask_model_leaks_in_every_run", "causal_model_does_not_leak_in_every_run",
                                 "step_loop_gradients_equal_one_pass_in_every_run"])
    n_train = str(smoke_results("04_tinfer_training")["parameters"]["n_train"])
    assert metrics["seeds_per_training_size"] == {n_train: 2}  # one row per seed of the run


def test_number_prefix_04_resolves_to_the_training_notebook():
    assert resolve_notebook("04").stem == "04_tinfer_training"
    assert resolve_notebook("04b").stem == "04b_tinfer_sweep"
