"""Unit tests of utils/handwritten/losses.py: label smoothing, step-by-step teacher forcing, gradient accumulation."""

import math

import pytest
import torch
import torch.nn.functional as F
from transformers import T5Config, T5ForConditionalGeneration

from utils.experiments.trainer_measurements import (
    hf_label_smoother_loss,
    relative_change,
    seq2seq_collator,
    token_mean_compute_loss,
    trainer_sgd_update,
    update_ratio,
)
from utils.handwritten.losses import (
    accumulated_gradient,
    combine_micro_batch_losses,
    count_target_tokens,
    flat_gradient,
    kl_to_targets,
    micro_batch_scale,
    model_loss_gradient,
    smoothed_targets,
    soft_cross_entropy,
    step_by_step_losses,
    target_entropy,
)
from utils.handwritten.teacher_forcing import IGNORE_INDEX, masked_cross_entropy, shift_right
from utils.handwritten.tinfer import TinferConfig, TinferModel
from utils.workbench.probes import pick_spread

VOCAB = 13
PAD = 0


def _logits_and_labels(seed: int = 0, batch: int = 3, length: int = 6):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, length, VOCAB, generator=generator) * 2
    labels = torch.randint(1, VOCAB, (batch, length), generator=generator)
    labels[0, 2:] = IGNORE_INDEX
    labels[2, 4:] = IGNORE_INDEX
    return logits, labels


def _features(lengths, seed: int = 0, vocab: int = VOCAB):
    generator = torch.Generator().manual_seed(seed)
    return [{"input_ids": torch.randint(2, vocab, (4,), generator=generator).tolist() + [1],
             "labels": torch.randint(2, vocab, (n - 1,), generator=generator).tolist() + [1]} for n in lengths]


def _tiny_t5(seed: int = 0) -> T5ForConditionalGeneration:
    torch.manual_seed(seed)
    config = T5Config(vocab_size=VOCAB, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2, dropout_rate=0.0,
                      pad_token_id=PAD, eos_token_id=1, decoder_start_token_id=PAD, feed_forward_proj="relu")
    return T5ForConditionalGeneration(config)


def _tiny_tinfer(causal: bool, seed: int = 0) -> TinferModel:
    torch.manual_seed(seed)
    config = TinferConfig(vocab_size=VOCAB, pad_token_id=PAD, eos_token_id=1, decoder_start_token_id=PAD,
                          d_model=16, n_heads=2, d_ff=32, n_encoder_layers=1, n_decoder_layers=1, dropout=0.0,
                          causal=causal)
    return TinferModel(config).eval()


# ---------------------------------------------------------------- smoothed_targets


def test_uniform_targets_are_torch_definition():
    _, labels = _logits_and_labels()
    targets = smoothed_targets(labels, VOCAB, 0.1)
    real = labels != IGNORE_INDEX
    torch.testing.assert_close(targets[real].sum(-1), torch.ones(int(real.sum())))
    assert torch.all(targets[~real] == 0)
    label_mass = targets[real].gather(-1, labels[real].unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(label_mass, torch.full_like(label_mass, 0.9 + 0.1 / VOCAB))
    assert torch.allclose(targets[real][:, PAD], torch.tensor(0.1 / VOCAB))  # pad gets mass too


def test_others_targets_are_annotated_transformer_definition():
    _, labels = _logits_and_labels()
    labels[1, 0] = PAD  # a pad label is ignored, as in The Annotated Transformer
    targets = smoothed_targets(labels, VOCAB, 0.1, spread="others", pad_token_id=PAD)
    real = (labels != IGNORE_INDEX) & (labels != PAD)
    torch.testing.assert_close(targets[real].sum(-1), torch.ones(int(real.sum())))
    assert torch.all(targets[~real] == 0)
    assert torch.all(targets[..., PAD] == 0)
    label_mass = targets[real].gather(-1, labels[real].unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(label_mass, torch.full_like(label_mass, 0.9))
    other = targets[real].clone()
    other.scatter_(-1, labels[real].unsqueeze(-1), 0.0)
    other[:, PAD] = 0.0
    assert torch.allclose(other[other > 0], torch.tensor(0.1 / (VOCAB - 2)))


def test_smoothed_targets_epsilon_zero_is_one_hot_and_errors():
    _, labels = _logits_and_labels()
    real = labels != IGNORE_INDEX
    targets = smoothed_targets(labels, VOCAB, 0.0)
    assert torch.equal(targets[real], F.one_hot(labels[real], VOCAB).float())
    with pytest.raises(ValueError, match="spread"):
        smoothed_targets(labels, VOCAB, 0.1, spread="gaussian")
    with pytest.raises(ValueError, match="epsilon"):
        smoothed_targets(labels, VOCAB, -0.1)
    with pytest.raises(ValueError, match="pad_token_id"):
        smoothed_targets(labels, VOCAB, 0.1, spread="others")


# ---------------------------------------------------------------- three label-smoothed losses


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.3])
def test_soft_cross_entropy_matches_torch_and_hf(epsilon):
    logits, labels = _logits_and_labels()
    ours = soft_cross_entropy(logits, smoothed_targets(labels, VOCAB, epsilon))
    torch_loss = F.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1), label_smoothing=epsilon)
    torch.testing.assert_close(ours, torch_loss)
    torch.testing.assert_close(hf_label_smoother_loss(logits, labels, epsilon), torch_loss)
    torch.testing.assert_close(masked_cross_entropy(logits, labels, label_smoothing=epsilon), torch_loss)


