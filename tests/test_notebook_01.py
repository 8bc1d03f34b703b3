"""Notebook 01 with smoke parameters: every claim holds, and a second run gives the same results."""

import json

from utils.harness.run import main as run_main

CLAIMS = [
    "t5_shift_matches_handwritten", "marian_shift_matches_handwritten", "bart_shift_matches_handwritten",
    "collator_builds_decoder_inputs_by_shift", "collator_pads_labels_with_minus_100",
    "t5_start_token_is_pad", "marian_start_token_is_pad", "bart_start_token_is_eos",
    "t5_forward_with_labels_uses_shift_right", "marian_forward_with_labels_uses_shift_right",
    "bart_forward_with_labels_uses_shift_right", "minus_100_becomes_pad_in_decoder_inputs",
    "researcher_shift_equals_hf_decoder_input_ids", "double_shift_detected", "unshifted_labels_detected",
    "unshifted_decoder_input_leaks_answer",
]


def test_01_shift_right_claims_hold(smoke_results, assert_claims_hold):
    results = smoke_results("01_shift_right")
    assert_claims_hold(results, CLAIMS)
    assert results["parameters"]["n_examples"] == 2
    assert results["metrics"]["train_loss_unshifted"] < results["metrics"]["train_loss_shifted"]


def test_01_second_run_gives_identical_claims_and_metrics(smoke_results, tmp_path):
    first = smoke_results("01_shift_right")
    assert run_main(["01", "--smoke", "--out", str(tmp_path), "--no-html"]) == 0
    second = json.loads((tmp_path / "results" / "01_shift_right.json").read_text(encoding="utf-8"))
    for section in ("parameters", "claims", "metrics"):
        assert second[section] == first[section], f"section {section!r} differs between two identical runs"
