"""utils/workbench/uncertainty.py: bootstrap intervals, paired differences, sacrebleu's paired chrF test."""

import pytest

from utils.workbench.uncertainty import bootstrap_interval, chrf_paired_test, paired_bootstrap_difference, seed_spread


def test_bootstrap_interval_contains_the_mean_and_is_seeded():
    scores = [1, 0, 1, 1, 0, 1, 1, 1, 0, 1] * 5
    low, high = bootstrap_interval(scores, 500, seed=3)
    assert low < sum(scores) / len(scores) < high
    assert (low, high) == bootstrap_interval(scores, 500, seed=3)
    assert bootstrap_interval([1] * 20, 200) == (1.0, 1.0)  # no variation, no width
    with pytest.raises(ValueError, match="at least one"):
        bootstrap_interval([], 10)


def test_paired_difference_ranks_only_when_the_interval_allows():
    better = [1] * 40 + [0] * 10
    worse = [1] * 10 + [0] * 40
    clear = paired_bootstrap_difference(better, worse, 500)
    assert clear["difference"] == pytest.approx(0.6) and clear["excludes_zero"] and clear["low"] > 0
    close = paired_bootstrap_difference([1, 0] * 25, [0, 1] * 25, 500)
    assert close["difference"] == 0 and not close["excludes_zero"]
    with pytest.raises(ValueError, match="same items"):
        paired_bootstrap_difference([1, 0], [1], 10)


def test_chrf_paired_test_scores_both_systems():
    references = ["zwei", "drei vier", "fünf", "einundzwanzig"]
    result = chrf_paired_test(references, ["zwei", "drei vir", "fünf", "zwanzig"], references, 200)
    assert result["baseline"] == pytest.approx(100.0) and 0 < result["system"] < 100
    assert 0 < result["p_value"] <= 1 and result["system_half_width"] > 0


def test_seed_spread():
    spread = seed_spread([0.88, 0.9, 0.93])
    assert spread["min"] == 0.88 and spread["max"] == 0.93 and spread["runs"] == 3
    assert spread["mean"] == pytest.approx(0.9033333) and spread["std"] == pytest.approx(0.0251661, rel=1e-5)
    assert seed_spread([0.5])["std"] == 0.0