def test_soft_cross_entropy_reductions():
    logits, labels = _logits_and_labels()
    targets = smoothed_targets(labels, VOCAB, 0.1)
    per_token = soft_cross_entropy(logits, targets, reduction="none")
    assert per_token.shape == labels.shape and torch.all(per_token[labels == IGNORE_INDEX] == 0)
    torch.testing.assert_close(soft_cross_entropy(logits, targets, reduction="sum"), per_token.sum())
    torch_sum = F.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1), label_smoothing=0.1, reduction="sum")
    torch.testing.assert_close(per_token.sum(), torch_sum)
    with pytest.raises(ValueError, match="reduction"):
        soft_cross_entropy(logits, targets, reduction="sequence_mean")
    with pytest.raises(ValueError, match="shape"):
        soft_cross_entropy(logits[:, :-1], targets)


def test_kl_is_cross_entropy_minus_entropy_with_the_same_gradient():
    logits, labels = _logits_and_labels()
    targets = smoothed_targets(labels, VOCAB, 0.1)
    logits_ce = logits.clone().requires_grad_(True)
    logits_kl = logits.clone().requires_grad_(True)
    ce = soft_cross_entropy(logits_ce, targets)
    kl = kl_to_targets(logits_kl, targets)
    torch.testing.assert_close(ce - kl, target_entropy(targets))
    assert float(target_entropy(targets)) > 0.1
    ce.backward()
    kl.backward()
    torch.testing.assert_close(logits_ce.grad, logits_kl.grad)
    # with eps = 0 the entropy of a one-hot target is 0: KL == CE
    one_hot = smoothed_targets(labels, VOCAB, 0.0)
    torch.testing.assert_close(kl_to_targets(logits, one_hot), soft_cross_entropy(logits, one_hot))
    with pytest.raises(ValueError, match="shape"):
        kl_to_targets(logits, targets[..., :-1])


def test_kl_matches_torch_kldivloss_sum_over_tokens():
    logits, labels = _logits_and_labels()
    targets = smoothed_targets(labels, VOCAB, 0.1, spread="others", pad_token_id=PAD)
    expected = torch.nn.KLDivLoss(reduction="sum")(F.log_softmax(logits, -1), targets)
    torch.testing.assert_close(kl_to_targets(logits, targets, reduction="sum"), expected)


def test_every_label_ignored_gives_nan_everywhere():
    logits, _ = _logits_and_labels()
    labels = torch.full(logits.shape[:-1], IGNORE_INDEX)
    targets = smoothed_targets(labels, VOCAB, 0.1)
    values = [
        soft_cross_entropy(logits, targets),
        kl_to_targets(logits, targets),
        F.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1), label_smoothing=0.1),
        hf_label_smoother_loss(logits, labels, 0.1),
    ]
    assert all(math.isnan(float(v)) for v in values)
    assert float(soft_cross_entropy(logits, targets, reduction="sum")) == 0.0


def test_label_smoother_divides_by_num_items_in_batch():
    logits, labels = _logits_and_labels()
    n_tokens = count_target_tokens(labels)
    sum_loss = F.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1), label_smoothing=0.1, reduction="sum")
    torch.testing.assert_close(hf_label_smoother_loss(logits, labels, 0.1, num_items_in_batch=3 * n_tokens),
                               sum_loss / (3 * n_tokens))
    torch.testing.assert_close(hf_label_smoother_loss(logits, labels, 0.1, num_items_in_batch=torch.tensor(n_tokens)),
                               sum_loss / n_tokens)


# ---------------------------------------------------------------- step by step


def _tinfer_batch():
    labels = torch.tensor([[5, 6, 7, 8, 1], [9, 1, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]])
    input_ids = torch.tensor([[3, 4, 1], [6, 1, PAD]])
    return {"input_ids": input_ids, "attention_mask": (input_ids != PAD).long(), "labels": labels}


