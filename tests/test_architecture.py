"""utils.experiments.architecture: each probe must report the built model's property, and change its answer when the
property is switched off in the config or the module."""

import math

import pytest
import torch
from torch import nn
from transformers import BartForConditionalGeneration, MarianMTModel, T5ForConditionalGeneration
from transformers.models.t5.modeling_t5 import T5LayerNorm

from utils.experiments import architecture as arch
from utils.workbench.batching import batch_pairs
from utils.workbench.data import load_pairs
from utils.workbench.models import FAMILIES, build_config, build_model, build_tokenizer

PAIRS = [("July 10, 1967", "10. Juli 1967"), ("nine hundred and thirty-two", "neunhundertzweiunddreißig")]


@pytest.fixture(scope="module")
def tokenizers():
    return {family: build_tokenizer(family) for family in FAMILIES}


@pytest.fixture(scope="module")
def models(tokenizers):
    return {family: build_model(family, tokenizer=tokenizers[family], seed=0, causal=family != "tinfer").eval()
            for family in FAMILIES}


@pytest.fixture(scope="module")
def batches(tokenizers):
    return {family: batch_pairs(tokenizers[family], PAIRS) for family in FAMILIES}


def variant(family, tokenizer, **config_changes):
    """A tiny HF model of `family` with some config fields changed."""
    model_class = {"t5": T5ForConditionalGeneration, "marian": MarianMTModel,
                   "bart": BartForConditionalGeneration}[family]
    config = build_config(family, tokenizer)
    for name, value in config_changes.items():
        setattr(config, name, value)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    return model_class(config).eval()


def test_check_family_rejects_unknown():
    with pytest.raises(ValueError, match="family must be one of"):
        arch.check_family("gpt2")


def test_position_information(models):
    kinds = {f: arch.position_information(models[f], f)["kind"] for f in FAMILIES}
    assert kinds == {"t5": "relative_bias", "marian": "sinusoidal", "bart": "learned", "tinfer": "sinusoidal"}
    t5 = arch.position_information(models["t5"], "t5")
    assert t5["bias_tables"] == ["encoder.block.0.layer.0.SelfAttention", "decoder.block.0.layer.0.SelfAttention"]
    assert arch.position_information(models["bart"], "bart")["offset"] == 2


def test_position_information_notices_a_changed_table(tokenizers):
    model = variant("marian", tokenizers["marian"])
    with torch.no_grad():
        model.model.encoder.embed_positions.weight[5, 0] += 0.5
    assert arch.position_information(model, "marian")["kind"] == "unknown"


def test_marian_layout_reorders_columns():
    table = torch.arange(12.0).view(2, 6)
    assert arch._marian_layout(table).tolist() == [[0, 2, 4, 1, 3, 5], [6, 8, 10, 7, 9, 11]]


def test_norm_subtracts_mean_tells_layernorm_from_rmsnorm():
    assert arch._norm_subtracts_mean(nn.LayerNorm(8), 8)
    assert not arch._norm_subtracts_mean(T5LayerNorm(8), 8)


def test_norm_placement(models, batches):
    found = {f: arch.norm_placement(models[f], f, batches[f]) for f in FAMILIES}
    assert {f: e["placement"] for f, e in found.items()} == {"t5": "pre-LN", "marian": "post-LN", "bart": "post-LN",
                                                            "tinfer": "post-LN"}
    assert not found["t5"]["subtracts_mean"] and not found["t5"]["norm_has_bias"]
    assert found["t5"]["norms_outside_layers"] == ["encoder.final_layer_norm", "decoder.final_layer_norm"]
    assert found["bart"]["norms_outside_layers"] == ["model.encoder.layernorm_embedding",
                                                     "model.decoder.layernorm_embedding"]
    assert found["marian"]["norms_outside_layers"] == []


def test_embedding_scale(models, batches, tokenizers):
    scales = {f: arch.embedding_scale(models[f], f, batches[f]["input_ids"])["scale"] for f in FAMILIES}
    assert scales == {"t5": "1", "marian": "sqrt(d_model)", "bart": "1", "tinfer": "sqrt(d_model)"}
    unscaled = variant("marian", tokenizers["marian"], scale_embedding=False)
    assert arch.embedding_scale(unscaled, "marian", batches["marian"]["input_ids"])["scale"] == "1"


