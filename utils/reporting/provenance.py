"""Sentences generated from the claims that test them: the findings, the answers, the pitfalls and the slides.

A `Sentence` is a template plus what backs it: the claims that *test what it says* (each with the notebook that
recorded it) and the metrics it quotes (interpolated into the template, never typed). Paper citations are
separate (`citations`) and never count as evidence. Rendering against the recorded results gives the sentence
when every backing claim is present, holds and is not a sanity check; otherwise "not established: ..." naming the
claim. `provenance_problems` is the reviewer's check: a sentence without claims, a claim whose reason is missing,
or a number typed into a template.

    Sentence("answer.hf.mask", "answer", "HF's decoder builds a causal mask by itself.",
             claims=(Claim("02_causal_mask", "audit_passes_hf_models", "the audit finds no leak in HF's decoders"),))
"""

import re
import string
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Claim", "Metric", "Sentence", "provenance_problems", "render", "render_all"]


@dataclass(frozen=True)
class Claim:
    """A recorded claim that tests (part of) a sentence, and the one-line reason it does."""

    notebook: str
    id: str
    reason: str

    @property
    def label(self) -> str:
        return f"{self.notebook.split('_')[0]}:{self.id}"


@dataclass(frozen=True)
class Metric:
    """A recorded metric (or run parameter) quoted in a sentence as `{name}`.

    `format` is applied with `str.format(value)` (`"{0[0]:.2f}–{0[1]:.2f}"` for a [low, high] list); `interval`
    names a metric holding [low, high], appended as "(95% interval ...)"; `section="parameters"` quotes a parameter.
    """

    notebook: str
    id: str
    format: str = "{:.2f}"
    interval: str | None = None
    section: str = "metrics"


@dataclass(frozen=True)
class Sentence:
    id: str  # "section.name", unique
    section: str  # verdict | answer | pitfall | audit | scope | rerun | real_data
    template: str  # "{name}" placeholders for metrics: every number, `code` included, comes through them
    claims: tuple[Claim, ...] = ()
    metrics: dict[str, Metric] = field(default_factory=dict)
    citations: tuple[str, ...] = ()  # paper sections: cited, not evidence
    title: str = ""
    figure: str | None = None  # relative to the report folder
    notes: str = ""  # speaker notes
    cells: dict[str, str] = field(default_factory=dict)  # verdict rows: the table cells (citations or measured)


# a standalone number, negative ones included (`-100`), not the digits of a name (T5, fp32, v1.1) nor 4-D
_DIGITS_OUTSIDE = re.compile(r"(?<![\w.])-?\d+(?:[.,]\d+)*%?(?![\w-])")


def _typed_numbers(template: str) -> list[str]:
    """Digits in a template outside `{placeholders}` and [cited paper text with its §section]: a number, in prose or
    inside a `code span` (`max_length=20`, `k=2`), must come from the results."""
    stripped = re.sub(r"\{[^}]*\}", "", template)
    stripped = re.sub(r"\[[^\]]*§[^\]]*\]", "", stripped)
    return _DIGITS_OUTSIDE.findall(stripped)


def provenance_problems(sentences: list[Sentence]) -> list[str]:
    """What a reviewer would reject: no claims, missing reasons, typed numbers, unknown placeholders, duplicates."""
    problems, seen = [], set()
    for sentence in sentences:
        if sentence.id in seen:
            problems.append(f"{sentence.id}: duplicate id")
        seen.add(sentence.id)
        if not sentence.claims:
            problems.append(f"{sentence.id}: no claim tests it")
        problems += [f"{sentence.id}: claim {c.label} has no reason" for c in sentence.claims if not c.reason.strip()]
        if _typed_numbers(sentence.template):
            problems.append(f"{sentence.id}: numbers typed into the template (quote a metric instead)")
        fields = {name for _, name, _, _ in string.Formatter().parse(sentence.template) if name}
        if fields != set(sentence.metrics):
            problems.append(f"{sentence.id}: placeholders {sorted(fields)} != metrics {sorted(sentence.metrics)}")
    return problems


def _claim_status(results: dict[str, dict[str, Any]], claim: Claim) -> tuple[str, dict[str, Any] | None]:
    entry = results.get(claim.notebook, {}).get("claims", {}).get(claim.id)
    if entry is None:
        return "missing", None
    if entry.get("sanity"):
        return "sanity check only", entry
    return ("holds" if entry["holds"] else "does not hold"), entry


def _metric_text(results, metric: Metric) -> tuple[str | None, Any, list | None]:
    values = results.get(metric.notebook, {}).get(metric.section, {})
    value = values.get(metric.id)
    if value is None:
        return None, None, None
    interval = results.get(metric.notebook, {}).get("metrics", {}).get(metric.interval) if metric.interval else None
    if isinstance(value, list) and "{0[" not in metric.format:
        text = ", ".join(map(str, value)) if value else "none"
    elif isinstance(value, bool) or not isinstance(value, int | float | list):
        text = str(value)
    else:
        text = metric.format.format(value)
    if interval is not None:
        low, high = interval
        text += f" (95% interval {metric.format.format(low)}–{metric.format.format(high)})"
    return text, value, interval


def render(sentence: Sentence, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The sentence as a record: final text, established or not, and what backs it (for FINDINGS and the deck)."""
    claims = []
    problems = []
    for claim in sentence.claims:
        status, entry = _claim_status(results, claim)
        claims.append({"notebook": claim.notebook, "id": claim.id, "holds": status == "holds", "status": status,
                       "statement": entry["statement"] if entry else None, "reason": claim.reason,
                       "cell": entry.get("cell") if entry else None})
        if status != "holds":
            problems.append(f"{claim.label} {status}")
    metrics, values = [], {}
    for name, metric in sentence.metrics.items():
        text, value, interval = _metric_text(results, metric)
        metrics.append({"notebook": metric.notebook, "name": metric.id, "value": value, "text": text,
                        "interval": interval})
        if text is None:
            problems.append(f"metric {metric.notebook.split('_')[0]}:{metric.id} missing")
        values[name] = text if text is not None else "?"
    body = sentence.template.format(**values)
    established = not problems
    text = body if established else f"not established: “{body}” ({'; '.join(problems)})"
    return {"id": sentence.id, "section": sentence.section, "title": sentence.title, "text": text,
            "established": established, "claims": claims, "metrics": metrics,
            "citations": list(sentence.citations), "figure": sentence.figure, "notes": sentence.notes,
            "cells": dict(sentence.cells)}


def render_all(sentences: list[Sentence], results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [render(sentence, results) for sentence in sentences]
