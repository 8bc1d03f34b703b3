"""Paths resolved from the repository root, never from the working directory.

Only the runner (`python -m utils.run`) publishes into `reports/`: it tells the kernel where to write through
TINFER_REPORTS_DIR, TINFER_RESULTS_DIR and TINFER_FIGURES_DIR. A notebook kernel started any other way
(plain papermill, Jupyter) writes its results, figures and other outputs under `build/scratch/` instead,
a folder laid out like `reports/`, and says so once; the published reports stay as they are.
"""

import os
import sys
from pathlib import Path

__all__ = [
    "DATA_DIR", "NOTEBOOKS_DIR", "PUBLISHED_REPORTS_DIR", "REPO_ROOT", "SCRATCH_REPORTS_DIR", "TOKENIZERS_DIR",
    "documents_dir", "figures_dir", "in_notebook_kernel", "reports_dir", "results_dir", "write_text_atomically",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT / "data"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
TOKENIZERS_DIR = DATA_DIR / "tokenizers"
PUBLISHED_REPORTS_DIR = REPO_ROOT / "reports"
SCRATCH_REPORTS_DIR = REPO_ROOT / "build" / "scratch"

_announced: set[Path] = set()


def in_notebook_kernel() -> bool:
    """True inside a Jupyter kernel (papermill, Jupyter, the runner), False in a script or test process."""
    if "ipykernel" not in sys.modules:
        return False
    from IPython import get_ipython

    return getattr(get_ipython(), "kernel", None) is not None


def _announce_scratch(folder: Path) -> None:
    """Say once per kernel where a notebook not started by the runner writes."""
    if folder not in _announced:
        _announced.add(folder)
        print(f"not started by `python -m utils.run`: results, figures and other outputs go to {folder}/ "
              f"({PUBLISHED_REPORTS_DIR.name}/ is published by the runner only)")


def reports_dir() -> Path:
    """The report folder: TINFER_REPORTS_DIR (set by the runner) if set; else `build/scratch/` inside a notebook
    kernel the runner did not start, and `reports/` in a script (`utils.render`, `utils.bench`)."""
    if "TINFER_REPORTS_DIR" in os.environ:
        return Path(os.environ["TINFER_REPORTS_DIR"])
    if in_notebook_kernel():
        _announce_scratch(SCRATCH_REPORTS_DIR)
        return SCRATCH_REPORTS_DIR
    return PUBLISHED_REPORTS_DIR


def results_dir() -> Path:
    """Where results JSON files go; the runner points it at a staging folder while a notebook runs."""
    return Path(os.environ.get("TINFER_RESULTS_DIR", reports_dir() / "results"))


def figures_dir() -> Path:
    return Path(os.environ.get("TINFER_FIGURES_DIR", reports_dir() / "figures"))


def documents_dir() -> Path:
    """Where a notebook writes report documents such as FINDINGS.md: the runner points it at the staging folder
    (published with the notebook, all or nothing); otherwise the report folder itself."""
    return Path(os.environ.get("TINFER_DOCUMENTS_DIR", reports_dir()))


def write_text_atomically(path: str | Path, text: str) -> Path:
    """Write `text` to `path` through a temporary file in the same folder and `os.replace`: a reader sees the
    old file or the new one, never half of one. The file gets the usual mode (0666 less the umask, 0644 by
    default), unlike `tempfile`'s 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path
