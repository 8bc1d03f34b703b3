"""Notebook 13 (which transformers?) with smoke parameters: the installed release measured now beside the committed
4.x records, the matrix and the version-scoped claims."""

CLAIMS = [
    "committed_record_of_installed_release_reproduced", "ga_pitfall_on_5_24", "ga_pitfall_on_4_46", "ga_fixed_on_4_57",
    "ga_pitfall_on_5_24_comes_from_forward_kwargs", "ga_adamw_norm_ratio_within_1_percent_on_all_versions",
    "avg_tokens_across_devices_false_on_4_46_true_on_4_57_and_5_24", "t5_eager_on_4x_sdpa_on_5_24",
    "bare_generate_19_new_tokens_on_4_46_20_on_4_57_and_5_24", "config_generation_setting_warns_on_4x_raises_on_5_24",
    "shift_right_same_on_all_versions", "causal_mask_one_pass_equals_loop_on_all_versions",
    "minus_100_ignored_by_the_loss_on_all_versions", "greedy_generate_equals_loop_on_all_versions",
]


def test_13_version_drift_claims_hold(smoke_results, assert_claims_hold):
    results = smoke_results("13_version_drift")
    assert_claims_hold(results, CLAIMS)
    assert not [c for c, claim in results["claims"].items() if not claim["holds"]]


def test_13_matrix_has_a_column_per_release(smoke_results):
    metrics = smoke_results("13_version_drift")["metrics"]
    assert {"4.46", "4.57", "5.24"} <= set(metrics["versions"])
    assert metrics["versions"]["5.24"]["record"] == "(measured now)"
    assert len(metrics["matrix"]) >= 12 + 4
    assert metrics["matrix"]["ga_ratio_sgd"] == {"4.46": "4", "4.57": "1", "5.24": "4"}
    assert metrics["scope"]["shift_right_t5"]["same_on_all"]
    assert metrics["scope"]["ga_ratio_sgd"]["groups"] == {"4": ["4.46", "5.24"], "1": ["4.57"]}
