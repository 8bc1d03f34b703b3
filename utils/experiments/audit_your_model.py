"""Audit your own encoder-decoder: does it train and decode the way T5 and the original Transformer do?

    python -m utils.audit_model path/to/model.py:build          # a file and the function that builds the model
    python -m utils.audit_model package.module:build            # a module importable from here / PYTHONPATH
    python -m utils.audit_model --model-name-or-path DIR        # a local HF seq2seq checkpoint

The function returns an auditable model (the interface: utils/experiments/auditable_models.py), an HF encoder-decoder
or a TinferModel. The checks run on a random batch of token ids (weights and ids do not matter: these are
properties of the architecture, the masks and the code around them):

    future_leakage           the logits at decoder position t do not move when a decoder input after t changes
                             (utils.handwritten.leakage_audit.future_leakage, perturbation)
    one_pass_equals_loop     one teacher-forced pass gives the logits of a loop over the prefixes 1..T
    shift_right              decoder_input_ids_from_labels(labels) = labels shifted right behind the start token,
                             at the positions whose label is not -100
    loss_ignores_padding     loss(labels) does not change when -100 columns are appended to the labels; which
                             reduction it is (token mean, sequence mean, sum, sum / sentences, padding counted)
    greedy_matches_one_pass  every token generate() picks is the arg-max of one pass over generate()'s own output,
                             under the decoding constraints the model declares (banned ids, a minimum length)
    gradient_causality       d logits[t] / d decoder embedding[s > t] = 0 (leakage_audit.gradient_leakage)
    padding_invariance       extra right padding of the decoder inputs or of the source changes no real logit
    batched_equals_single    each row alone gives its logits (and greedy output) inside the padded batch
    source_padding_side      left vs right padding of the source (info: absolute positions make them differ)
    tgt_is_causal_hint       nn.Transformer models: is tgt_is_causal=True without a mask causal on this torch? (info)
    encoder_fast_path        nn.Transformer models: eval()'s encoder fast path (nested tensors) changes no logit

Closeness is judged by utils.workbench.tolerance (atol + rtol x magnitude, for the dtype of the model's logits);
every check records the measured difference, the allowed one and the rule. `--rtol` overrides the dtype's rtol.

A check is "pass", "fail", "info" (a measurement that decides nothing), "skipped" (the optional method or module
is not there) or "error" (it could not run; the detail says why). Exit codes: 0 every check that ran passed; 1 a
check failed (the model leaks, ...); 2 bad input: an import path that does not resolve, an object without the
interface, logits of the wrong shape, or a check that could not run.
"""

import argparse
import importlib
import importlib.util
import json
import math
import sys
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from utils.experiments import torch_transformer_traps
from utils.experiments.auditable_models import (
    AuditInputError,
    Seq2SeqLMAdapter,
    as_auditable,
    check_forward,
    check_logits,
    constrain_logits,
    decoding_constraints,
    move_model,
    set_eval,
    source_ids,
    torch_modules,
)
from utils.handwritten.leakage_audit import LeakageReport, future_leakage, gradient_leakage, report_from_sensitivity
from utils.handwritten.teacher_forcing import (
    IGNORE_INDEX,
    decoder_attention_mask_from_labels,
    masked_cross_entropy,
    shift_right,
)
from utils.harness.paths import REPO_ROOT
from utils.workbench.device import to_device
from utils.workbench.tolerance import Comparison, Tolerance, compare, tolerance_for

__all__ = ["CHECK_TITLES", "Check", "ERROR", "FAIL", "INFO", "ModelAudit", "PASS", "SKIPPED", "audit_batch",
           "check_batched_equals_single", "check_encoder_fast_path", "check_gradient_causality",
           "check_greedy_matches_one_pass", "check_loss_ignores_padding", "check_padding_invariance",
           "check_shift_right", "format_table", "load_factory", "load_model", "loop_logits", "main", "run_audit",
           "verdict_markdown"]

PASS, FAIL, SKIPPED, ERROR, INFO = "pass", "fail", "skipped", "error", "info"  # info: measured, not a verdict
CHECK_TITLES = {
    "future_leakage": "no future leakage (t never sees s > t)",
    "one_pass_equals_loop": "one pass = step-by-step loop",
    "shift_right": "decoder inputs = labels shifted right",
    "loss_ignores_padding": "loss ignores -100 padding",
    "greedy_matches_one_pass": "greedy loop = arg-max of one pass",
    "gradient_causality": "no gradient from the future",
    "padding_invariance": "extra right padding changes nothing",
    "batched_equals_single": "padded batch = one row at a time",
    "source_padding_side": "left vs right source padding",
    "tgt_is_causal_hint": "nn.Transformer: tgt_is_causal alone",
    "encoder_fast_path": "nn.Transformer: eval() fast path",
}
OPTIONAL_METHOD = {"shift_right": "decoder_input_ids_from_labels", "loss_ignores_padding": "loss",
                   "greedy_matches_one_pass": "generate"}
EXTRA_PADDING_COLUMNS = 3


@dataclass
class Check:
    name: str
    status: str  # pass | fail | skipped | error
    number: float | None = None  # the headline number of the check
    detail: str = ""
    evidence: dict = field(default_factory=dict)  # JSON-able numbers behind the verdict
    extra: dict = field(default_factory=dict)  # tensors for figures (sensitivity report, per-position differences)

    @property
    def title(self) -> str:
        return CHECK_TITLES[self.name]


@dataclass
class ModelAudit:
    label: str
    checks: dict[str, Check]

    @property
    def leakage(self) -> LeakageReport | None:
        check = self.checks.get("future_leakage")
        return None if check is None else check.extra.get("report")

    @property
    def leaks(self) -> bool:
        check = self.checks.get("future_leakage")
        return check is not None and check.status == FAIL

    def names(self, status: str) -> list[str]:
        return [name for name, check in self.checks.items() if check.status == status]

    @property
    def exit_code(self) -> int:
        return 2 if self.names(ERROR) else 1 if self.names(FAIL) else 0

    def summary_row(self) -> dict[str, str]:
        """{check title: "PASS 0" / "FAIL 2.3" / "skipped"} for a comparison table."""
        return {check.title: check.status.upper() + ("" if check.number is None else f" {check.number:.3g}")
                for check in self.checks.values()}

    def to_dict(self) -> dict:
        return {"label": self.label, "exit_code": self.exit_code,
                "checks": {name: {"status": c.status, "number": c.number, "detail": c.detail, "evidence": c.evidence}
                           for name, c in self.checks.items()}}


# --- loading the user's model ----------------------------------------------------------------------------------

SPEC_FORMS = "'package.module:function' (importable from the current directory or PYTHONPATH) or " \
             "'path/to/file.py:function'"


