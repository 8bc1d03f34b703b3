"""The auditable-model interface and its adapters: what they accept, what they refuse, and that they are faithful."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration

from utils.experiments.auditable_models import (
    AuditInputError,
    Seq2SeqLMAdapter,
    TorchTransformerAdapter,
    as_auditable,
    check_forward,
    check_interface,
    check_logits,
    move_model,
    set_eval,
)
from utils.handwritten.decoding import greedy_decode
from utils.handwritten.leakage_audit import future_leakage
from utils.handwritten.teacher_forcing import IGNORE_INDEX, shift_right
from utils.handwritten.tinfer import TinferConfig, TinferModel

VOCAB, PAD, EOS = 40, 0, 1



def tinfer(causal: bool = True) -> TinferModel:
    torch.manual_seed(0)
    config = TinferConfig(vocab_size=VOCAB, pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=PAD,
                          d_model=32, n_heads=4, d_ff=64, n_encoder_layers=1, n_decoder_layers=2, causal=causal)
    return TinferModel(config).eval()


def t5() -> T5ForConditionalGeneration:
    torch.manual_seed(0)
    config = T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                      pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=PAD, feed_forward_proj="relu")
    return T5ForConditionalGeneration(config).eval()


def interface(**overrides):
    values = {"vocab_size": VOCAB, "pad_token_id": PAD, "eos_token_id": EOS, "decoder_start_token_id": PAD,
              "forward": lambda input_ids, decoder_input_ids, **masks: torch.zeros(*decoder_input_ids.shape, VOCAB)}
    values.update(overrides)
    return SimpleNamespace(**values)


@pytest.fixture(scope="module")
def labels():
    labels = torch.tensor([[5, 6, 7, EOS], [8, EOS, IGNORE_INDEX, IGNORE_INDEX]])
    return labels


# --- the interface -------------------------------------------------------------------------------------------


def test_check_interface_accepts_a_complete_object():
    obj = interface()
    assert check_interface(obj) is obj


def test_check_interface_names_every_missing_member():
    with pytest.raises(AuditInputError, match=r"has no forward, vocab_size, pad_token_id"):
        check_interface(SimpleNamespace(decoder_start_token_id=0, eos_token_id=1))


@pytest.mark.parametrize("bad, message", [({"eos_token_id": 1.0}, "must be ints"),
                                          ({"pad_token_id": True}, "must be ints"),
                                          ({"decoder_start_token_id": VOCAB}, r"decoder_start_token_id=40"),
                                          ({"vocab_size": 3}, "vocab_size too small")])
def test_check_interface_refuses_bad_ids(bad, message):
    with pytest.raises(AuditInputError, match=message):
        check_interface(interface(**bad))


def test_as_auditable_wraps_tinfer_and_hf_encoder_decoders():
    assert isinstance(as_auditable(tinfer()), Seq2SeqLMAdapter)
    assert isinstance(as_auditable(t5()), Seq2SeqLMAdapter)
    obj = interface()
    assert as_auditable(obj) is obj


def test_as_auditable_refuses_a_bare_nn_transformer_and_decoder_only_models():
    with pytest.raises(AuditInputError, match="TorchTransformerAdapter"):
        as_auditable(nn.Transformer(d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                                    dim_feedforward=16))
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_embd=16, n_layer=1, n_head=2))
    with pytest.raises(AuditInputError, match="not an encoder-decoder"):
        as_auditable(gpt2)
    with pytest.raises(AuditInputError, match="Linear, which has no vocab_size"):
        as_auditable(nn.Linear(3, 3))


# --- logits checks -------------------------------------------------------------------------------------------


def test_check_logits_accepts_the_right_shape():
    logits = torch.zeros(2, 4, VOCAB)
    assert check_logits(logits, 2, 4, VOCAB) is logits


@pytest.mark.parametrize("logits, message", [
    (torch.zeros(4, 2, VOCAB), "sequence first"),
    (torch.zeros(2, VOCAB), "only the last position"),
    (torch.zeros(2, 4, VOCAB - 1), r"got float32 \(2, 4, 39\)"),
    (torch.zeros(2, 4, VOCAB, dtype=torch.long), "got int64"),
    (SimpleNamespace(logits=torch.zeros(2, 4, VOCAB)), r"return its \.logits"),
    ([1, 2], "got a list"),
])
def test_check_logits_says_what_came_back(logits, message):
    with pytest.raises(AuditInputError, match=r"must return logits shaped \(B=2, T=4, V=vocab_size=40\)") as error:
        check_logits(logits, 2, 4, VOCAB)
    assert error.match(message)


def test_check_forward_reports_a_failing_forward():
    def broken(input_ids, decoder_input_ids, **masks):
        raise RuntimeError("shapes do not match")

    with pytest.raises(AuditInputError, match="failed: RuntimeError: shapes do not match"):
        check_forward(interface(forward=broken))


def test_check_forward_catches_sequence_first_logits():
    sequence_first = interface(forward=lambda input_ids, decoder_input_ids, **masks:
                               torch.zeros(decoder_input_ids.shape[1], decoder_input_ids.shape[0], VOCAB))
    with pytest.raises(AuditInputError, match="sequence first"):
        check_forward(sequence_first)
    check_forward(interface())  # the right shape passes


def test_check_forward_works_with_a_tiny_vocabulary():
    check_forward(interface(vocab_size=4, forward=lambda input_ids, decoder_input_ids, **masks:
                            torch.zeros(*decoder_input_ids.shape, 4)))


def test_set_eval_and_move_model():
    model = tinfer()
    model.train()
    set_eval(model)
    assert not model.training
    assert move_model(model, "cpu") is model
    plain = interface()
    assert move_model(plain, "cpu") is plain  # nothing to move
    set_eval(plain)  # nothing to switch off


# --- Seq2SeqLMAdapter ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("build", [tinfer, t5])
def test_seq2seq_adapter_is_faithful(build, labels):
    model = build()
    adapter = Seq2SeqLMAdapter(model)
    assert (adapter.vocab_size, adapter.pad_token_id, adapter.eos_token_id, adapter.decoder_start_token_id) == \
        (VOCAB, PAD, EOS, PAD)
    input_ids = torch.tensor([[4, 5, 6], [7, 8, PAD]])
    attention_mask = (input_ids != PAD).long()
    decoder_input_ids = shift_right(labels, PAD, PAD)
    with torch.no_grad():
        expected = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
        assert torch.equal(adapter.forward(input_ids, decoder_input_ids, attention_mask), expected)
        expected_loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        assert torch.equal(adapter.loss(input_ids, labels, attention_mask), expected_loss)


@pytest.mark.parametrize("build", [tinfer, t5])
def test_seq2seq_adapter_captures_the_decoder_inputs_the_model_builds(build, labels):
    model = build()
    seen = Seq2SeqLMAdapter(model).decoder_input_ids_from_labels(labels)
    assert torch.equal(seen, shift_right(labels, PAD, PAD))
    assert "decode" not in vars(model)  # the watcher is removed again
    assert not model._forward_pre_hooks and all(not m._forward_pre_hooks for m in model.modules())


def test_seq2seq_adapter_generate():
    model = tinfer()
    input_ids = torch.tensor([[4, 5, 6], [7, 8, 9]])
    adapter = Seq2SeqLMAdapter(model)
    assert torch.equal(adapter.generate(input_ids, max_new_tokens=5), greedy_decode(model, input_ids, max_new_tokens=5))
    sequences = Seq2SeqLMAdapter(t5()).generate(input_ids, max_new_tokens=5)
    assert sequences.shape[0] == 2 and 2 <= sequences.shape[1] <= 6 and bool((sequences[:, 0] == PAD).all())


def test_seq2seq_adapter_explicit_ids_override_the_config():
    adapter = Seq2SeqLMAdapter(tinfer(), decoder_start_token_id=3, eos_token_id=2)
    assert (adapter.decoder_start_token_id, adapter.eos_token_id) == (3, 2)


def test_seq2seq_adapter_refuses_other_models():
    with pytest.raises(AuditInputError, match="needs an HF encoder-decoder or a TinferModel"):
        Seq2SeqLMAdapter(nn.Linear(2, 2))


def test_from_pretrained_loads_a_local_folder_and_refuses_a_hub_name_offline(tmp_path, monkeypatch):
    t5().save_pretrained(tmp_path)
    adapter = Seq2SeqLMAdapter.from_pretrained(str(tmp_path))
    assert adapter.vocab_size == VOCAB and not adapter.model.training
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="not a local folder"):
        Seq2SeqLMAdapter.from_pretrained("t5-small")


# --- TorchTransformerAdapter ---------------------------------------------------------------------------------


class SequenceFirstModel(nn.Module):
    """A minimal nn.Transformer model in the sequence-first layout: ids (T, B) -> logits (T, B, V)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(VOCAB, 16)
        self.transformer = nn.Transformer(16, 2, 1, 2, 32, dropout=0.0)
        self.out = nn.Linear(16, VOCAB)

    def forward(self, src, tgt, tgt_mask=None, src_key_padding_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None):
        hidden = self.transformer(self.embed(src), self.embed(tgt), tgt_mask=tgt_mask,
                                  src_key_padding_mask=src_key_padding_mask, tgt_key_padding_mask=tgt_key_padding_mask,
                                  memory_key_padding_mask=memory_key_padding_mask)
        return self.out(hidden)


