"""Notebook 07 (the HF translation recipe on 5.x), smoke parameters: the recipe agrees with the hand-written code."""

import math

import pytest

CLAIMS = [
    "decoded_references_round_trip",
    "collated_decoder_inputs_are_shifted_labels",
    "trainer_loss_equals_model_loss",
    "recipe_generate_equals_hand_written_greedy",
    "recipe_training_reduces_loss",
]
SANITY = ["recipe_and_hand_loop_scores_match"]  # implied by recipe_generate_equals_hand_written_greedy


def test_07_translation_recipe_claims_hold(smoke_results, assert_claims_hold):
    results = smoke_results("07_translation_recipe")
    assert_claims_hold(results, CLAIMS)
    assert results["parameters"]["families"] == ["t5", "marian"]
    for claim_id in SANITY:
        assert results["claims"][claim_id]["holds"] and results["claims"][claim_id].get("sanity") is True
    for claim_id in set(results["claims"]) - set(SANITY):
        assert not results["claims"][claim_id].get("sanity"), claim_id
    assert "marian_short_schedule_underfits" not in results["claims"]  # smoke skips the second Marian run


def test_07_metrics_are_scores_of_both_families(smoke_results):
    metrics = smoke_results("07_translation_recipe")["metrics"]
    for family in ("t5", "marian"):
        for name in ("bleu", "chrf"):
            assert 0.0 <= metrics[f"{family}_{name}"] <= 100.0, (family, name)
        assert 0.0 <= metrics[f"{family}_exact_match"] <= 1.0
        assert 1.0 <= metrics[f"{family}_gen_len"] <= 25.0  # max_new_tokens + start token
        assert metrics[f"{family}_loss"] < metrics[f"{family}_train_loss"] + 1.0
        assert math.isfinite(metrics[f"{family}_train_loss"])
    assert isinstance(metrics["notebook_04_results_found"], bool)
    for family in ("t5", "marian"):
        for kind in ("number", "date"):
            assert 0.0 <= metrics[f"{family}_exact_match_{kind}"] <= 1.0, (family, kind)
        for name in ("bleu_under_4_tokens", "bleu_4plus_tokens", "bleu_all_pairs", "bleu_without_short_outputs"):
            assert 0.0 <= metrics[f"{family}_{name}"] <= 100.0, (family, name)
        assert metrics[f"{family}_bleu_without_short_outputs"] == metrics[f"{family}_bleu_4plus_tokens"]


def test_07_headline_scores_are_seed_means_with_intervals(smoke_results):
    results = smoke_results("07_translation_recipe")
    metrics, seeds = results["metrics"], results["parameters"]["seeds"]
    assert seeds == [0, 1]  # smoke: two seeds, so the seed level of the bootstrap is exercised
    for family in ("t5", "marian"):
        for name in ("exact_match", "chrf"):
            per_seed = metrics[f"{family}_{name}_per_seed"]
            assert len(per_seed) == len(seeds)
            assert metrics[f"{family}_{name}"] == pytest.approx(sum(per_seed) / len(per_seed), rel=1e-6)
            low, high = metrics[f"{family}_{name}_interval"]
            assert low <= metrics[f"{family}_{name}"] <= high
            assert metrics[f"{family}_{name}_interval_method"] in ("two-level bootstrap", "clopper-pearson")
    assert "short_outputs_enter_corpus_bleu" in results["claims"]


def test_07_loss_evidence_is_three_equal_numbers(smoke_results):
    evidence = smoke_results("07_translation_recipe")["claims"]["trainer_loss_equals_model_loss"]["evidence"]
    for family in ("t5", "marian"):
        losses = evidence[family]
        assert losses["label_tokens"] > 0
        assert abs(losses["trainer_compute_loss"] - losses["masked_cross_entropy"]) <= 1e-5
        for name in ("trainer_compute_loss", "masked_cross_entropy"):  # the one tolerance model, recorded
            assert losses[f"{name}_vs_model_loss"]["ratio_to_allowed"] <= 1.0
            assert "float32" in losses[f"{name}_vs_model_loss"]["tolerance"]
