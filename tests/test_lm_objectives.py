"""Unit tests for utils/experiments/lm_objectives.py: span corruption (property-style, seeded loops), the causal-LM
loss, masked-LM replacement counting, token-weighted perplexity, model builders and the BPE study."""

import math
import random
from types import SimpleNamespace

import matplotlib
import pytest
import torch
from transformers import DataCollatorForLanguageModeling

from utils.experiments.lm_objectives import (
    ReplacementCounts,
    _gpt2_config,
    _roberta_config,
    build_causal_lm,
    build_masked_lm,
    check_span_corruption,
    count_mlm_replacements,
    count_spans,
    dynamic_mlm_loss_fn,
    masked_lm_nll_by_replacement,
    measure_mlm_replacements,
    noise_span_counts,
    pack_sequences,
    perplexity,
    plot_attention,
    prefix_consistency,
    random_spans_noise_mask,
    shifted_causal_lm_loss,
    span_corrupt,
    span_corruption_features,
    span_uncorrupt,
    t5_sentinel_ids,
    token_weighted_nll,
    train_byte_level_bpe,
    vocab_size_study,
)
from utils.handwritten.teacher_forcing import IGNORE_INDEX
from utils.workbench.models import SIZES
from utils.workbench.tokenizers import load_tokenizer

matplotlib.use("Agg")

SENTINELS = [1000 - i for i in range(100)]  # like T5: <extra_id_0> is the highest id
N_PROPERTY_CASES = 400


@pytest.fixture(scope="module")
def bpe():
    return load_tokenizer("bart")


@pytest.fixture(scope="module")
def t5_tokenizer():
    return load_tokenizer("t5")


def random_ids(rng: random.Random, length: int) -> list[int]:
    return [rng.randrange(3, 900) for _ in range(length)]


# ---------------------------------------------------------------- noise mask


@pytest.mark.parametrize(("length", "density", "mean_span", "expected"), [
    (64, 0.15, 3.0, (10, 3)),  # round(9.6) = 10 tokens, round(10 / 3) = 3 spans
    (2, 0.15, 3.0, (1, 1)),  # at least one noise token and one span
    (10, 0.5, 1.0, (5, 5)),
    (3, 0.9, 3.0, (2, 1)),  # at most length - 1 noise tokens: one token is always kept
    (100, 0.15, 100.0, (15, 1)),
])
def test_noise_span_counts(length, density, mean_span, expected):
    assert noise_span_counts(length, density, mean_span) == expected


@pytest.mark.parametrize(("length", "density", "mean_span"), [(1, 0.15, 3.0), (0, 0.15, 3.0), (10, 0.0, 3.0),
                                                               (10, 1.0, 3.0), (10, 0.15, 0.5)])
def test_noise_span_counts_rejects_bad_input(length, density, mean_span):
    with pytest.raises(ValueError):
        noise_span_counts(length, density, mean_span)


def test_noise_mask_properties_over_random_lengths():
    rng = random.Random(0)
    for _ in range(N_PROPERTY_CASES):
        length = rng.randint(2, 400)
        density = rng.choice([0.05, 0.15, 0.3, 0.5])
        mean_span = rng.choice([1.0, 2.0, 3.0, 5.0])
        mask = random_spans_noise_mask(length, density, mean_span, random.Random(rng.random()))
        n_noise, n_spans = noise_span_counts(length, density, mean_span)
        assert len(mask) == length
        assert sum(mask) == n_noise
        assert count_spans(mask) == n_spans
        assert mask[0] is False and mask[-1] is True  # kept first, noise last, as in T5


def test_noise_mask_is_seeded_and_varies():
    first = random_spans_noise_mask(200, rng=random.Random(1))
    assert first == random_spans_noise_mask(200, rng=random.Random(1))
    assert any(random_spans_noise_mask(200, rng=random.Random(seed)) != first for seed in range(2, 6))


def test_noise_span_lengths_average_near_the_mean_on_long_sequences():
    rng = random.Random(0)
    masks = [random_spans_noise_mask(512, 0.15, 3.0, rng) for _ in range(20)]
    mean_length = sum(map(sum, masks)) / sum(map(count_spans, masks))
    assert abs(mean_length - 3.0) < 0.1  # 77 noise tokens in 26 spans: 2.96


def test_count_spans():
    assert count_spans([]) == 0
    assert count_spans([False, False]) == 0
    assert count_spans([True, True, False, True, False, False, True]) == 3


# ---------------------------------------------------------------- span corruption


