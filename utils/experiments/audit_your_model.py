"""Audit your own encoder-decoder: does it train and decode the way T5 and the original Transformer do?

    python -m utils.audit_model path/to/model.py:build          # a file and the function that builds the model
    python -m utils.audit_model package.module:build            # a module importable from here / PYTHONPATH
    python -m utils.audit_model --model-name-or-path DIR        # a local HF seq2seq checkpoint

The function returns an auditable model (the interface: utils/experiments/auditable_models.py), an HF encoder-decoder
or a TinferModel. Five checks run on a random batch of token ids (weights and ids do not matter: these are
properties of the architecture, the masks and the code around them):

    future_leakage           the logits at decoder position t do not move when a decoder input after t changes
                             (utils.handwritten.leakage_audit.future_leakage, perturbation)
    one_pass_equals_loop     one teacher-forced pass gives the logits of a loop over the prefixes 1..T
    shift_right              decoder_input_ids_from_labels(labels) = labels shifted right behind the start token
    loss_ignores_padding     loss(labels) does not change when -100 columns are appended to the labels
    greedy_matches_one_pass  every token generate() picks is the arg-max of one pass over generate()'s own output

A check is "pass", "fail", "skipped" (the optional method is not given) or "error" (it could not run; the
detail says why). Exit codes: 0 every check that ran passed; 1 a check failed (the model leaks, ...);
2 bad input: an import path that does not resolve, an object without the interface, logits of the wrong shape,
or a check that could not run.
"""

import argparse
import importlib
import importlib.util
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from utils.experiments.auditable_models import (
    AuditInputError,
    Seq2SeqLMAdapter,
    as_auditable,
    check_forward,
    check_logits,
    move_model,
    set_eval,
    source_ids,
)
from utils.handwritten.leakage_audit import LeakageReport, future_leakage
from utils.handwritten.teacher_forcing import (
    IGNORE_INDEX,
    decoder_attention_mask_from_labels,
    masked_cross_entropy,
    shift_right,
)
from utils.harness.paths import REPO_ROOT
from utils.workbench.device import to_device

