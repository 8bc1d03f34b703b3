import pytest
import torch

from utils.workbench.batching import make_batches, pad_features
from utils.workbench.device import resolve_device
from utils.workbench.reproducibility import set_seed

FEATURES = [{"input_ids": [5, 6, 1], "labels": [7, 1]}, {"input_ids": [5, 1], "labels": [7, 8, 9, 1]},
            {"input_ids": [4, 1], "labels": [1]}]


def test_pad_features_pads_inputs_with_pad_and_labels_with_minus_100():
    batch = pad_features(FEATURES[:2], pad_token_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 1], [5, 1, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[7, 1, -100, -100], [7, 8, 9, 1]]


def test_make_batches_is_seeded_and_complete():
    first = make_batches(FEATURES, batch_size=2, pad_token_id=0, shuffle=True, seed=1)
    second = make_batches(FEATURES, batch_size=2, pad_token_id=0, shuffle=True, seed=1)
    assert [len(b["input_ids"]) for b in first] == [2, 1]
    assert all(torch.equal(a["labels"], b["labels"]) for a, b in zip(first, second, strict=True))
    with pytest.raises(ValueError, match="batch_size"):
        make_batches(FEATURES, batch_size=0, pad_token_id=0)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="parameter 'device' must be one of"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")


def test_set_seed_repeats_random_draws_and_rejects_bad_seeds():
    set_seed(5)
    first = torch.rand(3)
    set_seed(5)
    assert torch.equal(first, torch.rand(3))
    with pytest.raises(ValueError, match="parameter 'seed'"):
        set_seed(-1)
