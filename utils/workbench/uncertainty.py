"""How sure a headline number is: the one bootstrap of the collection, over training seeds AND test items.

A headline figure (greedy exact match, WER, PER, chrF) is measured for several training seeds on the same test
items. Its 95% interval comes from a *two-level* percentile bootstrap: each resample draws the seeds with
replacement, then, within each drawn seed, the test items with replacement, and recomputes the seed mean of the
figure. The interval so covers both what another seed would change (training variance) and what other test
sentences would change (sampling variance); with one seed it is the usual bootstrap over test items.

A proportion observed at 0/n or n/n in every seed has no spread to resample (the bootstrap would return [0, 0]);
it gets the exact Clopper-Pearson interval of 0 (or n) successes in the n test items of one seed instead
(0/200 -> [0, 0.018]); pooling the seeds would pretend they were independent test items and shrink it.

Two systems on the same items are compared with the *paired* two-level bootstrap: the same drawn seeds and items
for both, so only the difference is resampled.
"""

import math

import numpy as np
from sacrebleu.metrics import CHRF

__all__ = ["LEVEL", "chrf_two_level_bootstrap", "clopper_pearson", "paired_two_level_difference",
           "record_seed_figure", "two_level_bootstrap"]

LEVEL = 0.95


def _percentiles(samples: np.ndarray, level: float) -> tuple[float, float]:
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def _as_seed_item_array(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[None]  # one seed: (1, N)
    if array.ndim < 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"{name} needs at least one seed and one test item, got shape {array.shape}")
    return array