def _module_from_file(path_text: str):
    """Import a .py file under a private name, with its folder on sys.path so that it can import its siblings
    (as `python path/to/file.py` would)."""
    path = Path(path_text)
    if not path.exists() and not path.is_absolute() and (REPO_ROOT / path).exists():
        path = REPO_ROOT / path
    if not path.is_file():
        bases = " or ".join(dict.fromkeys(str(base) for base in (Path.cwd(), REPO_ROOT)))
        raise AuditInputError(f"cannot import {path_text!r}: no such file (relative to {bases}); expected {SPEC_FORMS}")
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = f"audited_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[name]
        raise AuditInputError(f"importing {path_text} failed: {type(error).__name__}: {error}") from error
    return module


def _module_from_name(module_name: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise AuditInputError(f"cannot import module {module_name!r} ({error}); expected {SPEC_FORMS}") from error
        raise AuditInputError(f"importing {module_name} failed: {type(error).__name__}: {error}") from error
    except Exception as error:
        raise AuditInputError(f"importing {module_name} failed: {type(error).__name__}: {error}") from error


def load_factory(spec: str) -> Callable:
    """'package.module:function' or 'path/to/file.py:function' -> the function (not called yet)."""
    target, _, function_name = spec.rpartition(":")
    if not target or not function_name.isidentifier():
        raise AuditInputError(f"expected {SPEC_FORMS}, got {spec!r}")
    is_file = target.endswith(".py") or "/" in target or "\\" in target
    module = _module_from_file(target) if is_file else _module_from_name(target)
    factory = getattr(module, function_name, None)
    if not callable(factory):
        defined = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                         and getattr(v, "__module__", None) == module.__name__)
        raise AuditInputError(f"{target} has no function {function_name!r}; it defines: {', '.join(defined) or '-'}")
    return factory


def load_model(model_factory: str | None = None, model_name_or_path: str | None = None, device: str = "cpu"):
    """Build the model to audit from a factory spec or a local HF checkpoint; check its interface and its logits."""
    if (model_factory is None) == (model_name_or_path is None):
        raise AuditInputError("give exactly one of a model factory (" + SPEC_FORMS + ") or model_name_or_path")
    if model_name_or_path is not None:
        model = Seq2SeqLMAdapter.from_pretrained(model_name_or_path)
    else:
        factory = load_factory(model_factory)
        try:
            built = factory()
        except Exception as error:
            raise AuditInputError(f"calling {model_factory}() failed: {type(error).__name__}: {error}") from error
        model = as_auditable(built)
    model = move_model(model, device)
    set_eval(model)
    check_forward(model, device)
    return model


# --- the batch the checks run on -------------------------------------------------------------------------------


