"""The hand-written model: what the causal switch changes, and the HF-like call signature."""

import pytest
import torch

from utils.handwritten.step_loop import step_loop_logits
from utils.handwritten.teacher_forcing import decoder_attention_mask_from_labels, masked_cross_entropy, shift_right
from utils.handwritten.tinfer import TinferConfig, TinferModel, sinusoidal_positions
from utils.workbench.tolerance import compare

VOCAB, PAD, EOS, START = 50, 0, 1, 0


def tiny_model(causal: bool, seed: int = 0) -> TinferModel:
    torch.manual_seed(seed)
    config = TinferConfig(vocab_size=VOCAB, pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=START,
                          d_model=32, n_heads=4, d_ff=64, n_encoder_layers=1, n_decoder_layers=2, causal=causal)
    return TinferModel(config).eval()


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(3, VOCAB, (2, 6), generator=generator)
    labels = torch.randint(3, VOCAB, (2, 5), generator=generator)
    labels[1, 3:] = -100
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels}


def step_by_step_logits(model, batch):
    """Logits of position t from a pass over the prefix decoder_input_ids[:, : t + 1] only (the one step loop)."""
    decoder_input_ids = shift_right(batch["labels"], START, PAD)
    return step_loop_logits(model, batch["input_ids"], batch["attention_mask"], decoder_input_ids)


def test_causal_one_pass_equals_step_by_step(batch):
    model = tiny_model(causal=True)
    decoder_input_ids = shift_right(batch["labels"], START, PAD)
    with torch.no_grad():
        one_pass = model(batch["input_ids"], batch["attention_mask"], decoder_input_ids=decoder_input_ids).logits
    comparison = compare(step_by_step_logits(model, batch), one_pass)
    assert comparison.same, comparison.evidence()


def test_without_causal_mask_one_pass_differs_from_step_by_step(batch):
    model = tiny_model(causal=False)
    decoder_input_ids = shift_right(batch["labels"], START, PAD)
    with torch.no_grad():
        one_pass = model(batch["input_ids"], batch["attention_mask"], decoder_input_ids=decoder_input_ids).logits
    loop = step_by_step_logits(model, batch)
    assert all(compare(loop[:, t], one_pass[:, t]).different for t in range(loop.shape[1] - 1))  # sees later tokens
    assert compare(loop[:, -1], one_pass[:, -1]).same  # the last position has no future


def test_labels_only_gives_shifted_inputs_and_masked_loss(batch):
    model = tiny_model(causal=True)
    with torch.no_grad():
        output = model(batch["input_ids"], batch["attention_mask"], labels=batch["labels"])
        explicit = model(batch["input_ids"], batch["attention_mask"],
                         decoder_input_ids=shift_right(batch["labels"], START, PAD),
                         decoder_attention_mask=decoder_attention_mask_from_labels(batch["labels"]))
        no_padding_mask = model(batch["input_ids"], batch["attention_mask"],
                                decoder_input_ids=shift_right(batch["labels"], START, PAD))
    torch.testing.assert_close(output.logits, explicit.logits)
    real = batch["labels"] != -100  # with the causal mask, padding keys only ever follow the real positions
    torch.testing.assert_close(output.logits[real], no_padding_mask.logits[real])
    torch.testing.assert_close(output.loss, masked_cross_entropy(output.logits, batch["labels"]))


def test_decoder_inputs_embeds_match_ids(batch):
    model = tiny_model(causal=True)
    decoder_input_ids = shift_right(batch["labels"], START, PAD)
    with torch.no_grad():
        from_ids = model(batch["input_ids"], decoder_input_ids=decoder_input_ids).logits
        from_embeds = model(batch["input_ids"], decoder_inputs_embeds=model.embed(decoder_input_ids)).logits
    torch.testing.assert_close(from_ids, from_embeds)


def test_attention_weights_respect_the_mask(batch):
    causal_weights = tiny_model(causal=True)(**batch).decoder_self_attentions[0]  # (B, H, T, T)
    future = torch.ones(5, 5, dtype=torch.bool).triu(diagonal=1)
    assert causal_weights[..., future].abs().max() == 0
    no_mask_weights = tiny_model(causal=False)(**batch).decoder_self_attentions[0]
    assert no_mask_weights[0][..., future].min() > 0  # first row has no padding: it attends to the future
    assert no_mask_weights[1, :, :, 4].abs().max() == 0  # decoder position 4 of row 1 is padding: never attended


def test_same_seed_same_weights_and_bad_inputs():
    first, second = tiny_model(True, seed=3), tiny_model(True, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values(),
                                                  strict=True))
    with pytest.raises(ValueError, match="decoder_input_ids, decoder_inputs_embeds or labels"):
        first(torch.ones(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="divisible"):
        TinferModel(TinferConfig(vocab_size=10, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
                                 d_model=30, n_heads=4))


def test_sinusoidal_positions_follow_the_paper():
    table = sinusoidal_positions(10, 8)
    assert table.shape == (10, 8)
    torch.testing.assert_close(table[:, 0], torch.sin(torch.arange(10.0)))
    torch.testing.assert_close(table[:, 1], torch.cos(torch.arange(10.0)))
    torch.testing.assert_close(table[3, 2], torch.sin(torch.tensor(3.0) / 10000 ** (2 / 8)))
