"""The future-leakage audit: it must flag every model that looks ahead and pass every causal one."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch
from torch import nn
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

from utils.handwritten.leakage_audit import (
    LeakageReport,
    allowed_from_attention_mask,
    capture_sdpa_kernel_calls,
    capture_self_attention_masks,
    decoder_input_embeddings,
    decoder_only_embeds_logits_fn,
    decoder_only_logits_fn,
    future_leakage,
    gradient_leakage,
    max_abs_diff_per_position,
    report_from_sensitivity,
    seq2seq_embeds_logits_fn,
    seq2seq_logits_fn,
)
from utils.handwritten.step_loop import step_loop_logits
from utils.handwritten.tinfer import TinferConfig, TinferModel
from utils.workbench.audit_figures import plot_allowed, plot_sensitivity

VOCAB, PAD, EOS = 40, 0, 1
SPECIAL = (PAD, EOS)



@pytest.fixture(scope="module")
def inputs():
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(2, VOCAB, (2, 5), generator=generator)
    decoder_input_ids = torch.randint(2, VOCAB, (2, 6), generator=generator)
    decoder_input_ids[:, 0] = PAD  # T5 / Marian start token
    return input_ids, decoder_input_ids


def tinfer(causal: bool) -> TinferModel:
    torch.manual_seed(0)
    config = TinferConfig(vocab_size=VOCAB, pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=PAD,
                          d_model=32, n_heads=4, d_ff=64, n_encoder_layers=1, n_decoder_layers=2, causal=causal)
    return TinferModel(config).eval()


def hf_seq2seq(family: str, attn_implementation: str = "eager"):
    torch.manual_seed(0)
    dims = {"d_model": 32, "encoder_layers": 1, "decoder_layers": 2, "encoder_attention_heads": 4,
            "decoder_attention_heads": 4, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "max_position_embeddings": 32}
    if family == "t5":
        config = T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_decoder_layers=2,
                          num_heads=4, pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=PAD)
        model_class = T5ForConditionalGeneration
    elif family == "marian":
        config = MarianConfig(vocab_size=VOCAB, pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=PAD,
                              **dims)
        model_class = MarianMTModel
    else:
        config = BartConfig(vocab_size=VOCAB, pad_token_id=PAD, eos_token_id=EOS, bos_token_id=2,
                            decoder_start_token_id=EOS, **dims)
        model_class = BartForConditionalGeneration
    config._attn_implementation = attn_implementation
    return model_class(config).eval()


class TorchTransformer(nn.Module):
    """A plain `torch.nn.Transformer` with embeddings and an output layer; `use_tgt_mask` switches causality."""

    def __init__(self, use_tgt_mask: bool):
        super().__init__()
        torch.manual_seed(0)
        self.use_tgt_mask = use_tgt_mask
        self.embed = nn.Embedding(VOCAB, 32)
        self.positions = nn.Parameter(torch.randn(16, 32))
        self.transformer = nn.Transformer(d_model=32, nhead=4, num_encoder_layers=1, num_decoder_layers=2,
                                          dim_feedforward=64, dropout=0.0, batch_first=True)
        self.output = nn.Linear(32, VOCAB)
        self.eval()

    def forward_embeds(self, input_ids, decoder_inputs_embeds):
        length = decoder_inputs_embeds.shape[1]
        tgt_mask = nn.Transformer.generate_square_subsequent_mask(length) if self.use_tgt_mask else None
        hidden = self.transformer(self.embed(input_ids) + self.positions[: input_ids.shape[1]],
                                  decoder_inputs_embeds + self.positions[:length], tgt_mask=tgt_mask,
                                  tgt_is_causal=self.use_tgt_mask)
        return self.output(hidden)  # (B, T, V)

    def forward(self, input_ids, decoder_input_ids):
        return self.forward_embeds(input_ids, self.embed(decoder_input_ids))


class LeaksOnce(nn.Module):
    """A causal model plus one look-ahead: output position `t` also reads decoder input position `s`."""

    def __init__(self, t: int, s: int):
        super().__init__()
        self.inner, self.t, self.s = tinfer(causal=True), t, s

    def forward(self, decoder_input_ids, input_ids):
        logits = self.inner(input_ids=input_ids, decoder_input_ids=decoder_input_ids).logits.clone()
        table = self.inner.embed_tokens.weight  # (V, d_model)
        logits[:, self.t] += 0.1 * self.inner.embed_tokens(decoder_input_ids[:, self.s]) @ table.T
        return logits


# --- the report ------------------------------------------------------------------------------------------------


def test_report_from_sensitivity_reads_only_the_strict_upper_triangle():
    sensitivity = torch.tensor([[5.0, 0.0, 2e-3], [1.0, 5.0, 0.0], [1.0, 1.0, 5.0]])
    report = report_from_sensitivity(sensitivity, tolerance=1e-3, method="test")
    assert report.leaks and report.leaking_positions == [(0, 2)]
    assert report.max_future_sensitivity == pytest.approx(2e-3)
    assert "LEAKS" in report.summary() and "t=0<-s=2" in report.summary()
    below = report_from_sensitivity(sensitivity, tolerance=1e-2, method="test")
    assert not below.leaks and below.leaking_positions == [] and "no leakage" in below.summary()


def test_report_single_position_has_no_future():
    report = report_from_sensitivity(torch.tensor([[3.0]]), tolerance=0.0, method="test")
    assert not report.leaks and report.max_future_sensitivity == 0.0


def test_report_rejects_non_square():
    with pytest.raises(ValueError, match="square"):
        report_from_sensitivity(torch.zeros(2, 3), 1e-4, "test")


# --- perturbation audit ----------------------------------------------------------------------------------------


def test_handwritten_causal_passes_and_no_mask_leaks_everywhere(inputs):
    input_ids, decoder_input_ids = inputs
    causal = future_leakage(seq2seq_logits_fn(tinfer(True), input_ids), decoder_input_ids, VOCAB,
                            special_ids=SPECIAL)
    assert isinstance(causal, LeakageReport) and not causal.leaks and causal.max_future_sensitivity == 0.0
    assert causal.sensitivity.shape == (6, 6) and bool((causal.sensitivity.diagonal() > 1e-3).all())
    leaky = future_leakage(seq2seq_logits_fn(tinfer(False), input_ids), decoder_input_ids, VOCAB,
                           special_ids=SPECIAL)
    assert leaky.leaks and len(leaky.leaking_positions) == 6 * 5 // 2  # every (t, s) with s > t
    assert leaky.max_future_sensitivity > 1e-2


@pytest.mark.parametrize("family", ["t5", "marian", "bart"])
@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_hf_seq2seq_models_do_not_leak(inputs, family, attn_implementation):
    input_ids, decoder_input_ids = inputs
    model = hf_seq2seq(family, attn_implementation)
    report = future_leakage(seq2seq_logits_fn(model, input_ids), decoder_input_ids, VOCAB, n_trials=2,
                            special_ids=SPECIAL)
    assert not report.leaks, report.summary()
    assert bool((report.sensitivity.tril() > 0).any())  # the past does matter


@pytest.mark.parametrize("use_tgt_mask", [True, False])
def test_torch_transformer_with_and_without_tgt_mask(inputs, use_tgt_mask):
    input_ids, decoder_input_ids = inputs
    model = TorchTransformer(use_tgt_mask)
    report = future_leakage(lambda ids: model(input_ids, ids), decoder_input_ids, VOCAB, special_ids=SPECIAL)
    assert report.leaks is not use_tgt_mask, report.summary()


def test_gpt2_decoder_only_does_not_leak(inputs):
    _, ids = inputs
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=16,
                                       bos_token_id=EOS, eos_token_id=EOS)).eval()
    report = future_leakage(decoder_only_logits_fn(model), ids, VOCAB, n_trials=2)
    assert not report.leaks, report.summary()


def test_leak_at_a_single_position_is_located(inputs):
    input_ids, decoder_input_ids = inputs
    model = LeaksOnce(t=2, s=4)
    report = future_leakage(lambda ids: model(ids, input_ids), decoder_input_ids, VOCAB, special_ids=SPECIAL)
    assert report.leaks and report.leaking_positions == [(2, 4)]
    assert report.sensitivity[2, 4] == report.max_future_sensitivity > 1e-3


def test_same_seed_same_matrix_and_special_ids_never_drawn(inputs):
    input_ids, decoder_input_ids = inputs
    model = tinfer(False)
    seen = []

    def recording_fn(ids):
        seen.append(ids.clone())
        return model(input_ids=input_ids, decoder_input_ids=ids).logits

    first = future_leakage(recording_fn, decoder_input_ids, VOCAB, n_trials=3, special_ids=SPECIAL, seed=7)
    second = future_leakage(seq2seq_logits_fn(model, input_ids), decoder_input_ids, VOCAB, n_trials=3,
                            special_ids=SPECIAL, seed=7)
    assert torch.equal(first.sensitivity, second.sensitivity)
    assert len(seen) == 2 + 6 * 3
    for ids in seen[2:]:
        changed = ids != decoder_input_ids
        assert int(changed.any(dim=0).sum()) == 1  # one position per call, changed in every row
        assert bool(changed.any(dim=1).all())
        assert not bool(torch.isin(ids[changed], torch.tensor(SPECIAL)).any())


def test_dropout_on_is_refused(inputs):
    input_ids, decoder_input_ids = inputs
    model = tinfer(True).train()
    with pytest.raises(ValueError, match="not deterministic"):
        future_leakage(seq2seq_logits_fn(model, input_ids), decoder_input_ids, VOCAB)


def test_bad_inputs_are_refused(inputs):
    input_ids, decoder_input_ids = inputs
    fn = seq2seq_logits_fn(tinfer(True), input_ids)
    with pytest.raises(ValueError, match="batch, T"):
        future_leakage(fn, decoder_input_ids[0], VOCAB)
    with pytest.raises(ValueError, match="n_trials"):
        future_leakage(fn, decoder_input_ids, VOCAB, n_trials=0)
    with pytest.raises(ValueError, match="2 non-special"):
        future_leakage(fn, decoder_input_ids, 2, special_ids=(0,))
    with pytest.raises(ValueError, match="logits shaped"):
        future_leakage(lambda ids: fn(ids)[:, :-1], decoder_input_ids, VOCAB)


# --- gradient audit --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [True, False])
def test_gradient_audit_on_handwritten_model(inputs, causal):
    input_ids, decoder_input_ids = inputs
    model = tinfer(causal)
    embeds = decoder_input_embeddings(model, decoder_input_ids)
    report = gradient_leakage(seq2seq_embeds_logits_fn(model, input_ids), embeds)
    assert report.method == "gradient" and report.leaks is not causal, report.summary()
    assert not embeds.requires_grad  # the caller's tensor is left alone


@pytest.mark.parametrize("family", ["t5", "marian", "bart"])
def test_gradient_audit_on_hf_seq2seq(inputs, family):
    input_ids, decoder_input_ids = inputs
    model = hf_seq2seq(family, "sdpa")
    report = gradient_leakage(seq2seq_embeds_logits_fn(model, input_ids),
                              decoder_input_embeddings(model, decoder_input_ids))
    assert not report.leaks, report.summary()
    assert bool((report.sensitivity.diagonal() > 0).all())


@pytest.mark.parametrize("use_tgt_mask", [True, False])
def test_gradient_audit_on_torch_transformer_and_gpt2(inputs, use_tgt_mask):
    input_ids, decoder_input_ids = inputs
    model = TorchTransformer(use_tgt_mask)
    report = gradient_leakage(lambda e: model.forward_embeds(input_ids, e), model.embed(decoder_input_ids).detach())
    assert report.leaks is not use_tgt_mask
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=1, n_head=4, n_positions=16,
                                      bos_token_id=EOS, eos_token_id=EOS)).eval()
    assert not gradient_leakage(decoder_only_embeds_logits_fn(gpt2),
                                decoder_input_embeddings(gpt2, decoder_input_ids)).leaks


def test_gradient_audit_locates_single_leak(inputs):
    input_ids, decoder_input_ids = inputs
    model = LeaksOnce(t=1, s=3)

    def embeds_fn(embeds):  # the look-ahead reads embeds[:, 3] directly
        logits = model.inner(input_ids=input_ids, decoder_inputs_embeds=embeds).logits.clone()
        logits[:, 1] += 0.1 * embeds[:, 3] @ model.inner.embed_tokens.weight.T
        return logits

    report = gradient_leakage(embeds_fn, decoder_input_embeddings(model.inner, decoder_input_ids))
    assert report.leaking_positions == [(1, 3)]


def test_gradient_audit_refuses_ids():
    with pytest.raises(ValueError, match="d_model"):
        gradient_leakage(lambda e: e, torch.zeros(2, 3, dtype=torch.long))


# --- plotting ---------------------------------------------------------------------------------------------------


def test_plot_sensitivity_draws_heatmap_and_outline():
    report = report_from_sensitivity(torch.tensor([[1.0, 0.5], [0.2, 1.0]]), 1e-4, "test")
    fig, ax = plt.subplots()
    image = plot_sensitivity(report, ax, "toy")
    assert image.get_array().shape == (2, 2)
    assert "LEAKS" in ax.get_title() and "toy" in ax.get_title()
    assert ax.get_xlabel().startswith("perturbed") and len(ax.lines) >= 2  # outline + the one leak marker
    plt.close(fig)


# --- adapters reuse the encoder without changing the logits -----------------------------------------------------


@pytest.mark.parametrize("make", [lambda: tinfer(False), lambda: hf_seq2seq("marian", "sdpa")],
                         ids=["tinfer", "marian"])
def test_reusing_the_encoder_gives_the_full_call_logits(inputs, make):
    input_ids, decoder_input_ids = inputs
    model = make()
    mask = torch.ones_like(decoder_input_ids)
    mask[1, -2:] = 0
    with torch.no_grad():
        full = model(input_ids=input_ids, decoder_input_ids=decoder_input_ids, decoder_attention_mask=mask).logits
        reused = seq2seq_logits_fn(model, input_ids, decoder_attention_mask=mask)(decoder_input_ids)
        rerun = seq2seq_logits_fn(model, input_ids, reuse_encoder=False, decoder_attention_mask=mask)(decoder_input_ids)
    torch.testing.assert_close(reused, full, rtol=0, atol=1e-6)
    torch.testing.assert_close(rerun, full, rtol=0, atol=1e-6)


def test_tinfer_refuses_a_cache_and_unknown_keywords(inputs):
    input_ids, decoder_input_ids = inputs
    with pytest.raises(ValueError, match="no key/value cache"):
        seq2seq_logits_fn(tinfer(True), input_ids, use_cache=True)(decoder_input_ids)
    with pytest.raises(TypeError, match="past_key_values"):
        seq2seq_logits_fn(tinfer(True), input_ids, past_key_values=None)(decoder_input_ids)


# --- captured masks ---------------------------------------------------------------------------------------------


def test_allowed_from_attention_mask_conventions():
    causal = torch.ones(3, 3, dtype=torch.bool).tril()
    assert torch.equal(allowed_from_attention_mask(None, True, 3)[0, 0], causal)
    assert bool(allowed_from_attention_mask(None, False, 3).all())
    assert bool(allowed_from_attention_mask(None, True, 1, 4).all())  # one query with a cache sees every key
    additive = torch.zeros(1, 1, 3, 3).masked_fill(~causal, torch.finfo(torch.float32).min)
    assert torch.equal(allowed_from_attention_mask(additive, None, 3)[0, 0], causal)
    assert torch.equal(allowed_from_attention_mask(additive.masked_fill(~causal, float("-inf")), None, 3)[0, 0], causal)
    assert torch.equal(allowed_from_attention_mask(causal[None, None], None, 3)[0, 0], causal)
    with pytest.raises(ValueError, match="neither 0"):
        allowed_from_attention_mask(additive + 0.5, None, 3)
    with pytest.raises(ValueError, match="4-D"):
        allowed_from_attention_mask(causal, None, 3)
    with pytest.raises(ValueError, match="square"):
        allowed_from_attention_mask(None, True, 2, 3)


@pytest.mark.parametrize("family,attn_implementation,expected_kind",
                         [("t5", "eager", torch.float32), ("marian", "eager", torch.float32), ("bart", "sdpa", None)])
def test_capture_records_every_decoder_layer(inputs, family, attn_implementation, expected_kind):
    input_ids, decoder_input_ids = inputs
    model = hf_seq2seq(family, attn_implementation)
    with capture_self_attention_masks(model) as records, torch.no_grad():
        model(input_ids=input_ids, decoder_input_ids=decoder_input_ids)
    assert len(records) == 2 and all(r["is_causal"] for r in records)  # 2 decoder layers, self-attention only
    mask = records[0]["mask"]
    assert (mask.dtype if mask is not None else None) == expected_kind
    allowed = allowed_from_attention_mask(mask, records[0]["is_causal"], records[0]["query_length"])
    assert torch.equal(allowed[0, 0], torch.ones(6, 6, dtype=torch.bool).tril())
    with torch.no_grad():
        model(input_ids=input_ids, decoder_input_ids=decoder_input_ids)
    assert len(records) == 2  # hooks removed on exit


def test_capture_on_tinfer_sees_the_no_mask_pattern(inputs):
    input_ids, decoder_input_ids = inputs
    model = tinfer(False)
    with capture_self_attention_masks(model) as records, torch.no_grad():
        model(input_ids=input_ids, decoder_input_ids=decoder_input_ids)
    assert len(records) == 2 and bool(records[0]["mask"].all())  # padding only, no padding here: all allowed


@pytest.mark.parametrize("family", ["t5", "bart"])
def test_sdpa_kernel_calls_show_who_applies_causality(inputs, family):
    input_ids, decoder_input_ids = inputs
    model = hf_seq2seq(family, "sdpa")
    with capture_sdpa_kernel_calls(model) as calls, torch.no_grad():
        model(input_ids=input_ids, decoder_input_ids=decoder_input_ids)
    assert len(calls) == 2  # the two decoder self-attention layers; encoder and cross-attention are not recorded
    if family == "bart":
        assert calls[0]["mask"] is None and calls[0]["is_causal"]
    else:  # T5 folds its position bias into an explicit causal mask
        mask = calls[0]["mask"]
        assert not calls[0]["is_causal"] and mask.dtype == torch.float32
        assert torch.equal((mask > torch.finfo(mask.dtype).min / 2)[0, 0], torch.ones(6, 6, dtype=torch.bool).tril())
    assert torch.nn.functional.scaled_dot_product_attention.__name__ == "scaled_dot_product_attention"  # restored


# --- one pass, loop, KV cache -----------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["t5", "bart"])
def test_loop_and_kv_cache_match_one_pass_for_hf(inputs, family):
    input_ids, decoder_input_ids = inputs
    model = hf_seq2seq(family, "eager")
    mask = torch.ones_like(decoder_input_ids)
    mask[0, -1] = 0
    with torch.no_grad():
        one_pass = model(input_ids=input_ids, decoder_input_ids=decoder_input_ids, decoder_attention_mask=mask).logits
    loop = step_loop_logits(model, input_ids, None, decoder_input_ids, mask)
    cached = step_loop_logits(model, input_ids, None, decoder_input_ids, mask, use_cache=True)
    assert loop.shape == cached.shape == one_pass.shape
    assert float(max_abs_diff_per_position(one_pass, loop).max()) < 1e-5
    assert float(max_abs_diff_per_position(one_pass, cached).max()) < 1e-5


def test_loop_exposes_the_no_mask_model(inputs):
    input_ids, decoder_input_ids = inputs
    model = tinfer(False)
    with torch.no_grad():
        one_pass = model(input_ids=input_ids, decoder_input_ids=decoder_input_ids).logits
    diff = max_abs_diff_per_position(one_pass, step_loop_logits(model, input_ids, None, decoder_input_ids))
    assert diff.shape == (6,) and bool((diff[:-1] > 1e-3).all()) and float(diff[-1]) < 1e-5
    with pytest.raises(ValueError, match="no key/value cache"):
        step_loop_logits(model, input_ids, None, decoder_input_ids, use_cache=True)


def test_max_abs_diff_per_position_checks_shapes():
    a = torch.zeros(2, 3, 4)
    b = a.clone()
    b[1, 2, 0] = -0.5
    assert max_abs_diff_per_position(a, b).tolist() == [0.0, 0.0, 0.5]
    with pytest.raises(ValueError, match="shapes differ"):
        max_abs_diff_per_position(a, b[:, :2])


def test_plot_allowed_one_mask_at_a_time():
    fig, ax = plt.subplots()
    image = plot_allowed(torch.ones(3, 3, dtype=torch.bool).tril(), ax, "causal")
    assert image.get_array().shape == (3, 3) and ax.get_title() == "causal"
    with pytest.raises(ValueError, match="one"):
        plot_allowed(torch.ones(1, 3, 3, dtype=torch.bool), ax, "batch")
    plt.close(fig)


def test_plot_allowed_takes_a_mask_from_an_accelerator():
    from utils.workbench.simulated_accelerator import SimulatedAccelerator

    fig, ax = plt.subplots()
    with SimulatedAccelerator():
        on_device = torch.ones(3, 3, dtype=torch.bool).tril().to("cuda")
        assert on_device.device.type == "cuda"
        image = plot_allowed(on_device, ax, "causal on the device")  # moved to the host before numpy
    assert image.get_array().shape == (3, 3)
    plt.close(fig)
