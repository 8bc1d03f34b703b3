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
(`ACCUMULATIONS`); `utils.experiments.trainer_measurements` measures what `Seq2SeqTrainer` does instead.
"""


import torch
import torch.nn.functional as F

from utils.handwritten.step_loop import step_loop
from utils.handwritten.teacher_forcing import IGNORE_INDEX, masked_cross_entropy, shift_right

__all__ = [
    "ACCUMULATIONS",
    "SOFT_REDUCTIONS",
    "SPREADS",
    "accumulated_gradient",
    "combine_micro_batch_losses",
    "count_target_tokens",
    "flat_gradient",
    "kl_to_targets",
    "micro_batch_scale",
    "model_loss_gradient",
    "smoothed_targets",
    "soft_cross_entropy",
    "step_by_step_losses",
    "target_entropy",
]

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
    return targets * real.unsqueeze(-1)  # (..., V) * (..., 1)


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


# ---------------------------------------------------------------- teacher forcing, step by step


@torch.no_grad()
def step_by_step_losses(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        labels: torch.Tensor, decoder_start_token_id: int, pad_token_id: int) -> torch.Tensor:
    """Per-position losses of the step loop: step t feeds the gold prefix y_<t, predicts y_t alone.

    Works for HF seq2seq models and `TinferModel` (`utils.handwritten.step_loop`). Returns (B, T) losses, 0 where
    labels == -100; compare with one pass's `reduction="none"` losses.
    """
    decoder_input_ids = shift_right(labels, decoder_start_token_id, pad_token_id)  # (B, T)
    losses = torch.zeros(labels.shape, dtype=torch.float32, device=labels.device)
    for t, logits in enumerate(step_loop(model, input_ids, attention_mask, decoder_input_ids)):  # logits (B, V)
        losses[:, t] = masked_cross_entropy(logits, labels[:, t], reduction="none")
    return losses


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
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten()  # (numel,) each
                      for p in model.parameters()])  # (n_parameters,)


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