@pytest.mark.parametrize("tgt_mask, leaks", [("causal", False), ("none", True)])
def test_torch_transformer_adapter_passes_the_declared_mask(tgt_mask, leaks):
    adapter = TorchTransformerAdapter(SequenceFirstModel(), VOCAB, PAD, 2, EOS, tgt_mask=tgt_mask, batch_first=False)
    input_ids = torch.tensor([[4, 5, 6], [7, 8, 9]])
    decoder_input_ids = torch.tensor([[2, 10, 11, 12], [2, 13, 14, 15]])
    logits = adapter.forward(input_ids, decoder_input_ids)
    assert logits.shape == (2, 4, VOCAB)  # batch first, whatever the model's layout
    report = future_leakage(lambda ids: adapter.forward(input_ids, ids), decoder_input_ids, VOCAB, n_trials=2,
                            tolerance=1e-5, special_ids=(PAD, EOS, 2))
    assert report.leaks is leaks


def test_torch_transformer_adapter_translates_padding_masks():
    model = SequenceFirstModel().eval()
    adapter = TorchTransformerAdapter(model, VOCAB, PAD, 2, EOS, batch_first=False)
    input_ids = torch.tensor([[4, 5, PAD], [7, 8, 9]])
    decoder_input_ids = torch.tensor([[2, 10, 11], [2, 13, 14]])
    attention_mask, decoder_attention_mask = (input_ids != PAD).long(), torch.tensor([[1, 1, 0], [1, 1, 1]])
    with torch.no_grad():
        got = adapter.forward(input_ids, decoder_input_ids, attention_mask, decoder_attention_mask)
        expected = model(input_ids.T, decoder_input_ids.T, tgt_mask=torch.ones(3, 3, dtype=torch.bool).triu(1),
                         src_key_padding_mask=input_ids == PAD, tgt_key_padding_mask=decoder_attention_mask == 0,
                         memory_key_padding_mask=input_ids == PAD).transpose(0, 1)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_torch_transformer_adapter_attaches_only_the_functions_given():
    def generate(input_ids, attention_mask=None, max_new_tokens=20):
        return input_ids

    adapter = TorchTransformerAdapter(SequenceFirstModel(), VOCAB, PAD, 2, EOS, generate=generate)
    assert adapter.generate is generate
    assert not hasattr(adapter, "loss") and not hasattr(adapter, "decoder_input_ids_from_labels")
    with pytest.raises(ValueError, match="tgt_mask must be one of"):
        TorchTransformerAdapter(SequenceFirstModel(), VOCAB, PAD, 2, EOS, tgt_mask="triangular")
    with pytest.raises(AuditInputError, match="wraps an nn.Module"):
        TorchTransformerAdapter(object(), VOCAB, PAD, 2, EOS)