def test_attention_score_scale(models, tokenizers):
    measured = {f: arch.attention_score_scale(models[f], f) for f in FAMILIES}
    assert measured["t5"]["scale"] == pytest.approx(1.0, abs=1e-4)
    for family in ("marian", "bart", "tinfer"):
        assert measured[family]["scale"] == pytest.approx(measured[family]["inverse_sqrt_d_head"], abs=1e-4)
        assert measured[family]["residual"] < 1e-4
    model = variant("bart", tokenizers["bart"])
    model.model.encoder.layers[0].self_attn.scaling = 0.5
    assert arch.attention_score_scale(model, "bart")["scale"] == pytest.approx(0.5, abs=1e-4)


def test_output_scale(models, batches, tokenizers):
    assert arch.output_scale(models["t5"], "t5", batches["t5"])["scale"] == pytest.approx(64**-0.5, rel=1e-5)
    for family in ("marian", "bart", "tinfer"):
        assert arch.output_scale(models[family], family, batches[family])["scale"] == pytest.approx(1.0, rel=1e-5)
    t5_v1_1_style = variant("t5", tokenizers["t5"], scale_decoder_outputs=False)  # what tie_word_embeddings=False did
    assert arch.output_scale(t5_v1_1_style, "t5", batches["t5"])["scale"] == pytest.approx(1.0, rel=1e-5)


def test_query_key_init_ratio(models):
    t5 = arch.query_key_init_ratio(models["t5"], "t5")
    assert t5["std_ratio_q_over_k"] == pytest.approx(t5["inverse_sqrt_d_head"], rel=0.1)
    assert arch.query_key_init_ratio(models["marian"], "marian")["std_ratio_q_over_k"] == pytest.approx(1.0, rel=0.1)


def test_vocab_tensors_tied_and_untied(models, tokenizers):
    for family in FAMILIES:
        assert arch.vocab_tensors(models[family], len(tokenizers[family]))["tied"]
    assert arch.vocab_tensors(models["t5"], len(tokenizers["t5"]))["final_logits_bias"] is None
    bias = arch.vocab_tensors(models["marian"], len(tokenizers["marian"]))["final_logits_bias"]
    assert bias == {"shape": [1, len(tokenizers["marian"])], "trainable": False, "registered_buffer": True,
                    "all_zero": True}
    assert arch.summarize("final_logits_bias", {"final_logits_bias": bias}) == (
        "buffer", f"(1, {len(tokenizers['marian'])}) buffer, not a Parameter, zeros at init")
    as_parameter = variant("marian", tokenizers["marian"])
    as_parameter.final_logits_bias = nn.Parameter(torch.ones(1, len(tokenizers["marian"])))
    changed = arch.vocab_tensors(as_parameter, len(tokenizers["marian"]))["final_logits_bias"]
    assert changed["trainable"] and not changed["registered_buffer"] and not changed["all_zero"]
    assert arch.summarize("final_logits_bias", {"final_logits_bias": changed})[0] == "parameter"
    untied = variant("bart", tokenizers["bart"], tie_word_embeddings=False)
    found = arch.vocab_tensors(untied, len(tokenizers["bart"]))
    assert not found["tied"] and found["distinct_vocab_parameters"] > 1


def test_ffn_activation(models, batches, tokenizers):
    found = {f: arch.ffn_activation(models[f], f, batches[f])["activation"] for f in FAMILIES}
    assert found == {"t5": "relu", "marian": "silu (swish)", "bart": "gelu", "tinfer": "relu"}
    relu_bart = variant("bart", tokenizers["bart"], activation_function="relu")
    assert arch.ffn_activation(relu_bart, "bart", batches["bart"])["activation"] == "relu"


def test_bias_census(models):
    t5, marian = arch.bias_census(models["t5"]), arch.bias_census(models["marian"])
    assert t5["linear_with_bias"] == 0 and t5["norm_with_bias"] == 0 and t5["linear_total"] > 0
    assert marian["linear_with_bias"] == marian["linear_total"] and marian["norm_with_bias"] == marian["norm_total"]


