"""Build the collection's models: tiny HF T5 / Marian / BART from configs, and the hand-written "tinfer".

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
    MarianConfig,
    MarianMTModel,
    PreTrainedTokenizerBase,
    T5Config,
    T5ForConditionalGeneration,
)

from utils.handwritten.tinfer import TinferConfig, TinferModel
from utils.workbench.tokenizers import load_tokenizer

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


def hub_is_offline() -> bool:
    return any(os.environ.get(name, "").lower() in ("1", "true", "yes") for name in
               ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def check_model_name_or_path(model_name_or_path: str) -> None:
    """Offline, only a local folder can be loaded: say so before transformers tries the network."""
    if Path(model_name_or_path).is_dir():
        return
    if hub_is_offline():
        raise ValueError(
            f"parameter 'model_name_or_path' is {model_name_or_path!r}, which is not a local folder, and the "
            "hub is offline (HF_HUB_OFFLINE=1). Pass a folder with a saved checkpoint, or leave it None to build "
            "a tiny model from a config; online, unset HF_HUB_OFFLINE to download a checkpoint."
        )


def _check_family_and_size(family: str, size: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"parameter 'family' must be one of {FAMILIES}, got {family!r}")
    if size not in SIZES:
        raise ValueError(f"parameter 'size' must be one of {tuple(SIZES)}, got {size!r}")


def _family_special_ids(tokenizer: PreTrainedTokenizerBase, family: str) -> dict[str, int]:
    """pad / eos / decoder start ids for a family: T5 and Marian start from pad, BART from eos."""
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    start = eos if family == "bart" else pad
    return {"pad_token_id": pad, "eos_token_id": eos, "decoder_start_token_id": start}


def t5_config(tokenizer, size: str = "tiny", dropout: float = 0.1) -> T5Config:
    dims = SIZES[size]
    return T5Config(
        vocab_size=len(tokenizer), d_model=dims["d_model"], d_kv=dims["d_model"] // dims["n_heads"],
        d_ff=dims["d_ff"], num_layers=dims["n_layers"], num_heads=dims["n_heads"], dropout_rate=dropout,
        feed_forward_proj="relu", **_family_special_ids(tokenizer, "t5"),
    )


def marian_config(tokenizer, size: str = "tiny", dropout: float = 0.1) -> MarianConfig:
    dims = SIZES[size]
    return MarianConfig(
        vocab_size=len(tokenizer), d_model=dims["d_model"], encoder_layers=dims["n_layers"],
        decoder_layers=dims["n_layers"], encoder_attention_heads=dims["n_heads"],
        decoder_attention_heads=dims["n_heads"], encoder_ffn_dim=dims["d_ff"], decoder_ffn_dim=dims["d_ff"],
        max_position_embeddings=MAX_POSITIONS, dropout=dropout, activation_function="swish",
        scale_embedding=True, forced_eos_token_id=tokenizer.eos_token_id, **_family_special_ids(tokenizer, "marian"),
    )


def bart_config(tokenizer, size: str = "tiny", dropout: float = 0.1) -> BartConfig:
    dims = SIZES[size]
    return BartConfig(
        vocab_size=len(tokenizer), d_model=dims["d_model"], encoder_layers=dims["n_layers"],
        decoder_layers=dims["n_layers"], encoder_attention_heads=dims["n_heads"],
        decoder_attention_heads=dims["n_heads"], encoder_ffn_dim=dims["d_ff"], decoder_ffn_dim=dims["d_ff"],
        max_position_embeddings=MAX_POSITIONS, dropout=dropout, bos_token_id=tokenizer.bos_token_id,
        forced_eos_token_id=tokenizer.eos_token_id, **_family_special_ids(tokenizer, "bart"),
    )


def tinfer_config(tokenizer, size: str = "tiny", dropout: float = 0.1, causal: bool = True) -> TinferConfig:
    dims = SIZES[size]
    return TinferConfig(
        vocab_size=len(tokenizer), d_model=dims["d_model"], n_heads=dims["n_heads"], d_ff=dims["d_ff"],
        n_encoder_layers=dims["n_layers"], n_decoder_layers=dims["n_layers"], dropout=dropout,
        max_positions=MAX_POSITIONS, causal=causal, **_family_special_ids(tokenizer, "tinfer"),
    )


def build_config(family: str, tokenizer: PreTrainedTokenizerBase, size: str = "tiny", dropout: float = 0.1,
                 causal: bool = True):
    """The config `build_model` uses for a family (T5Config, MarianConfig, BartConfig or TinferConfig)."""
    _check_family_and_size(family, size)
    if family == "tinfer":
        return tinfer_config(tokenizer, size, dropout, causal)
    return {"t5": t5_config, "marian": marian_config, "bart": bart_config}[family](tokenizer, size, dropout)


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
