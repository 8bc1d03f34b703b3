"""Paths resolved from the repository root, never from the working directory."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT / "data"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
TOKENIZERS_DIR = DATA_DIR / "tokenizers"


def reports_dir() -> Path:
    """Where rendered notebooks, figures and results go (the runner sets TINFER_REPORTS_DIR)."""
    return Path(os.environ.get("TINFER_REPORTS_DIR", REPO_ROOT / "reports"))


def results_dir() -> Path:
    """Where results JSON files go; the runner points it at a staging folder while a notebook runs."""
    return Path(os.environ.get("TINFER_RESULTS_DIR", reports_dir() / "results"))


def figures_dir() -> Path:
    return Path(os.environ.get("TINFER_FIGURES_DIR", reports_dir() / "figures"))
