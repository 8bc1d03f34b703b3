"""The findings records the deck and the site are built from: `results/00_findings.json` → "sentences".

Each record (written by the findings notebook through `utils.reporting.provenance.render`) is one sentence of the
findings with what backs it:

    {"id": "verdict.causal_mask", "section": "verdict", "title": "Decoder self-attention mask",
     "text": "DIFFERS: ...", "established": true,
     "claims": [{"notebook": "02_causal_mask", "id": "...", "holds": true, "statement": "...", "cell": 8}],
     "metrics": [{"notebook": "04b_tinfer_sweep", "name": "...", "value": 0.93, "text": "0.93 (...)",
                  "interval": [0.92, 0.94]}],
     "citations": ["Vaswani et al. 2017, §3.2.3"], "figure": "figures/...png", "cells": {...}, "notes": "..."}

Nothing here invents content: a findings file without "sentences" is an error that names the file and the key.
"""

import json
from pathlib import Path
from typing import Any

FINDINGS = "00_findings"
SECTIONS = ("verdict", "answer", "pitfall", "hf_defaults", "data_parallel", "real_data", "audit", "scope", "rerun")
REQUIRED = ("id", "section", "title", "text", "established", "claims", "metrics")

__all__ = ["FINDINGS", "SECTIONS", "by_section", "findings_path", "load_sentences"]


def findings_path(reports: Path) -> Path:
    return reports / "results" / f"{FINDINGS}.json"


def load_sentences(path: Path) -> list[dict[str, Any]]:
    """The "sentences" records of a findings JSON file, checked against the contract above."""
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `python -m utils.run {FINDINGS}` first")
    findings = json.loads(path.read_text(encoding="utf-8"))
    if "sentences" not in findings:
        raise LookupError(f"{path} has no key 'sentences': the deck and the site are built from the findings "
                          f"records; rerun the findings notebook (`python -m utils.run {FINDINGS}`) with a version "
                          "that writes them")
    sentences = findings["sentences"]
    problems, seen = [], set()
    for index, record in enumerate(sentences):
        missing = [key for key in REQUIRED if key not in record]
        name = record.get("id", f"#{index}")
        if missing:
            problems.append(f"{name}: missing {', '.join(missing)}")
        if record.get("section") not in SECTIONS:
            problems.append(f"{name}: section {record.get('section')!r} is not one of {', '.join(SECTIONS)}")
        if name in seen:
            problems.append(f"{name}: duplicate id")
        seen.add(name)
    if problems:
        raise ValueError(f"{path}: malformed 'sentences' records: " + "; ".join(problems))
    return sentences


def by_section(sentences: list[dict[str, Any]], section: str) -> list[dict[str, Any]]:
    return [record for record in sentences if record["section"] == section]

