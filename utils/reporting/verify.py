"""`python -m utils.verify DIR`: does a rerun (a reports folder DIR, e.g. `make verify`'s build/rerun) reproduce the
published `reports/`?

- exit 1 when a claim's verdict differs, a claim is missing from the rerun, or a findings sentence's established
  status differs (each named);
- exit 1 when a headline number (a metric published with a 95% interval: a sibling metric `<name>_interval` or
  `<name>_ci95` holding [low, high]) lies outside its published interval (each listed);
- otherwise exit 0, with a summary of the other metric changes (how many, the largest relative change): the last
  digits of a float move with the CPU kernels, the thread count and the device; verdicts must not.
Timings and versions are not compared. Exit 2 for a folder that is not a reports folder.
"""

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils.harness.paths import REPO_ROOT
from utils.harness.results import ResultsFileError, load_all_results

__all__ = ["main", "verify"]

INTERVAL_SUFFIXES = ("_interval", "_ci95")
FINDINGS = "00_findings"


@dataclass
class _Verification:
    verdict_changes: list[str] = field(default_factory=list)
    sentence_changes: list[str] = field(default_factory=list)
    outside_interval: list[str] = field(default_factory=list)
    metric_changes: list[tuple[str, float | None]] = field(default_factory=list)  # (what, relative change)
    missing: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if (self.verdict_changes or self.sentence_changes or self.outside_interval or self.missing) else 0

    def report(self) -> str:
        lines = []
        for title, items in (("claim verdicts that differ", self.verdict_changes),
                             ("findings sentences whose established status differs", self.sentence_changes),
                             ("headline numbers outside their published 95% interval", self.outside_interval),
                             ("missing from the rerun", self.missing)):
            lines.append(f"{title}: {len(items)}")
            lines += [f"  - {item}" for item in items]
        relative = [change for _, change in self.metric_changes if change is not None]
        largest = f"; largest relative change {max(relative):.3g}" if relative else ""
        lines.append(f"other metrics that changed: {len(self.metric_changes)}{largest}")
        lines += [f"  - {what}" for what, _ in sorted(self.metric_changes, key=lambda c: -(c[1] or 0))[:10]]
        lines.append("verify: " + ("the rerun reproduces every verdict, every established sentence and every headline "
                                   "number's interval" if self.exit_code == 0 else "the rerun DIFFERS (see above)"))
        return "\n".join(lines)


def _interval_of(metrics: dict[str, Any], name: str) -> list[float] | None:
    for suffix in INTERVAL_SUFFIXES:
        value = metrics.get(name + suffix)
        if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int | float) for v in value):
            return value
    return None


def _relative_change(old: Any, new: Any) -> float | None:
    if isinstance(old, bool) or not isinstance(old, int | float) or not isinstance(new, int | float):
        return None
    if math.isclose(old, 0.0):
        return None if math.isclose(new, 0.0) else math.inf
    return abs(new - old) / abs(old)


def _compare_notebook(stem: str, published: dict, rerun: dict, result: _Verification) -> None:
    for claim_id, claim in published["claims"].items():
        if claim_id not in rerun["claims"]:
            result.missing.append(f"{stem}: claim {claim_id}")
        elif rerun["claims"][claim_id]["holds"] != claim["holds"]:
            result.verdict_changes.append(f"{stem}:{claim_id} holds {claim['holds']} -> "
                                          f"{rerun['claims'][claim_id]['holds']}")
    metrics, new_metrics = published["metrics"], rerun["metrics"]
    for name, value in metrics.items():
        if name not in new_metrics:
            result.missing.append(f"{stem}: metric {name}")
            continue
        interval, new = _interval_of(metrics, name), new_metrics[name]
        if interval is not None and isinstance(new, int | float):
            low, high = interval
            if not low <= new <= high:
                result.outside_interval.append(f"{stem}:{name} = {new:.4g}, published {value} with 95% interval "
                                               f"[{low:.4g}, {high:.4g}]")
        elif new != value and not any(name.endswith(s) for s in INTERVAL_SUFFIXES):
            change = _relative_change(value, new)
            shown = f"{value} -> {new}" if change is None else f"{value:.6g} -> {new:.6g}"
            result.metric_changes.append((f"{stem}:{name} {shown}"[:160], change))


def _compare_sentences(published: dict, rerun: dict, result: _Verification) -> None:
    before = {s["id"]: s["established"] for s in published.get("sentences", [])}
    after = {s["id"]: s["established"] for s in rerun.get("sentences", [])}
    for sentence_id, established in before.items():
        if sentence_id not in after:
            result.missing.append(f"{FINDINGS}: sentence {sentence_id}")
        elif after[sentence_id] != established:
            result.sentence_changes.append(f"{sentence_id}: established {established} -> {after[sentence_id]}")


def verify(rerun_dir: str | Path, published_dir: str | Path = REPO_ROOT / "reports") -> _Verification:
    """Compare the results of a rerun reports folder with the published one (see the module docstring)."""
    published = load_all_results(Path(published_dir) / "results")
    rerun = load_all_results(Path(rerun_dir) / "results")
    result = _Verification()
    for stem in sorted(published):
        if stem not in rerun:
            result.missing.append(f"{stem}: no results in the rerun")
            continue
        _compare_notebook(stem, published[stem], rerun[stem], result)
        if stem == FINDINGS:
            _compare_sentences(published[stem], rerun[stem], result)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.verify", description=__doc__.split("\n\n")[0])
    parser.add_argument("rerun", help="the rerun's reports folder (holding results/*.json)")
    parser.add_argument("--published", default=str(REPO_ROOT / "reports"), help="the published reports folder")
    args = parser.parse_args(argv)
    for folder in (args.rerun, args.published):
        if not (Path(folder) / "results").is_dir():
            print(f"verify: {folder} is not a reports folder: it has no results/ folder", file=sys.stderr)
            return 2
    try:
        result = verify(args.rerun, args.published)
    except (ResultsFileError, json.JSONDecodeError) as error:
        print(f"verify: {error}", file=sys.stderr)
        return 2
    print(result.report())
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
