"""utils.experiments.hf_defaults on tiny configs: each measurement says what the installed HF code does."""

import pytest
import torch

from utils.experiments import hf_defaults as hd
from utils.handwritten.teacher_forcing import shift_right


@pytest.fixture(scope="module")
def t5():
    model = hd.build_hf_model("t5", "checkpoint")
    return model, hd.example_batch(model.config)


def test_only_sizes_change_from_the_default_config():
    config, default = hd.build_config("marian", "default"), hd.MarianConfig()
    changed = {k for k, v in config.to_dict().items() if default.to_dict().get(k) != v}
    assert changed == set(hd.size_fields("marian"))
    assert config.scale_embedding is False and config.pad_token_id == 58100


def test_checkpoint_config_carries_the_checkpoint_fields():
    config = hd.build_config("marian", "checkpoint")
    assert config.scale_embedding is True and config.activation_function == "swish"
    model = hd.build_hf_model("marian", "checkpoint")
    assert model.generation_config.num_beams == 4 and model.generation_config.bad_words_ids == [[58100]]


def test_t5_labels_only_decodes_from_shift_right_with_causal_only_mask(t5):
    model, batch = t5
    with hd._watch_decoder_calls(model) as calls, torch.no_grad():
        model(**hd.call_kwargs("labels_only", batch))
    assert torch.equal(calls[0]["input_ids"], shift_right(batch["labels"], 0, 0))
    cell = hd.measure_call(model, "labels_only", batch, "eager")
    assert cell["decoder_inputs"] == "shift_right(labels), start pad=0"
    assert cell["causal"] and cell["pads_visible"] and cell["mask"] == "causal only, pads visible"
    assert cell["loss"] == "mean over non -100 tokens"
    assert cell["cache_returned"]  # T5 does not switch the cache off when it gets labels


def test_2d_mask_adds_padding_and_4d_mask_replaces_the_causal_mask(t5):
    model, batch = t5
    assert hd.measure_call(model, "decoder_attention_mask_2d", batch, "eager")["mask"] == "causal + padding"
    four_d = hd.measure_call(model, "decoder_attention_mask_4d", batch, "eager")
    assert not four_d["causal"] and four_d["mask"] == "padding only (sees future)"
    assert hd.decoder_is_causal(model, batch)
    assert not hd.decoder_is_causal(model, batch, hd.padding_only_4d_mask(batch["decoder_attention_mask"]))


def test_t5_sdpa_kernel_gets_the_causal_mask_folded_into_the_position_bias():
    model = hd.build_hf_model("t5", "checkpoint", attn_implementation="sdpa")
    cell = hd.measure_call(model, "labels_only", hd.example_batch(model.config), "sdpa")
    assert cell["kernel_got"].startswith("sdpa attn_mask=(1, 4, 6, 6), is_causal=False")
    assert cell["mask"] == "causal only, pads visible"


def test_marian_sdpa_relies_on_is_causal_and_drops_the_cache_with_labels():
    model = hd.build_hf_model("marian", "default", attn_implementation="sdpa")
    cell = hd.measure_call(model, "labels_only", hd.example_batch(model.config), "sdpa")
    assert cell["kernel_got"] == "sdpa attn_mask=None, is_causal=True"
    assert cell["causal"] and not cell["cache_returned"]


def test_t5_default_config_cannot_shift_and_bart_shifts_input_ids():
    t5_default = hd.build_hf_model("t5", "default")
    assert "decoder_start_token_id" in hd.measure_call(t5_default, "labels_only",
                                                       hd.example_batch(t5_default.config), "eager")["error"]
    bart = hd.build_hf_model("bart", "default")
    cell = hd.measure_call(bart, "neither", hd.example_batch(bart.config), "eager")
    assert cell["decoder_inputs"] == "shift_right(input_ids), start eos=2"


def test_bare_generate_yields_at_most_20_new_tokens(t5):
    model, batch = t5
    cell = hd.measure_generation(model, batch)
    assert cell["num_beams"] == 1 and not cell["sampled"]
    assert cell["new_tokens"] <= 20 and (cell["new_tokens"] == 20 or cell["first_eos_at"] is not None)


def test_opus_mt_like_config_decodes_with_4_beams():
    model = hd.build_hf_model("marian", "checkpoint")
    model.generation_config.max_length = 6  # the checkpoint's 512 would take seconds; beams come from num_beams
    cell = hd.measure_generation(model, hd.example_batch(model.config))
    assert cell["num_beams"] == 4 and cell["new_tokens"] == 5 and cell["banned_ids_generated"] == []
    assert cell["start"] == "pad=58100"


def test_sampling_is_detected(t5):
    model, batch = t5
    model.generation_config.do_sample = True
    try:
        assert hd.measure_generation(model, batch)["sampled"]
    finally:
        model.generation_config.do_sample = False


def test_describe_allowed_tells_masks_apart():
    padding = torch.tensor([[1, 1, 1, 0]])
    causal = torch.ones(1, 1, 4, 4, dtype=torch.bool).tril()
    assert hd.describe_allowed(causal, padding)["mask"] == "causal only, pads visible"
    assert hd.describe_allowed(causal & padding.bool()[:, None, None], padding)["mask"] == "causal + padding"
    assert hd.describe_allowed(torch.ones(1, 1, 4, 4, dtype=torch.bool), padding)["mask"].startswith("no mask")


def test_matrix_rows_have_one_column_per_call_form():
    matrix = {"bart": {"default": {"eager": hd._measure_family("bart", "default", "eager")}}}
    (row,) = hd.matrix_rows(matrix)
    assert set(row) == {"family", "config", "attention", *hd.CALL_FORMS, "generate"}
    assert row["neither"].startswith("shift_right(input_ids)")


def test_a_t5_v1_1_style_config_gets_a_tied_lm_head_and_no_output_scaling():
    tie = hd.t5_v1_1_tie()
    assert tie == {"config_tie_word_embeddings": True, "scale_decoder_outputs": False,
                   "lm_head_is_shared_embedding": True, "is_gated_act": True}


def test_loss_reduction_tells_the_reductions_apart_with_the_dtype_tolerance():
    from utils.handwritten.teacher_forcing import masked_cross_entropy

    torch.manual_seed(0)
    logits = torch.randn(2, 5, 11)
    labels = torch.tensor([[3, 4, 5, 6, 7], [3, 4, -100, -100, -100]])  # unequal lengths
    for reduction, name in (("token_mean", "mean over non -100 tokens"), ("sequence_mean", "mean of sequence means"),
                            ("sum", "sum")):
        assert hd._loss_reduction(masked_cross_entropy(logits, labels, reduction=reduction), logits, labels) == name
    assert hd._loss_reduction(masked_cross_entropy(logits, labels) + 1e-2, logits, labels) == "other"
