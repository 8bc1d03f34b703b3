"""Model builders: configs match our tokenizers, seeds repeat, bad names fail early and clearly."""

import pytest
import torch

from utils.handwritten.teacher_forcing import shift_right
from utils.workbench.models import FAMILIES, build_model, build_tokenizer, check_model_name_or_path, count_parameters


@pytest.mark.parametrize("family", ["t5", "marian", "bart"])
def test_hf_configs_match_tokenizer_and_shift(family):
    tokenizer = build_tokenizer(family)
    model = build_model(family, tokenizer=tokenizer).eval()
    config = model.config
    assert config.vocab_size == len(tokenizer)
    assert config.pad_token_id == tokenizer.pad_token_id and config.eos_token_id == tokenizer.eos_token_id
    expected_start = tokenizer.eos_token_id if family == "bart" else tokenizer.pad_token_id
    assert config.decoder_start_token_id == expected_start
    labels = torch.tensor([[5, 6, tokenizer.eos_token_id, -100]])
    assert torch.equal(model.prepare_decoder_input_ids_from_labels(labels=labels),
                       shift_right(labels, expected_start, tokenizer.pad_token_id))


@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_same_weights_different_seed_different(family):
    first, second, other = (build_model(family, seed=s) for s in (1, 1, 2))
    first_state, second_state, other_state = (m.state_dict() for m in (first, second, other))
    assert all(torch.equal(first_state[k], second_state[k]) for k in first_state)
    assert any(not torch.equal(first_state[k], other_state[k]) for k in first_state)
    assert 10_000 < count_parameters(first) < 2_000_000


def test_tinfer_causal_switch_and_sizes():
    assert build_model("tinfer", causal=False).config.causal is False
    assert count_parameters(build_model("tinfer", size="small")) > count_parameters(build_model("tinfer"))


def test_bad_family_size_and_attention_are_refused():
    with pytest.raises(ValueError, match="parameter 'family' must be one of"):
        build_model("gpt")
    with pytest.raises(ValueError, match="parameter 'size' must be one of"):
        build_model("t5", size="huge")
    with pytest.raises(ValueError, match="parameter 'attn_implementation'"):
        build_model("t5", attn_implementation="flash")
    with pytest.raises(ValueError, match="tinfer"):
        build_model("tinfer", model_name_or_path="t5-small")


def test_hub_name_while_offline_is_refused_before_any_download(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="parameter 'model_name_or_path' is 'google-t5/t5-small'.*offline"):
        check_model_name_or_path("google-t5/t5-small")
    with pytest.raises(ValueError, match="offline"):
        build_model("t5", model_name_or_path="google-t5/t5-small")


def test_local_checkpoint_folder_round_trips(tmp_path):
    model = build_model("marian", seed=3)
    model.save_pretrained(tmp_path)
    build_tokenizer("marian").save_pretrained(tmp_path)
    reloaded = build_model("marian", model_name_or_path=str(tmp_path))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reloaded.state_dict().values(),
                                                  strict=True))
    assert len(build_tokenizer("marian", model_name_or_path=str(tmp_path))) == model.config.vocab_size


def test_one_config_builder_for_every_family_and_size():
    import ast
    from pathlib import Path

    from transformers import GPT2Config, MarianConfig, RobertaConfig, T5Config

    from utils.workbench.models import CONFIG_FAMILIES, SIZES, build_config, size_fields

    tokenizer = build_tokenizer("t5")
    for family in CONFIG_FAMILIES:
        for size in SIZES:
            config = build_config(family, tokenizer, size, dropout=0.0)
            assert all(getattr(config, k) == v for k, v in size_fields(family, size).items()), (family, size)
            assert config.vocab_size == len(tokenizer)
    # without a tokenizer: the library's defaults with the sizes changed, nothing else
    default, library = build_config("marian", size="small"), MarianConfig(**size_fields("marian", "small"))
    assert default.to_dict() == library.to_dict() and default.vocab_size == MarianConfig().vocab_size
    assert build_config("t5").to_dict() == T5Config(**size_fields("t5")).to_dict()
    gpt2, roberta = build_config("gpt2", tokenizer), build_config("roberta", tokenizer)
    assert isinstance(gpt2, GPT2Config) and gpt2.n_layer == 2 * SIZES["tiny"]["n_layers"]
    assert isinstance(roberta, RobertaConfig) and roberta.max_position_embeddings > 256
    with pytest.raises(ValueError, match="tokenizer"):
        build_config("gpt2")
    with pytest.raises(ValueError, match="family"):
        build_config("llama", tokenizer)
    # the experiment modules build no model config themselves (GenerationConfig is not one)
    root = Path(__file__).resolve().parents[1] / "utils" / "experiments"
    for name in ("architecture.py", "lm_objectives.py", "hf_defaults.py"):
        calls = [n.func.id for n in ast.walk(ast.parse((root / name).read_text(encoding="utf-8")))
                 if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id.endswith("Config")
                 and n.func.id != "GenerationConfig"]
        assert calls == [], f"{name} builds configs itself: {calls}"
