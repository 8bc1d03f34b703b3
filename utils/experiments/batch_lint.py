"""Lint a seq2seq training batch for the classic bugs, before a model ever sees it.

    python -m utils.lint_batch BATCH.pt --pad-id 0 --start-id 0 --eos-id 1     # the command
    findings = lint_batch(batch, pad_id=0, start_id=0, eos_id=1)              # the function

BATCH.pt is a `torch.save`d dict of tensors, as a collator returns it (`DataCollatorForSeq2Seq`): `input_ids`,
`labels` (-100 at padding), optionally `attention_mask`, `decoder_input_ids` and `decoder_attention_mask`. The
conventions are HF's (notebooks 01-03): decoder inputs = the labels shifted right behind the start token, -100 ->
pad; the decoder mask is 1 at the start token and at every shifted real label (utils.handwritten.teacher_forcing).

Each finding names its symptom and the notebook that explains it:

    not_shifted               decoder inputs are not the labels shifted right            01_shift_right
    decoder_inputs_are_labels decoder inputs equal the labels (no shift at all)           01_shift_right
    minus100_in_decoder_inputs -100 left in the decoder inputs                            01_shift_right
    doubled_start             the labels begin with the start token: <start><start> ...  01_shift_right
    pad_in_labels             pad ids left in the labels instead of -100                  03_loss_masking
    decoder_mask_off_by_one   decoder_attention_mask built from the unshifted labels      02_causal_mask
    decoder_mask_hides_start  decoder_attention_mask = decoder inputs != pad, with a pad start token  02_causal_mask
    no_eos                    a label row does not end with </s> (needs eos_id)          05_decoding
    source_target_swapped     input_ids padded with -100, or the source mask has the targets' lengths
                                                                                          07_translation_recipe

Exit codes of the command: 0 clean, 1 a bug found, 2 a file it cannot read (named) or a batch without the
required keys.
"""

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from utils.handwritten.teacher_forcing import IGNORE_INDEX, decoder_attention_mask_from_labels, shift_right

__all__ = ["BatchLintError", "Finding", "NOTEBOOKS", "format_findings", "lint_batch", "load_batch", "main"]

REQUIRED = ("input_ids", "labels")
OPTIONAL = ("attention_mask", "decoder_input_ids", "decoder_attention_mask")
NOTEBOOKS = {
    "not_shifted": "01_shift_right", "decoder_inputs_are_labels": "01_shift_right",
    "minus100_in_decoder_inputs": "01_shift_right", "doubled_start": "01_shift_right",
    "pad_in_labels": "03_loss_masking", "decoder_mask_off_by_one": "02_causal_mask",
    "decoder_mask_hides_start": "02_causal_mask", "no_eos": "05_decoding",
    "source_target_swapped": "07_translation_recipe",
}


class BatchLintError(ValueError):
    """The batch cannot be linted (unreadable file, missing keys, not 2-D integer tensors); the message says why."""


@dataclass
class Finding:
    code: str
    symptom: str
    rows: list[int] = field(default_factory=list)
    evidence: dict = field(default_factory=dict)

    @property
    def notebook(self) -> str:
        return NOTEBOOKS[self.code]

    def __str__(self) -> str:
        rows = f" (rows {self.rows[:8]}{' ...' if len(self.rows) > 8 else ''})" if self.rows else ""
        return f"{self.code}{rows}: {self.symptom} [see notebooks/{self.notebook}.ipynb]"

    def to_dict(self) -> dict:
        return {**asdict(self), "notebook": self.notebook}


def load_batch(path: str | Path) -> dict[str, torch.Tensor]:
    """torch.load a dict of tensors (weights_only: a batch file runs no code); BatchLintError names the file."""
    path = Path(path)
    try:
        batch = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise BatchLintError(f"cannot read {path}: {type(error).__name__}: {error}") from error
    if not isinstance(batch, dict) and hasattr(batch, "keys"):  # a BatchEncoding / Mapping
        batch = dict(batch)
    if not isinstance(batch, dict):
        raise BatchLintError(f"{path} holds a {type(batch).__name__}, expected a dict of tensors "
                             f"({', '.join(REQUIRED + OPTIONAL)})")
    return batch


