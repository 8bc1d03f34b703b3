"""What a seq2seq loss is, exactly: label smoothing three ways, teacher forcing step by step, gradient accumulation.

Builds on `utils.handwritten.teacher_forcing.masked_cross_entropy` (the token-mean cross-entropy HF's models compute).

Label smoothing (Vaswani et al. 2017, §5.4, eps = 0.1) has several definitions in use:
- `smoothed_targets(spread="uniform")` ~ `torch.nn.functional.cross_entropy(label_smoothing=eps)` and HF's
  `LabelSmoother`: the label gets 1 - eps + eps / V, every other id eps / V (pad included).
- `smoothed_targets(spread="others", pad_token_id=...)` ~ The Annotated Transformer's `LabelSmoothing`: the label
  gets 1 - eps, the remaining eps is spread over the V - 2 ids that are neither the label nor pad; pad gets 0.
- `soft_cross_entropy` is -sum_v q_v log p_v; `kl_to_targets` is sum_v q_v (log q_v - log p_v) (a `KLDivLoss`),
  which is the cross-entropy minus the entropy of q: a constant per token, so the same gradient.

Gradient accumulation: `accumulated_gradient` adds the gradients of micro-batches scaled one of three ways
(`ACCUMULATIONS`), and `trainer_sgd_update` measures what `Seq2SeqTrainer` does with `gradient_accumulation_steps`.
"""

import math
import tempfile
from functools import partial

import torch
import torch.nn.functional as F
from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.trainer_pt_utils import LabelSmoother

from utils.handwritten.teacher_forcing import IGNORE_INDEX, masked_cross_entropy, shift_right
from utils.workbench.batching import pad_features

SPREADS = ("uniform", "others")
SOFT_REDUCTIONS = ("token_mean", "sum", "none")
# How the loss of micro-batch k (summed over its n_k real tokens) is scaled before backward, N = sum_k n_k:
#   global_token_mean: 1 / N           -> exactly the full batch's token mean
#   mean_of_means:     1 / (K * n_k)   -> mean over micro-batches of their token means (Trainer without num_items)
#   sum_of_means:      1 / n_k         -> sum of micro-batch means (a model that ignores num_items_in_batch)
ACCUMULATIONS = ("global_token_mean", "mean_of_means", "sum_of_means")


# ---------------------------------------------------------------- label smoothing


def smoothed_targets(labels: torch.Tensor, vocab_size: int, epsilon: float, ignore_index: int = IGNORE_INDEX,
                     spread: str = "uniform", pad_token_id: int | None = None) -> torch.Tensor:
    """Target distributions q, shaped labels.shape + (V,); rows of ignored labels are all zero.

    spread="uniform": q = (1 - eps) * one_hot + eps / V (torch and HF).
    spread="others":  q = 1 - eps at the label, eps / (V - 2) elsewhere, 0 at `pad_token_id` (Annotated
                      Transformer); rows whose label is pad are ignored too, as there.
    """
    if spread not in SPREADS:
        raise ValueError(f"spread must be one of {SPREADS}, got {spread!r}")
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    if spread == "others" and pad_token_id is None:
        raise ValueError("spread='others' needs pad_token_id (the id that gets no smoothing mass)")
    real = labels != ignore_index
    if spread == "others":
        real = real & (labels != pad_token_id)
    one_hot = F.one_hot(labels.masked_fill(~real, 0), vocab_size).float()  # (..., V)
    if spread == "uniform":
        targets = (1.0 - epsilon) * one_hot + epsilon / vocab_size
    else:
        targets = torch.full_like(one_hot, epsilon / (vocab_size - 2))
        targets[..., pad_token_id] = 0.0
        targets = torch.where(one_hot.bool(), 1.0 - epsilon, targets)
    return targets * real.unsqueeze(-1)


def _reduce_rows(per_token: torch.Tensor, real: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction not in SOFT_REDUCTIONS:
        raise ValueError(f"reduction must be one of {SOFT_REDUCTIONS}, got {reduction!r}")
    per_token = per_token.masked_fill(~real, 0.0)
    if reduction == "none":
        return per_token
    if reduction == "sum":
        return per_token.sum()
    return per_token.sum() / real.sum()  # nan when nothing is real, like torch


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "token_mean") -> torch.Tensor:
    """-sum_v q_v log p_v per position; all-zero target rows are ignored. logits, targets: (..., V)."""
    if logits.shape != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ in shape")
    log_probs = F.log_softmax(logits.float(), dim=-1)
    per_token = -(targets * log_probs).sum(dim=-1)
    return _reduce_rows(per_token, targets.sum(dim=-1) > 0, reduction)


def kl_to_targets(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "token_mean") -> torch.Tensor:
    """KL(q || p) = sum_v q_v (log q_v - log p_v) per position (0 log 0 = 0), as `nn.KLDivLoss` computes it."""
    if logits.shape != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ in shape")
    log_probs = F.log_softmax(logits.float(), dim=-1)
    per_token = F.kl_div(log_probs, targets, reduction="none").sum(dim=-1)
    return _reduce_rows(per_token, targets.sum(dim=-1) > 0, reduction)