PASS, FAIL, SKIPPED, ERROR = "pass", "fail", "skipped", "error"
CHECK_TITLES = {
    "future_leakage": "no future leakage (t never sees s > t)",
    "one_pass_equals_loop": "one pass = step-by-step loop",
    "shift_right": "decoder inputs = labels shifted right",
    "loss_ignores_padding": "loss ignores -100 padding",
    "greedy_matches_one_pass": "greedy loop = arg-max of one pass",
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
        return self.checks["future_leakage"].extra.get("report")

    @property
    def leaks(self) -> bool:
        return self.checks["future_leakage"].status == FAIL

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


def teacher_forced_logits(model, batch: dict, decoder_input_ids: torch.Tensor | None = None,
                          decoder_attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """One pass of `model.forward` on the batch's source, shape-checked: (B, T, V) in float64."""
    decoder_input_ids = batch["decoder_input_ids"] if decoder_input_ids is None else decoder_input_ids
    logits = model.forward(batch["input_ids"], decoder_input_ids, attention_mask=batch["attention_mask"],
                           decoder_attention_mask=decoder_attention_mask)
    return check_logits(logits, *decoder_input_ids.shape, model.vocab_size).detach().double()


# --- the five checks -------------------------------------------------------------------------------------------


@torch.no_grad()
def check_future_leakage(model, batch: dict, n_trials: int = 4, tolerance: float = 1e-5, seed: int = 0) -> Check:
    """Perturb one decoder input at a time (no decoder padding mask: every position is real)."""
    report = future_leakage(lambda ids: teacher_forced_logits(model, batch, ids), batch["decoder_input_ids"],
                            model.vocab_size, n_trials=n_trials, tolerance=tolerance, seed=seed,
                            special_ids=(model.pad_token_id, model.eos_token_id, model.decoder_start_token_id))
    length = report.sensitivity.shape[0]
    pairs = length * (length - 1) // 2
    evidence = {"max_future_sensitivity": report.max_future_sensitivity, "leaking_pairs": len(report.leaking_positions),
                "future_pairs": pairs, "tolerance": tolerance, "n_trials": n_trials}
    relation = ">" if report.leaks else "<="
    detail = (f"max |Δ logits[t]| for a change at s > t: {report.max_future_sensitivity:.3g} {relation} {tolerance:g}"
              f" ({len(report.leaking_positions)}/{pairs} (t, s) pairs leak)")
    return Check("future_leakage", FAIL if report.leaks else PASS, report.max_future_sensitivity, detail, evidence,
                 {"report": report})


@torch.no_grad()
def loop_logits(model, batch: dict) -> torch.Tensor:
    """Row t from a fresh call on decoder_input_ids[:, :t+1] (what greedy decoding computes): (B, T, V), float64."""
    decoder_input_ids, decoder_attention_mask = batch["decoder_input_ids"], batch["decoder_attention_mask"]
    rows = []
    for end in range(1, decoder_input_ids.shape[1] + 1):
        logits = teacher_forced_logits(model, batch, decoder_input_ids[:, :end], decoder_attention_mask[:, :end])
        rows.append(logits[:, -1])
    return torch.stack(rows, dim=1)


@torch.no_grad()
def check_one_pass_equals_loop(model, batch: dict, tolerance: float = 1e-5) -> Check:
    """max |one pass - loop| over batch and vocabulary, per decoder position, real positions only."""
    one_pass = teacher_forced_logits(model, batch, decoder_attention_mask=batch["decoder_attention_mask"])
    real = batch["decoder_attention_mask"].bool()
    difference = (one_pass - loop_logits(model, batch)).abs().amax(dim=-1).masked_fill(~real, 0.0)  # (B, T)
    per_position = difference.amax(dim=0).cpu()  # (T,)
    largest = float(per_position.max())
    differing = int((per_position > tolerance).sum())
    relation = ">" if largest > tolerance else "<="
    detail = (f"max |one pass - loop| {largest:.3g} {relation} {tolerance:g} "
              f"({differing}/{len(per_position)} positions differ)")
    evidence = {"max_abs_diff": largest, "positions_differing": differing, "positions": len(per_position),
                "per_position": per_position.tolist(), "tolerance": tolerance}
    return Check("one_pass_equals_loop", FAIL if largest > tolerance else PASS, largest, detail, evidence,
                 {"per_position": per_position})


@torch.no_grad()
def check_shift_right(model, batch: dict) -> Check:
    """Compare the model's own decoder inputs with shift_right(labels) at the real decoder positions."""
    labels = batch["labels"]
    seen = model.decoder_input_ids_from_labels(labels)
    if not isinstance(seen, torch.Tensor) or tuple(seen.shape) != tuple(labels.shape):
        shape = tuple(seen.shape) if isinstance(seen, torch.Tensor) else type(seen).__name__
        raise AuditInputError(f"decoder_input_ids_from_labels must return ids shaped like labels "
                              f"{tuple(labels.shape)}, got {shape}")
    expected = shift_right(labels, model.decoder_start_token_id, model.pad_token_id)
    real = batch["decoder_attention_mask"].bool()
    wrong = (seen.to(expected.device) != expected) & real
    negative = bool((seen < 0).any())  # a -100 left in the decoder inputs: the embedding lookup would fail
    evidence = {"start_token_expected": model.decoder_start_token_id, "start_tokens_seen": seen[:, 0].tolist(),
                "mismatches": int(wrong.sum()), "real_positions": int(real.sum()), "negative_ids_left": negative,
                "padded_row": {"labels": labels[-1].tolist(), "decoder inputs seen": seen[-1].tolist(),
                               "shift_right(labels)": expected[-1].tolist()}}
    if wrong.any():
        row, position = (int(i) for i in wrong.nonzero()[0])
        evidence["first_mismatch"] = {"row": row, "position": position, "seen": int(seen[row, position]),
                                      "expected": int(expected[row, position])}
    detail = (f"{int(wrong.sum())}/{int(real.sum())} real decoder inputs differ from shift_right(labels, "
              f"start={model.decoder_start_token_id})" + ("; -100 left in the decoder inputs" if negative else ""))
    return Check("shift_right", FAIL if (wrong.any() or negative) else PASS, float(wrong.sum()), detail, evidence)


def _scalar_loss(value, where: str) -> float:
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        raise AuditInputError(f"{where} must return a scalar loss tensor, got "
                              f"{tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__}")
    return float(value.detach().double())


@torch.no_grad()
def loss_reductions(model, batch: dict, labels: torch.Tensor) -> dict[str, float]:
    """Candidate losses from the one-pass logits: three reductions that skip -100, and the mean over every
    position with padding counted as pad targets (what a loss without masking computes)."""
    make_inputs = getattr(model, "decoder_input_ids_from_labels", None)
    decoder_input_ids = make_inputs(labels) if make_inputs else shift_right(labels, model.decoder_start_token_id,
                                                                            model.pad_token_id)
    logits = teacher_forced_logits(model, batch, decoder_input_ids, decoder_attention_mask_from_labels(labels).long())
    candidates = {reduction: float(masked_cross_entropy(logits, labels, reduction=reduction))
                  for reduction in ("token_mean", "sequence_mean", "sum")}
    padded_targets = labels.masked_fill(labels == IGNORE_INDEX, model.pad_token_id)
    candidates["mean over all positions, padding included"] = float(
        F.cross_entropy(logits.flatten(0, 1), padded_targets.flatten()))
    return candidates


@torch.no_grad()
def check_loss_ignores_padding(model, batch: dict, tolerance: float = 1e-5) -> Check:
    """loss with one trailing -100 column vs with EXTRA_PADDING_COLUMNS more; which reduction the loss matches.

    Every row already ends in -100, so the extra columns add decoder inputs that are padding and nothing else
    (appending to a full row would add its shifted <eos> as a new real input, which a leaky decoder would see).
    """
    labels = F.pad(batch["labels"], (0, 1), value=IGNORE_INDEX)  # (B, T + 1)
    longer = F.pad(labels, (0, EXTRA_PADDING_COLUMNS), value=IGNORE_INDEX)  # (B, T + 1 + extra)
    loss = _scalar_loss(model.loss(batch["input_ids"], labels, attention_mask=batch["attention_mask"]), "loss")
    padded_loss = _scalar_loss(model.loss(batch["input_ids"], longer, attention_mask=batch["attention_mask"]), "loss")
    change = abs(padded_loss - loss)
    allowed = tolerance * max(1.0, abs(loss))
    candidates = loss_reductions(model, batch, labels)
    closest = min(candidates, key=lambda name: abs(candidates[name] - loss))
    matches = abs(candidates[closest] - loss) <= 1e-4 * max(1.0, abs(loss))
    evidence = {"loss": loss, "loss_with_extra_padding": padded_loss, "extra_columns": EXTRA_PADDING_COLUMNS,
                "abs_change": change, "tolerance": allowed, "reduction": closest if matches else "none matched",
                "candidates": candidates}
    ok = math.isfinite(loss) and change <= allowed
    detail = (f"|loss(+{EXTRA_PADDING_COLUMNS} -100 columns) - loss| = {change:.3g} {'<=' if ok else '>'} "
              f"{allowed:.3g}; loss {loss:.4g} = {closest if matches else 'none of ' + ', '.join(candidates)}")
    return Check("loss_ignores_padding", PASS if ok else FAIL, change, detail, evidence)


def check_generated(sequences, model, batch_size: int) -> torch.Tensor:
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
def prefix_argmax(model, batch: dict, decoder_input_ids: torch.Tensor) -> torch.Tensor:
    """Arg-max of the last position of a fresh call on each prefix decoder_input_ids[:, :t+1]: (B, T)."""
    steps = [teacher_forced_logits(model, batch, decoder_input_ids[:, :end])[:, -1].argmax(dim=-1)
             for end in range(1, decoder_input_ids.shape[1] + 1)]
    return torch.stack(steps, dim=1)


@torch.no_grad()
def check_greedy_matches_one_pass(model, batch: dict, max_new_tokens: int = 12) -> Check:
    """Run the user's loop, then one pass over its output: every generated token (up to and including the first
    <eos>) must be the arg-max of the one-pass logits one position earlier. Diagnosis: the arg-max of a fresh
    call on each prefix (what a correct greedy loop picks, whether or not the decoder leaks)."""
    generated = model.generate(batch["input_ids"], attention_mask=batch["attention_mask"],
                               max_new_tokens=max_new_tokens)
    sequences = check_generated(generated, model, batch["input_ids"].shape[0])
    decoder_input_ids, targets = sequences[:, :-1], sequences[:, 1:]  # (B, L-1) each
    is_eos = (targets == model.eos_token_id).long()
    valid = (is_eos.cumsum(dim=1) - is_eos) == 0  # up to and including the first <eos>
    one_pass = teacher_forced_logits(model, batch, decoder_input_ids, valid.long()).argmax(dim=-1)  # (B, L-1)
    agree = (one_pass == targets) & valid
    prefix_agree = (prefix_argmax(model, batch, decoder_input_ids) == targets) & valid
    total, matching = int(valid.sum()), int(agree.sum())
    evidence = {"generated_tokens": total, "matching": matching, "agreement": matching / total,
                "loop_equals_prefix_argmax": int(prefix_agree.sum()) / total,
                "distinct_generated_tokens": len(set(targets[valid].tolist())), "sequences": sequences.tolist()}
    if matching < total:
        row, position = (int(i) for i in (valid & ~agree).nonzero()[0])
        evidence["first_disagreement"] = {"row": row, "step": position, "loop_token": int(targets[row, position]),
                                          "one_pass_argmax": int(one_pass[row, position])}
    distinct = evidence["distinct_generated_tokens"]
    detail = (f"{matching}/{total} generated tokens = arg-max of one pass over the output "
              f"(fresh call per prefix: {int(prefix_agree.sum())}/{total}; {distinct} distinct "
              f"token{'s' if distinct != 1 else ''})")
    return Check("greedy_matches_one_pass", PASS if matching == total else FAIL, matching / total, detail, evidence)


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
              n_trials: int = 4, tolerance: float = 1e-5, audit_tolerance: float = 1e-5, max_new_tokens: int = 12,
              seed: int = 0, device: str | torch.device = "cpu") -> ModelAudit:
    """The five checks on one auditable model (see `load_model` / utils.experiments.auditable_models.as_auditable)."""
    batch = audit_batch(model, batch_size, source_length, target_length, seed, device)
    runs = {
        "future_leakage": lambda: check_future_leakage(model, batch, n_trials, audit_tolerance, seed),
        "one_pass_equals_loop": lambda: check_one_pass_equals_loop(model, batch, tolerance),
        "shift_right": lambda: check_shift_right(model, batch),
        "loss_ignores_padding": lambda: check_loss_ignores_padding(model, batch, tolerance),
        "greedy_matches_one_pass": lambda: check_greedy_matches_one_pass(model, batch, max_new_tokens),
    }
    return ModelAudit(label, {name: _guarded(name, run, model) for name, run in runs.items()})


def format_table(audit: ModelAudit) -> str:
    """A short plain-text table: check, result, number, detail; and the exit code."""
    lines = [f"audit of {audit.label}", f"{'check':40s} {'result':8s} {'number':>9s}  detail"]
    for check in audit.checks.values():
        number = "" if check.number is None else f"{check.number:.3g}"
        lines.append(f"{check.title:40s} {check.status.upper():8s} {number:>9s}  {check.detail}")
    verdict = ("LEAKS: decoder position t sees decoder inputs after t" if audit.leaks else
               "could not run the leakage audit" if audit.checks["future_leakage"].status == ERROR else "no leakage")
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
    ok = check.status == PASS
    if check.name == "future_leakage":
        if ok:
            return (f"**Like {REFERENCES}, its decoder cannot see the future**: changing a decoder input after "
                    f"position t never moves the logits at t (max {e['max_future_sensitivity']:.2g} ≤ "
                    f"{e['tolerance']:g}). Both mask those positions (Vaswani et al. 2017 §3.1, §3.2.3; T5 keeps that "
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
    parser.add_argument("--tolerance", type=float, default=1e-5, help="max |Δ| counted as equal (fp32)")
    parser.add_argument("--audit-tolerance", type=float, default=1e-5, help="sensitivity above which s > t leaks")
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
        audit = run_audit(model, label, args.batch_size, args.source_length, args.target_length, args.n_trials,
                          args.tolerance, args.audit_tolerance, args.max_new_tokens, args.seed, args.device)
    except AuditInputError as error:
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