def _check_batch(batch: dict) -> dict[str, torch.Tensor]:
    """The required keys, every known key a 2-D integer tensor, shapes that agree; BatchLintError otherwise."""
    missing = [key for key in REQUIRED if key not in batch]
    if missing:
        raise BatchLintError(f"the batch has no {', '.join(missing)} (keys: {', '.join(map(str, batch)) or 'none'})")
    checked = {}
    for key in REQUIRED + OPTIONAL:
        if key not in batch or batch[key] is None:
            continue
        value = batch[key]
        if not isinstance(value, torch.Tensor) or value.dim() != 2 or value.is_floating_point():
            kind = f"{value.dtype} {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
            raise BatchLintError(f"{key} must be a 2-D integer tensor (B, length), got {kind}")
        checked[key] = value.long()
    rows = {key: value.shape[0] for key, value in checked.items()}
    if len(set(rows.values())) > 1:
        raise BatchLintError(f"the tensors disagree on the batch size: {rows}")
    for key, partner in (("attention_mask", "input_ids"), ("decoder_input_ids", "labels"),
                         ("decoder_attention_mask", "labels")):
        if key in checked and checked[key].shape != checked[partner].shape:
            raise BatchLintError(f"{key} {tuple(checked[key].shape)} must have the shape of {partner} "
                                 f"{tuple(checked[partner].shape)}")
    return checked


def _rows(mask: torch.Tensor) -> list[int]:
    return [int(i) for i in mask.reshape(mask.shape[0], -1).any(dim=1).nonzero().flatten()]


def lint_batch(batch: dict, pad_id: int, start_id: int, eos_id: int | None = None) -> list[Finding]:
    """The findings for one batch (empty when it is clean). Raises BatchLintError when it cannot be linted."""
    batch = _check_batch(batch)
    labels, input_ids = batch["labels"], batch["input_ids"]
    real = labels != IGNORE_INDEX
    findings: list[Finding] = []

    # the source side: -100 in the inputs, or a source mask with the targets' lengths -> source and target swapped
    if bool((input_ids == IGNORE_INDEX).any()):
        findings.append(Finding("source_target_swapped", "input_ids contain -100, the labels' padding: the targets "
                                "were given as the source (or the source was padded like labels); the encoder "
                                "would index embedding -100", _rows(input_ids == IGNORE_INDEX)))
    elif "attention_mask" in batch:
        source_lengths = batch["attention_mask"].sum(dim=1)
        non_pad = (input_ids != pad_id).sum(dim=1)
        label_lengths = real.sum(dim=1)
        if not torch.equal(source_lengths, non_pad) and torch.equal(source_lengths, label_lengths):
            findings.append(Finding("source_target_swapped", "the attention mask has the lengths of the labels, not "
                                    "of input_ids: source and target were swapped (or paired from different "
                                    "columns)", _rows((source_lengths != non_pad)[:, None]),
                                    {"mask_lengths": source_lengths.tolist(), "input_lengths": non_pad.tolist(),
                                     "label_lengths": label_lengths.tolist()}))

    # the labels: pad ids instead of -100, a leading start token, a missing </s>
    if pad_id != eos_id:
        pads = labels == pad_id
        if bool(pads.any()):
            findings.append(Finding("pad_in_labels", f"{int(pads.sum())} pad ids ({pad_id}) in the labels instead "
                                    "of -100: the loss trains the model to predict padding and the token mean is "
                                    "taken over padded positions too", _rows(pads), {"pad_labels": int(pads.sum())}))
    leading = labels[:, 0] == start_id
    if start_id != pad_id and bool(leading.any()):
        findings.append(Finding("doubled_start", f"labels begin with the start token {start_id}: shifted right the "
                                "decoder inputs begin <start><start> and the model learns to predict the start "
                                "token first", _rows(leading[:, None])))
    if eos_id is not None:
        lengths = real.sum(dim=1)
        last = labels.gather(1, (lengths - 1).clamp_min(0)[:, None])[:, 0]
        missing = (last != eos_id) | (lengths == 0)
        if bool(missing.any()):
            findings.append(Finding("no_eos", f"{int(missing.sum())} label rows do not end with </s> ({eos_id}): the "
                                    "model never learns to stop and generate runs to max_new_tokens",
                                    _rows(missing[:, None])))

    # the decoder inputs
    expected = shift_right(labels, start_id, pad_id)
    if "decoder_input_ids" in batch:
        decoder_input_ids = batch["decoder_input_ids"]
        negative = decoder_input_ids < 0
        if bool(negative.any()):
            findings.append(Finding("minus100_in_decoder_inputs", f"{int(negative.sum())} negative ids (-100) in "
                                    "decoder_input_ids: -100 was not replaced by the pad id after the shift; the "
                                    "embedding lookup fails or reads garbage", _rows(negative)))
        wrong = (decoder_input_ids != expected) & real  # positions whose label is trained (issue 26, (a))
        if bool(wrong.any()):
            unshifted = labels.masked_fill(~real, pad_id)
            if bool(((decoder_input_ids == unshifted) | ~real).all()):
                findings.append(Finding("decoder_inputs_are_labels", "decoder_input_ids equal the labels: position t "
                                        "reads the token it must predict, the loss falls to ~0 and generation "
                                        "fails", _rows(wrong)))
            elif not (bool(leading.any()) and start_id != pad_id):  # a doubled start token is reported above
                row, position = (int(i) for i in wrong.nonzero()[0])
                findings.append(Finding("not_shifted", f"decoder_input_ids are not the labels shifted right behind "
                                        f"start token {start_id} at {int(wrong.sum())} trained positions (first: row "
                                        f"{row}, position {position}: {int(decoder_input_ids[row, position])} instead "
                                        f"of {int(expected[row, position])})", _rows(wrong),
                                        {"mismatches": int(wrong.sum())}))

    # the decoder mask
    if "decoder_attention_mask" in batch:
        mask = batch["decoder_attention_mask"].bool()
        correct = decoder_attention_mask_from_labels(labels)
        decoder_input_ids = batch.get("decoder_input_ids", expected)
        if not bool(mask[:, 0].all()) and start_id == pad_id:
            findings.append(Finding("decoder_mask_hides_start", f"decoder_attention_mask is 0 at the start token: "
                                    f"built as decoder_input_ids != pad, but the start token is the pad id "
                                    f"({pad_id}), so the first query attends to no key", _rows(~mask[:, :1])))
        elif torch.equal(mask, real) and not torch.equal(real, correct):
            findings.append(Finding("decoder_mask_off_by_one", "decoder_attention_mask equals labels != -100, the "
                                    "unshifted labels: one position short in padded rows (the mask of "
                                    "shift_right(labels) is 1 at the start token and at each shifted real label)",
                                    _rows(mask != correct)))
        elif bool((~mask & correct & (decoder_input_ids != pad_id)).any()):
            findings.append(Finding("decoder_mask_off_by_one", "decoder_attention_mask hides real decoder inputs "
                                    "(it does not match the shifted labels)", _rows(~mask & correct)))
    return findings


