"""How sure a headline number is: bootstrap intervals over test sentences, paired differences, spread over seeds.

Exact match is a mean of per-sentence 0/1 scores, so its interval is a percentile bootstrap over sentences; two
systems on the same sentences are compared with a *paired* bootstrap (the same resampled sentences for both).
chrF is a corpus statistic: its paired test is sacrebleu's (`PairedTest`, test_type="bs", seeded by SACREBLEU_SEED).
"""

import numpy as np
from sacrebleu.metrics import CHRF
from sacrebleu.significance import PairedTest

LEVEL = 0.95


def _percentiles(samples: np.ndarray, level: float) -> tuple[float, float]:
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def _resample_indices(n_items: int, n_resamples: int, seed: int) -> np.ndarray:
    if n_items < 1:
        raise ValueError("need at least one test item to bootstrap")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    return np.random.default_rng(seed).integers(0, n_items, size=(n_resamples, n_items))  # (R, N)


def bootstrap_interval(scores: list[float], n_resamples: int = 1000, seed: int = 0,
                       level: float = LEVEL) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-item scores (e.g. exact match 0/1 per sentence)."""
    values = np.asarray(scores, dtype=np.float64)
    means = values[_resample_indices(len(values), n_resamples, seed)].mean(axis=1)  # (R,)
    return _percentiles(means, level)


def paired_bootstrap_difference(scores_a: list[float], scores_b: list[float], n_resamples: int = 1000,
                                seed: int = 0, level: float = LEVEL) -> dict[str, float]:
    """mean(a) - mean(b) with a paired bootstrap interval; `excludes_zero` when the interval lies on one side."""
    a, b = np.asarray(scores_a, dtype=np.float64), np.asarray(scores_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired scores need the same items, got {len(a)} and {len(b)}")
    index = _resample_indices(len(a), n_resamples, seed)
    differences = a[index].mean(axis=1) - b[index].mean(axis=1)  # (R,)
    low, high = _percentiles(differences, level)
    return {"difference": float(a.mean() - b.mean()), "low": low, "high": high,
            "excludes_zero": bool(low > 0 or high < 0)}


def chrf_paired_test(baseline: list[str], system: list[str], references: list[str],
                     n_resamples: int = 1000) -> dict[str, float]:
    """sacrebleu's paired bootstrap for chrF: both scores, the system's 95% half-width, and the p-value."""
    test = PairedTest([("baseline", baseline), ("system", system)], {"chrf": CHRF()}, [references],
                      test_type="bs", n_samples=n_resamples)
    _, scores = test()
    baseline_result, system_result = scores["chrF2"]  # sacrebleu names the column by the metric's signature
    return {"baseline": float(baseline_result.score), "system": float(system_result.score),
            "system_half_width": float(system_result.ci), "p_value": float(system_result.p_value)}


def seed_spread(values: list[float]) -> dict[str, float]:
    """Mean, sample standard deviation, min and max over runs with different seeds."""
    array = np.asarray(values, dtype=np.float64)
    if array.size < 1:
        raise ValueError("need at least one run")
    std = float(array.std(ddof=1)) if array.size > 1 else 0.0
    return {"mean": float(array.mean()), "std": std, "min": float(array.min()), "max": float(array.max()),
            "runs": int(array.size)}
