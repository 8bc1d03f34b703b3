"""The benchmark runs end to end with tiny repeat counts and writes the JSON keys `make bench` promises.

No timing assertions: wall-clock numbers depend on the machine.
"""

import json

import pytest

from utils.experiments.bench import best_of, main


def test_bench_writes_expected_keys(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["--repeats", "1", "--train-repeats", "1", "--new-tokens", "3", "--sentences", "2",
                 "--out", str(out)]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    greedy, training = report["greedy"], report["training_step"]
    assert greedy["outputs_identical"] is True  # the same tokens from both loops, or the timing compares nothing
    for key in ("hand_tokens_per_s", "hf_tokens_per_s", "hand_over_hf"):
        assert greedy[key] > 0
    assert set(greedy["all_methods_tokens_per_s"]) == {"hand-written, cache", "hand-written, no cache",
                                                       "generate, cache", "generate, no cache"}
    for family in ("tinfer", "t5", "marian"):
        assert training[family]["seconds_per_step"] > 0 and training[family]["parameters"] > 0
    assert training["tinfer_over_t5"] > 0 and training["tinfer_over_marian"] > 0
    assert report["settings"]["repeats"] == 1
    assert "tokens/s" in capsys.readouterr().out


def test_best_of_counts_calls_and_refuses_zero_repeats():
    calls = []
    assert best_of(lambda: calls.append(1), 3) >= 0
    assert len(calls) == 4  # one warm-up call, then three timed calls
    with pytest.raises(ValueError, match="repeats"):
        best_of(lambda: None, 0)