def test_span_corrupt_reproduces_t5_figure_2():
    # "Thank you for inviting me to your party last week ." as one id per word
    thank, you, for_, inviting, me, to, your, party, last, week, dot = range(10, 21)
    ids = [thank, you, for_, inviting, me, to, your, party, last, week, dot]
    mask = [False, False, True, True, False, False, False, False, True, False, False]
    x, y, z = SENTINELS[:3]
    inputs, targets = span_corrupt(ids, mask, SENTINELS)
    assert inputs == [thank, you, x, me, to, your, party, y, week, dot]
    assert targets == [x, for_, inviting, y, last, z]


def test_span_corrupt_edge_masks():
    ids = [5, 6, 7, 8]
    assert span_corrupt(ids, [False] * 4, SENTINELS) == (ids, [])  # nothing dropped: no sentinel at all
    s0, s1 = SENTINELS[:2]
    assert span_corrupt(ids, [True] * 4, SENTINELS) == ([s0], [s0, 5, 6, 7, 8])
    assert span_corrupt(ids, [True, False, False, True], SENTINELS) == ([s0, 6, 7, s1], [s0, 5, s1, 8])
    assert span_corrupt(ids, [True, False, False, False], SENTINELS) == ([s0, 6, 7, 8], [s0, 5, s1])


def test_span_corrupt_rejects_bad_input():
    with pytest.raises(ValueError, match="noise mask"):
        span_corrupt([1, 2, 3], [True, False], SENTINELS)
    with pytest.raises(ValueError, match="sentinel"):
        span_corrupt([1, SENTINELS[5], 3], [True, False, False], SENTINELS)
    with pytest.raises(ValueError, match="sentinels needed"):
        span_corrupt([1, 2, 3, 4], [True, False, True, False], SENTINELS[:2])


def test_span_corruption_invariants_over_random_sequences():
    """Property test: T5 masks on random sequences of random length keep every invariant."""
    rng = random.Random(1)
    for _ in range(N_PROPERTY_CASES):
        ids = random_ids(rng, rng.randint(2, 300))
        density, mean_span = rng.choice([0.15, 0.3]), rng.choice([2.0, 3.0])
        mask = random_spans_noise_mask(len(ids), density, mean_span, rng)
        inputs, targets = span_corrupt(ids, mask, SENTINELS)
        check = check_span_corruption(ids, mask, inputs, targets, SENTINELS, density, mean_span)
        assert check.holds, check
        dropped = [t for t, noisy in zip(ids, mask, strict=True) if noisy]
        assert [t for t in targets if t not in SENTINELS] == dropped  # every dropped token once, in order
        assert len(inputs) + len(targets) == len(ids) + 2 * check.n_spans  # T5 masks end noisy: no closing sentinel


def test_span_uncorrupt_round_trips_any_mask():
    """Arbitrary Bernoulli masks (noise first, kept last, all kept, ...) are undone exactly."""
    rng = random.Random(2)
    for _ in range(N_PROPERTY_CASES):
        ids = random_ids(rng, rng.randint(1, 120))
        mask = [rng.random() < rng.choice([0.1, 0.5, 0.9]) for _ in ids]
        inputs, targets = span_corrupt(ids, mask, SENTINELS)
        assert span_uncorrupt(inputs, targets, SENTINELS) == ids
        n_spans = count_spans(mask)
        assert [t for t in inputs if t in SENTINELS] == SENTINELS[:n_spans]


def test_span_uncorrupt_rejects_malformed_targets():
    s0, s1 = SENTINELS[:2]
    with pytest.raises(ValueError, match="start with a sentinel"):
        span_uncorrupt([1, s0], [7, s0, 8], SENTINELS)
    with pytest.raises(ValueError, match="missing"):
        span_uncorrupt([1, s0, 2, s1], [s0, 8], SENTINELS)


def test_check_span_corruption_catches_tampering():
    rng = random.Random(3)
    ids = random_ids(rng, 64)
    mask = random_spans_noise_mask(64, 0.15, 3.0, rng)
    inputs, targets = span_corrupt(ids, mask, SENTINELS)
    assert check_span_corruption(ids, mask, inputs, targets, SENTINELS).holds

    swapped = targets.copy()
    i, j = [k for k, t in enumerate(targets) if t not in SENTINELS][:2]  # the first two dropped tokens
    assert targets[i] != targets[j]
    swapped[i], swapped[j] = swapped[j], swapped[i]
    check = check_span_corruption(ids, mask, inputs, swapped, SENTINELS)
    assert not check.dropped_in_targets_in_order and not check.reconstructs and not check.holds

    renumbered = [SENTINELS[1] if t == SENTINELS[0] else SENTINELS[0] if t == SENTINELS[1] else t for t in inputs]
    assert not check_span_corruption(ids, mask, renumbered, targets, SENTINELS).sentinels_numbered

    duplicated = targets + [targets[-1]]  # a dropped token twice
    check = check_span_corruption(ids, mask, inputs, duplicated, SENTINELS)
    assert not check.dropped_in_targets_in_order and not check.lengths_match

    check = check_span_corruption(ids, mask, inputs[1:], targets, SENTINELS)  # the first kept token lost
    assert not check.kept_in_inputs_in_order and not check.lengths_match and not check.holds

    dense = random_spans_noise_mask(64, 0.3, 3.0, rng)  # another density than the one checked against
    check = check_span_corruption(ids, dense, *span_corrupt(ids, dense, SENTINELS), SENTINELS, 0.15, 3.0)
    assert not check.density_matches and not check.holds