def target_entropy(targets: torch.Tensor, reduction: str = "token_mean") -> torch.Tensor:
    """H(q) = -sum_v q_v log q_v per position: the constant between `soft_cross_entropy` and `kl_to_targets`."""
    per_token = -torch.special.xlogy(targets, targets).sum(dim=-1)
    return _reduce_rows(per_token, targets.sum(dim=-1) > 0, reduction)


def hf_label_smoother_loss(logits: torch.Tensor, labels: torch.Tensor, epsilon: float,
                           num_items_in_batch: int | torch.Tensor | None = None) -> torch.Tensor:
    """The loss `Trainer` computes with `label_smoothing_factor=epsilon` (its `LabelSmoother`), on given logits."""
    return LabelSmoother(epsilon=epsilon)({"logits": logits}, labels, num_items_in_batch=num_items_in_batch)


# ---------------------------------------------------------------- teacher forcing, step by step


@torch.no_grad()
def step_by_step_losses(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        labels: torch.Tensor, decoder_start_token_id: int, pad_token_id: int) -> torch.Tensor:
    """Per-position losses of a loop over the target: step t feeds the gold prefix y_<t, predicts y_t alone.

    Works for HF seq2seq models and `TinferModel` (both take `decoder_input_ids` and return `.logits`).
    Returns (B, T) losses, 0 where labels == -100; compare with one pass's `reduction="none"` losses.
    """
    decoder_input_ids = shift_right(labels, decoder_start_token_id, pad_token_id)  # (B, T)
    losses = torch.zeros(labels.shape, dtype=torch.float32, device=labels.device)
    for t in range(labels.shape[1]):
        logits = model(input_ids=input_ids, attention_mask=attention_mask,
                       decoder_input_ids=decoder_input_ids[:, : t + 1]).logits  # (B, t + 1, V)
        losses[:, t] = masked_cross_entropy(logits[:, -1], labels[:, t], reduction="none")
    return losses


def pick_spread(items: list, n: int, key) -> list:
    """`n` items spanning the range of `key(item)`: the smallest, the largest and evenly in between (sorted)."""
    if not 1 <= n <= len(items):
        raise ValueError(f"n must be in [1, {len(items)}], got {n}")
    ordered = sorted(items, key=key)
    if n == 1:
        return [ordered[-1]]
    return [ordered[round(i * (len(ordered) - 1) / (n - 1))] for i in range(n)]


# ---------------------------------------------------------------- gradient accumulation


def count_target_tokens(labels: torch.Tensor) -> int:
    return int((labels != IGNORE_INDEX).sum())


def micro_batch_scale(n_tokens: int, total_tokens: int, n_micro_batches: int, accumulation: str) -> float:
    """The factor on micro-batch k's summed loss (n_tokens = n_k, total_tokens = N, n_micro_batches = K)."""
    if accumulation not in ACCUMULATIONS:
        raise ValueError(f"accumulation must be one of {ACCUMULATIONS}, got {accumulation!r}")
    if n_tokens < 1 or total_tokens < n_tokens:
        raise ValueError(f"need 1 <= n_tokens <= total_tokens, got {n_tokens} and {total_tokens}")
    if accumulation == "global_token_mean":
        return 1.0 / total_tokens
    if accumulation == "mean_of_means":
        return 1.0 / (n_micro_batches * n_tokens)
    return 1.0 / n_tokens


def combine_micro_batch_losses(loss_sums: list[float], token_counts: list[int], accumulation: str) -> float:
    """The accumulated loss from each micro-batch's summed loss and its number of real target tokens."""
    if len(loss_sums) != len(token_counts) or not loss_sums:
        raise ValueError("need one token count per micro-batch loss, and at least one micro-batch")
    total = sum(token_counts)
    return sum(loss_sum * micro_batch_scale(count, total, len(loss_sums), accumulation)
               for loss_sum, count in zip(loss_sums, token_counts, strict=True))


def flat_gradient(model: torch.nn.Module) -> torch.Tensor:
    """All parameter gradients as one vector (zeros for parameters without a gradient)."""
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten()
                      for p in model.parameters()])


def flat_parameters(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()]).clone()


def model_loss_gradient(model: torch.nn.Module, batch: dict[str, torch.Tensor],
                        label_smoothing: float = 0.0) -> torch.Tensor:
    """The gradient of the model's own `model(**batch).loss` as one vector (grads are cleared afterwards);
    with `label_smoothing` > 0, of the label-smoothed token mean of its logits instead."""
    model.zero_grad(set_to_none=True)
    output = model(**batch)
    loss = output.loss if not label_smoothing else \
        masked_cross_entropy(output.logits, batch["labels"], label_smoothing=label_smoothing)
    loss.backward()
    gradient = flat_gradient(model)
    model.zero_grad(set_to_none=True)
    return gradient


