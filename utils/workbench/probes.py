"""Measuring helpers around the code under study (not compared with HF themselves):

- `pick_spread`                 n items spanning the range of a key (examples from short to long)
- `_first_decoder_layer`        the first decoder block of a TinferModel, T5, GPT-2, Marian or BART
- `DecoderPositionCounter`      how many positions enter the decoder (KV cache vs recomputing the prefix)
- `reload_with_config_entries`  a model saved as an old checkpoint would be (generation entries in config.json)
"""

import json
from pathlib import Path

import torch

from utils.handwritten.seq2seq import is_tinfer

__all__ = ["DecoderPositionCounter", "pick_spread", "reload_with_config_entries"]


def pick_spread(items: list, n: int, key) -> list:
    """`n` items spanning the range of `key(item)`: the smallest, the largest and evenly in between (sorted)."""
    if not 1 <= n <= len(items):
        raise ValueError(f"n must be in [1, {len(items)}], got {n}")
    ordered = sorted(items, key=key)
    if n == 1:
        return [ordered[-1]]
    return [ordered[round(i * (len(ordered) - 1) / (n - 1))] for i in range(n)]


def _first_decoder_layer(model) -> torch.nn.Module:
    """The first decoder block of a TinferModel, T5, GPT-2, or a BART-like model (Marian, BART)."""
    if is_tinfer(model):
        return model.decoder_layers[0]
    if hasattr(model, "transformer") and hasattr(model.transformer, "h"):  # GPT-2
        return model.transformer.h[0]
    decoder = model.get_decoder()
    return decoder.block[0] if hasattr(decoder, "block") else decoder.layers[0]


class DecoderPositionCounter:
    """Counts the positions (per row) that enter the decoder: `with DecoderPositionCounter(model) as c: ...`.

    With a KV cache each step feeds one new position; without, the whole prefix is recomputed.
    """

    def __init__(self, model):
        self.layer = _first_decoder_layer(model)
        self.positions, self.calls = 0, 0

    def _count(self, module, args, kwargs):
        hidden_states = args[0] if args else kwargs["hidden_states"]
        self.positions += hidden_states.shape[1]  # (B, T_new, d_model)
        self.calls += 1

    def __enter__(self):
        self.handle = self.layer.register_forward_pre_hook(self._count, with_kwargs=True)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def reload_with_config_entries(model, entries: dict, folder) -> torch.nn.Module:
    """Save `model` to `folder` as an old checkpoint would look: `entries` (e.g. num_beams) written into
    config.json and no generation_config.json; then load it back with `from_pretrained`."""
    folder = Path(folder)
    model.save_pretrained(folder)
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config_path.write_text(json.dumps({**config, **entries}, indent=2), encoding="utf-8")
    (folder / "generation_config.json").unlink(missing_ok=True)
    return type(model).from_pretrained(folder).eval()
