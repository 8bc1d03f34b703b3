"""Helpers of notebook 04: the researcher's one-pass training against a causal mask, HF T5 and HF Marian.

The variants (a)-(d) live in `utils.workbench.variants` (notebooks 10, 11 and the training command use them too);
this module adds what notebook 04 does with them:

    step_loop (e) one decoder forward per target position on the prefix, the loss of that step only
                  (`step_loop_loss`); used for a few batches (gradients, timing), never trained fully
    train_and_evaluate   one (variant, seed) job: train, then score greedy decoding on the test split
    headline_figures     a variant's greedy exact match and chrF over seeds, with seed-and-sentence intervals

Greedy decoding until `</s>`, the researcher's test-time procedure, is `utils.handwritten.decoding.greedy_decode`.
"""

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from utils.handwritten.decoding import greedy_decode
from utils.handwritten.seq2seq import labels_only_decoder_attention_mask
from utils.handwritten.step_loop import step_loop
from utils.handwritten.teacher_forcing import IGNORE_INDEX
from utils.harness.paths import REPO_ROOT
from utils.reporting.provenance import Claim, Metric, Sentence, render_all
from utils.workbench.batching import make_batches
from utils.workbench.device import to_device
from utils.workbench.metrics import translation_scores
from utils.workbench.tolerance import Comparison, compare
from utils.workbench.training import evaluate_loss
from utils.workbench.uncertainty import chrf_two_level_bootstrap, two_level_bootstrap
from utils.workbench.variants import (
    build_variant,
    decoder_input_ids_from_labels,
    free_running_accuracy,
    generated_ids,
    teacher_forced_accuracy,
    train_variant,
)

__all__ = ["NOTEBOOK_STEM", "RESULTS_FILE", "VERDICT", "GreedyEvaluation", "TrainingSetup", "compare_gradients",
           "decoder_positions_ratio", "evaluate_greedy", "find_sweep_results", "headline_figures", "loss_gradients",
           "next_position_attention", "one_pass_loss", "restore_variant", "run_rows", "seconds_per_batch",
           "step_loop_loss", "synthetic_batch", "train_and_evaluate", "training_flops", "verdict_records"]

NOTEBOOK_STEM = "04_tinfer_training"


# ---------------------------------------------------------------- (e) the step loop


def step_loop_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Token-mean cross-entropy computed with one decoder forward per target position.

    For t = 0 .. T-1 the decoder gets only the prefix `decoder_input_ids[:, :t+1]` and the loss of its
    last position against `labels[:, t]`; the sum over steps is divided by the number of real labels,
    so that with a causal decoder it equals the one-pass `model(**batch).loss` (and so do its gradients).
    """
    labels = batch["labels"]
    steps = step_loop(model, batch["input_ids"], batch["attention_mask"], decoder_input_ids_from_labels(model, labels),
                      labels_only_decoder_attention_mask(model, labels), use_cache=False)
    total = 0.0
    for t, logits in enumerate(steps):  # logits (B, V) of step t
        total = total + torch.nn.functional.cross_entropy(logits.float(), labels[:, t], ignore_index=IGNORE_INDEX,
                                                          reduction="sum")
    return total / (labels != IGNORE_INDEX).sum()


def one_pass_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The usual teacher-forced loss: the whole right-shifted target in one decoder pass."""
    return model(**batch).loss


def loss_gradients(model, batch: dict[str, torch.Tensor], loss_fn) -> tuple[float, dict[str, torch.Tensor]]:
    """(loss, {parameter name: gradient}) of one batch; the model's .grad fields are left cleared."""
    model.zero_grad(set_to_none=True)
    loss = loss_fn(model, batch)
    loss.backward()
    gradients = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return loss.item(), gradients


