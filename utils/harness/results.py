"""One recorder for what a notebook claims and measures.

Writes `<results dir>/<notebook>.json` as
`{"notebook", "parameters", "claims": {id: {"holds", "statement", "evidence"}}, "metrics", "timings", "versions"}`.
Claims and metrics are deterministic for fixed parameters and seed; wall-clock numbers go to
`timings`, which is the one section allowed to differ between two runs.
A claim that does not hold is written with `holds: false`, never dropped.
"""

import json
import math
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from utils.harness.paths import results_dir, write_text_atomically

__all__ = [
    "Results", "ResultsFileError", "load_all_results", "load_results", "read_results_file",
    "results_differences", "results_problems",
]

VERSIONED_PACKAGES = ("torch", "transformers", "tokenizers", "datasets")


def _jsonable(value: Any) -> Any:
    """Tensors, numpy scalars and tuples -> plain JSON values; floats rounded to 8 significant digits."""
    torch = sys.modules.get("torch")  # a tensor implies torch is imported; readers of results need not import it
    if torch is not None and isinstance(value, torch.Tensor):
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
    count = getattr(shell, "execution_count", None) if shell is not None else None
    return count - 1 if isinstance(count, int) else None  # IPython counts the running cell In[n] as n + 1


ABSENT = "absent"


def _library_versions() -> dict[str, str]:
    """The version of each package in VERSIONED_PACKAGES; "absent" for one that is not installed (saving results
    must never fail for a missing optional package: a finished training run always saves its results)."""
    versions = {}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = ABSENT
    return versions


class Results:
    """Collects claims and metrics for one notebook run; `save()` writes them atomically."""

    def __init__(self, notebook: str, parameters: dict[str, Any]):
        self.notebook = notebook
        self.parameters = _jsonable(parameters)
        self.claims: dict[str, dict[str, Any]] = {}
        self.metrics: dict[str, Any] = {}
        self.timings: dict[str, float] = {}
        self.records: dict[str, Any] = {}  # further top-level sections, e.g. the findings' "sentences"

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
            "versions": _library_versions(),
            **self.records,
        }

    def record(self, section: str, value: Any) -> Any:
        """A top-level section of its own in the results JSON (not a metric): e.g. the findings' sentence records."""
        if section in ("notebook", "parameters", "claims", "metrics", "timings", "versions"):
            raise ValueError(f"section {section!r} is one of the recorder's own; choose another name")
        self.records[section] = _jsonable(value)
        return value

    def save(self, directory: str | Path | None = None) -> Path:
        directory = Path(directory) if directory is not None else results_dir()
        path = directory / f"{self.notebook}.json"
        write_text_atomically(path, json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        held = len(self.claims) - len(self.failed_claims())
        print(f"saved {path.name}: {held}/{len(self.claims)} claims hold, {len(self.metrics)} metrics")
        return path


class ResultsFileError(ValueError):
    """A results JSON file that is not valid JSON or lacks what `00_findings` reads; the message names the file."""


REQUIRED_KEYS = {"notebook": str, "parameters": dict, "claims": dict, "metrics": dict}
CLAIM_KEYS = {"holds": bool, "statement": str}
JSON_TYPES = {str: "a string", dict: "an object", bool: "true or false"}  # what each expected type reads as


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__)


def results_problems(data: Any, stem: str) -> list[str]:
    """What is wrong with the parsed contents of `<stem>.json` for a reader such as `00_findings` (empty: nothing)."""
    if not isinstance(data, dict):
        return [f"the top level must be an object, got {_type_name(data)}"]
    problems = []
    for key, kind in REQUIRED_KEYS.items():
        if key not in data:
            problems.append(f"lacks the key {key!r}")
        elif not isinstance(data[key], kind):
            problems.append(f"{key!r} must be {JSON_TYPES[kind]}, got {_type_name(data[key])}")
    if isinstance(data.get("notebook"), str) and data["notebook"] != stem:
        problems.append(f"'notebook' is {data['notebook']!r} but the file is named {stem}.json")
    for claim_id, claim in (data["claims"].items() if isinstance(data.get("claims"), dict) else ()):
        if not isinstance(claim, dict):
            problems.append(f"claim {claim_id!r} must be an object, got {_type_name(claim)}")
            continue
        for key, kind in CLAIM_KEYS.items():
            if key not in claim:
                problems.append(f"claim {claim_id!r} lacks the key {key!r}")
            elif not isinstance(claim[key], kind):
                problems.append(f"claim {claim_id!r}: {key!r} must be {JSON_TYPES[kind]}, got {_type_name(claim[key])}")
    return problems


def read_results_file(path: str | Path) -> dict[str, Any]:
    """Parse and check one results JSON file; ResultsFileError names the file and what is wrong."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ResultsFileError(f"{path}: not valid JSON (not UTF-8 text: {error.reason})") from None
    except json.JSONDecodeError as error:
        raise ResultsFileError(f"{path}: not valid JSON ({error.msg} at line {error.lineno} column {error.colno}); "
                               "delete it or rerun its notebook") from None
    problems = results_problems(data, path.stem)
    if problems:
        raise ResultsFileError(f"{path}: not a results file of this collection: {'; '.join(problems)}; "
                               "delete it or rerun its notebook")
    return data


def load_results(notebook: str, directory: str | Path | None = None) -> dict[str, Any]:
    """Read one notebook's results JSON (FileNotFoundError or ResultsFileError, naming the file)."""
    path = (Path(directory) if directory is not None else results_dir()) / f"{notebook}.json"
    if not path.exists():
        raise FileNotFoundError(
            f"no results for {notebook!r}: {path} does not exist; run `python -m utils.run {notebook}`"
        )
    return read_results_file(path)


def load_all_results(directory: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Every `<stem>.json` of the folder, checked (ResultsFileError names the first bad file), by stem."""
    directory = Path(directory) if directory is not None else results_dir()
    return {p.stem: read_results_file(p) for p in sorted(directory.glob("*.json"))}


def results_differences(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> list[str]:
    """Where two sets of results (notebook -> results JSON) differ in their claim ids, claim verdicts or metrics:
    the check that a refactoring changed no number (timings and versions are not compared)."""
    problems = []
    for stem in sorted(set(before) | set(after)):
        if stem not in before or stem not in after:
            problems.append(f"{stem}: only in {'after' if stem in after else 'before'}")
            continue
        old, new = before[stem], after[stem]
        if set(old["claims"]) != set(new["claims"]):
            problems.append(f"{stem}: claim ids differ: {sorted(set(old['claims']) ^ set(new['claims']))}")
        problems += [f"{stem}: claim {c} holds {old['claims'][c]['holds']} -> {new['claims'][c]['holds']}"
                     for c in sorted(set(old["claims"]) & set(new["claims"]))
                     if old["claims"][c]["holds"] != new["claims"][c]["holds"]]
        problems += [f"{stem}: metric {m} {old['metrics'].get(m)!r} -> {new['metrics'].get(m)!r}"
                     for m in sorted(set(old["metrics"]) | set(new["metrics"]))
                     if old["metrics"].get(m) != new["metrics"].get(m)]
    return problems
