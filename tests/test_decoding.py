"""utils.handwritten.decoding against transformers' generate() on tiny random models built from configs."""

import math

import pytest
import torch
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    GPT2Config,
    GPT2LMHeadModel,
    MarianConfig,
    MarianMTModel,
    T5Config,
    T5ForConditionalGeneration,
)
from transformers.generation.logits_process import (
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from utils.handwritten.decoding import (
    StepModel,
    beam_search,
    greedy_decode,
    length_penalty_value,
    process_logits,
    rerank,
    sample_decode,
)
from utils.handwritten.seq2seq import special_token_ids
from utils.handwritten.tinfer import TinferConfig, TinferModel
from utils.workbench.constrained_search import (
    _ConstraintState,
    constrained_beam_search,
    constraints_from_words,
    contains_sequence,
    satisfies,
)

V = 60
SMALL = {"d_model": 16, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2,
         "decoder_attention_heads": 2, "encoder_ffn_dim": 32, "decoder_ffn_dim": 32, "max_position_embeddings": 64}


def _build(family: str):
    torch.manual_seed(0)
    if family == "t5":
        config = T5Config(vocab_size=V, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2, pad_token_id=0,
                          eos_token_id=1, decoder_start_token_id=0, feed_forward_proj="relu")
        return T5ForConditionalGeneration(config).eval()
    if family == "marian":
        config = MarianConfig(vocab_size=V, pad_token_id=V - 1, eos_token_id=0, decoder_start_token_id=V - 1,
                              forced_eos_token_id=0, **SMALL)
        return MarianMTModel(config).eval()
    if family == "bart":
        config = BartConfig(vocab_size=V, pad_token_id=1, eos_token_id=2, bos_token_id=0, decoder_start_token_id=2,
                            forced_eos_token_id=2, **SMALL)
        return BartForConditionalGeneration(config).eval()
    if family == "gpt2":
        config = GPT2Config(vocab_size=V, n_embd=16, n_layer=1, n_head=2, n_positions=64, bos_token_id=V - 1,
                            eos_token_id=V - 1)
        return GPT2LMHeadModel(config).eval()
    config = TinferConfig(vocab_size=V, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, d_model=16,
                          n_heads=2, d_ff=32, n_encoder_layers=1, n_decoder_layers=1)
    return TinferModel(config).eval()


@pytest.fixture(scope="module")
def models():
    return {family: _build(family) for family in ("t5", "marian", "bart", "gpt2", "tinfer")}


@pytest.fixture(scope="module")
def source():
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(3, V - 2, (3, 6), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, 4:] = 0
    return input_ids, attention_mask


@pytest.mark.parametrize("family", ["t5", "marian", "bart"])
@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_matches_generate_seq2seq(models, source, family, use_cache):
    model = models[family]
    input_ids, attention_mask = source
    ours = greedy_decode(model, input_ids, attention_mask, max_new_tokens=9, use_cache=use_cache,
                         forced_eos_token_id=model.generation_config.forced_eos_token_id)
    theirs = model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=9, num_beams=1,
                            do_sample=False, use_cache=use_cache)
    assert torch.equal(ours, theirs)
    assert (ours[:, 0] == model.generation_config.decoder_start_token_id).all()


@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_matches_generate_decoder_only(models, use_cache):
    model = models["gpt2"]
    prompt = torch.randint(0, V - 2, (2, 4), generator=torch.Generator().manual_seed(3))
    ours = greedy_decode(model, prompt, max_new_tokens=8, use_cache=use_cache)
    theirs = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=8,
                            do_sample=False, use_cache=use_cache, pad_token_id=V - 1)
    assert torch.equal(ours, theirs)
    assert torch.equal(ours[:, :4], prompt)


def test_decoder_only_refuses_padded_prompts(models):
    prompt = torch.ones(2, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="unpadded"):
        greedy_decode(models["gpt2"], prompt, torch.tensor([[1, 1, 1, 1], [0, 1, 1, 1]]), max_new_tokens=2)


