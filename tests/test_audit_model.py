"""`utils.experiments.audit_your_model`: loading a model from an import path, the checks, the exit codes."""

import json
import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
import torch

from utils.experiments.audit_your_model import (
    ERROR,
    FAIL,
    INFO,
    PASS,
    SKIPPED,
    audit_batch,
    check_greedy_matches_one_pass,
    check_loss_ignores_padding,
    check_shift_right,
    format_table,
    load_factory,
    load_model,
    main,
    run_audit,
    verdict_markdown,
)
from utils.experiments.auditable_models import AuditInputError
from utils.handwritten.teacher_forcing import IGNORE_INDEX, decoder_attention_mask_from_labels
from utils.harness.paths import REPO_ROOT

NO_MASK, CAUSAL = "examples/tinfer_no_mask.py:build", "examples/tinfer_causal.py:build"
NN_TRANSFORMER = "examples/nn_transformer_model.py:build"
FIVE = ("future_leakage", "one_pass_equals_loop", "shift_right", "loss_ignores_padding", "greedy_matches_one_pass")
SMALL = {"batch_size": 2, "source_length": 5, "target_length": 6, "n_trials": 2, "max_new_tokens": 5}



@pytest.fixture(scope="module")
def causal():
    return load_model(CAUSAL)


def factory_file(tmp_path, body: str, name: str = "my_model.py") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return str(path)


def delegate(model, **overrides):
    """An auditable object that calls `model` except for the members given."""
    members = {name: getattr(model, name) for name in ("vocab_size", "pad_token_id", "eos_token_id",
                                                       "decoder_start_token_id", "forward")}
    return SimpleNamespace(**{**members, **overrides})


# --- loading ---------------------------------------------------------------------------------------------------


def test_load_factory_from_a_file_and_from_a_module(tmp_path):
    path = factory_file(tmp_path, "def build():\n    return 42\n")
    assert load_factory(f"{path}:build")() == 42
    assert load_factory("utils.experiments.audit_your_model:audit_batch") is audit_batch


def test_load_factory_resolves_repo_relative_paths_from_elsewhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert callable(load_factory(NO_MASK))
    assert callable(load_factory(CAUSAL))  # imports its sibling examples/tinfer_no_mask.py


@pytest.mark.parametrize("spec, message", [
    ("examples/tinfer_no_mask.py", "expected 'package.module:function'"),
    ("examples/tinfer_no_mask.py:", "expected 'package.module:function'"),
    ("examples/missing_model.py:build", "no such file"),
    ("no_such_package.model:build", r"cannot import module 'no_such_package.model'"),
    ("examples/tinfer_no_mask.py:buidl", r"has no function 'buidl'; it defines: .*build"),
])
def test_load_factory_says_what_was_expected(spec, message):
    with pytest.raises(AuditInputError, match=message):
        load_factory(spec)


def test_load_factory_reports_an_import_that_fails(tmp_path):
    path = factory_file(tmp_path, "import not_installed_anywhere\n", name="broken_model.py")
    with pytest.raises(AuditInputError, match="importing .*broken_model.py failed: ModuleNotFoundError"):
        load_factory(f"{path}:build")


def test_load_model_refuses_bad_factories(tmp_path):
    raising = factory_file(tmp_path, "def build():\n    raise RuntimeError('no checkpoint')\n", "raising.py")
    with pytest.raises(AuditInputError, match=r"calling .*raising.py:build\(\) failed: RuntimeError: no checkpoint"):
        load_model(f"{raising}:build")
    wrong = factory_file(tmp_path, "def build():\n    return 'a model'\n", "wrong.py")
    with pytest.raises(AuditInputError, match="expected an object with int attributes vocab_size"):
        load_model(f"{wrong}:build")
    with pytest.raises(AuditInputError, match="give exactly one of"):
        load_model()
    with pytest.raises(AuditInputError, match="give exactly one of"):
        load_model(NO_MASK, "some/folder")


def test_load_model_checks_the_logits_shape(tmp_path):
    body = """
        from types import SimpleNamespace
        import torch

        def build():
            return SimpleNamespace(vocab_size=10, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
                                   forward=lambda input_ids, decoder_input_ids, **masks: torch.zeros(2, 10))
    """
    path = factory_file(tmp_path, body, "last_position_only.py")
    with pytest.raises(AuditInputError, match=r"\(B=2, T=4, V=vocab_size=10\); got float32 \(2, 10\)"):
        load_model(f"{path}:build")


# --- the batch ---------------------------------------------------------------------------------------------------


