"""Issue 26's new audit checks, each shown to fail on a model built to have the bug: gradient causality, padding
invariance, batched = one row at a time, and nn.Transformer's eval() fast path; the traps measured on this torch."""

from types import SimpleNamespace

import pytest
import torch

from utils.experiments import torch_transformer_traps
from utils.experiments.audit_your_model import (
    FAIL,
    INFO,
    PASS,
    SKIPPED,
    _check_source_padding_side,
    _check_tgt_is_causal_hint,
    audit_batch,
    check_batched_equals_single,
    check_encoder_fast_path,
    check_gradient_causality,
    check_padding_invariance,
    load_model,
    run_audit,
)
from utils.handwritten.teacher_forcing import causal_mask

CAUSAL, NO_MASK = "examples/tinfer_causal.py:build", "examples/tinfer_no_mask.py:build"
NN_TRANSFORMER = "examples/nn_transformer_model.py:build"
BATCH = {"batch_size": 2, "source_length": 6, "target_length": 6}


@pytest.fixture(scope="module")
def causal():
    return load_model(CAUSAL)


def delegate(model, **overrides):
    members = {name: getattr(model, name) for name in ("vocab_size", "pad_token_id", "eos_token_id",
                                                       "decoder_start_token_id", "forward")}
    module = model if isinstance(model, torch.nn.Module) else model.model
    return SimpleNamespace(**{**members, "model": module, **overrides})


def test_gradient_causality_passes_causal_and_flags_the_no_mask_model(causal):
    batch = audit_batch(causal, **BATCH)
    good = check_gradient_causality(causal, batch)
    assert good.status == PASS and good.number == 0.0 and good.evidence["max_past_gradient"] > 1e-3
    leaky = load_model(NO_MASK)
    bad = check_gradient_causality(leaky, audit_batch(leaky, **BATCH))
    assert bad.status == FAIL and bad.evidence["leaking_pairs"] == bad.evidence["future_pairs"] == 15
    assert bad.evidence["ratio_to_allowed"] >= 100  # different, not a rounding question


def test_gradient_causality_is_skipped_without_an_embedding_lookup():
    model = SimpleNamespace(vocab_size=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
                            forward=lambda input_ids, decoder_input_ids, **masks: torch.nn.functional.one_hot(
                                decoder_input_ids, 8).float())
    check = check_gradient_causality(model, audit_batch(model, **BATCH))
    assert check.status == SKIPPED and "nn.Embedding" in check.detail


def test_padding_checks_flag_a_model_that_ignores_the_source_mask(causal):
    """The source attention mask dropped (the encoder and cross-attention read source padding)."""
    batch = audit_batch(causal, **BATCH)

    def no_source_mask(input_ids, decoder_input_ids, attention_mask=None, decoder_attention_mask=None):
        return causal.forward(input_ids, decoder_input_ids, None, decoder_attention_mask)

    careless = delegate(causal, forward=no_source_mask)
    padding = check_padding_invariance(careless, batch)
    assert padding.status == FAIL and padding.evidence["source_padding"]["ratio_to_allowed"] >= 100
    assert padding.evidence["target_padding"]["max_abs_diff"] <= padding.evidence["target_padding"]["allowed"]
    assert check_batched_equals_single(careless, batch).status == FAIL
    assert check_padding_invariance(causal, batch).status == PASS
    good = check_batched_equals_single(causal, batch)
    assert good.status == PASS and good.evidence["generate_rows_differing"] == []


def test_source_padding_side_is_measured_not_judged(causal):
    check = _check_source_padding_side(causal, audit_batch(causal, **BATCH))
    assert check.status == INFO and check.evidence["verdict"] == "differ"  # sinusoidal positions from column 0


def test_the_torch_traps_measured_on_this_torch():
    hint = torch_transformer_traps.tgt_is_causal_without_mask()
    assert hint["with_mask_future_change"] == 0.0
    assert hint["hint_only_future_change"] > 1e-2  # torch 2.13: the flag alone is not a mask
    fast = torch_transformer_traps.encoder_fast_path_padding()
    assert fast["fast_padded_max_abs"] == 0.0 < fast["slow_padded_max_abs"]
    assert fast["real_max_abs_diff"] <= 1e-5 * fast["magnitude"] + 1e-6


def test_encoder_fast_path_flags_a_decoder_that_reads_padded_memory():
    example = load_model(NN_TRANSFORMER)
    batch = audit_batch(example, **BATCH)
    assert check_encoder_fast_path(example, batch).status == PASS
    hint = _check_tgt_is_causal_hint(example)
    assert hint.status == INFO and hint.evidence["verdict"] == "not causal"

    def no_memory_mask(input_ids, decoder_input_ids, attention_mask=None, decoder_attention_mask=None):
        blocked = ~causal_mask(decoder_input_ids.shape[1])
        return example.model(input_ids, decoder_input_ids, tgt_mask=blocked,
                             src_key_padding_mask=~attention_mask.bool(),
                             tgt_key_padding_mask=~decoder_attention_mask.bool(), memory_key_padding_mask=None)

    reads_padding = delegate(example, forward=no_memory_mask)
    check = check_encoder_fast_path(reads_padding, batch)
    assert check.status == FAIL and check.evidence["ratio_to_allowed"] >= 100, check.detail


def test_the_checks_that_need_nn_transformer_are_skipped_elsewhere(causal):
    audit = run_audit(causal, "causal", checks=("tgt_is_causal_hint", "encoder_fast_path"), **BATCH, n_trials=1)
    assert {c.status for c in audit.checks.values()} == {SKIPPED} and audit.exit_code == 0
    with pytest.raises(ValueError, match="unknown checks"):
        run_audit(causal, "causal", checks=("no_such_check",), **BATCH)
