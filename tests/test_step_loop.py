"""The one step loop (utils.handwritten.step_loop): every step-by-step number of the collection comes from it.

Its steps must be exactly the calls the callers made before it existed (same operations, bitwise the same logits),
equal one pass for a causal decoder, and differ from it for a decoder that sees the future.
"""

import pytest
import torch
from transformers import BartConfig, BartForConditionalGeneration, MarianConfig, MarianMTModel

from utils.handwritten.losses import step_by_step_losses
from utils.handwritten.step_loop import step_loop, step_loop_logits
from utils.handwritten.teacher_forcing import masked_cross_entropy, shift_right
from utils.handwritten.tinfer import TinferConfig, TinferModel
from utils.workbench.tolerance import compare

VOCAB, PAD, EOS = 40, 0, 1


def hf_model(family: str, attn_implementation: str):
    torch.manual_seed(0)
    dims = {"d_model": 32, "encoder_layers": 1, "decoder_layers": 2, "encoder_attention_heads": 4,
            "decoder_attention_heads": 4, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "max_position_embeddings": 32}
    if family == "marian":
        config, model_class = MarianConfig(vocab_size=VOCAB, pad_token_id=PAD, eos_token_id=EOS,
                                           decoder_start_token_id=PAD, **dims), MarianMTModel
    else:
        config, model_class = BartConfig(vocab_size=VOCAB, pad_token_id=PAD, eos_token_id=EOS, bos_token_id=2,
                                         decoder_start_token_id=EOS, **dims), BartForConditionalGeneration
    config._attn_implementation = attn_implementation
    return model_class(config).eval()


def tinfer(causal: bool) -> TinferModel:
    torch.manual_seed(0)
    return TinferModel(TinferConfig(vocab_size=VOCAB, pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=PAD,
                                    d_model=32, n_heads=4, d_ff=64, n_encoder_layers=1, n_decoder_layers=2,
                                    causal=causal)).eval()


@pytest.fixture(scope="module")
def inputs():
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(2, VOCAB, (2, 5), generator=generator)
    labels = torch.randint(2, VOCAB, (2, 6), generator=generator)
    labels[1, -2:] = -100
    decoder_input_ids = shift_right(labels, PAD, PAD)
    mask = torch.ones_like(decoder_input_ids)
    mask[1, -1] = 0
    return input_ids, labels, decoder_input_ids, mask


def prefix_calls(model, input_ids, decoder_input_ids, mask):
    """The loop as leakage_audit.step_by_step_logits wrote it before: the full model call on every prefix."""
    steps = []
    for end in range(1, decoder_input_ids.shape[1] + 1):
        steps.append(model(input_ids=input_ids, decoder_input_ids=decoder_input_ids[:, :end],
                           decoder_attention_mask=None if mask is None else mask[:, :end]).logits[:, -1])
    return torch.stack(steps, dim=1)


@pytest.mark.parametrize("family, attn", [("marian", "eager"), ("bart", "sdpa")])
def test_steps_are_the_callers_former_calls_bitwise(inputs, family, attn):
    input_ids, _, decoder_input_ids, mask = inputs
    model = hf_model(family, attn)
    with torch.no_grad():
        before = prefix_calls(model, input_ids, decoder_input_ids, mask)
    assert torch.equal(step_loop_logits(model, input_ids, None, decoder_input_ids, mask), before)


def test_steps_yield_one_logit_row_per_target_position(inputs):
    input_ids, _, decoder_input_ids, mask = inputs
    with torch.no_grad():
        steps = list(step_loop(tinfer(True), input_ids, None, decoder_input_ids, mask))
    assert len(steps) == decoder_input_ids.shape[1] and all(s.shape == (2, VOCAB) for s in steps)


@pytest.mark.parametrize("family", ["marian", "bart"])
def test_cache_and_no_cache_equal_one_pass_for_a_causal_decoder(inputs, family):
    input_ids, _, decoder_input_ids, mask = inputs
    model = hf_model(family, "eager")
    with torch.no_grad():
        one_pass = model(input_ids=input_ids, decoder_input_ids=decoder_input_ids, decoder_attention_mask=mask).logits
    for use_cache in (None, False, True):
        comparison = compare(step_loop_logits(model, input_ids, None, decoder_input_ids, mask, use_cache), one_pass)
        assert comparison.same, (use_cache, comparison.evidence())


def test_a_decoder_that_sees_the_future_differs_from_its_steps(inputs):
    input_ids, _, decoder_input_ids, _ = inputs
    model = tinfer(False)
    with torch.no_grad():
        one_pass = model(input_ids=input_ids, decoder_input_ids=decoder_input_ids).logits
    loop = step_loop_logits(model, input_ids, None, decoder_input_ids)
    assert compare(loop[:, :-1], one_pass[:, :-1]).different  # every position but the last saw the future
    assert compare(loop[:, -1], one_pass[:, -1]).same  # the last one sees the whole target either way
    with pytest.raises(ValueError, match="no key/value cache"):
        step_loop_logits(model, input_ids, None, decoder_input_ids, use_cache=True)


def test_step_by_step_losses_are_the_loss_of_each_step(inputs):
    input_ids, labels, decoder_input_ids, _ = inputs
    model = tinfer(True)
    losses = step_by_step_losses(model, input_ids, None, labels, PAD, PAD)
    logits = step_loop_logits(model, input_ids, None, decoder_input_ids)
    assert torch.equal(losses, masked_cross_entropy(logits, labels, reduction="none"))
    assert bool((losses[1, -2:] == 0).all()) and bool((losses[0] > 0).all())


def test_gradients_flow_through_the_steps(inputs):
    input_ids, labels, decoder_input_ids, _ = inputs
    model = tinfer(True)
    total = sum(torch.nn.functional.cross_entropy(logits, labels[:, t], reduction="sum")
                for t, logits in enumerate(step_loop(model, input_ids, None, decoder_input_ids, use_cache=False)))
    total.backward()
    assert all(p.grad is not None for p in model.decoder_layers.parameters())
