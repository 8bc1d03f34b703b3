"""Notebook 05 (decoding) with smoke parameters: its claims hold and its metrics and timings are sane."""

CLAIMS = [
    "greedy_matches_generate_t5",
    "greedy_matches_generate_marian",
    "greedy_matches_generate_bart",
    "cache_does_not_change_greedy_output",
    "bare_generate_is_greedy_with_20_new_tokens",
    "generate_starts_with_decoder_start_token",
    "forced_eos_at_length_limit_marian_bart",
    "greedy_pads_after_eos",
    "t5_beam_output_padded_with_eos",
    "translation_pipeline_removed",
    "marian_checkpoint_config_turns_on_beam_search",
    "do_sample_alone_keeps_top_50",
    "force_words_ids_refused_in_core",
    "beam_matches_generate",
    "sampling_processors_match_hf",
    "sampling_matches_generate_with_shared_seed",
    "sampling_with_generator_is_reproducible",
    "constraints_satisfied",
    "no_cache_recomputes_the_prefix",
    "greedy_matches_generate_decoder_only",
    "gnmt_and_hf_length_penalties_can_rank_differently",
]
# no 5.x change (4.x's generate() ignored task_specific_params too): shown, never backing a finding
SANITY = ["task_specific_params_not_applied"]


def test_05_decoding_smoke(smoke_results, assert_claims_hold):
    results = smoke_results("05_decoding")
    assert_claims_hold(results, CLAIMS + SANITY)
    assert all(results["claims"][c].get("sanity") for c in SANITY)
    assert not any(results["claims"][c].get("sanity") for c in CLAIMS)
    assert results["metrics"]["gnmt_vs_hf_pairs_ordered_differently"] >= 0  # data-dependent count, recorded either way
    metrics, timings = results["metrics"], results["timings"]
    # smoke does not look for notebook 04's checkpoints: it trains its own tiny T5
    assert metrics["trained_model_source"] == "trained here" and metrics["trained_families"] == ["t5"]
    assert 0 < metrics["fallback_final_training_loss"] < 10
    assert 0.0 <= metrics["trained_t5_greedy_exact_match"] <= 1.0
    assert metrics["beam_max_score_diff"] <= results["parameters"]["tolerance"]
    assert metrics["unconstrained_satisfy_rate"] < 1.0  # the forced words are not what the model says unprompted
    assert metrics["constraint_mean_score_cost"] > 0  # forcing words costs model score
    counts = results["claims"]["no_cache_recomputes_the_prefix"]["evidence"]
    evidence = {(row["model"], row["cache"]): row for row in counts}
    longest = max(results["parameters"]["cost_lengths"])
    assert evidence[("t5 (encoder-decoder)", False)]["generate"] == longest * (longest + 1) // 2
    assert evidence[("t5 (encoder-decoder)", True)]["hand-written"] == longest
    for name in ("greedy_tokens_per_s_hand", "greedy_tokens_per_s_hf", "cache_speedup_at_max_len"):
        assert timings[name] > 0  # wall-clock: in timings, never in metrics
        assert name not in metrics
