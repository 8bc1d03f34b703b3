"""Notebook 01 with smoke parameters: every claim holds, and a second run gives the same results."""

import json

from utils.harness.run import main as run_main

CLAIMS = [
    # the library's default configs (transformers as installed)
    "t5_default_config_defines_no_start_token", "marian_default_config_starts_from_pad",
    "bart_default_config_starts_from_eos",
    # HF's shift functions and what each decoder receives when the model is called with labels only
    "t5_shift_matches_handwritten", "marian_shift_matches_handwritten", "bart_shift_matches_handwritten",
    "t5_decoder_input_from_labels_is_shift_right", "marian_decoder_input_from_labels_is_shift_right",
    "bart_decoder_input_from_labels_is_shift_right",
    "t5_labels_forward_keeps_cache", "marian_labels_forward_disables_cache", "bart_labels_forward_disables_cache",
    "t5_forward_with_labels_uses_shift_right", "marian_forward_with_labels_uses_shift_right",
    "bart_forward_with_labels_uses_shift_right", "minus_100_becomes_pad_in_decoder_inputs",
    "researcher_shift_equals_captured_hf_decoder_input",
    "collator_builds_decoder_inputs_by_shift", "collator_pads_labels_with_minus_100",
    "unshifted_decoder_input_leaks_answer",
]
SANITY = ["t5_start_token_is_pad", "marian_start_token_is_pad", "bart_start_token_is_eos",
          "double_shift_detected", "unshifted_labels_detected"]


def test_01_shift_right_claims_hold(smoke_results, assert_claims_hold):
    results = smoke_results("01_shift_right")
    assert_claims_hold(results, CLAIMS + SANITY)
    assert results["parameters"]["n_examples"] == 2
    assert results["metrics"]["train_loss_unshifted"] < results["metrics"]["train_loss_shifted"]


def test_01_checks_of_values_we_set_are_sanity_only(smoke_results):
    claims = smoke_results("01_shift_right")["claims"]
    assert all(claims[c].get("sanity") for c in SANITY)
    assert not any(claims[c].get("sanity") for c in CLAIMS)


def test_01_second_run_gives_identical_claims_and_metrics(smoke_results, tmp_path):
    first = smoke_results("01_shift_right")
    assert run_main(["01", "--smoke", "--out", str(tmp_path), "--no-html"]) == 0
    second = json.loads((tmp_path / "results" / "01_shift_right.json").read_text(encoding="utf-8"))
    for section in ("parameters", "claims", "metrics"):
        assert second[section] == first[section], f"section {section!r} differs between two identical runs"
