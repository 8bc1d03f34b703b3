"""One view of an encoder-decoder for the code under study: the hand-written `TinferModel` or an HF model.

`TinferModel` speaks HF's seq2seq call signature (`get_encoder()`, `model(encoder_outputs=..., decoder_input_ids=...)`,
`labels` -> loss), so most code calls both the same way. What still differs lives here, and only here:
the key/value cache (HF has one, tinfer not), where the decoder layers sit, and how to watch the decoder inputs.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from utils.handwritten.teacher_forcing import decoder_attention_mask_from_labels
from utils.handwritten.tinfer import TinferConfig, TinferModel

__all__ = [
    "SpecialIds",
    "decoder_logits",
    "decoder_self_attention_modules",
    "encode",
    "is_encoder_decoder",
    "is_tinfer",
    "labels_only_decoder_attention_mask",
    "special_token_ids",
    "supports_kv_cache",
    "watch_decoder_input_ids",
]


def is_tinfer(model) -> bool:
    return isinstance(model, TinferModel)


def is_encoder_decoder(model) -> bool:
    """True for a TinferModel, an HF encoder-decoder, or the config of either."""
    config = getattr(model, "config", model)
    return is_tinfer(model) or isinstance(config, TinferConfig) or bool(getattr(config, "is_encoder_decoder", False))


def supports_kv_cache(model) -> bool:
    """HF models keep past keys and values between decoding steps; the hand-written model recomputes the prefix."""
    return not is_tinfer(model)


@dataclass(frozen=True)
class SpecialIds:
    decoder_start_token_id: int | None  # None for decoder-only models: the prompt is the prefix
    eos_token_id: int | None
    pad_token_id: int | None

    def __iter__(self) -> Iterator[int | None]:
        return iter((self.decoder_start_token_id, self.eos_token_id, self.pad_token_id))


def special_token_ids(model, decoder_start_token_id=None, eos_token_id=None, pad_token_id=None) -> SpecialIds:
    """Start / eos / pad ids of a model (or a config): explicit arguments first, then the model's generation
    config, then its config."""
    sources = [getattr(model, "generation_config", None), getattr(model, "config", model)]

    def pick(name, explicit):
        if explicit is not None:
            return explicit
        for source in sources:
            value = getattr(source, name, None) if source is not None else None
            if value is not None:
                return value[0] if isinstance(value, list | tuple) else value
        return None

    eos = pick("eos_token_id", eos_token_id)
    pad = pick("pad_token_id", pad_token_id)
    start = pick("decoder_start_token_id", decoder_start_token_id) if is_encoder_decoder(model) else None
    if is_encoder_decoder(model) and start is None:
        raise ValueError("the model has no decoder_start_token_id; pass decoder_start_token_id=")
    return SpecialIds(start, eos, pad if pad is not None else eos)  # decoder-only GPT-2: pad = eos, like generate


def encode(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None):
    """Run the encoder once; the output carries `.last_hidden_state` (B, S, d_model) for either kind of model."""
    return model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask)


def decoder_logits(model, encoder_outputs, attention_mask: torch.Tensor | None,
                   decoder_input_ids: torch.Tensor | None = None,
                   decoder_attention_mask: torch.Tensor | None = None,
                   decoder_inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
    """Logits (B, T, V) of the decoder on a whole prefix, given the encoder run once; no cache."""
    return model(encoder_outputs=encoder_outputs, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
                 decoder_attention_mask=decoder_attention_mask, decoder_inputs_embeds=decoder_inputs_embeds,
                 use_cache=False).logits


def labels_only_decoder_attention_mask(model, labels: torch.Tensor) -> torch.Tensor | None:
    """The decoder padding mask a model builds for itself when it gets `labels` only: tinfer masks the padded
    label positions ("masks only for out of bounds"); HF's models build none (None)."""
    return decoder_attention_mask_from_labels(labels) if is_tinfer(model) else None


def decoder_self_attention_modules(model) -> list[tuple[str, torch.nn.Module]]:
    """The decoder self-attention modules of a TinferModel or an HF encoder-decoder (T5, Marian, BART, ...)."""
    if is_tinfer(model):
        return [(f"decoder_layers.{i}.self_attn", layer.self_attn) for i, layer in enumerate(model.decoder_layers)]
    decoder = model.get_decoder()
    modules = [(name, module) for name, module in decoder.named_modules()
               if name.split(".")[-1] in ("SelfAttention", "self_attn")]
    if not modules:
        raise ValueError(f"found no decoder self-attention module in {type(model).__name__}")
    return modules


@contextmanager
def watch_decoder_input_ids(model) -> Iterator[list[torch.Tensor | None]]:
    """Within the block, every forward pass appends the decoder input ids it used to the yielded list."""
    seen: list[torch.Tensor | None] = []
    if is_tinfer(model):  # `decode` is a method, not a submodule: wrap it for the block
        decode = model.decode

        def watching_decode(decoder_input_ids, *args, **kwargs):
            seen.append(decoder_input_ids)
            return decode(decoder_input_ids, *args, **kwargs)

        model.decode = watching_decode
        try:
            yield seen
        finally:
            del model.decode
        return

    def hook(module, args, kwargs):
        seen.append(kwargs.get("input_ids", args[0] if args else None))

    handle = model.get_decoder().register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield seen
    finally:
        handle.remove()