def test_step_by_step_equals_one_pass_with_a_causal_decoder():
    batch = _tinfer_batch()
    model = _tiny_tinfer(causal=True)
    one_pass = masked_cross_entropy(model(**batch).logits, batch["labels"], reduction="none")
    steps = step_by_step_losses(model, batch["input_ids"], batch["attention_mask"], batch["labels"], PAD, PAD)
    assert steps.shape == batch["labels"].shape
    assert torch.all(steps[batch["labels"] == IGNORE_INDEX] == 0)
    torch.testing.assert_close(steps, one_pass, atol=1e-5, rtol=0)


def test_step_by_step_differs_from_one_pass_without_causal_mask():
    batch = _tinfer_batch()
    model = _tiny_tinfer(causal=False)
    one_pass = masked_cross_entropy(model(**batch).logits, batch["labels"], reduction="none")
    steps = step_by_step_losses(model, batch["input_ids"], batch["attention_mask"], batch["labels"], PAD, PAD)
    assert (steps - one_pass).abs().max() > 1e-3
    # the last position of a full-length row sees the same keys either way; earlier positions saw the future
    torch.testing.assert_close(steps[0, -1], one_pass[0, -1], atol=1e-5, rtol=0)


def test_step_by_step_with_hf_t5():
    model = _tiny_t5().eval()
    batch = pad_batch(_features([2, 5, 3]))
    one_pass = masked_cross_entropy(model(**batch).logits, batch["labels"], reduction="none")
    steps = step_by_step_losses(model, batch["input_ids"], batch["attention_mask"], batch["labels"], PAD, PAD)
    torch.testing.assert_close(steps, one_pass, atol=1e-5, rtol=0)


def pad_batch(features):
    return seq2seq_collator(features, PAD, PAD)


# ---------------------------------------------------------------- picking lengths, collating


def test_pick_spread_spans_the_range():
    features = _features([4, 2, 9, 3, 7, 5, 6])
    length = lambda feature: len(feature["labels"])  # noqa: E731
    assert [length(f) for f in pick_spread(features, 3, length)] == [2, 5, 9]
    assert [length(f) for f in pick_spread(features, 7, length)] == [2, 3, 4, 5, 6, 7, 9]
    assert [length(f) for f in pick_spread(features, 1, length)] == [9]
    assert pick_spread(["ccc", "a", "bb"], 2, len) == ["a", "ccc"]
    for n in (0, 8):
        with pytest.raises(ValueError, match="n must be"):
            pick_spread(features, n, length)


def test_seq2seq_collator_adds_shifted_decoder_inputs():
    batch = seq2seq_collator(_features([2, 4]), pad_token_id=PAD, decoder_start_token_id=7)
    assert set(batch) == {"input_ids", "attention_mask", "labels", "decoder_input_ids"}
    assert torch.equal(batch["decoder_input_ids"], shift_right(batch["labels"], 7, PAD))
    assert batch["labels"][0, 2:].eq(IGNORE_INDEX).all()


# ---------------------------------------------------------------- accumulation arithmetic


def test_micro_batch_scales():
    assert micro_batch_scale(3, 12, 2, "global_token_mean") == pytest.approx(1 / 12)
    assert micro_batch_scale(3, 12, 2, "mean_of_means") == pytest.approx(1 / 6)
    assert micro_batch_scale(3, 12, 2, "sum_of_means") == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="accumulation"):
        micro_batch_scale(3, 12, 2, "mean")
    with pytest.raises(ValueError, match="n_tokens"):
        micro_batch_scale(0, 12, 2, "global_token_mean")
    with pytest.raises(ValueError, match="n_tokens"):
        micro_batch_scale(13, 12, 2, "global_token_mean")


def test_combine_micro_batch_losses():
    sums, counts = [6.0, 30.0], [2, 10]  # micro means 3 and 3: every rule but the sum agrees
    assert combine_micro_batch_losses(sums, counts, "global_token_mean") == pytest.approx(3.0)
    assert combine_micro_batch_losses(sums, counts, "mean_of_means") == pytest.approx(3.0)
    assert combine_micro_batch_losses(sums, counts, "sum_of_means") == pytest.approx(6.0)
    sums = [2.0, 30.0]  # micro means 1 and 3, token mean 32 / 12
    assert combine_micro_batch_losses(sums, counts, "global_token_mean") == pytest.approx(32 / 12)
    assert combine_micro_batch_losses(sums, counts, "mean_of_means") == pytest.approx(2.0)
    assert combine_micro_batch_losses([5.0], [4], "mean_of_means") == pytest.approx(1.25)
    with pytest.raises(ValueError, match="one token count"):
        combine_micro_batch_losses([1.0], [1, 2], "global_token_mean")
    with pytest.raises(ValueError, match="one token count"):
        combine_micro_batch_losses([], [], "global_token_mean")


