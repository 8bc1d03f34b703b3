"""Data parallelism and the loss: global-token normalisation, all-reduce helpers, sharding a global batch.

With data parallelism each rank computes a loss on its own shard and DDP *averages* the gradients over the
`world_size` ranks. If each rank's loss is the token mean of its shard, the update follows the mean of per-rank
token means, not the token mean of the global batch, whenever ranks hold different numbers of target tokens
(the multi-device twin of notebook 03's gradient-accumulation finding). The fix is one all-reduce of the token
count: rank r's loss is `world_size * (summed token loss on r) / (target tokens on all ranks and micro-batches)`,
so that DDP's average gives `(summed token loss everywhere) / (tokens everywhere)`.

    LOSS_NORMALISATIONS  "global": the global token mean (the default); "per_rank": each rank's own token mean
                         (what a plain `model(**batch).loss` under DDP gives; kept for comparison)

Every helper also works without a process group (one process: the all-reduces are the identity).
"""

import hashlib

import torch
import torch.distributed as dist
from torch.nn.utils import parameters_to_vector

from utils.handwritten.teacher_forcing import IGNORE_INDEX, masked_cross_entropy

__all__ = [
    "LOSS_NORMALISATIONS", "all_gather_objects", "all_reduce_sum", "count_tokens",
    "normalised_loss", "parameter_digest", "parameter_spread", "shard_indices", "summed_token_loss",
]

LOSS_NORMALISATIONS = ("global", "per_rank")


def _is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _world_size() -> int:
    return dist.get_world_size() if _is_distributed() else 1


def _rank() -> int:
    return dist.get_rank() if _is_distributed() else 0


def all_reduce_sum(value: torch.Tensor) -> torch.Tensor:
    """The sum of `value` over all ranks (a new tensor; `value` itself when there is no process group)."""
    if not _is_distributed():
        return value
    total = value.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def all_gather_objects(value) -> list:
    """[value of rank 0, value of rank 1, ...] (picklable values; `[value]` in one process)."""
    if not _is_distributed():
        return [value]
    gathered = [None] * _world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def count_tokens(labels: torch.Tensor) -> torch.Tensor:
    """Target tokens (labels != -100) as a 0-d int64 tensor on the labels' device (all-reducible)."""
    return (labels != IGNORE_INDEX).sum()


def _global_token_count(micro_batch_labels: list[torch.Tensor]) -> int:
    """Target tokens of one optimizer step: summed over this rank's micro-batches, then all-reduced over ranks."""
    local = torch.stack([count_tokens(labels) for labels in micro_batch_labels]).sum()
    return int(all_reduce_sum(local))


def summed_token_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The cross-entropy summed over the batch's target tokens, from `model(**batch).logits`."""
    logits = model(**batch).logits  # (B, T, V)
    return masked_cross_entropy(logits.float(), batch["labels"], reduction="sum")


def normalised_loss(loss_sum: torch.Tensor, local_tokens: int, local_step_tokens: int, global_tokens: int,
                    n_ranks: int, normalisation: str = "global") -> torch.Tensor:
    """The loss one micro-batch backpropagates so that DDP's gradient mean gives the wanted step.

    global:   world_size * loss_sum / global_tokens  ->  after DDP's mean: sum over everything / all tokens
    per_rank: loss_sum / local_step_tokens           ->  after DDP's mean: the mean over ranks of rank token means
    (`local_tokens` is this micro-batch's count; unused by both, kept in the signature for the record)
    """
    if normalisation not in LOSS_NORMALISATIONS:
        raise ValueError(f"loss normalisation must be one of {LOSS_NORMALISATIONS}, got {normalisation!r}")
    if normalisation == "global":
        return loss_sum * n_ranks / global_tokens
    return loss_sum / local_step_tokens


def shard_indices(indices: list[int], n_ranks: int, rank_index: int, n_micro_batches: int = 1) -> list[list[int]]:
    """One global batch of example indices -> this rank's micro-batches: contiguous shards, rank-major.

    With 2 ranks and 1 micro-batch, [0..7] gives rank 0 [0..3] and rank 1 [4..7], so the concatenation of the
    ranks' shards is the global batch in order (what a single process on the same batch sees).
    """
    parts = n_ranks * n_micro_batches
    if len(indices) % parts:
        raise ValueError(f"a global batch of {len(indices)} examples does not split into {n_ranks} ranks x "
                         f"{n_micro_batches} micro-batches")
    size = len(indices) // parts
    mine = indices[rank_index * n_micro_batches * size:(rank_index + 1) * n_micro_batches * size]
    return [mine[k * size:(k + 1) * size] for k in range(n_micro_batches)]


def parameter_digest(model: torch.nn.Module) -> str:
    """sha256 of the parameters' bytes: equal digests mean bit-identical parameters."""
    return hashlib.sha256(parameters_to_vector(model.parameters()).detach().cpu().numpy().tobytes()).hexdigest()


def parameter_spread(model: torch.nn.Module) -> float:
    """Largest |parameter on rank i - parameter on rank 0| over ranks and parameters (0.0 in one process)."""
    flat = parameters_to_vector(model.parameters()).detach().cpu()
    gathered = all_gather_objects(flat)
    return max(float((other - gathered[0]).abs().max()) for other in gathered)
