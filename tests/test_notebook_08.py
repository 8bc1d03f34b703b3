"""Notebook 08 (architectures) with smoke parameters: every cell of the table is measured and its claim holds."""

import json

from utils.harness.run import main as run_main

FAMILIES = ("t5", "marian", "bart", "tinfer")
CLAIMS = [
    "t5_has_relative_position_bias", "marian_uses_fixed_sinusoidal_positions", "bart_learns_absolute_positions",
    "tinfer_uses_fixed_sinusoidal_positions", "marian_sinusoid_is_paper_formula_reordered",
    "t5_uses_rmsnorm_pre_ln", "marian_uses_layernorm_post_ln", "bart_uses_layernorm_post_ln",
    "tinfer_uses_layernorm_post_ln",
    "t5_does_not_scale_embeddings", "marian_default_config_does_not_scale_embeddings", "bart_does_not_scale_embeddings",
    "tinfer_scales_embeddings",
    "t5_does_not_scale_attention_scores", "marian_scales_attention_by_inverse_sqrt_d_head",
    "bart_scales_attention_by_inverse_sqrt_d_head", "tinfer_scales_attention_by_inverse_sqrt_d_head",
    "t5_folds_score_scaling_into_query_init",
    "t5_rescales_decoder_output_by_inverse_sqrt_d_model", "marian_does_not_rescale_decoder_output",
    *[f"{f}_ties_input_and_output_embeddings" for f in FAMILIES],
    "t5_has_no_final_logits_bias", "marian_has_final_logits_bias_buffer", "bart_has_final_logits_bias_buffer",
    "tinfer_has_no_final_logits_bias", "marian_final_logits_bias_is_zero_buffer_at_init",
    "bart_final_logits_bias_is_zero_buffer_at_init", "marian_final_logits_bias_loads_from_checkpoint",
    "t5_ffn_uses_relu", "marian_default_config_ffn_uses_gelu", "bart_ffn_uses_gelu", "tinfer_ffn_uses_relu",
    "t5_has_no_biases", "marian_has_biases_everywhere", "bart_has_biases_everywhere",
    *[f"{f}_dropout_only_in_training" for f in FAMILIES],
    "t5_decoder_is_causal", "marian_decoder_is_causal", "bart_decoder_is_causal",
    "tinfer_decoder_mask_matches_its_setting",
    "t5_default_config_defines_no_decoder_start", "marian_default_config_decoder_starts_with_pad",
    "bart_default_config_decoder_starts_with_eos", "decoder_start_same_in_training_and_generation",
    "t5_default_generation_is_greedy", "marian_default_generation_is_greedy", "bart_default_generation_is_greedy",
    "t5_buckets_exact_then_logarithmic_then_saturated", "t5_decoder_bias_puts_all_future_offsets_in_bucket_0",
]
# read values the collection's configs set (opus-mt style Marian, every start id): shown, never backing a finding
SANITY = ["marian_scales_embeddings", "marian_ffn_uses_swish", "t5_decoder_starts_with_pad",
          "marian_decoder_starts_with_pad", "bart_decoder_starts_with_eos", "tinfer_decoder_starts_with_pad"]


def test_08_architectures_claims_hold(smoke_results, assert_claims_hold):
    results = smoke_results("08_architectures")
    assert_claims_hold(results, CLAIMS + SANITY)
    assert not [c for c, claim in results["claims"].items() if not claim["holds"]]
    assert all(results["claims"][c].get("sanity") for c in SANITY)
    assert not any(results["claims"][c].get("sanity") for c in CLAIMS)
    # HF rows decided by the architecture code hold under both configs
    assert set(results["claims"]["marian_uses_layernorm_post_ln"]["evidence"]["measured"]) == {
        "this_collection", "library_default"}


def test_08_table_has_every_row_and_column(smoke_results):
    table = smoke_results("08_architectures")["metrics"]["table"]
    assert len(table) == 13
    for row, cells in table.items():
        assert set(cells) == {"Vaswani et al. 2017", *FAMILIES}, row
        assert "§" in cells["Vaswani et al. 2017"], f"paper cell of {row!r} cites no section"
        assert all(cells[f] for f in FAMILIES), row
    assert table["decoder self-attention mask"]["tinfer"].startswith("sees future")
    assert table["embedding scaling"]["t5"] == "x 1"
    default = smoke_results("08_architectures")["metrics"]["table_library_default"]
    assert set(default) == set(table) and all(set(cells) == {"t5", "marian", "bart"} for cells in default.values())
    assert default["embedding scaling"]["marian"] == "x 1" and table["embedding scaling"]["marian"] != "x 1"
    assert default["FFN activation"]["marian"] == "gelu" and table["FFN activation"]["marian"] == "silu (swish)"


def test_08_researcher_setting_is_a_parameter(smoke_results, tmp_path):
    """With the causal mask switched on, the hand-written decoder is causal and the claim still holds."""
    first = smoke_results("08_architectures")
    assert run_main(["08", "--smoke", "-p", "tinfer_causal", "true", "--out", str(tmp_path), "--no-html"]) == 0
    second = json.loads((tmp_path / "results" / "08_architectures.json").read_text(encoding="utf-8"))
    assert second["claims"]["tinfer_decoder_mask_matches_its_setting"]["holds"]
    assert second["metrics"]["table"]["decoder self-attention mask"]["tinfer"].startswith("causal")
    assert second["metrics"]["parameters"] == first["metrics"]["parameters"]

