"""Teacher forcing by hand, in plain PyTorch, mirroring what Hugging Face does inside its models.

- `shift_right`          ~ T5's `_shift_right`, Marian's and BART's `shift_tokens_right`
- `is_shifted_right`     - the check that catches shifting twice, or not at all
- `causal_mask`          ~ the lower-triangular pattern of `transformers.masking_utils.causal_mask_function`
- `padding_mask`         ~ a tokenizer's `attention_mask`
- `decoder_attention_mask_from_labels` ~ the padding mask of the shifted decoder input
- `decoder_self_attention_mask` ~ the 4-D mask a decoder's self-attention applies (padding AND causal)
- `masked_cross_entropy` ~ `CrossEntropyLoss(ignore_index=-100)` in `T5ForConditionalGeneration.forward`
"""

import torch
import torch.nn.functional as F

__all__ = [
    "IGNORE_INDEX",
    "REDUCTIONS",
    "causal_mask",
    "decoder_attention_mask_from_labels",
    "decoder_self_attention_mask",
    "is_shifted_right",
    "masked_cross_entropy",
    "padding_mask",
    "shift_right",
]

IGNORE_INDEX = -100
REDUCTIONS = ("token_mean", "sequence_mean", "sum", "none")


def shift_right(labels: torch.Tensor, decoder_start_token_id: int, pad_token_id: int) -> torch.Tensor:
    """Decoder input ids from labels: prepend the start id, drop the last position, -100 -> pad.

    labels: (B, T) -> decoder_input_ids: (B, T). Position t of the output holds the token the
    decoder sees when it predicts labels[:, t].
    """
    if labels.dim() != 2:
        raise ValueError(f"labels must be 2-D (batch, length), got shape {tuple(labels.shape)}")
    if decoder_start_token_id is None or pad_token_id is None:
        raise ValueError("shift_right needs both decoder_start_token_id and pad_token_id")
    decoder_input_ids = labels.new_full(labels.shape, decoder_start_token_id)
    decoder_input_ids[:, 1:] = labels[:, :-1]
    return decoder_input_ids.masked_fill(decoder_input_ids == IGNORE_INDEX, pad_token_id)


def is_shifted_right(decoder_input_ids: torch.Tensor, labels: torch.Tensor, decoder_start_token_id: int,
                     pad_token_id: int) -> bool:
    """True when `decoder_input_ids == shift_right(labels, ...)`: catches shifting twice or not at all."""
    if decoder_input_ids.shape != labels.shape:
        return False
    return torch.equal(decoder_input_ids, shift_right(labels, decoder_start_token_id, pad_token_id))


def causal_mask(length: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean (length, length): True where query position i may attend to key position j, i.e. j <= i."""
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


def padding_mask(ids: torch.Tensor, pad_token_id: int) -> torch.Tensor:
    """Boolean like `ids`: True at real tokens, False at padding."""
    return ids != pad_token_id


def decoder_attention_mask_from_labels(labels: torch.Tensor) -> torch.Tensor:
    """Key-padding mask for `shift_right(labels)`: the start token and every shifted real label are real.

    Built from labels rather than from `decoder_input_ids != pad`, because T5 and Marian start the
    decoder with the pad id: a "mask every pad" rule would hide the start token itself.
    """
    decoder_attention_mask = torch.ones_like(labels, dtype=torch.bool)
    decoder_attention_mask[:, 1:] = labels[:, :-1] != IGNORE_INDEX
    return decoder_attention_mask


def decoder_self_attention_mask(decoder_attention_mask: torch.Tensor, causal: bool = True) -> torch.Tensor:
    """(B, T) key-padding mask -> (B, 1, T, T) boolean mask, True where attention is allowed.

    With `causal=False` this is the researcher's "masks only for out of bounds": every query sees
    every real key, including the ones after it.
    """
    batch_size, length = decoder_attention_mask.shape
    allowed = decoder_attention_mask.bool()[:, None, None, :].expand(batch_size, 1, length, length)  # (B, 1, T, T)
    if causal:
        allowed = allowed & causal_mask(length, decoder_attention_mask.device)
    return allowed


def masked_cross_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    ignore_index: int = IGNORE_INDEX,
    label_smoothing: float = 0.0,
    reduction: str = "token_mean",
) -> torch.Tensor:
    """Cross-entropy that ignores `labels == ignore_index`.

    logits: (B, T, V) or (N, V); labels: (B, T) or (N,).
    reduction:
      token_mean    - sum over real tokens / number of real tokens in the whole batch (what HF's seq2seq
                      models compute; nan when no token is real, like torch)
      sequence_mean - mean over each sequence's real tokens, then mean over sequences that have any
      sum           - sum over real tokens
      none          - per-position losses, 0 at ignored positions, shaped like labels
    Label smoothing follows `torch.nn.functional.cross_entropy`: (1 - eps) * nll + eps * mean_v(-log p_v).
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} do not line up")
    real = labels != ignore_index
    log_probs = F.log_softmax(logits.float(), dim=-1)
    safe_labels = labels.masked_fill(~real, 0)
    nll = -log_probs.gather(-1, safe_labels.unsqueeze(-1)).squeeze(-1)  # (..., V) at (..., 1) -> (...)
    per_token = (1.0 - label_smoothing) * nll - label_smoothing * log_probs.mean(dim=-1)
    per_token = per_token.masked_fill(~real, 0.0)

    if reduction == "none":
        return per_token
    if reduction == "sum":
        return per_token.sum()
    if reduction == "token_mean":
        return per_token.sum() / real.sum()
    if labels.dim() == 1:
        raise ValueError("reduction='sequence_mean' needs labels shaped (batch, length)")
    tokens_per_sequence = real.sum(dim=-1)
    has_tokens = tokens_per_sequence > 0
    sequence_losses = per_token.sum(dim=-1)[has_tokens] / tokens_per_sequence[has_tokens]
    return sequence_losses.mean()
