"""The step loop: the decoder run once per target position, as greedy decoding runs it at test time.

Step t feeds the gold prefix `decoder_input_ids[:, :t+1]` and keeps the logits of its last position, the
prediction of `labels[:, t]`. With a causal decoder, the T steps give the same logits (and losses) as one
teacher-forced pass; a decoder that sees the future gives other ones. Every caller loops here:

- `step_loop`          yields the (B, V) logits of step t, t = 0 .. T-1 (a generator: a loss can be summed
                       step by step, with gradients, as `utils.experiments.tinfer_training.step_loop_loss` does)
- `step_loop_logits`   stacks them: (B, T, V), the step-by-step counterpart of one pass's `.logits`
- `use_cache`          True: one new token per step, carrying the model's key/value cache, as `generate()` does
                       (HF models only; `TinferModel` has no cache and recomputes the prefix); False: the whole
                       prefix per step, no cache (a training loss); None: the whole prefix, the model's default
                       (HF models build a cache they never reuse). None and False differ by float rounding only
                       (~1e-7 on HF's eager attention), so each caller keeps the one it measured with.

The encoder runs once; `utils.handwritten.losses.step_by_step_losses` turns the steps into per-position losses.
"""

from collections.abc import Iterator

import torch

from utils.handwritten.seq2seq import encode, supports_kv_cache

__all__ = ["step_loop", "step_loop_logits"]


def step_loop(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, decoder_input_ids: torch.Tensor,
              decoder_attention_mask: torch.Tensor | None = None,
              use_cache: bool | None = None) -> Iterator[torch.Tensor]:
    """Yield the logits (B, V) of step t = 0 .. T-1: the decoder on the prefix `decoder_input_ids[:, :t+1]`.

    `use_cache` True feeds the one new token and the cache of the steps before; False or None the whole prefix
    (see the module docstring). `decoder_attention_mask` (B, T) is cut to the prefix seen so far.
    """
    if use_cache and not supports_kv_cache(model):
        raise ValueError(f"{type(model).__name__} has no key/value cache; use use_cache=False")
    encoder_outputs = encode(model, input_ids, attention_mask)
    cache = None
    for t in range(decoder_input_ids.shape[1]):
        seen_mask = None if decoder_attention_mask is None else decoder_attention_mask[:, : t + 1]  # (B, t + 1)
        if not use_cache:  # False or None: the whole prefix
            yield model(encoder_outputs=encoder_outputs, attention_mask=attention_mask,
                        decoder_input_ids=decoder_input_ids[:, : t + 1], decoder_attention_mask=seen_mask,
                        use_cache=use_cache).logits[:, -1]  # (B, V)
            continue
        outputs = model(encoder_outputs=encoder_outputs, attention_mask=attention_mask,
                        decoder_input_ids=decoder_input_ids[:, t : t + 1], decoder_attention_mask=seen_mask,
                        cache=cache, use_cache=True)
        cache = outputs.cache
        yield outputs.logits[:, -1]  # (B, V)


@torch.no_grad()
def step_loop_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                     decoder_input_ids: torch.Tensor, decoder_attention_mask: torch.Tensor | None = None,
                     use_cache: bool | None = None) -> torch.Tensor:
    """The logits of every step, stacked: (B, T, V); row t saw decoder_input_ids[:, :t+1] only."""
    steps = list(step_loop(model, input_ids, attention_mask, decoder_input_ids, decoder_attention_mask, use_cache))
    return torch.stack(steps, dim=1)  # (B, T, V)