def test_greedy_pads_after_eos_and_forces_eos(models, source):
    model = models["marian"]
    input_ids, attention_mask = source
    free = greedy_decode(model, input_ids, attention_mask, max_new_tokens=4)
    forced = greedy_decode(model, input_ids, attention_mask, max_new_tokens=4, forced_eos_token_id=0)
    assert forced.shape[1] <= 5
    assert all(0 in row.tolist() for row in forced)  # every row ends with <eos> at the latest at the limit
    for row in forced.tolist():
        after = row[row.index(0) + 1:]
        assert all(token == V - 1 for token in after)  # pad after <eos>
    assert free.shape[1] == 5 or all(0 in row.tolist() for row in free)


def test_stop_at_eos_false_gives_exact_length(models, source):
    input_ids, attention_mask = source
    out = greedy_decode(models["bart"], input_ids, attention_mask, max_new_tokens=7, stop_at_eos=False)
    assert out.shape == (3, 8)


def test_tinfer_greedy_has_no_cache_and_starts_with_start_token(models, source):
    model = models["tinfer"]
    input_ids, attention_mask = source
    out = greedy_decode(model, input_ids, attention_mask, max_new_tokens=5)
    assert (out[:, 0] == 0).all() and out.shape[1] <= 6
    with pytest.raises(ValueError, match="no KV cache"):
        greedy_decode(model, input_ids, attention_mask, max_new_tokens=5, use_cache=True)


def test_tinfer_greedy_equals_argmax_of_full_decode(models, source):
    """Each greedy token is the argmax of a full teacher-forced pass over the prefix so far."""
    model = models["tinfer"]
    input_ids, attention_mask = source
    out = greedy_decode(model, input_ids, attention_mask, max_new_tokens=5, stop_at_eos=False)
    with torch.no_grad():
        logits = model(input_ids, attention_mask, decoder_input_ids=out[:, :-1]).logits  # (B, T, V)
    assert torch.equal(logits.argmax(-1)[:, -1], out[:, -1])


def test_bad_arguments_raise(models, source):
    input_ids, attention_mask = source
    with pytest.raises(ValueError, match="max_new_tokens"):
        greedy_decode(models["t5"], input_ids, attention_mask, max_new_tokens=0)
    with pytest.raises(ValueError, match="length_penalty_form"):
        beam_search(models["t5"], input_ids, attention_mask, length_penalty_form="wu")
    with pytest.raises(ValueError, match="num_return_sequences"):
        beam_search(models["t5"], input_ids, attention_mask, num_beams=2, num_return_sequences=3)
    with pytest.raises(ValueError, match="early_stopping"):
        beam_search(models["t5"], input_ids, attention_mask, early_stopping="sometimes")


def test_special_ids_need_a_start_token(models):
    model = _build("t5")
    model.generation_config.decoder_start_token_id = None
    model.config.decoder_start_token_id = None
    with pytest.raises(ValueError, match="decoder_start_token_id"):
        special_token_ids(model)
    assert special_token_ids(models["gpt2"]).pad_token_id == V - 1  # no pad: eos stands in, as in generate


@pytest.mark.parametrize(("temperature", "top_k", "top_p"),
                         [(0.7, 0, 1.0), (1.0, 5, 1.0), (1.3, 0, 0.8), (0.5, 10, 0.9), (1.0, 500, 1.0), (1.0, 0, 0.0)])
def test_process_logits_matches_hf_warpers(temperature, top_k, top_p):
    logits = torch.randn(4, V, generator=torch.Generator().manual_seed(0)) * 3
    warpers = LogitsProcessorList(
        ([TemperatureLogitsWarper(temperature)] if temperature != 1.0 else [])
        + ([TopKLogitsWarper(top_k)] if top_k else []) + ([TopPLogitsWarper(top_p)] if top_p < 1.0 else []))
    ours, theirs = process_logits(logits, temperature, top_k, top_p), warpers(None, logits)
    assert torch.equal(ours.isinf(), theirs.isinf())
    torch.testing.assert_close(ours.softmax(-1), theirs.softmax(-1), rtol=0, atol=1e-7)
    assert (~ours.isinf()).sum(-1).min() >= 1


