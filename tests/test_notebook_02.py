"""Notebook 02 (causal masks) with smoke parameters: every claim holds and the numbers are sane."""

import pytest

CLAIMS = [
    "hf_causal_mask_matches_handwritten_t5",
    "hf_causal_mask_matches_handwritten_marian",
    "sdpa_modules_get_no_mask_tensor", "sdpa_kernel_applies_is_causal_marian_bart",
    "sdpa_kernel_gets_causal_position_bias_mask_t5",
    "one_pass_equals_loop_t5",
    "one_pass_equals_loop_marian",
    "one_pass_equals_loop_bart",
    "one_pass_equals_loop_handwritten_causal",
    "one_pass_differs_from_loop_without_mask",
    "kv_cache_equals_one_pass_t5",
    "kv_cache_equals_one_pass_marian",
    "kv_cache_equals_one_pass_bart",
    "audit_flags_no_mask_model",
    "audit_passes_handwritten_causal",
    "audit_passes_hf_models",
    "gradient_audit_agrees_with_perturbation",
    "four_d_mask_used_as_is",
    "audit_catches_4d_padding_only_mask",
    "four_d_causal_mask_equals_2d",
    "none_mask_does_not_ignore_pads",
    "none_and_padding_mask_agree_on_real_positions",
    "naive_pad_mask_hides_t5_start_token",
    "naive_pad_mask_changes_t5_logits",
    "audit_catches_naive_pad_mask_t5",
    "create_causal_mask_gets_no_padding_with_none",
    "config_is_causal_false_makes_hf_decoders_see_the_future",
    "config_is_causal_false_on_a_built_model_depends_on_the_family",
]


@pytest.mark.notebook
def test_02_causal_mask_smoke(smoke_results, assert_claims_hold):
    results = smoke_results("02_causal_mask")
    assert_claims_hold(results, CLAIMS)
    assert not [c for c, claim in results["claims"].items() if not claim["holds"]]

    metrics, claims = results["metrics"], results["claims"]
    for family in ("t5", "marian", "bart"):  # every closeness verdict comes from the one tolerance model
        for claim_id in (f"one_pass_equals_loop_{family}", f"kv_cache_equals_one_pass_{family}"):
            evidence = claims[claim_id]["evidence"]
            assert evidence and all(e["ratio_to_allowed"] <= 1.0 and e["max_abs_diff"] <= e["allowed"]
                                    for e in evidence.values())
            assert all(e["tolerance"].endswith("(float32)") for e in evidence.values())
        assert 0.0 <= metrics[f"max_abs_diff_one_pass_vs_loop_{family}"] < 1e-4
    separated = claims["one_pass_differs_from_loop_without_mask"]["evidence"]
    assert separated["t < T-1, least different"]["ratio_to_allowed"] >= 100  # both sides recorded
    assert separated["last position"]["ratio_to_allowed"] <= 1.0
    leaky = metrics["abs_diff_one_pass_vs_loop_without_mask_per_position"]
    assert min(leaky[:-1]) > 1e-3 and leaky[-1] < 1e-4  # differs everywhere but the last position
    assert metrics["audit_max_future_sensitivity_tinfer_no_mask"] > 1e-3
    causal_keys = [k for k in metrics if k.startswith("audit_max_future_sensitivity") and not k.endswith("no_mask")]
    assert len(causal_keys) == 7
    audited = claims["audit_passes_hf_models"]["evidence"]
    assert all(0 < e["tolerance"] < 1e-3 and e["max_future_sensitivity"] <= e["tolerance"] for e in audited.values())
    assert 0.0 <= metrics["no_mask_argmax_disagreement_one_pass_vs_loop"] <= 1.0
    assert claims["audit_flags_no_mask_model"]["evidence"]["leaking_pairs"] >= 3
    assert "tolerance" not in results["parameters"] and "audit_tolerance" not in results["parameters"]
    receives = claims["create_causal_mask_gets_no_padding_with_none"]["evidence"]
    assert receives["t5 / eager"] == ["None"] and receives["marian / eager"][0].endswith("all ones")
