"""Guard against APIs that the pinned libraries removed (transformers 5.x, datasets 5.x, no torchtext).

Old tutorials (including the seed's HF `translation.ipynb`) use them; copied into this collection they
would fail only when a notebook runs. This test scans the code cells of `notebooks/*.ipynb` and the
`.py` files of `utils/` and fails with file, line and the replacement to use.
"""

import ast
import dataclasses
import importlib.util
import inspect
import json
import re
from pathlib import Path

import pytest

from utils.harness.paths import NOTEBOOKS_DIR, REPO_ROOT

THIS_FILE = Path(__file__).resolve()
SCANNED_DIRS = (NOTEBOOKS_DIR, REPO_ROOT / "utils")
# measures on purpose, on transformers 4.x, the APIs 5.x removed (notebook 13, `make drift`)
MEASURES_REMOVED_APIS = {REPO_ROOT / "utils" / "experiments" / "version_drift.py"}

# name -> (pattern, what to use instead)
STALE_PATTERNS = {
    "as_target_tokenizer": (re.compile(r"\bas_target_tokenizer\b"), "tokenizer(inputs, text_target=targets)"),
    "load_metric": (re.compile(r"\bload_metric\b"), "sacrebleu (or the `evaluate` package)"),
    "LineByLineTextDataset": (re.compile(r"\bLineByLineTextDataset\b"), "datasets.load_dataset('text', ...)"),
    "torchtext.legacy": (re.compile(r"\btorchtext\.legacy\b|\bfrom\s+torchtext\s+import\s+legacy\b"),
                         "datasets + tokenizers"),
    "evaluation_strategy=": (re.compile(r"\bevaluation_strategy\s*="), "eval_strategy="),
    "TF model class": (re.compile(r"\bTF[A-Z]\w*(?:Model\w*|For[A-Z]\w*)\b|\bTFTrainer\b"),
                       "the PyTorch class (TensorFlow support was removed in transformers 5)"),
}
TRAINER_TOKENIZER = "Trainer(tokenizer=)"
TRAINER_TOKENIZER_HINT = "processing_class=tokenizer"
# fallback when a cell does not parse: a *Trainer( call (one level of nested parentheses) with tokenizer=
TRAINER_TOKENIZER_REGEX = re.compile(r"\b\w*Trainer\s*\((?:[^()]|\([^()]*\))*?\btokenizer\s*=", re.DOTALL)


@dataclasses.dataclass(frozen=True)
class Finding:
    location: str  # "path:line" or "path:cell N:line"
    api: str
    text: str
    hint: str

    def __str__(self) -> str:
        return f"{self.location}: {self.api} ({self.text.strip()!r}); use {self.hint}"


def _call_name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def trainer_tokenizer_lines(source: str) -> list[int]:
    """1-based lines of `...Trainer(..., tokenizer=...)` calls (AST; regex if the source does not parse)."""
    code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return [source.count("\n", 0, m.start()) + 1 for m in TRAINER_TOKENIZER_REGEX.finditer(source)]
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Call) and _call_name(node.func).endswith("Trainer")
            and any(keyword.arg == "tokenizer" for keyword in node.keywords)]


def scan_source(source: str, location: str) -> list[Finding]:
    """Every stale API in one piece of Python source; `location` prefixes the line numbers."""
    lines = source.splitlines()
    findings = []
    for number, line in enumerate(lines, start=1):
        for api, (pattern, hint) in STALE_PATTERNS.items():
            if pattern.search(line):
                findings.append(Finding(f"{location}:{number}", api, line, hint))
    for number in trainer_tokenizer_lines(source):
        findings.append(Finding(f"{location}:{number}", TRAINER_TOKENIZER, lines[number - 1], TRAINER_TOKENIZER_HINT))
    return findings


def notebook_code_cells(path: Path) -> list[str]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in cells if c["cell_type"] == "code"]


def scan_path(path: Path) -> list[Finding]:
    path = Path(path)
    if path.suffix == ".ipynb":
        return [finding for index, source in enumerate(notebook_code_cells(path))
                for finding in scan_source(source, f"{path.name}:cell {index}")]
    return scan_source(path.read_text(encoding="utf-8"), path.name)


def scanned_files(directories=SCANNED_DIRS) -> list[Path]:
    files = []
    for directory in directories:
        files += sorted(Path(directory).rglob("*.py")) + sorted(Path(directory).rglob("*.ipynb"))
    return [f for f in files if f.resolve() != THIS_FILE and ".ipynb_checkpoints" not in f.parts
            and f.resolve() not in MEASURES_REMOVED_APIS]


# ---------------------------------------------------------------- the guard itself


