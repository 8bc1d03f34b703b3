"""Unit tests of utils/handwritten/teacher_forcing.py: every function, with its edge cases."""

import math

import pytest
import torch
import torch.nn.functional as F

from utils.handwritten.teacher_forcing import (
    IGNORE_INDEX,
    causal_mask,
    decoder_attention_mask_from_labels,
    decoder_self_attention_mask,
    is_shifted_right,
    masked_cross_entropy,
    padding_mask,
    shift_right,
)

LABELS = torch.tensor([[5, 6, 7, 1], [8, 1, IGNORE_INDEX, IGNORE_INDEX]])


# ---------------------------------------------------------------- shift_right


def test_shift_right_prepends_start_and_drops_last():
    out = shift_right(LABELS, decoder_start_token_id=0, pad_token_id=0)
    assert torch.equal(out, torch.tensor([[0, 5, 6, 7], [0, 8, 1, 0]]))


def test_shift_right_start_differs_from_pad():
    # BART-like: start = eos = 2, pad = 1; -100 becomes pad, the start stays 2
    out = shift_right(LABELS, decoder_start_token_id=2, pad_token_id=1)
    assert torch.equal(out, torch.tensor([[2, 5, 6, 7], [2, 8, 1, 1]]))


def test_shift_right_batch_of_one_and_length_one():
    assert torch.equal(shift_right(torch.tensor([[9]]), 3, 0), torch.tensor([[3]]))
    assert torch.equal(shift_right(torch.tensor([[9, 4, 1]]), 3, 0), torch.tensor([[3, 9, 4]]))


def test_shift_right_all_ignored_row_becomes_start_then_pads():
    labels = torch.full((1, 3), IGNORE_INDEX)
    assert torch.equal(shift_right(labels, 7, 0), torch.tensor([[7, 0, 0]]))


def test_shift_right_does_not_modify_labels():
    labels = LABELS.clone()
    shift_right(labels, 0, 0)
    assert torch.equal(labels, LABELS)


def test_shift_right_rejects_bad_input():
    with pytest.raises(ValueError, match="2-D"):
        shift_right(torch.tensor([1, 2, 3]), 0, 0)
    with pytest.raises(ValueError, match="decoder_start_token_id"):
        shift_right(LABELS, None, 0)
    with pytest.raises(ValueError, match="pad_token_id"):
        shift_right(LABELS, 0, None)


# ---------------------------------------------------------------- is_shifted_right


def test_is_shifted_right_accepts_one_shift_only():
    once = shift_right(LABELS, 0, 0)
    assert is_shifted_right(once, LABELS, 0, 0)
    assert not is_shifted_right(LABELS.clamp(min=0), LABELS, 0, 0)  # not shifted at all
    assert not is_shifted_right(shift_right(once, 0, 0), LABELS, 0, 0)  # shifted twice
    assert not is_shifted_right(once[:, :-1], LABELS, 0, 0)  # wrong shape


# ---------------------------------------------------------------- masks


def test_causal_mask_is_lower_triangular():
    mask = causal_mask(3)
    assert mask.dtype == torch.bool
    assert torch.equal(mask, torch.tensor([[True, False, False], [True, True, False], [True, True, True]]))
    assert torch.equal(causal_mask(1), torch.tensor([[True]]))
    with pytest.raises(ValueError, match="length"):
        causal_mask(0)


def test_padding_mask_marks_real_tokens():
    ids = torch.tensor([[4, 5, 0, 0], [0, 3, 1, 0]])
    assert torch.equal(padding_mask(ids, 0), ids != 0)
    assert padding_mask(ids, 99).all()


def test_decoder_attention_mask_from_labels_keeps_the_start_token():
    mask = decoder_attention_mask_from_labels(LABELS)
    assert torch.equal(mask, torch.tensor([[True, True, True, True], [True, True, True, False]]))
    # T5/Marian start from pad: a "decoder_input_ids != pad" rule would hide position 0
    decoder_input_ids = shift_right(LABELS, 0, 0)
    assert not (decoder_input_ids != 0)[:, 0].any() and mask[:, 0].all()


def test_decoder_attention_mask_edge_cases():
    all_ignored = torch.full((2, 3), IGNORE_INDEX)
    assert torch.equal(decoder_attention_mask_from_labels(all_ignored),
                       torch.tensor([[True, False, False]] * 2))
    assert torch.equal(decoder_attention_mask_from_labels(torch.tensor([[IGNORE_INDEX]])), torch.tensor([[True]]))


def test_decoder_self_attention_mask_causal_and_not():
    key_mask = torch.tensor([[True, True, False]])
    causal = decoder_self_attention_mask(key_mask, causal=True)
    full = decoder_self_attention_mask(key_mask, causal=False)
    assert causal.shape == full.shape == (1, 1, 3, 3)
    assert torch.equal(full[0, 0], torch.tensor([[True, True, False]] * 3))  # sees the future, not the pad
    assert torch.equal(causal[0, 0], torch.tensor([[True, False, False], [True, True, False], [True, True, False]]))
    assert torch.equal(causal, full & causal_mask(3))


def test_decoder_self_attention_mask_accepts_integer_masks():
    assert torch.equal(decoder_self_attention_mask(torch.tensor([[1, 0]])),
                       decoder_self_attention_mask(torch.tensor([[True, False]])))


# ---------------------------------------------------------------- masked_cross_entropy


