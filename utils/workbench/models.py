"""Build the collection's models: tiny HF T5 / Marian / BART from configs, and the hand-written "tinfer"; the one
config builder for every family (also GPT-2 and RoBERTa) and size, with our tokenizer or with the library's defaults.

Configs are matched to our tokenizers (pad, eos and start ids read from the tokenizer), so every
family learns on the same data. `model_name_or_path` loads a real checkpoint instead; offline it
must be a local folder.
"""

import os
from pathlib import Path

import torch
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    BartConfig,
    BartForConditionalGeneration,
    GPT2Config,
    MarianConfig,
    MarianMTModel,
    PreTrainedTokenizerBase,
    RobertaConfig,
    T5Config,
    T5ForConditionalGeneration,
)

from utils.handwritten.tinfer import TinferConfig, TinferModel
from utils.workbench.tokenizers import load_tokenizer

__all__ = ["ATTN_IMPLEMENTATIONS", "CONFIG_FAMILIES", "FAMILIES", "FAMILY_TOKENIZER", "MAX_POSITIONS", "SIZES",
           "build_config", "build_model", "build_tokenizer", "check_model_name_or_path", "count_parameters",
           "size_fields"]

FAMILIES = ("t5", "marian", "bart", "tinfer")
ATTN_IMPLEMENTATIONS = ("eager", "sdpa")
# d_model, heads, d_ff, layers (encoder = decoder)
SIZES = {
    "tiny": {"d_model": 64, "n_heads": 4, "d_ff": 256, "n_layers": 2},
    "small": {"d_model": 128, "n_heads": 4, "d_ff": 512, "n_layers": 3},
}
# which of our tokenizers each family uses by default
FAMILY_TOKENIZER = {"t5": "t5", "marian": "marian", "bart": "bart", "tinfer": "t5"}
MAX_POSITIONS = 256


