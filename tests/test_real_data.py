"""utils/experiments/real_data.py: jobs in worker processes are deterministic; seed summaries and intervals."""

import pytest

from utils.experiments.real_data import G2PSetup, Job, paired_word_error_difference, run_job, seed_summary
from utils.workbench.jobs import run_jobs, workers_for

TINY = G2PSetup(n_steps=3, batch_size=8, warmup_steps=1, n_train=64, n_validation=8, n_test=6, n_beam=2,
                audit_examples=2, audit_trials=1, max_new_tokens=6)


def _square(x):
    return x * x


def test_run_jobs_keeps_order_in_and_out_of_process():
    tasks = [(_square, (i,)) for i in range(5)]
    assert run_jobs(tasks, n_workers=1) == [0, 1, 4, 9, 16]
    assert run_jobs(tasks, n_workers=2) == [0, 1, 4, 9, 16]
    with pytest.raises(ValueError):
        run_jobs(tasks, n_workers=0)


def test_jobs_run_in_workers_on_the_cpu_and_in_process_on_an_accelerator():
    assert workers_for("cpu", 2) == 2
    assert workers_for("cuda", 2) == 1 and workers_for("cuda:1", 4) == 1  # one CUDA context, no spawned workers
    assert workers_for("meta", 3) == 1
    with pytest.raises(ValueError):
        workers_for("cpu", 0)


def test_a_job_is_deterministic_and_worker_independent():
    job = Job("causal", 1, TINY)
    here = run_job(job)
    again, other_seed = run_jobs([(run_job, (job,)), (run_job, (Job("causal", 2, TINY),))], n_workers=2)
    for key in ("train_loss", "validation_loss", "greedy_wer", "greedy_edits", "beam_per", "leakage"):
        assert here[key] == again[key], key
    assert here["train_loss"] != other_seed["train_loss"]
    assert len(here["greedy_word_errors"]) == TINY.n_test and len(here["beam_word_errors"]) == TINY.n_beam
    assert not here["leakage"]["leaks"] and run_job(Job("no_mask", 1, TINY))["leakage"]["leaks"]


def test_seed_summary_and_its_interval():
    runs = [{"seed": s, "greedy_wer": w, "greedy_per": w / 4, "greedy_word_errors": errors,
             "greedy_edits": errors, "greedy_reference_lengths": [4] * 4}
            for s, w, errors in ((0, 0.5, [1, 0, 1, 0]), (1, 0.25, [1, 0, 0, 0]))]
    summary = seed_summary(runs, "greedy", n_resamples=200, seed=0)
    assert summary["wer"]["mean"] == pytest.approx(0.375) and summary["wer"]["per_seed"] == [0.5, 0.25]
    assert summary["wer"]["min"] == 0.25 and summary["wer"]["std"] == pytest.approx(0.1767767, rel=1e-5)
    low, high = summary["wer"]["ci95"]
    assert 0.0 <= low <= 0.375 <= high <= 1.0
    assert summary == seed_summary(runs, "greedy", n_resamples=200, seed=0)
    assert summary["wer"]["method"] == "two-level bootstrap"
    assert summary["per"]["per_seed"] == pytest.approx([2 / 16, 1 / 16])  # summed edits over summed lengths


def test_seed_summary_gives_the_exact_interval_when_every_word_is_wrong():
    runs = [{"seed": s, "greedy_wer": 1.0, "greedy_per": 1.0, "greedy_word_errors": [1] * 50,
             "greedy_edits": [4] * 50, "greedy_reference_lengths": [4] * 50} for s in (0, 1, 2)]
    summary = seed_summary(runs, "greedy", n_resamples=100)
    assert summary["wer"]["method"] == "clopper-pearson" and summary["wer"]["ci95"][1] == 1.0
    assert summary["wer"]["ci95"][0] == pytest.approx(0.025 ** (1 / 50))  # the exact bound of 50 of 50


def test_paired_word_error_difference_ranks_only_a_clear_gap():
    bad = [{"greedy_word_errors": [1] * 40 + [0] * 10} for _ in range(3)]
    good = [{"greedy_word_errors": [0] * 45 + [1] * 5} for _ in range(3)]
    clear = paired_word_error_difference(bad, good, n_resamples=200)
    assert clear["excludes_zero"] and clear["low"] > 0 and clear["difference"] == pytest.approx(0.7)
    pretrained = [{"greedy_word_errors": [0] * 45 + [1] * 5}]  # one model, repeated for every seed of the other
    assert paired_word_error_difference(pretrained, good, n_resamples=200)["difference"] == 0.0
    first = paired_word_error_difference(bad, good, n_resamples=200, words=10)  # the first 10 words only
    assert first["items"] == 10 and first["difference"] == pytest.approx(1.0)
