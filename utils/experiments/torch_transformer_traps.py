"""Two traps of `torch.nn.Transformer`, measured on the installed torch (the audit of notebook 09 reports them for
models built on it):

    tgt_is_causal_without_mask   `decoder(tgt, memory, tgt_is_causal=True)` with no `tgt_mask`: is the decoder
                                 causal? (The flag is documented as a hint about a mask that is also passed.)
    encoder_fast_path_padding    `nn.TransformerEncoder` in eval() without grad takes a fast path; with a padding
                                 mask it runs on nested tensors: what does it write at padded positions, and do the
                                 real positions agree with the ordinary path?

Each returns plain numbers: the measured changes and the magnitude of the outputs they are judged against.
"""

import warnings

import torch
from torch import nn

__all__ = ["encoder_fast_path_padding", "tgt_is_causal_without_mask"]


def _inputs(seed: int, length: int, d_model: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(2, length, d_model, generator=generator),
            torch.randn(2, length - 2, d_model, generator=generator))


@torch.no_grad()
def tgt_is_causal_without_mask(d_model: int = 16, nhead: int = 2, length: int = 6, seed: int = 0) -> dict:
    """Change the last target position and measure the largest change of the outputs before it, with the hint
    alone and with the hint and the causal mask. Zero (to rounding) means causal."""
    torch.manual_seed(seed)
    layer = nn.TransformerDecoderLayer(d_model, nhead, 2 * d_model, dropout=0.0, batch_first=True)
    decoder = nn.TransformerDecoder(layer, num_layers=1).eval()
    tgt, memory = _inputs(seed, length, d_model)
    changed = tgt.clone()
    changed[:, -1] += 1.0
    mask = nn.Transformer.generate_square_subsequent_mask(length)
    result = {"torch": torch.__version__, "length": length}
    try:
        hint, hint_changed = (decoder(x, memory, tgt_is_causal=True) for x in (tgt, changed))
        result["hint_only_future_change"] = float((hint - hint_changed)[:, :-1].abs().max())
        result["hint_only_raises"] = None
    except (RuntimeError, ValueError) as error:  # a torch that refuses the hint without a mask is not a trap
        result["hint_only_future_change"], result["hint_only_raises"] = 0.0, f"{type(error).__name__}: {error}"
        hint = None
    masked, masked_changed = (decoder(x, memory, tgt_mask=mask, tgt_is_causal=True) for x in (tgt, changed))
    result["with_mask_future_change"] = float((masked - masked_changed)[:, :-1].abs().max())
    result["magnitude"] = float(masked.abs().max())
    return result


def encoder_fast_path_padding(d_model: int = 16, nhead: int = 2, length: int = 6, seed: int = 0) -> dict:
    """One encoder, one padded batch (row 1: the last half padded), run twice: eval + no grad (the fast path,
    nested tensors) and eval with grad enabled (the ordinary path)."""
    torch.manual_seed(seed)
    layer = nn.TransformerEncoderLayer(d_model, nhead, 2 * d_model, dropout=0.0, batch_first=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "enable_nested_tensor is True, but ..." / nested tensors are a prototype
        encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=True).eval()
        source, _ = _inputs(seed, length, d_model)
        padding = torch.zeros(2, length, dtype=torch.bool)
        padding[1, length // 2 :] = True
        with torch.no_grad():
            fast = encoder(source, src_key_padding_mask=padding)
        with torch.enable_grad():
            slow = encoder(source, src_key_padding_mask=padding).detach()
    return {"torch": torch.__version__, "padded_positions": int(padding.sum()),
            "real_max_abs_diff": float((fast - slow)[~padding].abs().max()),
            "fast_padded_max_abs": float(fast[padding].abs().max()),
            "slow_padded_max_abs": float(slow[padding].abs().max()),
            "padded_max_abs_diff": float((fast - slow)[padding].abs().max()),
            "magnitude": float(slow[~padding].abs().max())}
