"""One tolerance model for every closeness claim: two computations are the same when

    max |actual - expected|  <=  atol + rtol * max |expected|

with `rtol` and `atol` set by the dtype compared (the form of `torch.testing.assert_close`, except that the relative
part scales with the largest magnitude compared, not element by element: a reduction's rounding error scales with
the values summed, so a near-zero entry beside large ones gets the same allowance). They are *different* only when
the difference is at least `SEPARATION` times that allowance; in between a claim of either kind does not hold, so a
verdict never rests on the last digits that another CPU kernel (AVX2 vs AVX-512), a thread count or a GPU changes.

float32: rtol 1e-5 is about 84 float32 epsilons, so logits of magnitude 10 may differ by 1e-4; the largest
kernel-to-kernel difference measured here was 1.1e-5 on such logits (about 10 times below), and the effects the
collection separates (a leaked future token, another loss normalisation) are relative changes of 1e-3 or more.
"""

from dataclasses import dataclass

import torch

__all__ = ["SEPARATION", "Comparison", "Tolerance", "compare", "tolerance_for"]

SEPARATION = 100.0  # "different" needs a difference at least this many times the allowed one


@dataclass(frozen=True)
class Tolerance:
    """Allowed |difference| = atol + rtol * magnitude, for values stored in `dtype`."""

    dtype: str
    rtol: float
    atol: float

    def allowed(self, magnitude: float) -> float:
        return self.atol + self.rtol * float(magnitude)

    def __str__(self) -> str:
        return f"{self.atol:g} + {self.rtol:g} x magnitude ({self.dtype})"


TOLERANCES = {
    "float64": Tolerance("float64", rtol=1e-10, atol=1e-12),
    "float32": Tolerance("float32", rtol=1e-5, atol=1e-6),
    "float16": Tolerance("float16", rtol=1e-2, atol=1e-3),
    "bfloat16": Tolerance("bfloat16", rtol=5e-2, atol=1e-2),
}


def tolerance_for(dtype: torch.dtype | str = torch.float32) -> Tolerance:
    """The tolerance of a floating dtype (`torch.float32` or "float32"); ValueError names the dtypes known."""
    name = str(dtype).removeprefix("torch.")
    if name not in TOLERANCES:
        raise ValueError(f"no tolerance for dtype {name!r}; known: {', '.join(TOLERANCES)}")
    return TOLERANCES[name]


@dataclass(frozen=True)
class Comparison:
    """What one comparison measured: the largest difference, the scale it is judged against, and the verdicts."""

    max_abs_diff: float
    magnitude: float  # max |expected|
    tolerance: Tolerance

    @property
    def allowed(self) -> float:
        return self.tolerance.allowed(self.magnitude)

    @property
    def ratio(self) -> float:
        """max |difference| / allowed: <= 1 is the same, >= SEPARATION is different."""
        return self.max_abs_diff / self.allowed

    @property
    def same(self) -> bool:
        return self.ratio <= 1.0

    @property
    def different(self) -> bool:
        return self.ratio >= SEPARATION

    def evidence(self) -> dict:
        """The figures a claim records: measured, allowed, the rule, and the 'different' threshold."""
        return {"max_abs_diff": self.max_abs_diff, "magnitude": self.magnitude, "allowed": self.allowed,
                "ratio_to_allowed": self.ratio, "tolerance": str(self.tolerance),
                "different_from": SEPARATION * self.allowed}

    def __str__(self) -> str:
        relation = "<=" if self.same else (">=" if self.different else "between 1x and 100x of")
        return (f"max |diff| {self.max_abs_diff:.3g} {relation} allowed {self.allowed:.3g} "
                f"(= {self.tolerance.atol:g} + {self.tolerance.rtol:g} x {self.magnitude:.3g}, {self.tolerance.dtype})")


def _as_tensor(value) -> torch.Tensor:
    tensor = value.detach() if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    return tensor.to("cpu", torch.float64)


def compare(actual, expected, dtype: torch.dtype | str | None = None, magnitude: float | None = None) -> Comparison:
    """Compare two tensors (or numbers) under the tolerance of `dtype` (default: `expected`'s floating dtype, else
    float32). `magnitude` overrides max |expected|, e.g. the scale of the logits whose *change* is compared."""
    if dtype is None:
        dtype = expected.dtype if isinstance(expected, torch.Tensor) and expected.is_floating_point() else "float32"
    actual_t, expected_t = _as_tensor(actual), _as_tensor(expected)
    if actual_t.shape != expected_t.shape:
        raise ValueError(f"compare needs equal shapes, got {tuple(actual_t.shape)} and {tuple(expected_t.shape)}")
    difference = float((actual_t - expected_t).abs().max()) if actual_t.numel() else 0.0
    scale = float(expected_t.abs().max()) if magnitude is None and expected_t.numel() else float(magnitude or 0.0)
    return Comparison(max_abs_diff=difference, magnitude=scale, tolerance=tolerance_for(dtype))
