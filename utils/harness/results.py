"""One recorder for what a notebook claims and measures.

Writes `<results dir>/<notebook>.json` as
`{"notebook", "parameters", "claims": {id: {"holds", "statement", "evidence"}}, "metrics", "timings", "versions"}`.
Claims and metrics are deterministic for fixed parameters and seed; wall-clock numbers go to
`timings`, which is the one section allowed to differ between two runs.
A claim that does not hold is written with `holds: false`, never dropped.
"""

import json
import math
import os
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from utils.harness.paths import results_dir

VERSIONED_PACKAGES = ("torch", "transformers", "tokenizers", "datasets")


def _jsonable(value: Any) -> Any:
    """Tensors, numpy scalars and tuples -> plain JSON values; floats rounded to 8 significant digits."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().tolist()
    if hasattr(value, "item") and not isinstance(value, list | dict | str):
        value = value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return float(f"{value:.8g}")
    if isinstance(value, bool | int | str) or value is None:
        return value
    return str(value)


def _execution_count() -> int | None:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return getattr(shell, "execution_count", None) if shell is not None else None


def library_versions() -> dict[str, str]:
    return {name: metadata.version(name) for name in VERSIONED_PACKAGES}


class Results:
    """Collects claims and metrics for one notebook run; `save()` writes them atomically."""

    def __init__(self, notebook: str, parameters: dict[str, Any]):
        self.notebook = notebook
        self.parameters = _jsonable(parameters)
        self.claims: dict[str, dict[str, Any]] = {}
        self.metrics: dict[str, Any] = {}
        self.timings: dict[str, float] = {}

    def claim(self, claim_id: str, holds: bool, statement: str, evidence: Any = None, sanity: bool = False) -> bool:
        """Record a checked statement; print it with its verdict. Returns `holds`.

        `sanity=True` marks a check of a definition or of a value set here (it can fail only through a bug):
        it is recorded and shown, but never backs a finding. `cell` is the kernel's execution count when the claim
        was made (under papermill: the 1-based index of the code cell), so a report can link to that cell.
        """
        holds = bool(holds)
        self.claims[claim_id] = {"holds": holds, "statement": statement, "evidence": _jsonable(evidence)}
        if sanity:
            self.claims[claim_id]["sanity"] = True
        cell = _execution_count()
        if cell is not None:
            self.claims[claim_id]["cell"] = cell
        mark = ("SANITY " if sanity else "") + ("HOLDS" if holds else "DOES NOT HOLD")
        print(f"[{mark}] {claim_id}: {statement}" + (f"  | evidence: {self.claims[claim_id]['evidence']}"
                                                     if evidence is not None else ""))
        return holds

    def metric(self, name: str, value: Any) -> Any:
        self.metrics[name] = _jsonable(value)
        return value

    def timing(self, name: str, seconds: float) -> float:
        """Wall-clock numbers: kept apart from metrics because they differ between runs."""
        self.timings[name] = round(float(seconds), 3)
        return seconds

    def failed_claims(self) -> list[str]:
        return [claim_id for claim_id, claim in self.claims.items() if not claim["holds"]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "notebook": self.notebook,
            "parameters": self.parameters,
            "claims": self.claims,
            "metrics": self.metrics,
            "timings": self.timings,
            "versions": library_versions(),
        }

    def save(self, directory: str | Path | None = None) -> Path:
        directory = Path(directory) if directory is not None else results_dir()
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.notebook}.json"
        text = json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"
        with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".tmp", encoding="utf-8") as f:
            f.write(text)
        os.replace(f.name, path)
        held = len(self.claims) - len(self.failed_claims())
        print(f"saved {path.name}: {held}/{len(self.claims)} claims hold, {len(self.metrics)} metrics")
        return path


def load_results(notebook: str, directory: str | Path | None = None) -> dict[str, Any]:
    """Read one notebook's results JSON (raises FileNotFoundError naming the file)."""
    path = (Path(directory) if directory is not None else results_dir()) / f"{notebook}.json"
    if not path.exists():
        raise FileNotFoundError(
            f"no results for {notebook!r}: {path} does not exist; run `python -m utils.run {notebook}`"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def load_all_results(directory: str | Path | None = None) -> dict[str, dict[str, Any]]:
    directory = Path(directory) if directory is not None else results_dir()
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.json"))}