def _resample(n_seeds: int, n_items: int, n_resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seed indices (R, S) and, per drawn seed, item indices (R, S, N): the two levels of one resampling."""
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    generator = np.random.default_rng(seed)
    seeds = generator.integers(0, n_seeds, size=(n_resamples, n_seeds))  # (R, S)
    items = generator.integers(0, n_items, size=(n_resamples, n_seeds, n_items))  # (R, S, N)
    return seeds, items


def _resampled_sums(statistics: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """statistics (S, N, K) -> their sums over the resampled items of each resampled seed, (R, S, K)."""
    n_seeds, n_items = statistics.shape[:2]
    seeds, items = _resample(n_seeds, n_items, n_resamples, seed)
    return statistics[seeds[..., None], items].sum(axis=2)  # (R, S, N, K) -> (R, S, K)


def _binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space (n in the thousands is fine)."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if k >= n else 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
             for i in range(k + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def _bisect(function, target: float, increasing: bool) -> float:
    low, high = 0.0, 1.0
    for _ in range(60):  # 2^-60: far below any printed digit
        middle = (low + high) / 2
        if (function(middle) < target) == increasing:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def clopper_pearson(successes: int, trials: int, level: float = LEVEL) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a binomial proportion: [0, 1 - (alpha/2)^(1/n)] at 0 successes."""
    if trials < 1 or not 0 <= successes <= trials or not 0 < level < 1:
        raise ValueError(f"need 0 <= successes <= trials, trials >= 1, 0 < level < 1; got {successes}, {trials}, "
                         f"{level}")
    alpha = 1 - level
    low = 0.0 if successes == 0 else _bisect(lambda p: 1 - _binomial_cdf(successes - 1, trials, p), alpha / 2, True)
    high = 1.0 if successes == trials else _bisect(lambda p: _binomial_cdf(successes, trials, p), alpha / 2, False)
    return low, high


def two_level_bootstrap(values, denominators=None, n_resamples: int = 1000, seed: int = 0,
                        level: float = LEVEL) -> dict:
    """Seed mean of a figure and its two-level bootstrap interval.

    `values` is (S seeds, N items), or (N,) for one seed: per test item its score (exact match 0/1, a word error
    0/1) or, with `denominators` (N,) or (S, N), a numerator (phoneme edits over reference lengths: PER). A seed's
    figure is sum(values) / sum(denominators) over its items (the mean without denominators). Returns mean (over
    seeds), low, high, per_seed, seeds, items and the method: "two-level bootstrap", or "clopper-pearson" when every
    score is 0 or every score is 1 (0/1 scores without denominators).
    """
    numerators = _as_seed_item_array(values, "values")
    if denominators is None:
        weights = np.ones_like(numerators)
    else:
        weights = np.broadcast_to(_as_seed_item_array(denominators, "denominators"), numerators.shape)
    per_seed = numerators.sum(axis=1) / weights.sum(axis=1)  # (S,)
    summary = {"mean": float(per_seed.mean()), "per_seed": [float(v) for v in per_seed],
               "seeds": int(numerators.shape[0]), "items": int(numerators.shape[1])}
    binary = denominators is None and bool(np.isin(numerators, (0.0, 1.0)).all())
    if binary and (numerators.min() == numerators.max()):
        successes = int(numerators[0].sum())  # 0 or N, the same in every seed
        low, high = clopper_pearson(successes, numerators.shape[1], level)
        return summary | {"low": low, "high": high, "method": "clopper-pearson"}
    sums = _resampled_sums(np.stack([numerators, weights], axis=-1), n_resamples, seed)  # (R, S, 2)
    low, high = _percentiles((sums[..., 0] / sums[..., 1]).mean(axis=1), level)
    return summary | {"low": low, "high": high, "method": "two-level bootstrap"}


def paired_two_level_difference(values_a, values_b, n_resamples: int = 1000, seed: int = 0,
                                level: float = LEVEL) -> dict:
    """mean(a) - mean(b) over seeds and items, with a paired two-level bootstrap interval (the same drawn seeds
    and items for both); `excludes_zero` when the interval lies on one side of 0, the only case that ranks them."""
    a, b = _as_seed_item_array(values_a, "values_a"), _as_seed_item_array(values_b, "values_b")
    if a.shape != b.shape:
        raise ValueError(f"paired scores need the same seeds and items, got shapes {a.shape} and {b.shape}")
    sums = _resampled_sums(np.stack([a, b], axis=-1), n_resamples, seed) / a.shape[1]  # (R, S, 2) item means
    low, high = _percentiles((sums[..., 0] - sums[..., 1]).mean(axis=1), level)
    return {"difference": float(a.mean() - b.mean()), "low": low, "high": high,
            "excludes_zero": bool(low > 0 or high < 0), "seeds": int(a.shape[0]), "items": int(a.shape[1])}


def chrf_two_level_bootstrap(hypotheses_per_seed: list[list[str]], references: list[str], n_resamples: int = 1000,
                             seed: int = 0, level: float = LEVEL) -> dict:
    """Corpus chrF (sacrebleu's defaults, 0-100) per seed, its seed mean and the two-level bootstrap interval:
    chrF is a corpus statistic, so each resample sums sacrebleu's per-sentence n-gram counts and scores the sums."""
    chrf = CHRF()
    statistics = np.array([chrf._extract_corpus_statistics(hypotheses, [references])  # (N, K) per seed
                           for hypotheses in hypotheses_per_seed], dtype=np.float64)  # (S, N, K)
    if statistics.ndim != 3 or statistics.shape[1] < 1:
        raise ValueError("need at least one seed and one sentence")
    per_seed = [float(chrf._compute_f_score(list(seed_statistics.sum(axis=0)))) for seed_statistics in statistics]
    sums = _resampled_sums(statistics, n_resamples, seed)  # (R, S, K)
    scores = np.array([[chrf._compute_f_score(list(row)) for row in resample] for resample in sums])  # (R, S)
    low, high = _percentiles(scores.mean(axis=1), level)
    return {"mean": float(np.mean(per_seed)), "low": low, "high": high, "per_seed": per_seed,
            "seeds": int(statistics.shape[0]), "items": int(statistics.shape[1]), "method": "two-level bootstrap"}


def record_seed_figure(results, name: str, figure: dict) -> None:
    """Record one headline figure over seeds with `results.metric`: `name` (the seed mean), then `name_std`,
    `name_ci95`, `name_per_seed` and `name_interval_method` (`figure` holds mean, std, ci95, per_seed, method)."""
    results.metric(name, figure["mean"])
    for key in ("std", "ci95", "per_seed"):
        results.metric(f"{name}_{key}", figure[key])
    results.metric(f"{name}_interval_method", figure["method"])