def test_dropout_settings(models, batches, tokenizers):
    torch.manual_seed(0)
    found = arch.dropout_settings(models["marian"], "marian", batches["marian"])
    assert found["config"]["dropout"] == 0.1
    assert found["train_mode_max_abs_diff"] > 0 and found["eval_mode_max_abs_diff"] == 0
    assert not models["marian"].training
    no_dropout = variant("marian", tokenizers["marian"], dropout=0.0)
    assert arch.dropout_settings(no_dropout, "marian", batches["marian"])["train_mode_max_abs_diff"] == 0


def test_decoder_causality(models, batches, tokenizers):
    for family in ("t5", "marian"):
        found = arch.decoder_causality(models[family], batches[family], len(tokenizers[family]),
                                       tokenizers[family].all_special_ids)
        assert found["causal"] and found["max_future_sensitivity"] == 0
    no_mask = build_model("tinfer", tokenizer=tokenizers["tinfer"], causal=False).eval()
    found = arch.decoder_causality(no_mask, batches["tinfer"], len(tokenizers["tinfer"]))
    assert not found["causal"] and found["leaking_pairs"] > 0


def test_decoder_start(models, batches, tokenizers):
    found = {f: arch.decoder_start(models[f], f, tokenizers[f], batches[f]) for f in FAMILIES}
    assert {f: e["role"] for f, e in found.items()} == {"t5": "pad", "marian": "pad", "bart": "eos", "tinfer": "pad"}
    for e in found.values():
        assert e["first_input_from_labels"] == e["first_token_of_generate"] == [e["decoder_start_token_id"]]


def test_decoding_defaults(models):
    assert arch.decoding_defaults(models["tinfer"]) is None
    marian = arch.decoding_defaults(models["marian"])
    assert marian["num_beams"] == 1 and marian["forced_eos_token_id"] == 0 and not marian["do_sample"]
    assert arch.decoding_defaults(models["t5"])["forced_eos_token_id"] is None


def test_relative_position_buckets():
    matrix = arch.relative_position_buckets(5, 7, bidirectional=True)
    assert matrix.shape == (5, 7)
    offsets = torch.arange(7)[None, :] - torch.arange(5)[:, None]
    assert torch.equal(matrix, arch.bucket_by_offset(offsets, True))
    decoder = arch.relative_position_buckets(6, 6, bidirectional=False)
    assert (decoder.triu() == 0).all() and (decoder.tril(-1) > 0)[1:, :1].all()
    far = arch.bucket_by_offset(torch.tensor([-1000, -128, 128, 1000]), True)
    assert far.tolist() == [15, 15, 31, 31]


def test_summarize_values_and_errors():
    assert arch.summarize("embedding_scale", {"scale": "sqrt(d_model)", "d_model": 64}) == ("sqrt(d_model)",
                                                                                         "x sqrt(d_model) = 8")
    assert arch.summarize("decoding", None)[0] is None
    value, text = arch.summarize("decoding", {"num_beams": 4, "do_sample": False, "max_length": 512,
                                              "forced_eos_token_id": 0})
    assert value == "beam 4" and "forced eos 0" in text
    assert arch.summarize("biases", {"linear_with_bias": 3, "linear_total": 4, "norm_with_bias": 0,
                                     "norm_total": 2})[0] == "some"
    assert arch.summarize("attention_scale", {"scale": 1.0, "inverse_sqrt_d_head": 0.25})[1].endswith("(unscaled)")
    with pytest.raises(ValueError, match="unknown row"):
        arch.summarize("colour", {})


def test_checkpoint_family(tmp_path, tokenizers):
    variant("marian", tokenizers["marian"]).save_pretrained(tmp_path / "marian")
    assert arch.checkpoint_family(str(tmp_path / "marian")) == "marian"
    with pytest.raises(ValueError, match="not a local folder"):
        arch.checkpoint_family("Helsinki-NLP/opus-mt-en-de")


def test_probes_work_on_a_real_sized_batch(models, tokenizers):
    batch = batch_pairs(tokenizers["t5"], load_pairs("test", limit=3))
    assert arch.norm_placement(models["t5"], "t5", batch)["placement"] == "pre-LN"
    assert math.isclose(arch.output_scale(models["t5"], "t5", batch)["residual"], 0.0, abs_tol=1e-4)