def test_pack_sequences():
    sequences = [[1, 2, 3], [4, 5], [6, 7, 8, 9], [10]]
    assert pack_sequences(sequences, 4) == [[1, 2, 3, 4], [5, 6, 7, 8]]  # remainder [9, 10] dropped
    assert pack_sequences(sequences, 20) == []
    assert pack_sequences([], 4) == []
    with pytest.raises(ValueError):
        pack_sequences(sequences, 1)


def test_span_corruption_features_append_eos_and_are_seeded():
    rng = random.Random(4)
    sequences = [random_ids(rng, 64) for _ in range(20)]
    features = span_corruption_features(sequences, SENTINELS, eos_token_id=1, seed=7)
    assert features == span_corruption_features(sequences, SENTINELS, eos_token_id=1, seed=7)
    assert features != span_corruption_features(sequences, SENTINELS, eos_token_id=1, seed=8)
    for sequence, feature in zip(sequences, features, strict=True):
        assert feature["input_ids"][-1] == 1 and feature["labels"][-1] == 1
        assert span_uncorrupt(feature["input_ids"][:-1], feature["labels"][:-1], SENTINELS) == sequence
        assert len(feature["labels"]) == 10 + 3 + 1  # 10 noise tokens, 3 sentinels, eos


def test_t5_sentinel_ids(t5_tokenizer):
    ids = t5_sentinel_ids(t5_tokenizer, 3)
    assert ids == [len(t5_tokenizer) - 1, len(t5_tokenizer) - 2, len(t5_tokenizer) - 3]
    assert t5_tokenizer.convert_ids_to_tokens(ids[0]) == "<extra_id_0>"
    with pytest.raises(ValueError, match="sentinel"):
        t5_sentinel_ids(t5_tokenizer, 101)


# ---------------------------------------------------------------- causal LM


def test_shifted_causal_lm_loss_scores_the_next_token():
    labels = torch.tensor([[4, 7, 2, 9], [3, 5, IGNORE_INDEX, IGNORE_INDEX]])
    logits = torch.full((2, 4, 10), -20.0)
    for b in range(2):
        for t in range(3):
            if labels[b, t + 1] != IGNORE_INDEX:
                logits[b, t, labels[b, t + 1]] = 20.0  # position t is sure of token t + 1
    assert shifted_causal_lm_loss(logits, labels) < 1e-6
    unshifted = torch.nn.functional.cross_entropy(logits.reshape(-1, 10), labels.reshape(-1))
    assert unshifted > 10.0
    per_token = shifted_causal_lm_loss(logits, labels, reduction="none")
    assert per_token.shape == (2, 3)


def test_shifted_causal_lm_loss_matches_gpt2(bpe):
    model = build_causal_lm(bpe, seed=0, dropout=0.0).eval()
    input_ids = torch.tensor([[36, 273, 716, 902, 2], [36, 300, 2, 1, 1]])
    labels = input_ids.masked_fill(input_ids == bpe.pad_token_id, IGNORE_INDEX)
    attention_mask = (input_ids != bpe.pad_token_id).long()
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    assert abs(float(out.loss) - float(shifted_causal_lm_loss(out.logits, labels))) < 1e-5


def test_shifted_causal_lm_loss_rejects_misaligned():
    with pytest.raises(ValueError):
        shifted_causal_lm_loss(torch.zeros(2, 4, 5), torch.zeros(2, 3, dtype=torch.long))


def test_prefix_consistency():
    embedding = torch.randn(20, 6, generator=torch.Generator().manual_seed(0))
    ids = torch.tensor([[1, 5, 7, 3, 9]])

    def causal(x):  # position t: the running sum of embeddings up to t
        return embedding[x].cumsum(dim=1)

    def bidirectional(x):  # position t: the mean over the whole sequence
        return embedding[x].mean(dim=1, keepdim=True).expand(-1, x.shape[1], -1)

    assert prefix_consistency(causal, ids).same and prefix_consistency(causal, ids).max_abs_diff < 1e-12
    assert prefix_consistency(bidirectional, ids).different