def test_process_logits_filters():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    assert process_logits(logits, top_k=2).isinf().tolist() == [[False, False, True, True]]
    assert process_logits(logits, top_p=0.0).isinf().sum() == 3  # top_p = 0 keeps the single best token
    torch.testing.assert_close(process_logits(logits, temperature=2.0), logits / 2)
    with pytest.raises(ValueError, match="temperature"):
        process_logits(logits, temperature=0.0)
    with pytest.raises(ValueError, match="top_p"):
        process_logits(logits, top_p=1.5)


def test_sampling_matches_generate_under_a_shared_seed(models, source):
    model = models["t5"]
    input_ids, attention_mask = source
    torch.manual_seed(7)
    ours = sample_decode(model, input_ids, attention_mask, max_new_tokens=8, temperature=0.8, top_k=10, top_p=0.9)
    torch.manual_seed(7)
    theirs = model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=8, do_sample=True,
                            temperature=0.8, top_k=10, top_p=0.9)
    assert torch.equal(ours, theirs)


def test_sampling_with_a_generator_is_reproducible(models, source):
    input_ids, attention_mask = source
    runs = [sample_decode(models["marian"], input_ids, attention_mask, max_new_tokens=6,
                          generator=torch.Generator().manual_seed(11)) for _ in range(2)]
    assert torch.equal(*runs)


@pytest.mark.parametrize("family", ["t5", "marian", "gpt2"])
@pytest.mark.parametrize(("length_penalty", "early_stopping"), [(1.0, False), (0.0, True), (2.0, "never")])
def test_beam_search_matches_generate(models, source, family, length_penalty, early_stopping):
    model = models[family]
    input_ids, attention_mask = source
    if family == "gpt2":
        input_ids, attention_mask = input_ids[:, :3], torch.ones_like(input_ids[:, :3])
    config = model.generation_config
    ids = special_token_ids(model)
    ours = beam_search(model, input_ids, attention_mask, num_beams=3, max_new_tokens=7, length_penalty=length_penalty,
                       early_stopping=early_stopping, num_return_sequences=2,
                       forced_eos_token_id=config.forced_eos_token_id,
                       fill_value=ids.pad_token_id or ids.eos_token_id)  # generate pads beams with `pad or eos`
    theirs = model.generate(input_ids=input_ids, attention_mask=attention_mask, num_beams=3, max_new_tokens=7,
                            length_penalty=length_penalty, early_stopping=early_stopping, num_return_sequences=2,
                            output_scores=True, return_dict_in_generate=True, pad_token_id=ids.pad_token_id)
    assert torch.equal(ours.sequences, theirs.sequences)
    torch.testing.assert_close(ours.sequences_scores, theirs.sequences_scores, rtol=0, atol=1e-5)


def test_beam_search_without_cache_is_the_same(models, source):
    input_ids, attention_mask = source
    with_cache = beam_search(models["t5"], input_ids, attention_mask, num_beams=3, max_new_tokens=6)
    without = beam_search(models["t5"], input_ids, attention_mask, num_beams=3, max_new_tokens=6, use_cache=False)
    assert torch.equal(with_cache.sequences, without.sequences)


def test_one_beam_is_greedy(models, source):
    input_ids, attention_mask = source
    beam = beam_search(models["t5"], input_ids, attention_mask, num_beams=1, max_new_tokens=6, length_penalty=0.0)
    greedy = greedy_decode(models["t5"], input_ids, attention_mask, max_new_tokens=6)
    assert torch.equal(beam.sequences[:, :greedy.shape[1]], greedy)


def test_length_penalty_forms():
    assert length_penalty_value(4, 1.0, "hf") == 4.0
    assert length_penalty_value(1, 0.6, "gnmt") == 1.0
    assert math.isclose(length_penalty_value(7, 0.6, "gnmt"), 2.0**0.6)
    assert length_penalty_value(9, 0.0, "gnmt") == 1.0
    with pytest.raises(ValueError):
        length_penalty_value(3, 0.6, "google")


