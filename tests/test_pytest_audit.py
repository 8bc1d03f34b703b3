"""The pytest plugin (utils/experiments/pytest_audit.py, entry point `pytest11` in pyproject.toml): a lab's own test
run audits a model and lints batches; without the options the plugin imports nothing heavy and adds no item.
Each run is a fresh pytest process in an empty folder, as in a lab's CI."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from utils.harness.paths import REPO_ROOT

CAUSAL, NO_MASK = REPO_ROOT / "examples" / "tinfer_causal.py", REPO_ROOT / "examples" / "tinfer_no_mask.py"
FAST = ["--audit-checks", "future_leakage,shift_right,gradient_causality,tgt_is_causal_hint"]


def run_pytest(folder, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA", *map(str, args)],
                          cwd=folder, capture_output=True, text=True, env=env, timeout=300)


def test_the_plugin_is_registered_and_imports_nothing_heavy(tmp_path):
    done = subprocess.run([sys.executable, "-c", "import sys, utils.experiments.pytest_audit; "
                           "print(sorted(m for m in ('torch', 'transformers', 'utils.experiments.audit_your_model') "
                           "if m in sys.modules))"], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert done.stdout.strip() == "[]", done.stderr
    help_text = run_pytest(tmp_path, "--help").stdout
    assert "--audit-model=SPEC" in help_text and "--lint-batch=FILE" in help_text
    nothing = run_pytest(tmp_path)
    assert nothing.returncode == 5 and "no tests ran" in nothing.stdout  # no option: no item


def test_audit_items_carry_each_checks_verdict(tmp_path):
    done = run_pytest(tmp_path, "--audit-model", f"{CAUSAL}:build", "--audit-model", f"{NO_MASK}:build", *FAST)
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert f"PASSED ::audit[{CAUSAL}:build]::future_leakage" in out
    assert f"FAILED ::audit[{NO_MASK}:build]::future_leakage" in out
    assert f"FAILED ::audit[{NO_MASK}:build]::gradient_causality" in out
    assert f"PASSED ::audit[{NO_MASK}:build]::shift_right" in out
    assert "FAIL no future leakage (t never sees s > t): max |Δ logits[t]|" in out  # the detail, no traceback
    assert "SKIPPED" in out and "does not use torch.nn.TransformerDecoder" in out
    assert "2 failed, 4 passed, 2 skipped" in out


def test_a_model_that_cannot_be_loaded_fails_its_items(tmp_path):
    done = run_pytest(tmp_path, "--audit-model", "examples/no_such_model.py:build", "--audit-checks", "shift_right")
    assert done.returncode == 1 and "cannot audit examples/no_such_model.py:build: " in done.stdout
    assert "no such file" in done.stdout


def test_lint_batch_items_and_audit_only(tmp_path):
    labels = torch.tensor([[5, 6, 1], [7, 1, -100]])
    clean = {"input_ids": torch.tensor([[5, 1], [6, 1]]), "labels": labels}
    buggy = {**clean, "labels": labels.masked_fill(labels == -100, 0)}
    torch.save(clean, tmp_path / "clean.pt")
    torch.save(buggy, tmp_path / "buggy.pt")
    (tmp_path / "test_own.py").write_text("def test_own():\n    assert True\n", encoding="utf-8")
    ids = ["--lint-pad-id", "0", "--lint-start-id", "0", "--lint-eos-id", "1"]
    done = run_pytest(tmp_path, "--lint-batch", "clean.pt", "--lint-batch", "buggy.pt", *ids)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "PASSED ::lint_batch[clean.pt]" in done.stdout and "FAILED ::lint_batch[buggy.pt]" in done.stdout
    assert "pad_in_labels" in done.stdout and "notebooks/03_loss_masking.ipynb" in done.stdout
    assert "PASSED test_own.py::test_own" in done.stdout  # the lab's own tests still run
    only = run_pytest(tmp_path, "--lint-batch", "clean.pt", "--audit-only", *ids)
    assert only.returncode == 0 and "1 passed, 1 deselected" in only.stdout, only.stdout
    usage = run_pytest(tmp_path, "--lint-batch", "clean.pt")
    assert usage.returncode == 4 and "--lint-batch needs --lint-pad-id" in usage.stderr


def test_the_fixture_audits_a_model_from_a_test(tmp_path):
    (tmp_path / "test_lab_model.py").write_text(textwrap.dedent(f"""
        def test_my_model_does_not_leak(seq2seq_audit):
            audit = seq2seq_audit("{CAUSAL}:build", checks=("future_leakage", "shift_right"), target_length=5,
                                  n_trials=1)
            assert audit.exit_code == 0 and not audit.leaks
    """), encoding="utf-8")
    done = run_pytest(tmp_path)
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize("option", ["--audit-model", "--lint-batch"])
def test_the_projects_own_run_has_no_plugin_items(request, option):
    assert request.config.getoption(option.lstrip("-").replace("-", "_")) == []
