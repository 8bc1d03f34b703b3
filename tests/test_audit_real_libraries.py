"""The audit on two maintained libraries' own Transformers (examples/xtransformers_model.py, examples/joeynmt_model.py):
built with each library's code and a small config, wrapped as a user would. The causal model exits 0, the same model
with its causal mask removed exits 1. Skipped, with the command that installs the library, when it is absent
(`make test` installs both: x-transformers from requirements.txt, Joey NMT by `make vendor-joeynmt`)."""

import importlib.util
import re

import pytest

from utils.experiments.audit_your_model import INFO, PASS, SKIPPED, load_model, main, run_audit

SMALL = {"batch_size": 2, "source_length": 6, "target_length": 7, "n_trials": 2, "max_new_tokens": 6}
ARGS = ["--target-length", "7", "--source-length", "6", "--n-trials", "2", "--max-new-tokens", "6"]


def need_xtransformers():
    if importlib.util.find_spec("x_transformers") is None:
        pytest.skip("x-transformers is not installed: .venv/bin/pip install -r requirements.txt "
                    "(x-transformers==2.31.10)")


def need_joeynmt():
    from examples.joeynmt_model import import_joeynmt

    try:
        import_joeynmt()
    except ImportError as error:
        pytest.skip(f"Joey NMT is absent: {error}")


LIBRARIES = {"xtransformers": need_xtransformers, "joeynmt": need_joeynmt}


@pytest.mark.parametrize("library", LIBRARIES)
def test_the_causal_model_passes_and_the_one_without_its_causal_mask_is_flagged(library, capsys):
    LIBRARIES[library]()
    spec = f"examples/{library}_model.py"
    assert main([f"{spec}:build", *ARGS]) == 0, capsys.readouterr().out
    assert main([f"{spec}:build_no_causal_mask", *ARGS]) == 1
    out = capsys.readouterr().out
    assert "LEAKS" in out and re.search(r"no gradient from the future\s+FAIL", out)


@pytest.mark.parametrize("library", LIBRARIES)
def test_every_verdict_check_passes_on_the_causal_model(library):
    LIBRARIES[library]()
    audit = run_audit(load_model(f"examples/{library}_model.py:build"), library, **SMALL)
    statuses = {name: check.status for name, check in audit.checks.items()}
    assert {n: s for n, s in statuses.items() if s not in (INFO, SKIPPED)} == dict.fromkeys(
        ["future_leakage", "one_pass_equals_loop", "shift_right", "loss_ignores_padding", "greedy_matches_one_pass",
         "gradient_causality", "padding_invariance", "batched_equals_single"], PASS), statuses


def test_joeynmt_hits_each_of_the_four_false_alarms_the_audit_no_longer_raises():
    """Joey NMT feeds <pad> after </s>, its greedy search bans <s> and an </s> at step 0, its loss is the sum over
    sentences, and its decoder asserts a target mask: each was a false alarm (or a crash) of the audit."""
    need_joeynmt()
    model = load_model("examples/joeynmt_model.py:build")
    audit = run_audit(model, "joeynmt", checks=("shift_right", "loss_ignores_padding", "greedy_matches_one_pass",
                                                "future_leakage"), **SMALL)
    padded_row = audit.checks["shift_right"].evidence["padded_row"]
    assert model.eos_token_id not in padded_row["decoder inputs seen"]  # a pad where HF would feed </s>
    assert audit.checks["loss_ignores_padding"].evidence["reduction"] == "sum / sentences"
    assert audit.checks["greedy_matches_one_pass"].evidence["constraints"]["min_new_tokens"] == 1
    assert audit.exit_code == 0, {name: check.detail for name, check in audit.checks.items()}
    with pytest.raises(AttributeError):  # the wrapper passes the mask straight on: None would crash
        model.forward(*[audit_input for audit_input in _tiny_inputs(model)], decoder_attention_mask=None)


def _tiny_inputs(model):
    import torch

    return torch.tensor([[5, 6, model.eos_token_id]]), torch.tensor([[model.decoder_start_token_id, 7]])