def test_rerank_can_flip_between_penalties():
    # a short and a long hypothesis: hf's length**0.6 rewards length more than gnmt's ((5 + length) / 6)**0.6
    candidates = [([0, 5, 1], -2.0, 2), ([0, 5, 6, 7, 8, 9, 1], -3.6, 6)]
    assert rerank(candidates, 0.6, "hf")[0][0] == [0, 5, 6, 7, 8, 9, 1]
    assert rerank(candidates, 0.6, "gnmt")[0][0] == [0, 5, 1]


def test_constraint_state_tracks_phrases_and_alternatives():
    constraints = [[[5, 6]], [[7], [8, 9]]]
    state = _ConstraintState.start(constraints)
    assert state.next_tokens(constraints) == {5, 7, 8}
    state = state.advance(5, constraints)
    assert state.partial[0] == (5,) and state.progress(constraints) == 1
    assert state.next_tokens(constraints) == {6, 7, 8}
    state = state.advance(5, constraints)  # broken phrase restarts at the same token
    assert state.partial[0] == (5,)
    state = state.advance(3, constraints)  # broken phrase, no restart
    assert state.partial[0] == () and state.progress(constraints) == 0
    for token in (5, 6, 8, 9):
        state = state.advance(token, constraints)
    assert state.complete() and state.progress(constraints) == 4 and state.next_tokens(constraints) == set()


def test_satisfies_and_contains():
    assert contains_sequence([1, 2, 3], [2, 3]) and not contains_sequence([1, 2, 3], [3, 2])
    assert not contains_sequence([1], [1, 2])
    assert satisfies([4, 7, 9], [[[7]], [[1], [9]]])
    assert not satisfies([4, 7, 9], [[[7, 4]]])
    assert satisfies([4], [])


@pytest.mark.parametrize("family", ["t5", "tinfer"])
def test_constrained_beam_search_forces_phrases(models, source, family):
    input_ids, attention_mask = source
    constraints = [[[20, 21]], [[30], [31, 32]]]
    out = constrained_beam_search(models[family], input_ids, attention_mask, constraints, num_beams=4,
                                  max_new_tokens=10)
    assert all(out.satisfied)
    for row in out.sequences.tolist():
        assert contains_sequence(row, [20, 21]) and (30 in row or contains_sequence(row, [31, 32]))


def test_constrained_without_room_reports_unsatisfied(models, source):
    input_ids, attention_mask = source
    out = constrained_beam_search(models["t5"], input_ids, attention_mask, [[[20, 21, 22]]], num_beams=2,
                                  max_new_tokens=2)
    assert not any(out.satisfied)
    with pytest.raises(ValueError, match="non-empty"):
        constrained_beam_search(models["t5"], input_ids, attention_mask, [[[]]])


class _WordTokenizer:
    """Stand-in tokenizer: one id per character, special ids 0 and 1."""
    all_special_ids = [0, 1]

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) % 50 + 2 for c in text.strip()] + ([1] if add_special_tokens else [])}


def test_constraints_from_words():
    tokenizer = _WordTokenizer()
    constraints = constraints_from_words(tokenizer, ["ab", ["c", "de"]])
    assert constraints == [[[ord("a") % 50 + 2, ord("b") % 50 + 2]], [[ord("c") % 50 + 2],
                                                                      [ord("d") % 50 + 2, ord("e") % 50 + 2]]]
    with pytest.raises(ValueError, match="alternatives"):
        constraints_from_words(tokenizer, [[]])
    with pytest.raises(ValueError, match="nothing"):
        constraints_from_words(tokenizer, ["  "])


def test_step_model_reorder_follows_rows(models, source):
    input_ids, attention_mask = source
    step_model = StepModel(models["t5"], input_ids, attention_mask)
    start = torch.zeros(3, 1, dtype=torch.long)
    first = step_model.next_logits(start)
    step_model.reorder(torch.tensor([2, 2, 0]))
    fresh = StepModel(models["t5"], input_ids[[2, 2, 0]], attention_mask[[2, 2, 0]])
    tokens = torch.tensor([[0, 5], [0, 6], [0, 7]])
    torch.testing.assert_close(step_model.next_logits(tokens), fresh.next_logits(tokens), rtol=0, atol=1e-5)
    assert first.shape == (3, V)