# ---------------------------------------------------------------- masked LM


def test_count_mlm_replacements_classifies_each_position():
    mask_id = 99
    original = torch.tensor([[0, 10, 11, 12, 13, 14, 2, 1]])
    special = torch.tensor([[1, 0, 0, 0, 0, 0, 1, 1]])
    inputs = torch.tensor([[0, 99, 50, 12, 13, 99, 2, 1]])  # mask, random, unchanged(selected), kept, mask
    labels = torch.tensor([[-100, 10, 11, 12, -100, 14, -100, -100]])
    counts = count_mlm_replacements(original, inputs, labels, mask_id, special)
    assert (counts.n_candidates, counts.n_selected, counts.n_mask, counts.n_random, counts.n_unchanged) == (5, 4, 2,
                                                                                                           1, 1)
    assert counts.n_label_errors == 0 and counts.n_unselected_changed == 0
    assert counts.rates() == {"selected": 0.8, "mask": 0.5, "random": 0.25, "unchanged": 0.25}

    wrong_labels = labels.clone()
    wrong_labels[0, 0] = 0  # a label on a special token (<s> is never selected) ...
    wrong_labels[0, 1] = 77  # ... and a label that is not the original token
    assert count_mlm_replacements(original, inputs, wrong_labels, mask_id, special).n_label_errors == 2
    changed = inputs.clone()
    changed[0, 4] = 55  # an unselected input was changed
    assert count_mlm_replacements(original, changed, labels, mask_id, special).n_unselected_changed == 1


def test_replacement_counts_add_and_empty_rates():
    a = ReplacementCounts(10, 2, 1, 1, 0, 0, 0)
    b = ReplacementCounts(5, 1, 1, 0, 0, 1, 2)
    assert a + b == ReplacementCounts(15, 3, 2, 1, 0, 1, 2)
    assert ReplacementCounts().rates() == {"selected": 0.0, "mask": 0.0, "random": 0.0, "unchanged": 0.0}


def test_measure_mlm_replacements_80_10_10(bpe):
    collator = DataCollatorForLanguageModeling(bpe, mlm=True, mlm_probability=0.15, seed=0)
    lines = ["A crow perched himself on a telephone wire.", "He was going to make a long-distance caw.",
             "Never put off till tomorrow what you can do today."] * 40
    examples = [{"input_ids": ids} for ids in bpe(lines).input_ids]
    counts = measure_mlm_replacements(collator, examples, n_rounds=6, batch_size=32)
    rates = counts.rates()
    assert counts.n_label_errors == 0 and counts.n_unselected_changed == 0
    assert abs(rates["selected"] - 0.15) < 0.02
    assert abs(rates["mask"] - 0.8) < 0.04 and abs(rates["random"] - 0.1) < 0.04
    assert abs(rates["unchanged"] - 0.1) < 0.04
    all_masked = DataCollatorForLanguageModeling(bpe, mlm=True, mask_replace_prob=1.0, random_replace_prob=0.0,
                                                 seed=0)
    assert measure_mlm_replacements(all_masked, examples, n_rounds=1).rates()["mask"] == 1.0


def test_dynamic_mlm_loss_fn_masks_every_call(bpe):
    torch.manual_seed(0)
    model = build_masked_lm(bpe, seed=0, dropout=0.0).eval()
    collator = DataCollatorForLanguageModeling(bpe, mlm=True)
    input_ids = torch.tensor(bpe(["A crow perched himself on a telephone wire."] * 4).input_ids)
    clean = input_ids.clone()
    batch = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": input_ids.clone()}
    loss_fn = dynamic_mlm_loss_fn(collator)
    losses = [float(loss_fn(model, batch).detach()) for _ in range(3)]
    assert all(math.isfinite(loss) for loss in losses)
    assert len(set(losses)) > 1  # a new masking each call
    assert torch.equal(batch["input_ids"], clean)  # the clean batch is not modified in place


# ---------------------------------------------------------------- perplexity


class FixedLogits(torch.nn.Module):
    """A stand-in model: logits depend only on the input ids (uniform except one favoured token)."""

    def __init__(self, vocab_size: int = 8):
        super().__init__()
        self.vocab_size = vocab_size
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None, labels=None):
        logits = torch.zeros(*input_ids.shape, self.vocab_size)
        logits.scatter_(-1, (input_ids % self.vocab_size).unsqueeze(-1), 2.0)
        return SimpleNamespace(logits=logits)


