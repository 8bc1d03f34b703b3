"""Notebook 11 with smoke parameters: two gloo processes from the notebook, claims (a)-(d) recorded and holding."""

CLAIMS = [
    "accelerate_launch_cpu_starts_one_process", "torchrun_starts_gloo_processes",
    "global_step_equals_single_process_step", "single_step_is_global_token_mean_gradient",
    "per_rank_mean_differs_from_global", "per_rank_step_is_mean_of_rank_means",
    "trainer_default_follows_world_size_times_per_rank",
]


# DDP guarantees identical parameters, the shards are ours: shown, never backing a finding
SANITY = ["parameters_identical_after_k_steps", "ranks_see_disjoint_shards"]


def test_11_data_parallel_claims_hold(smoke_results, assert_claims_hold):
    results = smoke_results("11_data_parallel")
    assert_claims_hold(results, CLAIMS + SANITY)
    assert all(results["claims"][c].get("sanity") for c in SANITY)
    assert not any(results["claims"][c].get("sanity") for c in CLAIMS)
    assert "tolerance" not in results["parameters"]  # the one tolerance model: from the dtype
    naive = results["claims"]["per_rank_mean_differs_from_global"]["evidence"]
    assert naive["ratio_to_allowed"] >= 100  # "different" means at least 100x the allowed difference
    same = results["claims"]["global_step_equals_single_process_step"]["evidence"]
    assert same["ratio_to_allowed"] <= 1 and same["max_abs_diff"] <= same["allowed"]
    trainer = results["claims"]["trainer_default_follows_world_size_times_per_rank"]["evidence"]["comparisons"]
    assert trainer["vs_world_size_times_per_rank"]["ratio_to_allowed"] <= 1 <= 100 <= trainer["vs_global"][
        "ratio_to_allowed"]
    metrics = results["metrics"]
    tokens = metrics["per_rank_rank_tokens"]
    assert len(tokens) == results["parameters"]["n_processes"] and len(set(tokens)) > 1
    assert metrics["per_rank_loss_ratio"] != 1.0
    assert metrics["trainer_average_tokens_across_devices_default"] is True