def audit_batch(model, batch_size: int = 2, source_length: int = 8, target_length: int = 10, seed: int = 0,
                device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Random non-special ids. Row 0 is full length, row b > 0 is 3*b tokens shorter (right-padded, at least 2);
    every source and target ends with <eos>; labels are padded with -100. Source ids come from the model's source
    vocabulary (`source_vocab_size` etc. when it has one, see auditable_models.source_ids)."""
    if batch_size < 1 or source_length < 2 or target_length < 2:
        raise ValueError("need batch_size >= 1, source_length >= 2 and target_length >= 2")
    special = {model.pad_token_id, model.eos_token_id, model.decoder_start_token_id}
    candidates = torch.tensor([i for i in range(model.vocab_size) if i not in special])
    source_vocab_size, source_pad, source_eos = source_ids(model)
    source_candidates = torch.tensor([i for i in range(source_vocab_size) if i not in (source_pad, source_eos)]
                                     if source_vocab_size != model.vocab_size else candidates.tolist())
    generator = torch.Generator().manual_seed(seed)
    input_ids = source_candidates[torch.randint(len(source_candidates), (batch_size, source_length),
                                                generator=generator)]
    labels = candidates[torch.randint(len(candidates), (batch_size, target_length), generator=generator)]
    attention_mask = torch.ones_like(input_ids)
    for row in range(batch_size):
        source_end, target_end = max(2, source_length - 3 * row), max(2, target_length - 3 * row)
        input_ids[row, source_end - 1], labels[row, target_end - 1] = source_eos, model.eos_token_id
        input_ids[row, source_end:], attention_mask[row, source_end:] = source_pad, 0
        labels[row, target_end:] = IGNORE_INDEX
    batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
             "decoder_input_ids": shift_right(labels, model.decoder_start_token_id, model.pad_token_id),
             "decoder_attention_mask": decoder_attention_mask_from_labels(labels).long()}
    return to_device(batch, device)


def _teacher_forced_logits(model, batch: dict, decoder_input_ids: torch.Tensor | None = None,
                          decoder_attention_mask: torch.Tensor | None = None, input_ids: torch.Tensor | None = None,
                          attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """One pass of `model.forward` on the batch's source, shape-checked: (B, T, V) in float64. The decoder mask is
    never None: without one, every decoder position is real (an all-ones mask, the interface's meaning of None)."""
    decoder_input_ids = batch["decoder_input_ids"] if decoder_input_ids is None else decoder_input_ids
    if decoder_attention_mask is None:
        decoder_attention_mask = torch.ones_like(decoder_input_ids)
    input_ids = batch["input_ids"] if input_ids is None else input_ids
    attention_mask = batch["attention_mask"] if attention_mask is None else attention_mask
    logits = model.forward(input_ids, decoder_input_ids, attention_mask=attention_mask,
                           decoder_attention_mask=decoder_attention_mask)
    return check_logits(logits, *decoder_input_ids.shape, model.vocab_size).detach().double()


@torch.no_grad()
def _logits_dtype(model, batch: dict) -> torch.dtype:
    """The dtype the model computes its logits in: it sets the tolerance of every comparison."""
    logits = model.forward(batch["input_ids"], batch["decoder_input_ids"], attention_mask=batch["attention_mask"],
                           decoder_attention_mask=batch["decoder_attention_mask"])
    return check_logits(logits, *batch["decoder_input_ids"].shape, model.vocab_size).dtype


def _audit_tolerance(dtype: torch.dtype | str = torch.float32, rtol: float | None = None) -> Tolerance:
    """utils.workbench.tolerance's tolerance of `dtype`, with `rtol` overridden when given (--rtol)."""
    base = tolerance_for(dtype)
    return base if rtol is None else Tolerance(base.dtype, float(rtol), base.atol)


def _judged(actual, expected, tolerance: Tolerance, magnitude: float | None = None) -> Comparison:
    """compare() under the audit's tolerance (the dtype's, or the --rtol override)."""
    measured = compare(actual, expected, magnitude=magnitude)
    return Comparison(measured.max_abs_diff, measured.magnitude, tolerance)


def _relation(comparison: Comparison) -> str:
    return "<=" if comparison.same else ">"


# --- the checks ----------------------------------------------------------------------------------------------------


@torch.no_grad()
def _check_future_leakage(model, batch: dict, n_trials: int = 4, tolerance: Tolerance | None = None,
                         seed: int = 0) -> Check:
    """Perturb one decoder input at a time (no decoder padding: every position is real). A change at s > t counts
    when it exceeds the tolerance of the logits' magnitude."""
    tolerance = tolerance or _audit_tolerance()
    magnitude = float(_teacher_forced_logits(model, batch).abs().max())
    report = future_leakage(lambda ids: _teacher_forced_logits(model, batch, ids), batch["decoder_input_ids"],
                            model.vocab_size, n_trials=n_trials, tolerance=tolerance.allowed(magnitude), seed=seed,
                            special_ids=(model.pad_token_id, model.eos_token_id, model.decoder_start_token_id))
    comparison = Comparison(report.max_future_sensitivity, magnitude, tolerance)
    length = report.sensitivity.shape[0]
    pairs = length * (length - 1) // 2
    evidence = {"max_future_sensitivity": report.max_future_sensitivity, "leaking_pairs": len(report.leaking_positions),
                "future_pairs": pairs, "n_trials": n_trials, **comparison.evidence()}
    detail = (f"max |Δ logits[t]| for a change at s > t: {report.max_future_sensitivity:.3g} "
              f"{_relation(comparison)} {comparison.allowed:.3g} ({tolerance}; {len(report.leaking_positions)}/"
              f"{pairs} (t, s) pairs leak)")
    return Check("future_leakage", PASS if comparison.same else FAIL, report.max_future_sensitivity, detail, evidence,
                 {"report": report})


@torch.no_grad()
def loop_logits(model, batch: dict) -> torch.Tensor:
    """Row t from a fresh call on decoder_input_ids[:, :t+1] (what greedy decoding computes): (B, T, V), float64."""
    decoder_input_ids, decoder_attention_mask = batch["decoder_input_ids"], batch["decoder_attention_mask"]
    rows = []
    for end in range(1, decoder_input_ids.shape[1] + 1):
        logits = _teacher_forced_logits(model, batch, decoder_input_ids[:, :end], decoder_attention_mask[:, :end])
        rows.append(logits[:, -1])
    return torch.stack(rows, dim=1)


@torch.no_grad()
def _check_one_pass_equals_loop(model, batch: dict, tolerance: Tolerance | None = None) -> Check:
    """One pass vs the loop over prefixes at the real positions, under the tolerance of the logits' magnitude."""
    tolerance = tolerance or _audit_tolerance()
    one_pass = _teacher_forced_logits(model, batch, decoder_attention_mask=batch["decoder_attention_mask"])
    loop = loop_logits(model, batch)
    real = batch["decoder_attention_mask"].bool()
    comparison = _judged(one_pass[real], loop[real], tolerance)
    difference = (one_pass - loop).abs().amax(dim=-1).masked_fill(~real, 0.0)  # (B, T)
    per_position = difference.amax(dim=0).cpu()  # (T,)
    allowed = comparison.allowed
    differing = int((per_position > allowed).sum())
    detail = (f"max |one pass - loop| {comparison.max_abs_diff:.3g} {_relation(comparison)} {allowed:.3g} "
              f"({tolerance}; {differing}/{len(per_position)} positions differ)")
    evidence = {"positions_differing": differing, "positions": len(per_position),
                "per_position": per_position.tolist(), **comparison.evidence()}
    return Check("one_pass_equals_loop", PASS if comparison.same else FAIL, comparison.max_abs_diff, detail, evidence,
                 {"per_position": per_position, "allowed": allowed})


@torch.no_grad()
def check_shift_right(model, batch: dict) -> Check:
    """Compare the model's own decoder inputs with shift_right(labels) at the positions that are trained: those whose
    label is not -100. After the last real label a library may feed </s> (HF) or <pad> (Joey NMT, fairseq's padded
    rows): that input predicts a -100 label, so it is never trained and does not count."""
    labels = batch["labels"]
    seen = model.decoder_input_ids_from_labels(labels)
    if not isinstance(seen, torch.Tensor) or tuple(seen.shape) != tuple(labels.shape):
        shape = tuple(seen.shape) if isinstance(seen, torch.Tensor) else type(seen).__name__
        raise AuditInputError(f"decoder_input_ids_from_labels must return ids shaped like labels "
                              f"{tuple(labels.shape)}, got {shape}")
    expected = shift_right(labels, model.decoder_start_token_id, model.pad_token_id)
    real = labels != IGNORE_INDEX
    wrong = (seen.to(expected.device) != expected) & real
    negative = bool((seen < 0).any())  # a -100 left anywhere in the decoder inputs: the embedding lookup fails
    evidence = {"start_token_expected": model.decoder_start_token_id, "start_tokens_seen": seen[:, 0].tolist(),
                "mismatches": int(wrong.sum()), "real_positions": int(real.sum()), "negative_ids_left": negative,
                "compared": "positions whose label is not -100",
                "padded_row": {"labels": labels[-1].tolist(), "decoder inputs seen": seen[-1].tolist(),
                               "shift_right(labels)": expected[-1].tolist()}}
    if wrong.any():
        row, position = (int(i) for i in wrong.nonzero()[0])
        evidence["first_mismatch"] = {"row": row, "position": position, "seen": int(seen[row, position]),
                                      "expected": int(expected[row, position])}
    detail = (f"{int(wrong.sum())}/{int(real.sum())} trained decoder inputs (label not -100) differ from "
              f"shift_right(labels, start={model.decoder_start_token_id})"
              + ("; -100 left in the decoder inputs" if negative else ""))
    return Check("shift_right", FAIL if (wrong.any() or negative) else PASS, float(wrong.sum()), detail, evidence)


def _scalar_loss(value, where: str) -> float:
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        raise AuditInputError(f"{where} must return a scalar loss tensor, got "
                              f"{tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__}")
    return float(value.detach().double())


@torch.no_grad()
def _loss_reductions(model, batch: dict, labels: torch.Tensor) -> dict[str, float]:
    """Candidate losses from the one-pass logits: four reductions that skip -100 (token mean: HF; sequence mean;
    sum; sum / sentences: fairseq's --sentence-avg, Joey NMT's "batch"), and the mean over every position with
    padding counted as pad targets (what a loss without masking computes)."""
    make_inputs = getattr(model, "decoder_input_ids_from_labels", None)
    decoder_input_ids = make_inputs(labels) if make_inputs else shift_right(labels, model.decoder_start_token_id,
                                                                            model.pad_token_id)
    logits = _teacher_forced_logits(model, batch, decoder_input_ids, decoder_attention_mask_from_labels(labels).long())
    candidates = {reduction: float(masked_cross_entropy(logits, labels, reduction=reduction))
                  for reduction in ("token_mean", "sequence_mean", "sum")}
    candidates["sum / sentences"] = candidates["sum"] / labels.shape[0]
    padded_targets = labels.masked_fill(labels == IGNORE_INDEX, model.pad_token_id)
    candidates["mean over all positions, padding included"] = float(
        F.cross_entropy(logits.flatten(0, 1), padded_targets.flatten()))
    return candidates


@torch.no_grad()
def check_loss_ignores_padding(model, batch: dict, tolerance: Tolerance | None = None) -> Check:
    """loss with one trailing -100 column vs with EXTRA_PADDING_COLUMNS more; which reduction the loss matches.

    Every row already ends in -100, so the extra columns add decoder inputs that are padding and nothing else
    (appending to a full row would add its shifted <eos> as a new real input, which a leaky decoder would see).
    """
    tolerance = tolerance or _audit_tolerance()
    labels = F.pad(batch["labels"], (0, 1), value=IGNORE_INDEX)  # (B, T + 1)
    longer = F.pad(labels, (0, EXTRA_PADDING_COLUMNS), value=IGNORE_INDEX)  # (B, T + 1 + extra)
    loss = _scalar_loss(model.loss(batch["input_ids"], labels, attention_mask=batch["attention_mask"]), "loss")
    padded_loss = _scalar_loss(model.loss(batch["input_ids"], longer, attention_mask=batch["attention_mask"]), "loss")
    comparison = _judged(padded_loss, loss, tolerance)
    candidates = _loss_reductions(model, batch, labels)
    closest = min(candidates, key=lambda name: abs(candidates[name] - loss))
    matches = _judged(candidates[closest], loss, tolerance).same
    evidence = {"loss": loss, "loss_with_extra_padding": padded_loss, "extra_columns": EXTRA_PADDING_COLUMNS,
                "abs_change": comparison.max_abs_diff, "reduction": closest if matches else "none matched",
                "candidates": candidates, **comparison.evidence()}
    ok = math.isfinite(loss) and comparison.same
    detail = (f"|loss(+{EXTRA_PADDING_COLUMNS} -100 columns) - loss| = {comparison.max_abs_diff:.3g} "
              f"{'<=' if ok else '>'} {comparison.allowed:.3g} ({tolerance}); loss {loss:.4g} = "
              f"{closest if matches else 'none of ' + ', '.join(candidates)}")
    return Check("loss_ignores_padding", PASS if ok else FAIL, comparison.max_abs_diff, detail, evidence)


def _check_generated(sequences, model, batch_size: int) -> torch.Tensor:
    """generate() must return (B, L >= 2) ids that begin with the start token."""
    if not isinstance(sequences, torch.Tensor) or sequences.dim() != 2 or sequences.shape[0] != batch_size:
        shape = tuple(sequences.shape) if isinstance(sequences, torch.Tensor) else type(sequences).__name__
        raise AuditInputError(f"generate must return ids shaped (B={batch_size}, L), got {shape}")
    if sequences.shape[1] < 2 or not bool((sequences[:, 0] == model.decoder_start_token_id).all()):
        raise AuditInputError(f"generate must return rows that begin with decoder_start_token_id="
                              f"{model.decoder_start_token_id} followed by at least one generated token; got first "
                              f"column {sequences[:, 0].tolist()} and length {sequences.shape[1]}")
    return sequences


@torch.no_grad()
def _prefix_logits(model, batch: dict, decoder_input_ids: torch.Tensor) -> torch.Tensor:
    """The last position of a fresh call on each prefix decoder_input_ids[:, :t+1]: (B, T, V), float64."""
    return torch.stack([_teacher_forced_logits(model, batch, decoder_input_ids[:, :end])[:, -1]
                        for end in range(1, decoder_input_ids.shape[1] + 1)], dim=1)


@torch.no_grad()
def _prefix_argmax(model, batch: dict, decoder_input_ids: torch.Tensor, constrained: bool = True) -> torch.Tensor:
    """Arg-max of the last position of a fresh call on each prefix, under the model's declared constraints: (B, T)."""
    logits = _prefix_logits(model, batch, decoder_input_ids)
    return (constrain_logits(model, decoder_input_ids, logits) if constrained else logits).argmax(dim=-1)


def _valid_steps(targets: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    is_eos = (targets == eos_token_id).long()
    return (is_eos.cumsum(dim=1) - is_eos) == 0  # up to and including the first <eos>


@torch.no_grad()
def check_greedy_matches_one_pass(model, batch: dict, max_new_tokens: int = 12) -> Check:
    """Run the user's loop, then one pass over its output: every generated token (up to and including the first
    <eos>) must be the arg-max of the one-pass logits one position earlier, after the decoding constraints the
    model declares (banned_token_ids, min_new_tokens, constrain_next_token_logits). Diagnosis: the arg-max of a
    fresh call on each prefix (what a correct greedy loop picks, whether or not the decoder leaks); a loop that
    picks the runner-up where the arg-max is a token it never emits applies a constraint it did not declare."""
    constraints = decoding_constraints(model)
    generated = model.generate(batch["input_ids"], attention_mask=batch["attention_mask"],
                               max_new_tokens=max_new_tokens)
    sequences = _check_generated(generated, model, batch["input_ids"].shape[0])
    decoder_input_ids, targets = sequences[:, :-1], sequences[:, 1:]  # (B, L-1) each
    valid = _valid_steps(targets, model.eos_token_id)
    one_pass_logits = _teacher_forced_logits(model, batch, decoder_input_ids, torch.ones_like(decoder_input_ids))
    one_pass = constrain_logits(model, decoder_input_ids, one_pass_logits).argmax(dim=-1)  # (B, L-1)
    agree = (one_pass == targets) & valid
    fresh = constrain_logits(model, decoder_input_ids, _prefix_logits(model, batch, decoder_input_ids))
    prefix_agree = (fresh.argmax(dim=-1) == targets) & valid
    total, matching = int(valid.sum()), int(agree.sum())
    evidence = {"generated_tokens": total, "matching": matching, "agreement": matching / total,
                "loop_equals_prefix_argmax": int(prefix_agree.sum()) / total, "constraints": constraints,
                "distinct_generated_tokens": len(set(targets[valid].tolist())), "sequences": sequences.tolist()}
    if matching < total:
        row, position = (int(i) for i in (valid & ~agree).nonzero()[0])
        evidence["first_disagreement"] = {"row": row, "step": position, "loop_token": int(targets[row, position]),
                                          "one_pass_argmax": int(one_pass[row, position])}
    disagree = valid & ~prefix_agree
    if disagree.any():  # the loop's token is the runner-up of a fresh call: a skipped token, a hidden constraint?
        top2 = fresh.topk(2, dim=-1).indices  # (B, L-1, 2)
        runner_up = (top2[..., 1] == targets) & disagree
        if bool(runner_up[disagree].all()):
            row, position = (int(i) for i in disagree.nonzero()[0])
            evidence["undeclared_constraint_suspected"] = {
                "row": row, "step": position, "skipped_token": int(top2[row, position, 0]),
                "loop_token": int(targets[row, position]),
                "skipped_tokens": sorted({int(t) for t in top2[..., 0][disagree].tolist()})}
    distinct = evidence["distinct_generated_tokens"]
    declared = ", ".join(f"{k}={v}" for k, v in constraints.items() if v) or "none"
    detail = (f"{matching}/{total} generated tokens = arg-max of one pass over the output (constraints: {declared}; "
              f"fresh call per prefix: {int(prefix_agree.sum())}/{total}; {distinct} distinct "
              f"token{'s' if distinct != 1 else ''})")
    return Check("greedy_matches_one_pass", PASS if matching == total else FAIL, matching / total, detail, evidence)


# --- padding invariance, gradient causality, nn.Transformer's traps -------------------------------------------------


def _real_target_lengths(batch: dict) -> list[int]:
    return (batch["labels"] != IGNORE_INDEX).sum(dim=1).tolist()


@torch.no_grad()
def check_padding_invariance(model, batch: dict, tolerance: Tolerance | None = None,
                             extra: int = EXTRA_PADDING_COLUMNS) -> Check:
    """Extra right padding changes no real logit: `extra` more pad columns appended to the decoder inputs (mask 0)
    and, separately, to the source (attention_mask 0). Compared at the positions whose label is not -100."""
    tolerance = tolerance or _audit_tolerance()
    _, source_pad, _ = source_ids(model)
    real = batch["labels"] != IGNORE_INDEX
    decoder_mask = real.long()
    base = _teacher_forced_logits(model, batch, decoder_attention_mask=decoder_mask)
    longer_targets = F.pad(batch["decoder_input_ids"], (0, extra), value=model.pad_token_id)
    target_padded = _teacher_forced_logits(model, batch, longer_targets, F.pad(decoder_mask, (0, extra), value=0))
    source_padded = _teacher_forced_logits(model, batch, decoder_attention_mask=decoder_mask,
                                          input_ids=F.pad(batch["input_ids"], (0, extra), value=source_pad),
                                          attention_mask=F.pad(batch["attention_mask"], (0, extra), value=0))
    target = _judged(target_padded[:, : base.shape[1]][real], base[real], tolerance)
    source = _judged(source_padded[real], base[real], tolerance)
    worst = max(target, source, key=lambda c: c.ratio)
    ok = target.same and source.same
    detail = (f"+{extra} pad columns: target max |Δ| {target.max_abs_diff:.3g} {_relation(target)} "
              f"{target.allowed:.3g}, source {source.max_abs_diff:.3g} {_relation(source)} {source.allowed:.3g} "
              f"({tolerance})")
    evidence = {"extra_columns": extra, "target_padding": target.evidence(), "source_padding": source.evidence(),
                **worst.evidence()}
    return Check("padding_invariance", PASS if ok else FAIL, worst.max_abs_diff, detail, evidence)


@torch.no_grad()
def check_batched_equals_single(model, batch: dict, tolerance: Tolerance | None = None,
                                max_new_tokens: int = 12) -> Check:
    """Each row alone (no padding at all) gives the logits it gets inside the padded batch, at its real positions;
    with `generate`, batched greedy decoding gives each row's one-at-a-time output (up to its first </s>)."""
    tolerance = tolerance or _audit_tolerance()
    lengths, source_lengths = _real_target_lengths(batch), batch["attention_mask"].sum(dim=1).tolist()
    real = batch["labels"] != IGNORE_INDEX
    batched = _teacher_forced_logits(model, batch, decoder_attention_mask=real.long())
    alone = torch.zeros_like(batched)
    for row, (length, source_length) in enumerate(zip(lengths, source_lengths, strict=True)):
        ids = batch["input_ids"][row : row + 1, :source_length]
        decoder_ids = batch["decoder_input_ids"][row : row + 1, :length]
        alone[row, :length] = _teacher_forced_logits(model, batch, decoder_ids, input_ids=ids,
                                                    attention_mask=torch.ones_like(ids))[0]
    comparison = _judged(batched[real], alone[real], tolerance)
    evidence = {"rows": len(lengths), **comparison.evidence()}
    rows_differ = []
    if callable(getattr(model, "generate", None)):
        together = _check_generated(model.generate(batch["input_ids"], attention_mask=batch["attention_mask"],
                                                  max_new_tokens=max_new_tokens), model, len(lengths))
        for row, source_length in enumerate(source_lengths):
            ids = batch["input_ids"][row : row + 1, :source_length]
            single = _check_generated(model.generate(ids, attention_mask=torch.ones_like(ids),
                                                    max_new_tokens=max_new_tokens), model, 1)[0]
            if _until_eos(single, model.eos_token_id) != _until_eos(together[row], model.eos_token_id):
                rows_differ.append(row)
        evidence["generate_rows_differing"] = rows_differ
    ok = comparison.same and not rows_differ
    detail = (f"row alone vs in the padded batch: max |Δ logits| {comparison.max_abs_diff:.3g} "
              f"{_relation(comparison)} {comparison.allowed:.3g} ({tolerance})"
              + (f"; generate: {len(rows_differ)}/{len(lengths)} rows differ" if "generate_rows_differing" in evidence
                 else ""))
    return Check("batched_equals_single", PASS if ok else FAIL, comparison.max_abs_diff, detail, evidence)


def _until_eos(row: torch.Tensor, eos_token_id: int) -> list[int]:
    tokens = row.tolist()
    return tokens[: tokens.index(eos_token_id) + 1] if eos_token_id in tokens else tokens


@torch.no_grad()
def _check_source_padding_side(model, batch: dict, tolerance: Tolerance | None = None) -> Check:
    """Left- vs right-padded source, same tokens and masks: do the decoder's real logits change? Informational
    (it does not decide the exit code): an encoder with absolute positions counted from the first column (the
    original Transformer, Marian) gives other logits for a left-padded source; relative positions (T5) do not."""
    tolerance = tolerance or _audit_tolerance()
    _, source_pad, _ = source_ids(model)
    input_ids, attention_mask = batch["input_ids"].clone(), batch["attention_mask"].clone()
    left_ids, left_mask = torch.full_like(input_ids, source_pad), torch.zeros_like(attention_mask)
    for row, length in enumerate(attention_mask.sum(dim=1).tolist()):
        left_ids[row, input_ids.shape[1] - length :] = input_ids[row, :length]
        left_mask[row, input_ids.shape[1] - length :] = 1
    real = batch["labels"] != IGNORE_INDEX
    right = _teacher_forced_logits(model, batch, decoder_attention_mask=real.long())
    left = _teacher_forced_logits(model, batch, decoder_attention_mask=real.long(), input_ids=left_ids,
                                 attention_mask=left_mask)
    comparison = _judged(left[real], right[real], tolerance)
    padded_rows = int((attention_mask == 0).any(dim=1).sum())
    verdict = "same" if comparison.same else "differ"
    detail = (f"left vs right source padding ({padded_rows} padded rows): max |Δ logits| "
              f"{comparison.max_abs_diff:.3g} {_relation(comparison)} {comparison.allowed:.3g}: logits {verdict}"
              + ("" if comparison.same else " (absolute source positions? pad sources on the side used in training)"))
    return Check("source_padding_side", INFO, comparison.max_abs_diff, detail,
                 {"verdict": verdict, "padded_rows": padded_rows, **comparison.evidence()})


@contextmanager
def _decoder_embedding_output(model, decoder_input_ids: torch.Tensor, replacement: torch.Tensor | None = None):
    """Hook every nn.Embedding behind the model: the lookups of exactly `decoder_input_ids` are the decoder's token
    embeddings; yield the list of their outputs, and replace them with `replacement` when given."""
    captured, handles = [], []

    def hook(module, args, output):
        ids = args[0] if args else None
        if isinstance(ids, torch.Tensor) and ids.shape == decoder_input_ids.shape and torch.equal(ids,
                                                                                                 decoder_input_ids):
            captured.append(output)
            return replacement
        return None

    for root in torch_modules(model):
        for module in root.modules():
            if isinstance(module, torch.nn.Embedding):
                handles.append(module.register_forward_hook(hook))
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def check_gradient_causality(model, batch: dict, tolerance: Tolerance | None = None, n_probes: int = 2,
                             seed: int = 0) -> Check:
    """|d logits[t] / d e[s]| for s > t, e the decoder's token embeddings (found by hooking the nn.Embedding that
    looks up the decoder input ids), with utils.handwritten.leakage_audit.gradient_leakage; judged against the
    tolerance of the largest gradient on the past (s <= t). Skipped when no embedding lookup of the decoder ids is
    found (a model that is not an nn.Module, or embeds without nn.Embedding)."""
    tolerance = tolerance or _audit_tolerance()
    decoder_input_ids = batch["decoder_input_ids"]
    mask = torch.ones_like(decoder_input_ids)
    with torch.no_grad(), _decoder_embedding_output(model, decoder_input_ids) as captured:
        model.forward(batch["input_ids"], decoder_input_ids, attention_mask=batch["attention_mask"],
                      decoder_attention_mask=mask)
    if not captured:
        return Check("gradient_causality", SKIPPED, detail="not checked: no nn.Embedding behind the model looks up "
                                                           "the decoder input ids")
    embeds = captured[0].detach()

    def logits_of(replacement: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad(), _decoder_embedding_output(model, decoder_input_ids, replacement) as seen:
            logits = model.forward(batch["input_ids"], decoder_input_ids, attention_mask=batch["attention_mask"],
                                   decoder_attention_mask=mask)
        if not seen:
            raise AuditInputError("the decoder's embedding lookup was not seen on the second call")
        return check_logits(logits, *decoder_input_ids.shape, model.vocab_size).double()

    raw = gradient_leakage(logits_of, embeds, tolerance=0.0, n_probes=n_probes, seed=seed)
    past = raw.sensitivity.tril()
    magnitude = float(past.max())
    report = report_from_sensitivity(raw.sensitivity, tolerance.allowed(magnitude), "gradient")
    comparison = Comparison(report.max_future_sensitivity, magnitude, tolerance)
    length = report.sensitivity.shape[0]
    pairs = length * (length - 1) // 2
    detail = (f"max |d logits[t] / d embedding[s > t]| {report.max_future_sensitivity:.3g} {_relation(comparison)} "
              f"{comparison.allowed:.3g} (the past's largest {magnitude:.3g}; {tolerance}; "
              f"{len(report.leaking_positions)}/{pairs} pairs)")
    evidence = {"max_future_gradient": report.max_future_sensitivity, "max_past_gradient": magnitude,
                "leaking_pairs": len(report.leaking_positions), "future_pairs": pairs, "n_probes": n_probes,
                **comparison.evidence()}
    return Check("gradient_causality", PASS if comparison.same else FAIL, report.max_future_sensitivity, detail,
                 evidence, {"report": report})


def _uses(model, kinds: tuple[type, ...]) -> bool:
    return any(isinstance(module, kinds) for root in torch_modules(model) for module in root.modules())


def _check_tgt_is_causal_hint(model, tolerance: Tolerance | None = None, seed: int = 0) -> Check:
    """Trap 1 of torch.nn.Transformer, measured on this torch: is `tgt_is_causal=True` without a `tgt_mask` causal?
    Informational, for models built on nn.TransformerDecoder (their own leakage is measured by future_leakage)."""
    if not _uses(model, (torch.nn.TransformerDecoder, torch.nn.TransformerDecoderLayer)):
        return Check("tgt_is_causal_hint", SKIPPED, detail="not checked: the model does not use "
                                                           "torch.nn.TransformerDecoder")
    trap = torch_transformer_traps.tgt_is_causal_without_mask(seed=seed)
    comparison = Comparison(trap["hint_only_future_change"], trap["magnitude"], tolerance or _audit_tolerance())
    causal = comparison.same
    detail = (f"torch {torch.__version__}: tgt_is_causal=True without tgt_mask: a change at the last position moves "
              f"earlier outputs by {comparison.max_abs_diff:.3g} {_relation(comparison)} {comparison.allowed:.3g}: "
              + ("causal" if causal else "NOT causal, the flag is only a hint: pass the mask as well")
              + f" (with the mask: {trap['with_mask_future_change']:.3g})")
    return Check("tgt_is_causal_hint", INFO, comparison.max_abs_diff, detail,
                 {"verdict": "causal" if causal else "not causal", **trap, **comparison.evidence()})


def check_encoder_fast_path(model, batch: dict, tolerance: Tolerance | None = None, seed: int = 0) -> Check:
    """Trap 2 of torch.nn.Transformer: in eval() without grad, nn.TransformerEncoder takes a fast path (nested tensors
    when a padding mask is given) that writes zeros at padded positions. Measured on this torch with a fresh encoder
    (real and padded positions), and on the audited model: its logits with the fast path (no grad) and without (grad
    enabled) must be the same at real positions — they differ when padded encoder outputs leak into the decoder
    (e.g. cross-attention without the source padding mask)."""
    if not _uses(model, (torch.nn.TransformerEncoder, torch.nn.TransformerEncoderLayer)):
        return Check("encoder_fast_path", SKIPPED, detail="not checked: the model does not use "
                                                          "torch.nn.TransformerEncoder")
    tolerance = tolerance or _audit_tolerance()
    trap = torch_transformer_traps.encoder_fast_path_padding(seed=seed)
    real = batch["labels"] != IGNORE_INDEX
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "The PyTorch API of nested tensors is in prototype stage"
        fast = _teacher_forced_logits(model, batch, decoder_attention_mask=real.long())
    with torch.enable_grad():
        slow = _teacher_forced_logits(model, batch, decoder_attention_mask=real.long())
    comparison = _judged(fast[real], slow[real], tolerance)
    detail = (f"model logits, fast path (eval, no grad) vs not: max |Δ| {comparison.max_abs_diff:.3g} "
              f"{_relation(comparison)} {comparison.allowed:.3g}; torch {torch.__version__}'s fast path writes "
              f"{trap['fast_padded_max_abs']:.3g} at padded positions (slow path: {trap['slow_padded_max_abs']:.3g}), "
              f"real positions differ by {trap['real_max_abs_diff']:.3g}")
    return Check("encoder_fast_path", PASS if comparison.same else FAIL, comparison.max_abs_diff, detail,
                 {"torch_encoder": trap, **comparison.evidence()})


# --- all of it -------------------------------------------------------------------------------------------------


def _guarded(name: str, run: Callable[[], Check], model) -> Check:
    """Skip a check whose optional method is missing; turn an exception into an 'error' check with its message."""
    method = OPTIONAL_METHOD.get(name)
    if method is not None and not callable(getattr(model, method, None)):
        return Check(name, SKIPPED, detail=f"not checked: the model has no {method}()")
    try:
        return run()
    except Exception as error:
        return Check(name, ERROR, detail=f"{type(error).__name__}: {error}", evidence={"error": str(error)})


def run_audit(model, label: str = "model", batch_size: int = 2, source_length: int = 8, target_length: int = 10,
              n_trials: int = 4, max_new_tokens: int = 12, seed: int = 0, device: str | torch.device = "cpu",
              rtol: float | None = None, checks: tuple[str, ...] | None = None) -> ModelAudit:
    """Every check (or those named in `checks`) on one auditable model (see `load_model` /
    utils.experiments.auditable_models.as_auditable). Closeness is judged by utils.workbench.tolerance for the
    dtype of the model's logits; `rtol` overrides its relative part."""
    batch = audit_batch(model, batch_size, source_length, target_length, seed, device)
    unknown = sorted(set(checks or ()) - set(CHECK_TITLES))
    if unknown:
        raise ValueError(f"unknown checks {unknown}; known: {', '.join(CHECK_TITLES)}")
    try:
        tolerance = _audit_tolerance(_logits_dtype(model, batch), rtol)
    except Exception:  # the checks report what is wrong with forward, one by one
        tolerance = _audit_tolerance(torch.float32, rtol)
    runs = {
        "future_leakage": lambda: _check_future_leakage(model, batch, n_trials, tolerance, seed),
        "one_pass_equals_loop": lambda: _check_one_pass_equals_loop(model, batch, tolerance),
        "shift_right": lambda: check_shift_right(model, batch),
        "loss_ignores_padding": lambda: check_loss_ignores_padding(model, batch, tolerance),
        "greedy_matches_one_pass": lambda: check_greedy_matches_one_pass(model, batch, max_new_tokens),
        "gradient_causality": lambda: check_gradient_causality(model, batch, tolerance, seed=seed),
        "padding_invariance": lambda: check_padding_invariance(model, batch, tolerance),
        "batched_equals_single": lambda: check_batched_equals_single(model, batch, tolerance, max_new_tokens),
        "source_padding_side": lambda: _check_source_padding_side(model, batch, tolerance),
        "tgt_is_causal_hint": lambda: _check_tgt_is_causal_hint(model, tolerance, seed),
        "encoder_fast_path": lambda: check_encoder_fast_path(model, batch, tolerance, seed),
    }
    selected = [name for name in runs if checks is None or name in checks]
    return ModelAudit(label, {name: _guarded(name, runs[name], model) for name in selected})


def format_table(audit: ModelAudit) -> str:
    """A short plain-text table: check, result, number, detail; and the exit code."""
    lines = [f"audit of {audit.label}", f"{'check':40s} {'result':8s} {'number':>9s}  detail"]
    for check in audit.checks.values():
        number = "" if check.number is None else f"{check.number:.3g}"
        lines.append(f"{check.title:40s} {check.status.upper():8s} {number:>9s}  {check.detail}")
    leakage = audit.checks.get("future_leakage")
    verdict = ("LEAKS: decoder position t sees decoder inputs after t" if audit.leaks else
               "could not run the leakage audit" if leakage is not None and leakage.status == ERROR else
               "no leakage")
    failed, errors = audit.names(FAIL), audit.names(ERROR)
    lines.append(f"{verdict}; failed: {', '.join(failed) or 'none'}; errors: {', '.join(errors) or 'none'}; "
                 f"exit code {audit.exit_code}")
    return "\n".join(lines)


# --- the verdict in words --------------------------------------------------------------------------------------

REFERENCES = "T5 and the original Transformer"


def _verdict_line(check: Check) -> str:
    e = check.evidence
    if check.status == SKIPPED:
        return f"*Not checked* — {check.detail[len('not checked: '):]}."
    if check.status == ERROR:
        return f"*Could not check* {check.title}: {check.detail}"
    if check.status == INFO:
        return f"*Measured* ({check.title}): {check.detail}."
    ok = check.status == PASS
    if check.name == "future_leakage":
        if ok:
            return (f"**Like {REFERENCES}, its decoder cannot see the future**: changing a decoder input after "
                    f"position t never moves the logits at t (max {e['max_future_sensitivity']:.2g} ≤ "
                    f"{e['allowed']:.2g}). Both mask those positions (Vaswani et al. 2017 §3.1, §3.2.3; T5 keeps that "
                    "decoder, Raffel et al. 2020 §2.1, §3.2.1).")
        return (f"**Unlike {REFERENCES}, its decoder sees the future**: the logits at position t change when a "
                f"decoder input after t changes ({e['leaking_pairs']} of {e['future_pairs']} (t, s > t) pairs, up to "
                f"{e['max_future_sensitivity']:.2g}). Both mask those positions (Vaswani et al. 2017 §3.1, §3.2.3; "
                "T5, Raffel et al. 2020 §3.2.1). Trained in one pass, such a model can read the next target token "
                "from its own input — which it will not have at test time.")
    if check.name == "one_pass_equals_loop":
        if ok:
            return (f"One teacher-forced pass computes what the step-by-step loop computes (max |Δ logits| "
                    f"{e['max_abs_diff']:.2g}), which is what lets T5 and the Transformer train on the whole target "
                    "at once.")
        return (f"**One teacher-forced pass is not the computation of the test-time loop**: the logits differ at "
                f"{e['positions_differing']} of {e['positions']} positions (max |Δ| {e['max_abs_diff']:.2g}); it is "
                "trained as one function and used as another.")
    if check.name == "shift_right":
        if ok:
            return (f"Like both, its decoder inputs are the labels shifted right by one behind the start token "
                    f"{e['start_token_expected']} (the paper's outputs \"offset by one position\", §3.1; HF's T5 and "
                    "Marian start from the pad id).")
        return (f"**Its decoder inputs are not the labels shifted right** behind start token "
                f"{e['start_token_expected']}: {e['mismatches']} of {e['real_positions']} real positions differ"
                + ("; -100 is left in them" if e["negative_ids_left"] else "") + ".")
    if check.name == "loss_ignores_padding":
        if ok:
            return (f"Like HF's T5 and Marian (cross-entropy with ignore_index=-100), its loss ignores padding: "
                    f"appending {e['extra_columns']} columns of -100 changes it by {e['abs_change']:.2g} "
                    f"(reduction: {e['reduction']}).")
        return (f"**Its loss counts padding**, unlike HF's T5 and Marian: appending {e['extra_columns']} columns of "
                f"-100 changes it by {e['abs_change']:.2g} (it matches: {e['reduction']}).")
    if check.name == "gradient_causality":
        if ok:
            return (f"No gradient flows from a later decoder input to an earlier position (max |d logits[t] / "
                    f"d e[s>t]| {e['max_future_gradient']:.2g} ≤ {e['allowed']:.2g}; the past's largest "
                    f"{e['max_past_gradient']:.2g}).")
        return (f"**Gradients flow from the future**: d logits[t] / d embedding[s > t] reaches "
                f"{e['max_future_gradient']:.2g} ({e['leaking_pairs']} of {e['future_pairs']} pairs): training "
                "updates earlier positions with what comes after them.")
    if check.name == "padding_invariance":
        if ok:
            return (f"Extra right padding changes no real logit ({e['extra_columns']} pad columns on the decoder "
                    f"inputs and on the source: max |Δ| {e['max_abs_diff']:.2g}).")
        return (f"**Padding changes real logits**: {e['extra_columns']} extra pad columns move them by "
                f"{e['max_abs_diff']:.2g} (decoder {e['target_padding']['max_abs_diff']:.2g}, source "
                f"{e['source_padding']['max_abs_diff']:.2g}): a padding mask is missing somewhere.")
    if check.name == "batched_equals_single":
        if ok:
            return (f"A row gives the same logits alone as inside the padded batch (max |Δ| {e['max_abs_diff']:.2g})"
                    + (", and batched greedy decoding equals one row at a time." if "generate_rows_differing" in e
                       else "."))
        return (f"**A row's output depends on the other rows of its batch** (max |Δ logits| {e['max_abs_diff']:.2g}"
                + (f"; greedy output differs in {len(e['generate_rows_differing'])} rows" if
                   e.get("generate_rows_differing") else "") + "): padding leaks into real positions.")
    if check.name == "encoder_fast_path":
        if ok:
            return (f"nn.TransformerEncoder's eval() fast path changes no logit (max |Δ| {e['max_abs_diff']:.2g}), "
                    f"although on torch {torch.__version__} it writes {e['torch_encoder']['fast_padded_max_abs']:.2g} "
                    "at padded positions.")
        return ("**The eval() fast path of nn.TransformerEncoder changes the logits** (max |Δ| "
                f"{e['max_abs_diff']:.2g}): padded encoder outputs are zeros there and not in training, and the "
                "decoder reads them (pass memory_key_padding_mask).")
    if ok:
        distinct = e["distinct_generated_tokens"]
        weak = (f" — a weak test here: the output is nearly constant ({distinct} distinct token"
                f"{'s' if distinct > 1 else ''}), as an untrained model's often is" if distinct <= 2 else "")
        return (f"Its greedy loop picks, at every step, the arg-max of one pass over its own output "
                f"({e['matching']}/{e['generated_tokens']} tokens){weak}.")
    if e["loop_equals_prefix_argmax"] == 1.0:
        return (f"**Its greedy loop and one pass disagree** on {e['generated_tokens'] - e['matching']} of "
                f"{e['generated_tokens']} generated tokens, although the loop does pick the arg-max of a fresh call "
                "on each prefix: the one pass sees tokens the loop had not produced yet.")
    suspected = e.get("undeclared_constraint_suspected")
    if suspected:
        return (f"**Its greedy loop applies a decoding constraint it does not declare**: where a fresh call on the "
                f"prefix puts token {suspected['skipped_token']} first, the loop takes the runner-up (step "
                f"{suspected['step']}: {suspected['loop_token']}). Declare what generate never emits "
                "(`banned_token_ids`, `min_new_tokens` for </s>, or `constrain_next_token_logits`) and the audit "
                "applies the same to the one-pass arg-max.")
    return (f"**Its greedy loop is not greedy decoding over its own forward**: a fresh call on each prefix picks "
            f"other tokens ({e['loop_equals_prefix_argmax']:.0%} agree) — the start token, masks or positions "
            "differ between generate and forward.")


def verdict_markdown(audit: ModelAudit) -> str:
    """The audit in plain words, check by check, compared with T5 and the original Transformer."""
    failed = audit.names(FAIL)
    head = (f"**Verdict for `{audit.label}`: " + ("it does not train the way T5 and the original Transformer do** "
            f"({len(failed)} of {len(audit.checks)} checks fail)." if failed else
            "every check that ran behaves as in T5 and the original Transformer.**"))
    return "\n".join([head, ""] + [f"- {_verdict_line(check)}" for check in audit.checks.values()])


# --- the command -------------------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m utils.audit_model", description=__doc__.split("\n")[0])
    parser.add_argument("factory", nargs="?", help="package.module:function or path/to/file.py:function")
    parser.add_argument("--model-name-or-path", help="a local HF seq2seq checkpoint folder, instead of a factory")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--source-length", type=int, default=8)
    parser.add_argument("--target-length", type=int, default=10)
    parser.add_argument("--n-trials", type=int, default=4, help="random replacements per position in the audit")
    parser.add_argument("--rtol", type=float, default=None,
                        help="override the relative tolerance of utils.workbench.tolerance for the logits' dtype "
                             "(float32: 1e-5); allowed |Δ| = atol + rtol x max |values compared|")
    parser.add_argument("--checks", help="comma-separated subset of: " + ", ".join(CHECK_TITLES))
    parser.add_argument("--max-new-tokens", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads while auditing")
    parser.add_argument("--json", help="also write the checks and their evidence to this file")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Returns the exit code: 0 every check that ran passed, 1 a check failed, 2 bad input."""
    args = parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)  # small models: one thread beats two that wait for each other
    try:
        model = load_model(args.factory, args.model_name_or_path, args.device)
        label = args.factory or args.model_name_or_path
        checks = tuple(name.strip() for name in args.checks.split(",")) if args.checks else None
        audit = run_audit(model, label, args.batch_size, args.source_length, args.target_length, args.n_trials,
                          args.max_new_tokens, args.seed, args.device, rtol=args.rtol, checks=checks)
    except (AuditInputError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(threads)
    print(format_table(audit))
    if args.json:
        Path(args.json).write_text(json.dumps(audit.to_dict(), indent=2) + "\n", encoding="utf-8")
    return audit.exit_code


if __name__ == "__main__":
    sys.exit(main())