def test_notebooks_and_utils_use_no_removed_api():
    files = scanned_files()
    assert any(f.suffix == ".py" for f in files), "the scan found no utils/*.py: wrong folder?"
    findings = [finding for path in files for finding in scan_path(path)]
    assert not findings, "APIs removed from the pinned libraries:\n" + "\n".join(map(str, findings))


# ---------------------------------------------------------------- the scanner can fail


@pytest.mark.parametrize("snippet, api", [
    ("with tokenizer.as_target_tokenizer():\n    labels = tokenizer(targets)", "as_target_tokenizer"),
    ("from datasets import load_metric\nmetric = load_metric('sacrebleu')", "load_metric"),
    ("dataset = LineByLineTextDataset(tokenizer=tok, file_path='a.txt', block_size=128)", "LineByLineTextDataset"),
    ("from torchtext.legacy import data", "torchtext.legacy"),
    ("from torchtext import legacy", "torchtext.legacy"),
    ("args = Seq2SeqTrainingArguments('out', evaluation_strategy='epoch')", "evaluation_strategy="),
    ("model = TFAutoModelForSeq2SeqLM.from_pretrained('t5-small')", "TF model class"),
    ("model = TFMarianMTModel.from_pretrained('x')", "TF model class"),
    ("model = TFT5ForConditionalGeneration(config)", "TF model class"),
    ("trainer = Trainer(model=model, args=args, tokenizer=tokenizer)", TRAINER_TOKENIZER),
    ("trainer = Seq2SeqTrainer(\n    model,\n    args,\n    data_collator=collate(x),\n    tokenizer=tok,\n)",
     TRAINER_TOKENIZER),
    ("%time x = 1\ntrainer = transformers.Seq2SeqTrainer(model=m, tokenizer=t)", TRAINER_TOKENIZER),
    ("trainer = Seq2SeqTrainer(model=m, tokenizer=t", TRAINER_TOKENIZER),  # does not parse: regex fallback
])
def test_scanner_flags_stale_snippet(snippet, api):
    findings = scan_source(snippet, "snippet")
    assert findings and {f.api for f in findings} == {api}, findings


@pytest.mark.parametrize("snippet", [
    "model_inputs = tokenizer(inputs, text_target=targets, max_length=64, truncation=True)",
    "trainer = Seq2SeqTrainer(model=m, args=a, processing_class=tokenizer)",
    "args = Seq2SeqTrainingArguments('out', eval_strategy='no', predict_with_generate=True)",
    "collator = DataCollatorForSeq2Seq(tokenizer, model=model)",
    "torch.backends.cuda.matmul.allow_tf32 = True  # TF32 is a number format, not TensorFlow",
    "tokenizer = build_tokenizer('t5')\nbatch = tokenize_pairs(tokenizer, pairs)",
])
def test_scanner_accepts_current_api(snippet):
    assert scan_source(snippet, "snippet") == []


def test_scanner_reads_code_cells_only_and_reports_the_cell(tmp_path):
    notebook = {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["The old `as_target_tokenizer` is gone."]},
            {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": ["x = 1"]},
            {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
             "source": ["y = 2\n", "metric = load_metric('bleu')"]},
        ],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5,
    }
    path = tmp_path / "bad.ipynb"
    path.write_text(json.dumps(notebook), encoding="utf-8")
    findings = scan_path(path)
    assert [(f.location, f.api) for f in findings] == [("bad.ipynb:cell 1:2", "load_metric")]


def test_scan_skips_this_file_and_finds_a_planted_file(tmp_path):
    planted = tmp_path / "old.py"
    planted.write_text("from transformers import TFAutoModel\n", encoding="utf-8")
    files = scanned_files([tmp_path, THIS_FILE.parent])
    assert planted in files and THIS_FILE not in [f.resolve() for f in files]
    assert [f.api for f in scan_path(planted)] == ["TF model class"]


# ---------------------------------------------------------------- the list matches the pinned libraries


def test_banned_apis_are_really_absent_from_the_pinned_libraries():
    import datasets
    import transformers
    from transformers import PreTrainedTokenizerBase, Seq2SeqTrainer, Trainer, TrainingArguments

    assert not hasattr(PreTrainedTokenizerBase, "as_target_tokenizer")
    assert "tokenizer" not in inspect.signature(Trainer.__init__).parameters
    assert "tokenizer" not in inspect.signature(Seq2SeqTrainer.__init__).parameters
    assert "processing_class" in inspect.signature(Seq2SeqTrainer.__init__).parameters
    assert not hasattr(datasets, "load_metric")
    assert not hasattr(transformers, "LineByLineTextDataset")
    assert not hasattr(transformers, "TFAutoModelForSeq2SeqLM") and not hasattr(transformers, "TFMarianMTModel")
    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    assert "evaluation_strategy" not in fields and "eval_strategy" in fields
    assert importlib.util.find_spec("torchtext") is None