def format_findings(path: str, findings: list[Finding]) -> str:
    if not findings:
        return f"{path}: clean (no classic seq2seq batch bug found)"
    return "\n".join([f"{path}: {len(findings)} finding{'s' if len(findings) > 1 else ''}"]
                     + [f"  - {finding}" for finding in findings])


def _parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m utils.lint_batch", description=__doc__.split("\n")[0])
    parser.add_argument("batch", nargs="+", help="torch.save'd dict of tensors (input_ids, labels, ...)")
    parser.add_argument("--pad-id", type=int, required=True, help="the pad token id")
    parser.add_argument("--start-id", type=int, required=True, help="the decoder start token id")
    parser.add_argument("--eos-id", type=int, default=None, help="the </s> id: every label row must end with it")
    parser.add_argument("--json", help="also write the findings to this file")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """0 every batch clean, 1 a bug found, 2 a file that cannot be read (named)."""
    args = _parse_args(argv)
    report, code = {}, 0
    for path in args.batch:
        try:
            findings = lint_batch(load_batch(path), args.pad_id, args.start_id, args.eos_id)
        except BatchLintError as error:
            message = str(error) if path in str(error) else f"{path}: {error}"
            print(f"error: {message}", file=sys.stderr)
            report[path] = {"error": message}
            code = 2
            continue
        print(format_findings(path, findings))
        report[path] = [finding.to_dict() for finding in findings]
        code = max(code, 1 if findings else 0)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return code


if __name__ == "__main__":
    sys.exit(main())