def test_count_target_tokens():
    assert count_target_tokens(torch.tensor([[1, 2, IGNORE_INDEX], [IGNORE_INDEX] * 3])) == 2


def test_accumulated_gradient_token_weighted_equals_full_batch():
    model = _tiny_t5()
    features = _features([2, 3, 8, 9])
    full = pad_batch(features)
    micro = [pad_batch(features[:2]), pad_batch(features[2:])]
    reference = model_loss_gradient(model, full)
    torch.testing.assert_close(accumulated_gradient(model, [full]), reference, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(accumulated_gradient(model, micro, "global_token_mean"), reference,
                               atol=1e-6, rtol=1e-5)
    mean_of_means = accumulated_gradient(model, micro, "mean_of_means")
    assert relative_change(mean_of_means, reference) > 1e-2
    sum_of_means = accumulated_gradient(model, micro, "sum_of_means")
    torch.testing.assert_close(sum_of_means, 2 * mean_of_means, atol=1e-6, rtol=1e-5)
    assert all(p.grad is None for p in model.parameters())  # grads are cleared
    with pytest.raises(ValueError, match="accumulation"):
        accumulated_gradient(model, micro, "median")


def test_model_loss_gradient_with_label_smoothing():
    model = _tiny_t5()
    batch = pad_batch(_features([2, 6]))
    logits = model(**batch).logits
    loss = F.cross_entropy(logits.reshape(-1, VOCAB), batch["labels"].reshape(-1), label_smoothing=0.2)
    expected = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)
    expected = torch.cat([(g if g is not None else torch.zeros_like(p)).flatten()
                          for g, p in zip(expected, model.parameters(), strict=True)])
    torch.testing.assert_close(model_loss_gradient(model, batch, label_smoothing=0.2), expected)
    assert relative_change(model_loss_gradient(model, batch), expected) > 1e-3


def test_flat_gradient():
    model = torch.nn.Linear(2, 3)
    assert flat_gradient(model).shape == (9,) and not flat_gradient(model).any()
    model(torch.ones(1, 2)).sum().backward()
    assert torch.equal(flat_gradient(model)[6:], torch.ones(3))


def test_token_mean_compute_loss():
    logits, labels = _logits_and_labels()
    outputs = {"logits": logits}
    torch.testing.assert_close(token_mean_compute_loss(outputs, labels), masked_cross_entropy(logits, labels))
    total = masked_cross_entropy(logits, labels, reduction="sum")
    torch.testing.assert_close(token_mean_compute_loss(outputs, labels, num_items_in_batch=40), total / 40)


def test_update_ratio_and_relative_change():
    reference = torch.tensor([1.0, 0.0, 0.0])
    ratio = update_ratio(torch.tensor([2.0, 0.0, 0.0]), reference)
    assert ratio == {"norm_ratio": 2.0, "projection": 2.0, "cosine": 1.0, "max_abs_diff": 1.0}
    orthogonal = update_ratio(torch.tensor([0.0, 3.0, 0.0]), reference)
    assert orthogonal["cosine"] == pytest.approx(0.0) and orthogonal["projection"] == 0.0
    assert relative_change(torch.tensor([1.0, 1.0, 0.0]), reference) == pytest.approx(1.0)
    assert math.isnan(relative_change(reference, torch.zeros(3)))


# ---------------------------------------------------------------- Seq2SeqTrainer


def test_trainer_sgd_update_single_step_is_minus_lr_times_gradient():
    features = _features([2, 3, 8, 9])
    reference = -0.5 * model_loss_gradient(_tiny_t5(), pad_batch(features))
    update = trainer_sgd_update(_tiny_t5(), features, gradient_accumulation_steps=1, lr=0.5)
    torch.testing.assert_close(update, reference, atol=1e-6, rtol=1e-4)
    # the token-mean compute_loss_func makes accumulation exact
    fixed = trainer_sgd_update(_tiny_t5(), features, gradient_accumulation_steps=2, lr=0.5,
                               compute_loss_func=token_mean_compute_loss)
    torch.testing.assert_close(fixed, reference, atol=1e-6, rtol=1e-4)
    smoothed_reference = -0.5 * model_loss_gradient(_tiny_t5(), pad_batch(features), label_smoothing=0.1)
    assert relative_change(smoothed_reference, reference) > 1e-3
    smoothed = trainer_sgd_update(_tiny_t5(), features, gradient_accumulation_steps=2, lr=0.5,
                                  label_smoothing_factor=0.1)
    torch.testing.assert_close(smoothed, smoothed_reference, atol=1e-6, rtol=1e-4)
    with pytest.raises(ValueError, match="divide"):
        trainer_sgd_update(_tiny_t5(), features, gradient_accumulation_steps=3)