def test_token_weighted_nll_weights_tokens_not_batches():
    model = FixedLogits()
    big = {"input_ids": torch.tensor([[1, 2, 3, 4]] * 3), "labels": torch.tensor([[1, 2, 3, 4]] * 3)}  # favoured
    small = {"input_ids": torch.tensor([[1, 2]]), "labels": torch.tensor([[5, IGNORE_INDEX]])}  # not favoured
    nll, count = token_weighted_nll(model, [big, small], shift=False)
    hit = -math.log(math.exp(2) / (math.exp(2) + 7))
    miss = -math.log(1 / (math.exp(2) + 7))
    assert count == 13
    assert nll == pytest.approx((12 * hit + miss) / 13, rel=1e-6)
    assert nll != pytest.approx((hit + miss) / 2)  # not a mean of batch means
    assert perplexity(nll) == pytest.approx(math.exp(nll))
    shifted_nll, shifted_count = token_weighted_nll(model, [big], shift=True)
    assert shifted_count == 9 and shifted_nll == pytest.approx(miss, rel=1e-6)  # logits[t] favour t, label is t+1
    with pytest.raises(ValueError, match="no scored tokens"):
        token_weighted_nll(model, [{"input_ids": torch.tensor([[1]]), "labels": torch.tensor([[IGNORE_INDEX]])}],
                           shift=False)


def test_masked_lm_nll_by_replacement_splits_kinds():
    model = FixedLogits()
    mask_id = 7
    batch = {"input_ids": torch.tensor([[1, 7, 3, 4]]), "attention_mask": torch.ones(1, 4, dtype=torch.long),
             "labels": torch.tensor([[1, 2, 5, IGNORE_INDEX]])}  # unchanged, mask, random, not scored
    by_kind = masked_lm_nll_by_replacement(model, [batch], mask_id)
    assert {kind: count for kind, (_, count) in by_kind.items()} == {"mask": 1, "random": 1, "unchanged": 1,
                                                                      "all": 3}
    assert by_kind["unchanged"][0] < by_kind["mask"][0]  # the favoured token is the visible answer


# ---------------------------------------------------------------- models, tokenizer study, plots


def test_configs_follow_the_tokenizer_and_size(bpe):
    config = _gpt2_config(bpe, "tiny")
    assert config.vocab_size == len(bpe) and config.n_embd == SIZES["tiny"]["d_model"]
    assert config.n_layer == 2 * SIZES["tiny"]["n_layers"] and config.pad_token_id == bpe.pad_token_id
    config = _roberta_config(bpe, "small", dropout=0.0)
    assert config.hidden_size == SIZES["small"]["d_model"] and config.hidden_dropout_prob == 0.0
    assert config.max_position_embeddings > 256 + bpe.pad_token_id  # RoBERTa positions start after the pad id


def test_builders_are_seeded(bpe):
    a, b, c = build_causal_lm(bpe, seed=3), build_causal_lm(bpe, seed=3), build_causal_lm(bpe, seed=4)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters(), strict=True))
    assert build_masked_lm(bpe, seed=0).config._attn_implementation == "eager"


def test_train_byte_level_bpe_sizes():
    lines = ["the quick brown fox jumps over the lazy dog"] * 20 + ["pack my box with five dozen liquor jugs"] * 20
    tokenizer = train_byte_level_bpe(lines, 280)
    assert tokenizer.get_vocab_size() == 280
    assert tokenizer.token_to_id("<mask>") is not None
    with pytest.raises(ValueError, match="vocab_size"):
        train_byte_level_bpe(lines, 200)


def test_vocab_size_study_lengths_shrink():
    rng = random.Random(0)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "lambda", "omega", "sigma"]
    lines = [" ".join(rng.choice(words) for _ in range(8)) for _ in range(200)]
    rows = vocab_size_study(lines[:150], lines[150:], [270, 300, 400])
    lengths = [row["tokens_per_line"] for row in rows]
    assert lengths[0] > lengths[1] > lengths[2]
    assert rows[0]["chars_per_token"] < rows[2]["chars_per_token"]
    with pytest.raises(ValueError, match="eval_lines"):
        vocab_size_study(lines, [], [300])


def test_plot_attention():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    image = plot_attention(torch.eye(3), ax, "t", tokens=["a", "b", "c"])
    assert image.get_array().shape == (3, 3)
    with pytest.raises(ValueError):
        plot_attention(torch.zeros(1, 3, 3), ax, "t")
    plt.close(fig)
