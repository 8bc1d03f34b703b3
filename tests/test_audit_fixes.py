"""Issue 26's four false alarms of the audit, each built here as a model that is correct but was flagged (or crashed
the audit), and the one tolerance model behind every closeness verdict."""

import json
from types import SimpleNamespace

import pytest
import torch

from utils.experiments.audit_your_model import (
    FAIL,
    PASS,
    audit_batch,
    check_greedy_matches_one_pass,
    check_loss_ignores_padding,
    check_shift_right,
    load_model,
    run_audit,
    verdict_markdown,
)
from utils.handwritten.teacher_forcing import IGNORE_INDEX, masked_cross_entropy, shift_right

CAUSAL = "examples/tinfer_causal.py:build"
SMALL = {"batch_size": 2, "source_length": 5, "target_length": 6, "n_trials": 2, "max_new_tokens": 5}
BATCH = {k: SMALL[k] for k in ("batch_size", "source_length", "target_length")}


@pytest.fixture(scope="module")
def causal():
    return load_model(CAUSAL)


def delegate(model, **overrides):
    members = {name: getattr(model, name) for name in ("vocab_size", "pad_token_id", "eos_token_id",
                                                       "decoder_start_token_id", "forward")}
    return SimpleNamespace(**{**members, **overrides})


# --- (a) shift_right compares only positions whose label is not -100 ---------------------------------------------


def test_shift_right_accepts_a_pad_after_eos_where_the_label_is_ignored(causal):
    """A library that feeds <pad> (not </s>) after the last real target token: that input's label is -100."""
    batch = audit_batch(causal, **BATCH)

    def pad_after_eos(labels):
        ids = shift_right(labels, causal.decoder_start_token_id, causal.pad_token_id)
        return ids.masked_fill(ids == causal.eos_token_id, causal.pad_token_id)

    check = check_shift_right(delegate(causal, decoder_input_ids_from_labels=pad_after_eos), batch)
    assert check.status == PASS, check.detail
    assert check.evidence["real_positions"] == int((batch["labels"] != IGNORE_INDEX).sum())

    def wrong_real_token(labels):  # a real position (label not -100) still counts
        ids = pad_after_eos(labels)
        ids[:, 1] = causal.eos_token_id
        return ids

    wrong = check_shift_right(delegate(causal, decoder_input_ids_from_labels=wrong_real_token), batch)
    assert wrong.status == FAIL and wrong.evidence["first_mismatch"]["position"] == 1


# --- (b) greedy: declared decoding constraints apply to the one-pass arg-max -------------------------------------


def constrained_model(declare: dict, banned: tuple = (), min_new_tokens: int = 0):
    """A causal toy: the next token is the input token + 1, except that the one-pass arg-max after the start token
    is </s> (min_new_tokens) or that the start token wins everywhere (banned); the loop applies the constraints."""
    vocab_size, pad, eos, start = 12, 0, 1, 2

    def forward(input_ids, decoder_input_ids, attention_mask=None, decoder_attention_mask=None):
        logits = 10.0 * torch.nn.functional.one_hot((decoder_input_ids + 1) % vocab_size, vocab_size).float()
        if min_new_tokens:
            logits[..., eos] += 20.0 * (decoder_input_ids == start).float()
        for token in banned:
            logits[..., token] += 30.0
        return logits

    def generate(input_ids, attention_mask=None, max_new_tokens=5):
        sequences = torch.full((input_ids.shape[0], 1), start)
        for step in range(max_new_tokens):
            logits = forward(input_ids, sequences)[:, -1]
            logits[:, list(banned)] = float("-inf")
            if step < min_new_tokens:
                logits[:, eos] = float("-inf")
            sequences = torch.cat([sequences, logits.argmax(-1, keepdim=True)], dim=1)
        return sequences

    return SimpleNamespace(vocab_size=vocab_size, pad_token_id=pad, eos_token_id=eos, decoder_start_token_id=start,
                           forward=forward, generate=generate, **declare)


@pytest.mark.parametrize("constraint, declared", [
    ({"min_new_tokens": 1}, {"min_new_tokens": 1}),
    ({"banned": (2,)}, {"banned_token_ids": [2]}),
], ids=["min_new_tokens", "banned_token_ids"])
def test_declared_decoding_constraints_are_applied_to_the_one_pass_argmax(constraint, declared):
    model = constrained_model(declared, **constraint)
    batch = audit_batch(model, **BATCH)
    check = check_greedy_matches_one_pass(model, batch, 5)
    assert check.status == PASS, check.detail
    assert check.evidence["constraints"] == {"banned_token_ids": declared.get("banned_token_ids", []),
                                             "min_new_tokens": declared.get("min_new_tokens", 0),
                                             "constrain_next_token_logits": False}


