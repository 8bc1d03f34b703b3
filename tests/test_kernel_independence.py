"""The verdicts do not depend on the CPU kernel path or the thread count (issue 21).

`tests/numeric_core.py` (notebook 01's and 03's HF parity, notebook 09's audit of causal, leaky and HF models, notebook
10's audit of g2p-en) runs in a fresh process under four settings: this machine's default kernels and the AVX2 path
(`MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2`: what a machine without AVX-512
gets), each with 1 and 2 threads. Every verdict must be the same; the numbers may differ in their last digits, and
the test prints which ones do (run with `-s` to read them).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
AVX2 = {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
SETTINGS = {"default, 1 thread": ({}, 1), "default, 2 threads": ({}, 2),
            "AVX2, 1 thread": (AVX2, 1), "AVX2, 2 threads": (AVX2, 2)}


def run_core(knobs: dict[str, str], threads: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in AVX2}
    env.update(knobs, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "numeric_core.py")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def cores(once) -> dict[str, dict]:
    return once("kernel_paths", lambda: {name: run_core(*setting) for name, setting in SETTINGS.items()})


def differing_numbers(a: dict, b: dict) -> dict[str, tuple]:
    """check -> (first number that differs, value in a, value in b)."""
    found = {}
    for check in a.keys() & b.keys():
        numbers_a, numbers_b = a[check]["numbers"] or {}, b[check]["numbers"] or {}
        for key in sorted(numbers_a.keys() & numbers_b.keys()):
            if numbers_a[key] != numbers_b[key] and check != "environment":
                found[check] = (key, numbers_a[key], numbers_b[key])
                break
    return found


def test_the_knobs_take_effect(cores):
    assert cores["AVX2, 1 thread"]["environment"]["numbers"]["cpu_capability"] == "AVX2"
    assert cores["default, 2 threads"]["environment"]["numbers"]["threads"] == 2
    assert cores["default, 1 thread"]["environment"]["numbers"]["threads"] == 1


def test_every_verdict_is_the_same_on_every_kernel_path_and_thread_count(cores):
    reference = cores["default, 1 thread"]
    assert len(reference) > 40  # the core ran: parity, loss and five audit checks of six models
    expected = {"audit:tinfer_no_mask:future_leakage": "fail", "audit:tinfer_causal:future_leakage": "pass",
                "audit:g2p_en:one_pass_equals_loop": "pass", "01:t5_eager_labels_forward_is_shift_right": True}
    assert {check: reference[check]["verdict"] for check in expected} == expected
    for name, core in cores.items():
        verdicts = {check: result["verdict"] for check, result in core.items() if check != "environment"}
        assert verdicts == {check: result["verdict"] for check, result in reference.items()
                            if check != "environment"}, name
        print(f"\n{name} ({core['environment']['numbers']}): numbers that differ from the default 1-thread run:")
        for check, (key, ours, theirs) in sorted(differing_numbers(reference, core).items()):
            print(f"  {check}: {key} {ours} -> {theirs}")


def test_a_changed_verdict_would_be_caught():
    """The comparison above is not vacuous: one changed verdict makes the dictionaries differ."""
    a = {"x": {"verdict": "pass", "numbers": {"max_abs_diff": 1e-6}}}
    b = {"x": {"verdict": "fail", "numbers": {"max_abs_diff": 2e-5}}}
    assert {k: v["verdict"] for k, v in a.items()} != {k: v["verdict"] for k, v in b.items()}
    assert differing_numbers(a, b) == {"x": ("max_abs_diff", 1e-6, 2e-5)}
