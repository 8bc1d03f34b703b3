"""Figures of the leakage audit and of attention masks: the audit's (T, T) sensitivity as a heatmap, a boolean mask
as a grid. Tensors go to the host first, so a CUDA report or mask plots as a CPU one does."""

import torch

from utils.handwritten.leakage_audit import LeakageReport

__all__ = ["plot_allowed", "plot_sensitivity"]


def plot_sensitivity(report: LeakageReport, ax, title: str | None = None, floor: float = 1e-12,
                     vmax: float | None = None):
    """Heatmap of log10(sensitivity) with the future region (s > t) outlined; returns the image for a colorbar.

    Zero sensitivity is drawn at log10(floor); pass the same `vmax` (log10 units) to panels that share a colorbar.
    """
    values = report.sensitivity.detach().cpu().clamp_min(floor).log10().numpy()  # (T, T) on the host
    length = values.shape[0]
    vmax = max(float(values.max()), 0.0) if vmax is None else vmax
    image = ax.imshow(values, cmap="magma", vmin=float(torch.log10(torch.tensor(floor))), vmax=vmax, origin="upper")
    # staircase along the diagonal: everything above/right of it is the future (s > t)
    xs, ys = [-0.5], [-0.5]
    for t in range(length):
        xs += [t + 0.5, t + 0.5]
        ys += [t - 0.5, t + 0.5]
    ax.plot(xs + [length - 0.5, -0.5], ys + [-0.5, -0.5], color="cyan", linewidth=1.5,
            label=f"future s > t (tolerance {report.tolerance:.0e})")
    for t, s in report.leaking_positions:
        ax.plot(s, t, marker="x", color="cyan", markersize=4, linestyle="none")
    ax.set_xlim(-0.5, length - 0.5)
    ax.set_ylim(length - 0.5, -0.5)
    ax.set_xlabel("perturbed decoder input position s")
    ax.set_ylabel("output position t")
    verdict = "LEAKS" if report.leaks else "no leakage"
    ax.set_title(f"{title + ': ' if title else ''}{verdict} (max future {report.max_future_sensitivity:.1e})",
                 fontsize=9)
    ax.legend(loc="lower left", fontsize=7)
    return image


def plot_allowed(allowed: torch.Tensor, ax, title: str):
    """A (T_query, T_key) boolean mask as a black/white grid: white = may attend, black = blocked."""
    if allowed.dim() != 2:
        raise ValueError(f"plot one (T_query, T_key) mask at a time, got shape {tuple(allowed.shape)}")
    image = ax.imshow(allowed.detach().cpu().int().numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_xlabel("key position (attended to)")
    ax.set_ylabel("query position")
    ax.set_title(title, fontsize=9)
    return image
