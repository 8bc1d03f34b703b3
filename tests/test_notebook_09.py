"""Notebook 09 with smoke parameters: the audit tool's own claims hold, and the default (no-mask) model is reported
as leaking — its `audited_model_*` claims about leakage are expected NOT to hold."""

TOOL_CLAIMS = [
    "example_no_mask_model_flagged", "example_causal_model_passes", "nn_transformer_example_passes",
    "hf_reference_models_pass", "cli_exit_codes", "bad_inputs_rejected_with_clear_errors",
]


def test_09_audit_your_model_smoke(smoke_results, assert_claims_hold):
    results = smoke_results("09_audit_your_model")
    assert_claims_hold(results, TOOL_CLAIMS)
    assert results["parameters"]["model_factory"] == "examples/tinfer_no_mask.py:build"
    claims, metrics = results["claims"], results["metrics"]
    # the default audits the researcher's setup: the report must show the leak, not hide it
    assert claims["audited_model_has_no_future_leakage"]["holds"] is False
    assert claims["audited_model_one_pass_equals_loop"]["holds"] is False
    assert_claims_hold(results, ["audited_model_decoder_inputs_are_shifted_labels",
                                 "audited_model_loss_ignores_padding"])
    assert metrics["audited_model_exit_code"] == 1
    assert metrics["audited_model_max_future_sensitivity"] > 1e-3
    assert metrics["audited_model_max_abs_diff_one_pass_vs_loop"] > 1e-3
    for name in ("causal", "nn_transformer", "t5"):
        assert metrics[f"{name}_max_future_sensitivity"] <= 1e-5
        assert metrics[f"{name}_max_abs_diff_one_pass_vs_loop"] <= 1e-5
