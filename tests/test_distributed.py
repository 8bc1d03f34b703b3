"""Global-token normalisation and the sharding of a global batch, checked in one process (ranks simulated)."""

import pytest
import torch

from utils.workbench.distributed import (
    _global_token_count,
    normalised_loss,
    parameter_digest,
    parameter_spread,
    shard_indices,
)


def test_shards_concatenate_to_the_global_batch_rank_major():
    indices = list(range(8))
    shards = [shard_indices(indices, 2, r, n_micro_batches=2) for r in range(2)]
    assert shards == [[[0, 1], [2, 3]], [[4, 5], [6, 7]]]
    assert [i for rank in shards for micro in rank for i in micro] == indices


def test_a_batch_that_does_not_split_is_refused():
    with pytest.raises(ValueError, match="does not split into 2 ranks x 2 micro-batches"):
        shard_indices(list(range(6)), 2, 0, n_micro_batches=2)


def test_without_a_process_group_the_all_reduce_is_the_identity():
    labels = [torch.tensor([[1, 2, -100]]), torch.tensor([[3, -100, -100]])]
    assert _global_token_count(labels) == 3
    model = torch.nn.Linear(2, 2)
    assert parameter_spread(model) == 0.0 and len(parameter_digest(model)) == 64


def test_ddp_mean_of_global_normalised_losses_is_the_global_token_mean():
    """Two simulated ranks with 3 and 1 tokens: DDP averages the ranks' losses (their gradients alike)."""
    token_losses = [torch.tensor([1.0, 2.0, 3.0]), torch.tensor([10.0])]
    counts = [len(t) for t in token_losses]
    total = sum(counts)
    averaged = {norm: sum(normalised_loss(t.sum(), n, n, total, 2, norm) for t, n in zip(token_losses, counts,
                                                                                          strict=True)) / 2
                for norm in ("global", "per_rank")}
    assert averaged["global"] == pytest.approx(16.0 / 4)  # the token mean of everything
    assert averaged["per_rank"] == pytest.approx((2.0 + 10.0) / 2)  # the mean of rank means
    with pytest.raises(ValueError, match="global"):
        normalised_loss(torch.tensor(1.0), 1, 1, 1, 1, "mean")