def _logits_and_labels(seed: int = 0, batch: int = 3, length: int = 5, vocab: int = 11):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, length, vocab, generator=generator)
    labels = torch.randint(0, vocab, (batch, length), generator=generator)
    labels[0, 3:] = IGNORE_INDEX
    labels[1, 1:] = IGNORE_INDEX
    return logits, labels


def _manual_nll(logits, labels):
    """(B, T) per-position nll written out with loops; 0 at ignored positions."""
    out = torch.zeros(labels.shape)
    for b in range(labels.shape[0]):
        for t in range(labels.shape[1]):
            if labels[b, t] != IGNORE_INDEX:
                out[b, t] = -torch.log_softmax(logits[b, t], dim=-1)[labels[b, t]]
    return out


def test_masked_cross_entropy_every_reduction_on_3d_logits():
    logits, labels = _logits_and_labels()
    nll = _manual_nll(logits, labels)
    real = labels != IGNORE_INDEX
    torch.testing.assert_close(masked_cross_entropy(logits, labels, reduction="none"), nll)
    torch.testing.assert_close(masked_cross_entropy(logits, labels, reduction="sum"), nll.sum())
    torch.testing.assert_close(masked_cross_entropy(logits, labels), nll.sum() / real.sum())
    sequence_means = nll.sum(-1) / real.sum(-1)
    torch.testing.assert_close(masked_cross_entropy(logits, labels, reduction="sequence_mean"), sequence_means.mean())
    # token mean equals torch's own ignore_index mean
    torch.testing.assert_close(masked_cross_entropy(logits, labels),
                               F.cross_entropy(logits.reshape(-1, 11), labels.reshape(-1)))


def test_token_mean_and_sequence_mean_differ_with_uneven_lengths():
    logits, labels = _logits_and_labels()
    token_mean = masked_cross_entropy(logits, labels)
    sequence_mean = masked_cross_entropy(logits, labels, reduction="sequence_mean")
    assert abs(float(token_mean - sequence_mean)) > 1e-3


def test_masked_cross_entropy_2d_logits():
    logits, labels = _logits_and_labels()
    flat_logits, flat_labels = logits.reshape(-1, 11), labels.reshape(-1)
    torch.testing.assert_close(masked_cross_entropy(flat_logits, flat_labels), masked_cross_entropy(logits, labels))
    with pytest.raises(ValueError, match="sequence_mean"):
        masked_cross_entropy(flat_logits, flat_labels, reduction="sequence_mean")


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.5, 1.0])
def test_masked_cross_entropy_label_smoothing_matches_torch(epsilon):
    logits, labels = _logits_and_labels(seed=1)
    expected = F.cross_entropy(logits.reshape(-1, 11), labels.reshape(-1), label_smoothing=epsilon)
    torch.testing.assert_close(masked_cross_entropy(logits, labels, label_smoothing=epsilon), expected)
    expected_sum = F.cross_entropy(logits.reshape(-1, 11), labels.reshape(-1), label_smoothing=epsilon,
                                   reduction="sum")
    torch.testing.assert_close(masked_cross_entropy(logits, labels, label_smoothing=epsilon, reduction="sum"),
                               expected_sum)


def test_masked_cross_entropy_batch_where_every_label_is_ignored():
    logits = torch.randn(2, 3, 5)
    labels = torch.full((2, 3), IGNORE_INDEX)
    assert math.isnan(masked_cross_entropy(logits, labels).item())  # 0 / 0, like torch
    assert math.isnan(F.cross_entropy(logits.reshape(-1, 5), labels.reshape(-1)).item())
    assert masked_cross_entropy(logits, labels, reduction="sum").item() == 0.0
    assert torch.equal(masked_cross_entropy(logits, labels, reduction="none"), torch.zeros(2, 3))
    assert math.isnan(masked_cross_entropy(logits, labels, reduction="sequence_mean").item())  # no sequence counts


def test_sequence_mean_skips_rows_without_tokens():
    logits, labels = _logits_and_labels()
    labels[2] = IGNORE_INDEX
    nll = _manual_nll(logits, labels)
    expected = (nll[0].sum() / 3 + nll[1].sum() / 1) / 2
    torch.testing.assert_close(masked_cross_entropy(logits, labels, reduction="sequence_mean"), expected)


def test_masked_cross_entropy_batch_of_one_length_one():
    logits = torch.randn(1, 1, 4)
    labels = torch.tensor([[2]])
    expected = -torch.log_softmax(logits[0, 0], -1)[2]
    for reduction in ("token_mean", "sequence_mean", "sum"):
        torch.testing.assert_close(masked_cross_entropy(logits, labels, reduction=reduction), expected)


def test_masked_cross_entropy_custom_ignore_index_and_gradient_is_zero_at_ignored():
    logits, labels = _logits_and_labels()
    labels = labels.masked_fill(labels == IGNORE_INDEX, 0)  # pad id 0 as the ignore index
    logits.requires_grad_(True)
    masked_cross_entropy(logits, labels, ignore_index=0).backward()
    assert torch.all(logits.grad[labels == 0] == 0)
    assert logits.grad[labels != 0].abs().sum() > 0


def test_masked_cross_entropy_rejects_bad_arguments():
    logits, labels = _logits_and_labels()
    with pytest.raises(ValueError, match="reduction"):
        masked_cross_entropy(logits, labels, reduction="mean")
    with pytest.raises(ValueError, match="label_smoothing"):
        masked_cross_entropy(logits, labels, label_smoothing=1.5)
    with pytest.raises(ValueError, match="line up"):
        masked_cross_entropy(logits, labels[:, :-1])
