"""One way to save figures: fixed size and DPI, stable names, under the report folder."""

from pathlib import Path

import matplotlib.pyplot as plt

from utils.harness.paths import figures_dir

__all__ = ["new_figure", "save_figure"]

PANEL_SIZE = (5.0, 3.6)  # inches per subplot
DPI = 110


def new_figure(ncols: int = 1, nrows: int = 1):
    """A figure of `nrows x ncols` panels of the collection's size; returns (fig, axes)."""
    figsize = (PANEL_SIZE[0] * ncols, PANEL_SIZE[1] * nrows)
    return plt.subplots(nrows, ncols, figsize=figsize, dpi=DPI, squeeze=(ncols * nrows == 1))


def save_figure(fig, notebook: str, name: str) -> Path:
    """Save as `<figures dir>/<notebook>/<name>.png` (stable name, no timestamp) and return the path."""
    directory = figures_dir() / notebook
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    return path