def compare_gradients(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> tuple[Comparison, str]:
    """The one tolerance model on two sets of gradients, every parameter flattened into one vector (the allowance
    scales with the largest |expected| gradient, float32), and the parameter where |actual - expected| peaks."""
    if actual.keys() != expected.keys():
        raise ValueError(f"gradients cover different parameters: {sorted(actual.keys() ^ expected.keys())[:5]}")
    names = sorted(actual)
    comparison = compare(torch.cat([actual[n].flatten() for n in names]),
                         torch.cat([expected[n].flatten() for n in names]))
    worst = max(names, key=lambda name: float((actual[name] - expected[name]).abs().max()))
    return comparison, worst


def synthetic_batch(vocab_size: int, batch_size: int, source_length: int, target_length: int,
                    eos_token_id: int, low_id: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random token ids (>= low_id, no padding) ending in eos: a batch of a chosen target length for timing."""
    if min(batch_size, source_length, target_length) < 1:
        raise ValueError("batch_size, source_length and target_length must be >= 1")
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(low_id, vocab_size, (batch_size, source_length), generator=generator)
    labels = torch.randint(low_id, vocab_size, (batch_size, target_length), generator=generator)
    input_ids[:, -1] = eos_token_id
    labels[:, -1] = eos_token_id
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels}


def seconds_per_batch(model, batch: dict[str, torch.Tensor], loss_fn, repeats: int = 3) -> float:
    """Fastest of `repeats` forward + backward passes of `loss_fn` (the minimum is the least noisy), after one
    untimed warm-up pass (first calls on a new shape pay for memory allocation)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    times = []
    device = next(model.parameters()).device
    for repeat in range(repeats + 1):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        loss_fn(model, batch).backward()
        if device.type == "cuda" and torch.cuda.is_available():
            torch.cuda.synchronize(device)  # kernels run asynchronously: wait for them before reading the clock
        if repeat > 0:
            times.append(time.perf_counter() - start)
    model.zero_grad(set_to_none=True)
    return min(times)


def training_flops(model, batch: dict[str, torch.Tensor], loss_fn) -> int:
    """Floating-point operations of one forward + backward of `loss_fn`, counted by torch's FlopCounterMode
    (matrix products and attention; deterministic, unlike wall time)."""
    model.zero_grad(set_to_none=True)
    with FlopCounterMode(display=False) as counter:
        loss_fn(model, batch).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def decoder_positions_ratio(target_length: int) -> float:
    """Decoder positions computed by the step loop (1 + 2 + ... + T) over those of one pass (T): (T + 1) / 2."""
    if target_length < 1:
        raise ValueError(f"target_length must be >= 1, got {target_length}")
    return (target_length + 1) / 2


# ---------------------------------------------------------------- the researcher's test-time procedure


@dataclass
class GreedyEvaluation:
    hypotheses: list[str]  # decoded greedy outputs
    generated: list[list[int]]  # their ids, up to and including eos
    scores: dict[str, float]  # exact_match, chrf, bleu (and the length statistics below)
    exact: list[int]  # 1 where the output equals the reference (surrounding spaces ignored), per sentence
    teacher_forced: tuple[int, int]  # (correct, total) one-pass argmax == label
    free_running: tuple[int, int]  # (correct, total) greedy output id == label at the same position


@torch.no_grad()
def evaluate_greedy(model, tokenizer, features, references: list[str], batch_size: int = 100,
                    max_new_tokens: int = 40) -> GreedyEvaluation:
    """The researcher's test: greedy decoding until eos on every example, scored against the references,
    plus the teacher-forced and free-running token accuracies of the same examples."""
    model.eval()
    eos = model.config.eos_token_id
    generated, teacher_forced, free_running = [], [0, 0], [0, 0]
    device = next(model.parameters()).device
    for batch in make_batches(features, batch_size, tokenizer.pad_token_id):
        batch = to_device(batch, device)
        sequences = greedy_decode(model, batch["input_ids"], batch["attention_mask"], max_new_tokens=max_new_tokens)
        ids = generated_ids(sequences, eos)
        generated += ids
        for total, (correct, count) in ((teacher_forced, teacher_forced_accuracy(model, batch)),
                                        (free_running, free_running_accuracy(ids, batch["labels"]))):
            total[0] += correct
            total[1] += count
    hypotheses = tokenizer.batch_decode(generated, skip_special_tokens=True)
    scores = translation_scores(hypotheses, references)
    scores["mean_output_tokens"] = sum(map(len, generated)) / len(generated)
    scores["mean_reference_tokens"] = sum(len(f["labels"]) for f in features) / len(features)
    scores["no_eos_fraction"] = sum(eos not in ids for ids in generated) / len(generated)
    exact = [int(h.strip() == r.strip()) for h, r in zip(hypotheses, references, strict=True)]
    return GreedyEvaluation(hypotheses, generated, scores, exact, tuple(teacher_forced), tuple(free_running))


# ---------------------------------------------------------------- one (variant, seed) job, and figures over seeds


@dataclass(frozen=True)
class TrainingSetup:
    """What every job of one run shares: the model size and the training budget, the decoding limit, the device."""

    size: str = "tiny"
    n_steps: int = 1000
    batch_size: int = 32
    lr: float = 3e-3
    warmup_steps: int = 50
    dropout: float = 0.1
    max_new_tokens: int = 20
    device: str = "cpu"


def train_and_evaluate(variant: str, seed: int, tokenizer, features: dict[str, list], references: list[str],
                       setup: TrainingSetup) -> dict[str, Any]:
    """One job: train `variant` with `seed`, then its teacher-forced validation loss and the greedy evaluation of
    the test split. The weights come back on the CPU (from a worker process or a GPU alike)."""
    cpu_start = time.process_time()
    model, history = train_variant(variant, tokenizer, features["train"], setup.n_steps, size=setup.size, seed=seed,
                                   dropout=setup.dropout, device=setup.device, batch_size=setup.batch_size,
                                   lr=setup.lr, warmup_steps=setup.warmup_steps, progress=False)
    validation_loss = evaluate_loss(model, features["validation"], tokenizer.pad_token_id, batch_size=100,
                                    device=setup.device)
    evaluation = evaluate_greedy(model, tokenizer, features["test"], references, max_new_tokens=setup.max_new_tokens)
    return {"variant": variant, "seed": seed, "history": history, "validation_loss": validation_loss,
            "evaluation": evaluation, "state_dict": {name: t.cpu() for name, t in model.state_dict().items()},
            "cpu_seconds": time.process_time() - cpu_start}  # this process's CPU time: the job's cost under load


def restore_variant(run: dict[str, Any], tokenizer, setup: TrainingSetup, device) -> torch.nn.Module:
    """The model a job trained, rebuilt from its weights on `device`, in eval mode."""
    model = build_variant(run["variant"], tokenizer, size=setup.size, seed=run["seed"], dropout=setup.dropout)
    model.load_state_dict(run["state_dict"])
    return model.to(device).eval()


def headline_figures(runs: list[dict[str, Any]], references: list[str], n_resamples: int = 1000,
                     seed: int = 0) -> dict[str, dict]:
    """Greedy exact match and chrF of one variant over its seeds (`runs`, each a `train_and_evaluate` result):
    seed mean, per-seed values and a 95% interval over seeds and test sentences (`utils.workbench.uncertainty`;
    the exact interval when every sentence of every seed is wrong, or every one right)."""
    evaluations = [run["evaluation"] for run in runs]
    return {"exact_match": two_level_bootstrap([e.exact for e in evaluations], n_resamples=n_resamples, seed=seed),
            "chrf": chrf_two_level_bootstrap([e.hypotheses for e in evaluations], references, n_resamples, seed)}


# ---------------------------------------------------------------- why (a) works in training only


def next_position_attention(self_attentions: tuple[torch.Tensor, ...], decoder_attention_mask: torch.Tensor
                            ) -> torch.Tensor:
    """Mean self-attention weight from query t to key t + 1, per layer and head: (L, H).

    Averaged over the (t, t + 1) pairs where both positions are real (not padding). With a causal mask
    this is exactly 0; a decoder that sees the future can read the label of step t there.
    """
    real = decoder_attention_mask.bool()
    pairs = real[:, :-1] & real[:, 1:]  # (B, T-1): t and t + 1 both real
    if not pairs.any():
        raise ValueError("no position t with a real next position t + 1")
    rows = []
    for weights in self_attentions:  # (B, H, T, T)
        next_weight = weights.diagonal(offset=1, dim1=-2, dim2=-1)  # (B, H, T-1): weight[t, t + 1]
        rows.append((next_weight * pairs[:, None]).sum(dim=(0, 2)) / pairs.sum())
    return torch.stack(rows)  # (L, H)


# ---------------------------------------------------------------- the verdict, from the recorded numbers


def _claim(claim_id: str, reason: str) -> Claim:
    return Claim(NOTEBOOK_STEM, claim_id, reason)


def _metric(name: str, spec: str = "{:.2f}", interval: str | None = None) -> Metric:
    return Metric(NOTEBOOK_STEM, name, spec, interval)


# Notebook 04's verdict: one sentence per part of the researcher's practice, each generated from the claims of this
# notebook that test it (utils.reporting.provenance). Paper sections are citations, not evidence.
VERDICT = (
    Sentence(
        "nb04.one_pass", "verdict",
        "SAME, given a causal decoder: one pass over the right-shifted target gives the step loop's gradients "
        "(largest difference {grad_diff}, hand-written and HF models) at {flops} times fewer FLOPs.",
        claims=(_claim("step_loop_gradients_equal_one_pass", "trained (b): loop and one-pass gradients compared"),
                _claim("step_loop_gradients_equal_one_pass_hf", "the same comparison on HF T5 and Marian")),
        metrics={"grad_diff": _metric("causal_step_loop_max_grad_diff", "{:.1e}"),
                 "flops": _metric("step_loop_slowdown", "{:.1f}")},
        citations=("Vaswani et al. 2017, §3.1", "Raffel et al. 2020, §2.4"),
        title="decoder input = the target shifted right, all positions in one pass"),
    Sentence(
        "nb04.mask", "verdict",
        "DIFFERS: without the causal mask the trained decoder reads the label it must predict: the audit finds "
        "outputs moving with later inputs (largest sensitivity {sensitivity}) and a head puts {attention} of its "
        "attention on the next position, which holds that label; the causal model shows neither.",
        claims=(_claim("no_mask_model_leaks", "the audit perturbs decoder inputs after t on the trained model"),
                _claim("no_mask_attends_to_next_position", "attention weights of the trained model, measured"),
                _claim("causal_model_does_not_leak", "the same audit on the causal model")),
        metrics={"sensitivity": _metric("no_mask_max_future_sensitivity", "{:.3g}"),
                 "attention": _metric("no_mask_next_position_attention")},
        citations=("Vaswani et al. 2017, §3.2.3", "Raffel et al. 2020, §3.2.1"),
        title="no causal mask in the decoder self-attention"),
    Sentence(
        "nb04.loss", "verdict",
        "SAME, given a causal decoder: the one token-mean loss over all target positions equals the step loop's "
        "loss ({one_pass} vs {step_loop} on a training batch); without the mask they differ.",
        claims=(_claim("step_loop_gradients_equal_one_pass", "its evidence compares the two losses batch by batch"),
                _claim("no_mask_one_pass_differs_from_step_loop", "the same comparison on the no-mask model")),
        metrics={"one_pass": _metric("causal_one_pass_batch_loss", "{:.4f}"),
                 "step_loop": _metric("causal_step_loop_batch_loss", "{:.4f}")},
        citations=("Vaswani et al. 2017, §5.4", "Raffel et al. 2020, §2.4"),
        title="no per-step loss masking"),
    Sentence(
        "nb04.greedy", "verdict",
        "The greedy loop until `<eos>` exposes the leak: greedy exact match {no_mask} without the causal mask "
        "against {causal} with it (seed means, with intervals over seeds and sentences), a difference whose paired "
        "interval lies on one side of zero.",
        claims=(_claim("no_mask_fails_at_greedy", "greedy decoding of every trained variant, scored"),
                _claim("causal_ranks_above_no_mask", "paired two-level bootstrap over seeds and test sentences")),
        metrics={"no_mask": _metric("no_mask_greedy_exact_match", interval="no_mask_greedy_exact_match_interval"),
                 "causal": _metric("causal_greedy_exact_match", interval="causal_greedy_exact_match_interval")},
        citations=("Vaswani et al. 2017, §6.1", "Raffel et al. 2020, §3.1"),
        title="greedy autoregressive loop until <eos> at test time"),
    Sentence(
        "nb04.leakage_vs_exposure", "verdict",
        "Label leakage, not exposure bias: the no-mask model's teacher-forced token accuracy {tf} falls to {fr} "
        "free-running, a far larger gap than the causal models' exposure bias (gap {causal_gap} for (b)).",
        claims=(_claim("leakage_gap_exceeds_exposure_gap", "teacher-forced and free-running accuracy, per model"),
                _claim("no_mask_model_leaks", "the gap comes with a measured leak")),
        metrics={"tf": _metric("no_mask_teacher_forced_accuracy"), "fr": _metric("no_mask_free_running_accuracy"),
                 "causal_gap": _metric("causal_teacher_forced_free_running_gap")},
        title="what the no-mask model learned"),
)


def verdict_records(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Notebook 04's verdict rendered from this run's results (`Results.to_dict()`)."""
    return render_all(list(VERDICT), {NOTEBOOK_STEM: results})


# ---------------------------------------------------------------- the sweep (notebook 04b)

RESULTS_FILE = f"{NOTEBOOK_STEM}.json"


def find_sweep_results(sweep_dir: str | Path) -> list[Path]:
    """`<sweep_dir>/*/results/04_tinfer_training.json`, sorted; a relative `sweep_dir` is taken from the
    repository root, and "" means no sweep (an empty list, like a folder that does not exist)."""
    if not str(sweep_dir):
        return []
    folder = Path(sweep_dir) if Path(sweep_dir).is_absolute() else REPO_ROOT / sweep_dir
    return sorted(folder.glob(f"*/results/{RESULTS_FILE}"))


def run_rows(run: dict[str, Any], metric_names: list[str]) -> list[dict[str, Any]]:
    """One sweep run of notebook 04 as table rows, one per training seed: its seed and training-set size, the
    chosen metrics (a metric's `<name>_per_seed` value where recorded, else the run's one value), and the claims
    of that run that do not hold (if any)."""
    metrics, parameters = run["metrics"], run["parameters"]
    missing = [name for name in metric_names if name not in metrics]
    if missing:
        raise KeyError(f"run with parameters {parameters} has no metrics {missing}")
    seeds = parameters.get("seeds", [parameters.get("seed")])
    failing = [claim_id for claim_id, claim in run["claims"].items() if not claim["holds"]]
    return [{"seed": seed, "n_train": parameters["n_train"]}
            | {name: metrics[f"{name}_per_seed"][index] if f"{name}_per_seed" in metrics else metrics[name]
               for name in metric_names} | {"failing_claims": failing} for index, seed in enumerate(seeds)]