def test_library_default_config_changes_only_the_sizes():
    marian = arch.library_default_config("marian")
    assert (marian.d_model, marian.encoder_layers, marian.encoder_ffn_dim) == (64, 2, 256)
    assert marian.activation_function == "gelu" and marian.scale_embedding is False
    assert marian.vocab_size == 58101 and marian.decoder_start_token_id == marian.pad_token_id == 58100
    t5 = arch.library_default_config("t5")
    assert (t5.d_model, t5.d_kv, t5.num_heads) == (64, 16, 4) and not hasattr(t5, "decoder_start_token_id")
    assert arch._start_token_id(t5) == t5.pad_token_id == 0
    assert arch._start_token_id(arch.library_default_config("bart")) == 2
    with pytest.raises(ValueError, match="family must be one of"):
        arch.library_default_config("tinfer")
    with pytest.raises(ValueError, match="'size' must be one of"):
        arch.library_default_config("t5", "huge")


def test_probes_on_library_default_models(batches):
    """MarianConfig() differs from the collection's opus-mt style config; T5Config() has no start token."""
    marian = arch.build_library_default_model("marian")
    assert arch.ffn_activation(marian, "marian", batches["marian"])["activation"] == "gelu"
    assert arch.embedding_scale(marian, "marian", batches["marian"]["input_ids"])["scale"] == "1"
    t5 = arch.build_library_default_model("t5")
    start = arch.decoder_start(t5, "t5", None, batches["t5"])
    assert start["role"] == "not defined" and start["first_input_from_labels"].startswith("AttributeError")
    assert start["first_token_of_generate"].startswith("ValueError")
    assert arch.summarize("decoder_start", start) == ("not defined", "not defined: labels and generate() raise")
    assert arch.norm_placement(t5, "t5", batches["t5"])["placement"] == "pre-LN"  # runs without a start id
    torch.manual_seed(0)
    assert arch.dropout_settings(t5, "t5", batches["t5"])["train_mode_max_abs_diff"] > 0
    assert arch.decoder_causality(t5, batches["t5"], 100)["causal"]


@pytest.mark.parametrize("family", ["tinfer", "marian", "bart"])
def test_position_information_on_an_accelerator_matches_the_cpu(tokenizers, simulated_cuda, family):
    """Issue 21: the position table lived on CUDA and the formula on the CPU ("Expected all tensors to be on the same
    device"); the table now goes to the host first, and the verdict is the CPU's."""
    model = build_model(family, tokenizer=tokenizers[family], causal=False)
    on_host = arch.position_information(model, family)
    on_device = arch.position_information(model.to(simulated_cuda), family)
    assert on_device == on_host and on_host["kind"] == {"tinfer": "sinusoidal", "marian": "sinusoidal",
                                                        "bart": "learned"}[family]


def test_sinusoid_comparison_separates_a_reordered_table():
    table = arch.sinusoidal_positions(64, 16)
    reordered = arch._marian_layout(table)
    assert arch._sinusoid_comparison(reordered, reordered + 1e-6).same
    assert arch._sinusoid_comparison(table, reordered).different  # interleaved vs halves: far apart


def test_table_claims_follow_expected_cells():
    expected = arch.expected_cells({f: 64 for f in FAMILIES}, {f: 0.25 for f in FAMILIES}, tinfer_causal=False)
    values = {row: dict(cells) for row, cells in expected.items()}
    defaults = {row: {f: v for f, v in cells.items() if f in arch.HF_FAMILIES} for row, cells in expected.items()}
    for (row, family), (default_value, _) in arch.DEFAULT_CLAIMS.items():
        defaults[row][family] = default_value
    names = {"t5": "T5Config()", "marian": "MarianConfig()", "bart": "BartConfig()"}
    def cells(row, family):
        return {"this_collection": "", "library_default": ""}

    claims = arch.table_claims(expected, values, defaults, cells, names)
    assert all(c["holds"] for c in claims) and len({c["claim_id"] for c in claims}) == len(claims)
    assert {c["claim_id"] for c in claims if c.get("sanity")} == {arch.TABLE_CLAIMS[r][f] for r, f in arch.SANITY_CELLS}
    values["causal"]["tinfer"] = "causal"  # the researcher's model measured causal: its claim must fail
    failing = [c["claim_id"] for c in arch.table_claims(expected, values, defaults, cells, names) if not c["holds"]]
    assert failing == ["tinfer_decoder_mask_matches_its_setting"]
