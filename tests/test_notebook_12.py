"""Notebook 12 (HF's defaults) with smoke parameters: the matrix is measured and the key claims hold."""

from utils.experiments.hf_defaults import CALL_FORMS

CLAIMS = [
    *[f"{f}_labels_only_builds_shift_right_of_labels" for f in ("t5", "marian", "bart")],
    *[f"{f}_labels_only_mask_is_causal_only_pads_visible" for f in ("t5", "marian", "bart")],
    *[f"{f}_4d_decoder_attention_mask_replaces_causal_mask" for f in ("t5", "marian", "bart")],
    "t5_forward_with_labels_keeps_use_cache", "marian_forward_with_labels_turns_cache_off",
    "bart_builds_decoder_inputs_from_input_ids", "t5_default_config_has_no_decoder_start_token_id",
    "bare_generate_stops_after_20_new_tokens", "default_configs_labels_only_mask_is_causal_only_pads_visible",
    "marian_default_config_scale_embedding_false", "t5_sdpa_folds_causal_mask_into_position_bias",
    "eager_and_sdpa_apply_the_same_masks", "t5_v1_1_config_ties_lm_head_anyway",
]
# the code sets these configs and then observes them, or nothing reads the field: shown, never backing a finding
SANITY = ["opus_mt_config_decodes_with_4_beams", "opus_mt_config_decodes_up_to_max_length_512",
          "bart_base_config_decodes_with_4_beams", "t5_small_config_generate_ignores_task_specific_params"]


def test_12_hf_defaults_claims_hold(smoke_results, assert_claims_hold):
    results = smoke_results("12_hf_defaults")
    assert_claims_hold(results, CLAIMS + SANITY)
    assert not [c for c, claim in results["claims"].items() if not claim["holds"]]
    assert all(results["claims"][c].get("sanity") for c in SANITY)
    assert not any(results["claims"][c].get("sanity") for c in CLAIMS)
    metrics = results["metrics"]
    assert (metrics["bare_generate_new_tokens"], metrics["opus_mt_config_num_beams"],
            metrics["opus_mt_config_max_length"]) == (20, 4, 512)
    tie = results["claims"]["t5_v1_1_config_ties_lm_head_anyway"]["evidence"]
    assert tie["lm_head_is_shared_embedding"] and tie["scale_decoder_outputs"] is False


def test_12_matrix_has_every_cell(smoke_results):
    matrix = smoke_results("12_hf_defaults")["metrics"]["matrix"]
    assert set(matrix) == {"t5", "marian", "bart"}
    for family, kinds in matrix.items():
        assert set(kinds) == {"default", "checkpoint"}
        for kind, attns in kinds.items():
            assert set(attns) == {"eager", "sdpa"}
            assert "generate" in attns["eager"], (family, kind)
            assert all(form in attns["sdpa"] for form in CALL_FORMS)
    assert matrix["marian"]["checkpoint"]["eager"]["generate"]["num_beams"] == 4
    assert matrix["t5"]["checkpoint"]["eager"]["labels_only"]["mask"] == "causal only, pads visible"
