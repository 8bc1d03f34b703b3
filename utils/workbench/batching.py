"""Text pairs -> padded tensors, the way `DataCollatorForSeq2Seq` pads them (labels padded with -100)."""

import torch

from utils.handwritten.teacher_forcing import IGNORE_INDEX

__all__ = ["batch_pairs", "make_batches", "pad_features", "tokenize_pairs"]


def tokenize_pairs(tokenizer, pairs: list[tuple[str, str]], source_prefix: str = "",
                   max_length: int = 64) -> list[dict[str, list[int]]]:
    """One feature dict per pair: `input_ids` (source, with eos) and `labels` (target, with eos)."""
    sources = [source_prefix + source for source, _ in pairs]
    targets = [target for _, target in pairs]
    encoded = tokenizer(sources, text_target=targets, truncation=True, max_length=max_length)
    return [{"input_ids": ids, "labels": labels} for ids, labels in zip(encoded["input_ids"], encoded["labels"],
                                                                         strict=True)]


def pad_features(features: list[dict[str, list[int]]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Pad to the longest in the batch: input_ids with pad, attention_mask with 0, labels with -100."""
    source_length = max(len(f["input_ids"]) for f in features)
    target_length = max(len(f["labels"]) for f in features)
    input_ids = torch.full((len(features), source_length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(features), source_length), dtype=torch.long)
    labels = torch.full((len(features), target_length), IGNORE_INDEX, dtype=torch.long)
    for row, feature in enumerate(features):
        input_ids[row, : len(feature["input_ids"])] = torch.tensor(feature["input_ids"])
        attention_mask[row, : len(feature["input_ids"])] = 1
        labels[row, : len(feature["labels"])] = torch.tensor(feature["labels"])
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def batch_pairs(tokenizer, pairs: list[tuple[str, str]], source_prefix: str = "",
                max_length: int = 64) -> dict[str, torch.Tensor]:
    """Tokenize and pad a list of (source, target) pairs into one batch."""
    return pad_features(tokenize_pairs(tokenizer, pairs, source_prefix, max_length), tokenizer.pad_token_id)


def make_batches(features: list[dict[str, list[int]]], batch_size: int, pad_token_id: int,
                 shuffle: bool = False, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Split features into padded batches; with `shuffle`, a seeded permutation (same seed, same batches)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = list(range(len(features)))
    if shuffle:
        order = torch.randperm(len(features), generator=torch.Generator().manual_seed(seed)).tolist()
    return [pad_features([features[i] for i in order[start:start + batch_size]], pad_token_id)
            for start in range(0, len(order), batch_size)]