def test_a_constraint_given_as_a_method_is_applied():
    model = constrained_model({}, min_new_tokens=1)

    def no_eos_first(decoder_input_ids, logits):
        if decoder_input_ids.shape[1] == 1:
            logits[:, 1] = float("-inf")
        return logits

    model.constrain_next_token_logits = no_eos_first
    assert check_greedy_matches_one_pass(model, audit_batch(model, **BATCH), 5).status == PASS


def test_undeclared_constraints_fail_without_blaming_start_token_masks_or_positions():
    model = constrained_model({}, min_new_tokens=1)
    check = check_greedy_matches_one_pass(model, audit_batch(model, **BATCH), 5)
    assert check.status == FAIL
    assert check.evidence["undeclared_constraint_suspected"]["skipped_token"] == model.eos_token_id
    words = verdict_markdown(SimpleNamespace(label="x", checks={"greedy_matches_one_pass": check},
                                             names=lambda status: []))
    assert "start token, masks or positions" not in words
    assert "min_new_tokens" in words and "banned_token_ids" in words


# --- (c) the loss check knows "sum / number of sentences" --------------------------------------------------------


def test_loss_check_recognises_sum_over_sentences(causal):
    batch = audit_batch(causal, **BATCH)

    def sentence_average(input_ids, labels, attention_mask=None):  # fairseq --sentence-avg, Joey NMT "batch"
        logits = causal.forward(input_ids, causal.decoder_input_ids_from_labels(labels), attention_mask)
        return masked_cross_entropy(logits, labels, reduction="sum") / labels.shape[0]

    check = check_loss_ignores_padding(delegate(causal, loss=sentence_average,
                                                decoder_input_ids_from_labels=causal.decoder_input_ids_from_labels),
                                       batch)
    assert check.status == PASS and check.evidence["reduction"] == "sum / sentences", check.evidence


# --- (d) the audit never passes decoder_attention_mask=None -------------------------------------------------------


def test_a_wrapper_that_requires_a_decoder_mask_is_audited(causal):
    seen = []

    def strict_forward(input_ids, decoder_input_ids, attention_mask=None, decoder_attention_mask=None):
        if decoder_attention_mask is None:
            raise TypeError("this library needs a target mask")
        seen.append(tuple(decoder_attention_mask.shape) == tuple(decoder_input_ids.shape))
        return causal.forward(input_ids, decoder_input_ids, attention_mask, decoder_attention_mask)

    strict = delegate(causal, forward=strict_forward, generate=causal.generate,
                      decoder_input_ids_from_labels=causal.decoder_input_ids_from_labels, loss=causal.loss)
    audit = run_audit(strict, "strict", **SMALL)
    assert audit.exit_code == 0, {name: check.detail for name, check in audit.checks.items()}
    assert seen and all(seen)


# --- the one tolerance model -------------------------------------------------------------------------------------


def test_every_closeness_verdict_records_the_tolerance_model(causal):
    audit = run_audit(causal, "causal", **SMALL)
    for name in ("future_leakage", "one_pass_equals_loop", "loss_ignores_padding"):
        evidence = audit.checks[name].evidence
        assert {"allowed", "ratio_to_allowed", "magnitude"} <= set(evidence), (name, evidence)
        assert "float32" in evidence["tolerance"]
    loose = run_audit(causal, "causal", rtol=1e-2, **SMALL)
    assert "0.01 x magnitude" in loose.checks["one_pass_equals_loop"].evidence["tolerance"]


def test_the_command_takes_an_rtol_override_and_a_subset_of_checks(tmp_path, capsys):
    from utils.experiments.audit_your_model import main

    report = tmp_path / "audit.json"
    assert main([CAUSAL, "--rtol", "1e-3", "--checks", "one_pass_equals_loop,shift_right", "--target-length", "5",
                 "--json", str(report)]) == 0
    checks = json.loads(report.read_text())["checks"]
    assert set(checks) == {"one_pass_equals_loop", "shift_right"}
    assert "0.001 x magnitude (float32)" in checks["one_pass_equals_loop"]["evidence"]["tolerance"]
    assert main([CAUSAL, "--checks", "no_such_check"]) == 2 and "unknown checks" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # the old absolute --tolerance is gone: rtol is the one knob
        main([CAUSAL, "--tolerance", "1e-5"])
