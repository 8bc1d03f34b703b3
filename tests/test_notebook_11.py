"""Notebook 11 with smoke parameters: two gloo processes from the notebook, claims (a)-(d) recorded and holding."""

CLAIMS = [
    "accelerate_launch_cpu_starts_one_process", "torchrun_starts_gloo_processes", "parameters_identical_after_k_steps",
    "global_step_equals_single_process_step", "single_step_is_global_token_mean_gradient",
    "per_rank_mean_differs_from_global", "per_rank_step_is_mean_of_rank_means",
    "trainer_default_follows_world_size_times_per_rank",
]


def test_11_data_parallel_claims_hold(smoke_results, assert_claims_hold):
    results = smoke_results("11_data_parallel")
    assert_claims_hold(results, CLAIMS)
    metrics = results["metrics"]
    tokens = metrics["per_rank_rank_tokens"]
    assert len(tokens) == results["parameters"]["n_processes"] and len(set(tokens)) > 1
    assert metrics["per_rank_loss_ratio"] != 1.0
    assert metrics["trainer_average_tokens_across_devices_default"] is True