def accumulated_gradient(model: torch.nn.Module, micro_batches: list[dict[str, torch.Tensor]],
                         accumulation: str = "global_token_mean") -> torch.Tensor:
    """Backward through each micro-batch's summed token loss scaled per `accumulation`; the summed gradient.

    With one micro-batch and "global_token_mean" this is the gradient of `model(**batch).loss`.
    """
    counts = [count_target_tokens(batch["labels"]) for batch in micro_batches]
    model.zero_grad(set_to_none=True)
    for batch, count in zip(micro_batches, counts, strict=True):
        logits = model(**batch).logits  # (B, T, V)
        loss_sum = masked_cross_entropy(logits, batch["labels"], reduction="sum")
        (loss_sum * micro_batch_scale(count, sum(counts), len(micro_batches), accumulation)).backward()
    gradient = flat_gradient(model)
    model.zero_grad(set_to_none=True)
    return gradient


def token_mean_compute_loss(outputs, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
    """A `compute_loss_func` for `Trainer`: summed token loss / `num_items_in_batch` (the accumulated batch's
    real-token count), so accumulation reproduces the full batch's token mean."""
    loss_sum = masked_cross_entropy(outputs["logits"], labels, reduction="sum")
    denominator = num_items_in_batch if num_items_in_batch is not None else count_target_tokens(labels)
    return loss_sum / denominator


class _ListDataset(torch.utils.data.Dataset):
    def __init__(self, features):
        self.features = features

    def __len__(self):
        return len(self.features)

    def __getitem__(self, index):
        return self.features[index]


def seq2seq_collator(features: list[dict[str, list[int]]], pad_token_id: int,
                     decoder_start_token_id: int) -> dict[str, torch.Tensor]:
    """`pad_features` plus `decoder_input_ids = shift_right(labels)`, like `DataCollatorForSeq2Seq(model=...)`:
    the model then needs no labels to run, which a `compute_loss_func` requires (the Trainer pops them)."""
    batch = pad_features(features, pad_token_id)
    batch["decoder_input_ids"] = shift_right(batch["labels"], decoder_start_token_id, pad_token_id)
    return batch


def trainer_sgd_update(model: torch.nn.Module, features: list[dict[str, list[int]]],
                       gradient_accumulation_steps: int, lr: float = 0.1, seed: int = 0,
                       compute_loss_func=None, accepts_loss_kwargs: bool | None = None,
                       label_smoothing_factor: float = 0.0) -> torch.Tensor:
    """One `Seq2SeqTrainer` optimizer step over all `features` (plain SGD, no clipping, constant lr);
    returns the parameter change. Micro-batches hold len(features) / gradient_accumulation_steps examples,
    padded by `seq2seq_collator` with the model config's pad and decoder start ids.

    `accepts_loss_kwargs` overrides what the Trainer reads from the model (None: leave the model as is);
    `label_smoothing_factor` > 0 makes the Trainer compute the loss with its `LabelSmoother`.
    """
    if gradient_accumulation_steps < 1 or len(features) % gradient_accumulation_steps:
        raise ValueError(f"gradient_accumulation_steps must divide the {len(features)} features, "
                         f"got {gradient_accumulation_steps}")
    if accepts_loss_kwargs is not None:
        model.accepts_loss_kwargs = accepts_loss_kwargs
    before = flat_parameters(model)
    with tempfile.TemporaryDirectory() as output_dir:
        args = Seq2SeqTrainingArguments(
            output_dir=output_dir, per_device_train_batch_size=len(features) // gradient_accumulation_steps,
            gradient_accumulation_steps=gradient_accumulation_steps, max_steps=1, learning_rate=lr, optim="sgd",
            lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=0.0, seed=seed,
            eval_strategy="no", save_strategy="no", logging_strategy="no", report_to="none", use_cpu=True,
            disable_tqdm=True, label_smoothing_factor=label_smoothing_factor,
        )
        trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=_ListDataset(features),
                                 data_collator=partial(seq2seq_collator, pad_token_id=model.config.pad_token_id,
                                                       decoder_start_token_id=model.config.decoder_start_token_id),
                                 compute_loss_func=compute_loss_func)
        for callback in (PrinterCallback, ProgressCallback):
            trainer.remove_callback(callback)
        trainer.train()
    model.eval()
    return flat_parameters(model) - before


def update_ratio(update: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """How `update` compares with `reference`: norm ratio, projection <u, r> / <r, r>, cosine, max |u - r|."""
    update, reference = update.double(), reference.double()
    return {
        "norm_ratio": float(update.norm() / reference.norm()),
        "projection": float(update @ reference / (reference @ reference)),
        "cosine": float(F.cosine_similarity(update, reference, dim=0)),
        "max_abs_diff": float((update - reference).abs().max()),
    }


def relative_change(changed: torch.Tensor, reference: torch.Tensor) -> float:
    """||changed - reference|| / ||reference|| (nan if the reference is zero)."""
    norm = float(reference.double().norm())
    return float((changed.double() - reference.double()).norm()) / norm if norm > 0 else math.nan