def test_audit_batch_pads_rows_and_avoids_special_ids(causal):
    batch = audit_batch(causal, batch_size=3, source_length=8, target_length=10, seed=1)
    assert batch["input_ids"].shape == (3, 8) and batch["labels"].shape == (3, 10)
    assert batch["attention_mask"].sum(dim=1).tolist() == [8, 5, 2]
    assert (batch["labels"] != IGNORE_INDEX).sum(dim=1).tolist() == [10, 7, 4]
    for row, length in enumerate([10, 7, 4]):
        assert batch["labels"][row, length - 1] == causal.eos_token_id
        assert not torch.isin(batch["labels"][row, : length - 1], torch.tensor([0, 1])).any()
    assert batch["decoder_input_ids"][:, 0].eq(causal.decoder_start_token_id).all()
    assert torch.equal(batch["labels"], audit_batch(causal, 3, 8, 10, seed=1)["labels"])
    assert not torch.equal(batch["labels"], audit_batch(causal, 3, 8, 10, seed=2)["labels"])
    with pytest.raises(ValueError, match="target_length >= 2"):
        audit_batch(causal, target_length=1)


# --- the checks on the examples ----------------------------------------------------------------------------------


def test_the_no_mask_example_is_flagged():
    audit = run_audit(load_model(NO_MASK), NO_MASK, **SMALL)
    leakage = audit.checks["future_leakage"]
    assert leakage.status == FAIL and leakage.evidence["leaking_pairs"] == leakage.evidence["future_pairs"] == 15
    assert audit.checks["one_pass_equals_loop"].status == FAIL
    per_position = audit.checks["one_pass_equals_loop"].evidence["per_position"]
    assert per_position[-1] <= 1e-5 < min(per_position[:-1])  # the last position sees the whole sequence anyway
    assert audit.exit_code == 1 and audit.leaks
    assert "LEAKS" in format_table(audit) and "Unlike T5" in verdict_markdown(audit)


@pytest.mark.parametrize("spec", [CAUSAL, NN_TRANSFORMER])
def test_the_causal_examples_pass_every_check(spec):
    audit = run_audit(load_model(spec), spec, **SMALL)
    statuses = {name: check.status for name, check in audit.checks.items()}
    verdicts = {name: status for name, status in statuses.items() if status not in (INFO, SKIPPED)}
    assert verdicts == dict.fromkeys(verdicts, PASS) and len(verdicts) >= 8, statuses
    assert statuses["source_padding_side"] == INFO  # both count source positions from the first column
    nn_checks = {"tgt_is_causal_hint": INFO, "encoder_fast_path": PASS}
    assert {n: statuses[n] for n in nn_checks} == (nn_checks if spec == NN_TRANSFORMER else dict.fromkeys(nn_checks,
                                                                                                          SKIPPED))
    assert audit.exit_code == 0 and not audit.leaks
    assert "every check that ran behaves as in T5" in verdict_markdown(audit)


# --- each optional check catches its bug ------------------------------------------------------------------------


def test_shift_check_catches_unshifted_labels_and_a_wrong_start(causal):
    batch = audit_batch(causal, **{k: SMALL[k] for k in ("batch_size", "source_length", "target_length")})
    unshifted = check_shift_right(delegate(causal, decoder_input_ids_from_labels=lambda labels: labels), batch)
    assert unshifted.status == FAIL and unshifted.evidence["negative_ids_left"]

    def wrong_start(labels):
        ids = causal.decoder_input_ids_from_labels(labels)
        ids[:, 0] = causal.eos_token_id
        return ids

    start = check_shift_right(delegate(causal, decoder_input_ids_from_labels=wrong_start), batch)
    assert start.status == FAIL and start.evidence["first_mismatch"]["position"] == 0
    assert check_shift_right(causal, batch).status == PASS


def test_loss_check_catches_a_loss_that_counts_padding(causal):
    batch = audit_batch(causal, **{k: SMALL[k] for k in ("batch_size", "source_length", "target_length")})

    def unmasked_loss(input_ids, labels, attention_mask=None):  # padding masked in attention, not in the loss
        targets = labels.masked_fill(labels == IGNORE_INDEX, causal.pad_token_id)
        logits = causal.forward(input_ids, causal.decoder_input_ids_from_labels(labels), attention_mask,
                                decoder_attention_mask_from_labels(labels))
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())

    check = check_loss_ignores_padding(delegate(causal, loss=unmasked_loss,
                                                decoder_input_ids_from_labels=causal.decoder_input_ids_from_labels),
                                       batch)
    assert check.status == FAIL and check.number > 1e-3
    assert check.evidence["reduction"] == "mean over all positions, padding included"
    good = check_loss_ignores_padding(causal, batch)
    assert good.status == PASS and good.evidence["reduction"] == "token_mean"


def counting_model():
    """A causal toy whose greedy output is not constant: the next token is always the input token + 1."""
    vocab_size = 12

    def forward(input_ids, decoder_input_ids, attention_mask=None, decoder_attention_mask=None):
        return 10.0 * torch.nn.functional.one_hot((decoder_input_ids + 1) % vocab_size, vocab_size).float()

    def generate(input_ids, attention_mask=None, max_new_tokens=5):
        sequences = torch.full((input_ids.shape[0], 1), 2)
        for _ in range(max_new_tokens):
            next_token = forward(input_ids, sequences)[:, -1].argmax(-1, keepdim=True)
            sequences = torch.cat([sequences, next_token], dim=1)
        return sequences

    return SimpleNamespace(vocab_size=vocab_size, pad_token_id=0, eos_token_id=1, decoder_start_token_id=2,
                           forward=forward, generate=generate)


