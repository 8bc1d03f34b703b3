"""utils/workbench/uncertainty.py: the two-level bootstrap (seeds, then test items), the exact interval at 0/n and
n/n, the paired difference and chrF's corpus bootstrap."""

import numpy as np
import pytest

from utils.workbench.uncertainty import (
    chrf_two_level_bootstrap,
    clopper_pearson,
    paired_two_level_difference,
    record_seed_figure,
    two_level_bootstrap,
)


def test_clopper_pearson_matches_the_closed_forms_and_a_table_value():
    assert clopper_pearson(0, 200) == (0.0, pytest.approx(1 - 0.025 ** (1 / 200), abs=1e-12))
    assert clopper_pearson(0, 200)[1] == pytest.approx(0.0183, abs=1e-4)  # the issue's [0, 0.018]
    low, high = clopper_pearson(200, 200)
    assert high == 1.0 and low == pytest.approx(0.025 ** (1 / 200), abs=1e-12)
    assert clopper_pearson(5, 20) == (pytest.approx(0.0866, abs=1e-4), pytest.approx(0.4910, abs=1e-4))
    with pytest.raises(ValueError):
        clopper_pearson(3, 2)


def test_a_proportion_at_zero_or_one_in_every_seed_gets_the_exact_interval():
    zeros = two_level_bootstrap(np.zeros((3, 200)))
    assert zeros["method"] == "clopper-pearson" and zeros["mean"] == 0.0
    assert (zeros["low"], zeros["high"]) == clopper_pearson(0, 200)  # one seed's 200 sentences, not 600 pooled
    ones = two_level_bootstrap(np.ones((2, 50)))
    assert ones["method"] == "clopper-pearson" and (ones["low"], ones["high"]) == clopper_pearson(50, 50)
    assert two_level_bootstrap([0, 0, 1, 0])["method"] == "two-level bootstrap"


def test_the_interval_covers_seed_variance_that_a_one_seed_bootstrap_misses():
    generator = np.random.default_rng(0)
    steady = (generator.random((3, 400)) < 0.5).astype(float)
    varied = np.stack([(generator.random(400) < p).astype(float) for p in (0.2, 0.5, 0.8)])  # seeds disagree
    narrow, wide = two_level_bootstrap(steady, seed=1), two_level_bootstrap(varied, seed=1)
    assert narrow["low"] < narrow["mean"] < narrow["high"] and wide["low"] < wide["mean"] < wide["high"]
    assert wide["high"] - wide["low"] > 3 * (narrow["high"] - narrow["low"])
    assert wide["per_seed"] == pytest.approx([row.mean() for row in varied])
    assert two_level_bootstrap(varied, seed=1) == wide  # seeded: the same interval again
    one_seed = two_level_bootstrap(varied[1])  # one seed: the usual bootstrap over items
    assert one_seed["seeds"] == 1 and one_seed["low"] < one_seed["mean"] < one_seed["high"] < 0.65


def test_denominators_give_a_ratio_of_sums_per_seed():
    result = two_level_bootstrap([[1, 2, 3], [0, 0, 3]], denominators=[3, 3, 6], n_resamples=200)
    assert result["per_seed"] == pytest.approx([6 / 12, 3 / 12]) and result["mean"] == pytest.approx(0.375)
    assert result["method"] == "two-level bootstrap"
    with pytest.raises(ValueError):
        two_level_bootstrap(np.zeros((0, 3)))


def test_paired_difference_ranks_only_a_clear_gap():
    better = np.array([[1] * 45 + [0] * 5] * 3)
    worse = np.array([[1] * 10 + [0] * 40] * 3)
    clear = paired_two_level_difference(better, worse, 500)
    assert clear["excludes_zero"] and clear["low"] > 0 and clear["difference"] == pytest.approx(0.7)
    close = paired_two_level_difference([[1, 0] * 25], [[0, 1] * 25], 500)
    assert not close["excludes_zero"]
    with pytest.raises(ValueError):
        paired_two_level_difference([[1, 0]], [[1]], 10)


def test_chrf_two_level_bootstrap_reproduces_sacrebleu_per_seed():
    import sacrebleu

    references = ["zwei", "drei", "vier", "zwanzig"]
    outputs = [["zwei", "drei vir", "fünf", "zwanzig"], references]
    result = chrf_two_level_bootstrap(outputs, references, 200)
    assert result["per_seed"] == pytest.approx([sacrebleu.corpus_chrf(o, [references]).score for o in outputs])
    assert result["per_seed"][1] == pytest.approx(100.0)
    assert result["low"] <= result["mean"] <= result["high"] <= 100.0


def test_record_seed_figure_records_the_mean_then_its_spread_interval_seeds_and_method():
    recorded = {}

    class Recorder:
        def metric(self, name, value):
            recorded[name] = value

    figure = {"mean": 0.5, "std": 0.1, "ci95": [0.3, 0.7], "per_seed": [0.4, 0.6], "method": "two-level bootstrap",
              "low": 0.3, "high": 0.7}
    record_seed_figure(Recorder(), "causal_greedy_wer", figure)
    assert list(recorded.items()) == [
        ("causal_greedy_wer", 0.5), ("causal_greedy_wer_std", 0.1), ("causal_greedy_wer_ci95", [0.3, 0.7]),
        ("causal_greedy_wer_per_seed", [0.4, 0.6]), ("causal_greedy_wer_interval_method", "two-level bootstrap")]