def _hub_is_offline() -> bool:
    return any(os.environ.get(name, "").lower() in ("1", "true", "yes") for name in
               ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def check_model_name_or_path(model_name_or_path: str) -> None:
    """Offline, only a local folder can be loaded: say so before transformers tries the network."""
    if Path(model_name_or_path).is_dir():
        return
    if _hub_is_offline():
        raise ValueError(
            f"parameter 'model_name_or_path' is {model_name_or_path!r}, which is not a local folder, and the "
            "hub is offline (HF_HUB_OFFLINE=1). Pass a folder with a saved checkpoint, or leave it None to build "
            "a tiny model from a config; online, unset HF_HUB_OFFLINE to download a checkpoint."
        )


CONFIG_FAMILIES = (*FAMILIES, "gpt2", "roberta")  # the decoder-only and encoder-only models of notebook 06 too


def _check_family_and_size(family: str, size: str, families: tuple[str, ...] = FAMILIES) -> None:
    if family not in families:
        raise ValueError(f"parameter 'family' must be one of {families}, got {family!r}")
    if size not in SIZES:
        raise ValueError(f"parameter 'size' must be one of {tuple(SIZES)}, got {size!r}")


def _family_special_ids(tokenizer: PreTrainedTokenizerBase, family: str) -> dict[str, int]:
    """pad / eos / decoder start ids for a family: T5 and Marian start from pad, BART from eos."""
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    start = eos if family == "bart" else pad
    return {"pad_token_id": pad, "eos_token_id": eos, "decoder_start_token_id": start}


def size_fields(family: str, size: str = "tiny") -> dict:
    """The config fields of `SIZES[size]` (width, heads, FFN, layers) under each family's names; GPT-2 and RoBERTa
    are as deep as an encoder plus a decoder (so 4 layers for "tiny")."""
    _check_family_and_size(family, size, CONFIG_FAMILIES)
    d_model, n_heads, d_ff, n_layers = (SIZES[size][k] for k in ("d_model", "n_heads", "d_ff", "n_layers"))
    if family == "t5":
        return {"d_model": d_model, "d_kv": d_model // n_heads, "d_ff": d_ff, "num_layers": n_layers,
                "num_heads": n_heads}
    if family in ("marian", "bart"):
        return {"d_model": d_model, "encoder_layers": n_layers, "decoder_layers": n_layers,
                "encoder_attention_heads": n_heads, "decoder_attention_heads": n_heads, "encoder_ffn_dim": d_ff,
                "decoder_ffn_dim": d_ff}
    if family == "tinfer":
        return {"d_model": d_model, "n_heads": n_heads, "d_ff": d_ff, "n_encoder_layers": n_layers,
                "n_decoder_layers": n_layers}
    if family == "gpt2":
        return {"n_embd": d_model, "n_layer": 2 * n_layers, "n_head": n_heads, "n_inner": d_ff}
    return {"hidden_size": d_model, "num_hidden_layers": 2 * n_layers, "num_attention_heads": n_heads,
            "intermediate_size": d_ff}


def _tokenizer_fields(family: str, tokenizer: PreTrainedTokenizerBase, dropout: float, causal: bool) -> dict:
    """The fields that match a config to our tokenizer and training setup (vocabulary, special ids, dropout)."""
    if family == "gpt2":
        return {"vocab_size": len(tokenizer), "n_positions": MAX_POSITIONS, "resid_pdrop": dropout,
                "embd_pdrop": dropout, "attn_pdrop": dropout, "bos_token_id": tokenizer.bos_token_id,
                "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    if family == "roberta":  # positions start after the pad id
        return {"vocab_size": len(tokenizer), "hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout,
                "max_position_embeddings": MAX_POSITIONS + tokenizer.pad_token_id + 1, "type_vocab_size": 1,
                "pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id,
                "eos_token_id": tokenizer.eos_token_id}
    fields = {"vocab_size": len(tokenizer), **_family_special_ids(tokenizer, family)}
    if family == "t5":
        return {**fields, "dropout_rate": dropout, "feed_forward_proj": "relu"}
    if family == "tinfer":
        return {**fields, "dropout": dropout, "max_positions": MAX_POSITIONS, "causal": causal}
    fields |= {"max_position_embeddings": MAX_POSITIONS, "dropout": dropout,
               "forced_eos_token_id": tokenizer.eos_token_id}
    if family == "marian":
        return {**fields, "activation_function": "swish", "scale_embedding": True}
    return {**fields, "bos_token_id": tokenizer.bos_token_id}


_CONFIG_CLASSES = {"t5": T5Config, "marian": MarianConfig, "bart": BartConfig, "tinfer": TinferConfig,
                  "gpt2": GPT2Config, "roberta": RobertaConfig}


def build_config(family: str, tokenizer: PreTrainedTokenizerBase | None = None, size: str = "tiny",
                 dropout: float = 0.1, causal: bool = True, **fields):
    """The one config builder, for every family and size.

    With a `tokenizer`: the collection's config, matched to our tokenizer (vocabulary, pad / eos / start ids,
    `dropout`, `causal` for tinfer; Marian opus-mt style: swish, scaled embeddings). Without one: the library's
    default config (`T5Config()` & co.) with only the sizes of `SIZES[size]` changed. `fields` are set last, e.g. a
    checkpoint's behavioural fields (`utils.experiments.hf_defaults`).
    """
    _check_family_and_size(family, size, CONFIG_FAMILIES)
    if tokenizer is None and family in ("tinfer", "gpt2", "roberta"):
        raise ValueError(f"family {family!r} is built for a tokenizer: pass tokenizer=")
    matched = _tokenizer_fields(family, tokenizer, dropout, causal) if tokenizer is not None else {}
    return _CONFIG_CLASSES[family](**{**size_fields(family, size), **matched, **fields})


def build_tokenizer(family: str, model_name_or_path: str | None = None) -> PreTrainedTokenizerBase:
    """Our trained tokenizer for the family, or the checkpoint's own when `model_name_or_path` is set."""
    _check_family_and_size(family, "tiny")
    if model_name_or_path is not None:
        check_model_name_or_path(model_name_or_path)
        return AutoTokenizer.from_pretrained(model_name_or_path)
    return load_tokenizer(FAMILY_TOKENIZER[family])


def build_model(
    family: str,
    size: str = "tiny",
    model_name_or_path: str | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    seed: int = 0,
    causal: bool = True,
    dropout: float = 0.1,
    attn_implementation: str = "eager",
) -> torch.nn.Module:
    """A freshly initialised model (same `seed` -> same weights), or a checkpoint via `model_name_or_path`.

    `causal` applies to the hand-written "tinfer" family only; HF decoders are always causal.
    """
    _check_family_and_size(family, size)
    if attn_implementation not in ATTN_IMPLEMENTATIONS:
        raise ValueError(f"parameter 'attn_implementation' must be one of {ATTN_IMPLEMENTATIONS}, "
                         f"got {attn_implementation!r}")
    if model_name_or_path is not None:
        if family == "tinfer":
            raise ValueError("family 'tinfer' is built here; model_name_or_path applies to t5, marian and bart")
        check_model_name_or_path(model_name_or_path)
        return AutoModelForSeq2SeqLM.from_pretrained(model_name_or_path, attn_implementation=attn_implementation)
    tokenizer = tokenizer if tokenizer is not None else build_tokenizer(family)
    config = build_config(family, tokenizer, size, dropout, causal)
    torch.manual_seed(seed)
    if family == "tinfer":
        return TinferModel(config)
    config._attn_implementation = attn_implementation
    model_class = {"t5": T5ForConditionalGeneration, "marian": MarianMTModel, "bart": BartForConditionalGeneration}
    return model_class[family](config)


def count_parameters(model: torch.nn.Module) -> int:
    """Distinct trainable parameters (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters() if p.requires_grad}.values())