def test_greedy_check_catches_a_loop_that_reads_the_wrong_position():
    model = counting_model()
    batch = audit_batch(model, **{k: SMALL[k] for k in ("batch_size", "source_length", "target_length")})
    good = check_greedy_matches_one_pass(model, batch, 5)
    assert good.status == PASS and good.evidence["distinct_generated_tokens"] == 5

    def first_position_loop(input_ids, attention_mask=None, max_new_tokens=5):  # argmax of logits[:, 0], a bug
        sequences = torch.full((input_ids.shape[0], 1), 2)
        for _ in range(max_new_tokens):
            logits = model.forward(input_ids, sequences, attention_mask)
            sequences = torch.cat([sequences, logits[:, 0].argmax(-1, keepdim=True)], dim=1)
        return sequences

    check = check_greedy_matches_one_pass(delegate(model, generate=first_position_loop), batch, 5)
    assert check.status == FAIL and check.evidence["loop_equals_prefix_argmax"] < 1.0
    assert check.evidence["first_disagreement"]["step"] == 1
    assert "not greedy decoding over its own forward" in verdict_markdown(
        SimpleNamespace(label="x", checks={"greedy_matches_one_pass": check}, names=lambda status: []))


def test_a_generate_without_the_start_token_is_an_error_and_missing_methods_are_skipped():
    model = counting_model()
    bare = delegate(model, generate=lambda input_ids, attention_mask=None, max_new_tokens=5:
                    model.generate(input_ids, attention_mask, max_new_tokens)[:, 1:])
    audit = run_audit(bare, "bare", checks=FIVE, **SMALL)
    statuses = {name: check.status for name, check in audit.checks.items()}
    assert statuses == {"future_leakage": PASS, "one_pass_equals_loop": PASS, "shift_right": SKIPPED,
                        "loss_ignores_padding": SKIPPED, "greedy_matches_one_pass": ERROR}
    assert "begin with decoder_start_token_id=2" in audit.checks["greedy_matches_one_pass"].detail
    assert audit.exit_code == 2
    assert "*Not checked*" in verdict_markdown(audit)


def test_a_model_with_dropout_on_is_an_error_not_a_leak():
    model = load_model(CAUSAL)
    model.train()
    audit = run_audit(model, "train mode", **SMALL)
    assert audit.checks["future_leakage"].status == ERROR
    assert "not deterministic" in audit.checks["future_leakage"].detail


# --- the command ---------------------------------------------------------------------------------------------------


def test_main_exit_codes_and_output(capsys, tmp_path):
    assert main([NO_MASK, "--target-length", "6", "--n-trials", "1"]) == 1
    assert "LEAKS" in capsys.readouterr().out
    report = tmp_path / "audit.json"
    assert main([CAUSAL, "--target-length", "6", "--n-trials", "1", "--json", str(report)]) == 0
    assert json.loads(report.read_text())["checks"]["future_leakage"]["status"] == PASS
    assert main(["examples/missing_model.py:build"]) == 2
    assert "no such file" in capsys.readouterr().err
    wrong = factory_file(tmp_path, "import torch\n\ndef build():\n    return torch.nn.Linear(2, 2)\n", "linear.py")
    assert main([f"{wrong}:build"]) == 2
    assert "Linear, which has no vocab_size" in capsys.readouterr().err
    assert torch.get_num_threads() == 1  # restored to what it was (the fixture's 1)


def test_main_audits_a_local_hf_checkpoint(tmp_path):
    from utils.workbench.models import build_model, build_tokenizer

    build_model("t5", "tiny", tokenizer=build_tokenizer("t5")).save_pretrained(tmp_path)
    assert main(["--model-name-or-path", str(tmp_path), "--target-length", "5", "--n-trials", "1",
                 "--max-new-tokens", "4"]) == 0


def test_the_command_runs_as_a_module():
    command = [sys.executable, "-m", "utils.audit_model", NO_MASK, "--target-length", "5", "--n-trials", "1"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    leaking = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert leaking.returncode == 1, leaking.stderr
    assert "no future leakage (t never sees s > t)   FAIL" in leaking.stdout
    bad = subprocess.run(command[:3] + ["not a spec"], cwd=REPO_ROOT, capture_output=True, text=True, env=env,
                         timeout=120)
    assert bad.returncode == 2 and "expected 'package.module:function'" in bad.stderr


def test_the_audit_is_deterministic():
    first = run_audit(load_model(NO_MASK), NO_MASK, **SMALL).to_dict()
    second = run_audit(load_model(NO_MASK), NO_MASK, **SMALL).to_dict()
    assert first == second
