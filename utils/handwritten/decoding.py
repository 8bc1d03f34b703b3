"""Decoding by hand, in plain PyTorch: the loops that `model.generate()` runs, written out.

- `greedy_decode`   the researcher's test-time loop: start token, argmax, stop at <eos> or a length limit
- `sample_decode`   the same loop, drawing the next token from `process_logits(...)` (temperature, top-k, top-p)
- `beam_search`     HF's beam search (same candidates, same finished-hypothesis pool, same stopping rule),
                    with HF's length penalty `score / length**lp` or GNMT's `score / ((5 + length) / 6)**alpha`

All of them work on HF encoder-decoders (T5, Marian, BART: encoder once, then the decoder one token at a
time, with or without the model's own KV cache object), on HF decoder-only models (GPT-2: the prompt is
the prefix) and on the hand-written `TinferModel` (`encode` once, `decode` the whole prefix every step).
Outputs are shaped like `generate()`'s: (B, L) token ids that begin with the decoder start token (the
prompt for a decoder-only model), padded with pad after <eos>. Call `model.eval()` first, as for generate.
"""

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers.modeling_outputs import BaseModelOutput

from utils.handwritten.seq2seq import (
    SpecialIds,
    decoder_logits,
    encode,
    is_encoder_decoder,
    special_token_ids,
    supports_kv_cache,
)

__all__ = [
    "BeamSearchOutput",
    "LENGTH_PENALTY_FORMS",
    "StepModel",
    "autoregressive_decode",
    "beam_search",
    "greedy_decode",
    "length_penalty_value",
    "process_logits",
    "rerank",
    "sample_decode",
]

LENGTH_PENALTY_FORMS = ("hf", "gnmt")
_NEG_INF = -1.0e9  # HF's "impossible" score for beams that must not be picked


class StepModel:
    """The decoding loops' only view of a model: next-token logits for a batch of prefixes.

    Rows can be reordered or duplicated between steps (`reorder`), which beam search needs: the encoder
    states, the source padding mask and the KV cache follow the rows.
    """

    def __init__(self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 use_cache: bool | None = None):
        self.model = model
        self.is_encoder_decoder = is_encoder_decoder(model)
        if use_cache is None:
            use_cache = supports_kv_cache(model)
        if use_cache and not supports_kv_cache(model):
            raise ValueError(f"{type(model).__name__} has no KV cache: pass use_cache=False (or None)")
        self.use_cache = use_cache
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if not self.is_encoder_decoder and not bool(attention_mask.bool().all()):
            raise ValueError("decoder-only decoding here takes unpadded prompts (attention_mask all ones)")
        self.attention_mask = attention_mask
        self.cache = None
        self.encoder_hidden_states = None
        if self.is_encoder_decoder:
            self.encoder_hidden_states = encode(model, input_ids, attention_mask).last_hidden_state  # (B, S, d_model)

    @torch.no_grad()
    def next_logits(self, sequences: torch.Tensor) -> torch.Tensor:
        """sequences: (N, T) prefixes -> float32 logits (N, V) for the token after each prefix."""
        if self.is_encoder_decoder and not self.use_cache:  # the whole prefix, every step
            encoder_outputs = BaseModelOutput(last_hidden_state=self.encoder_hidden_states)
            return decoder_logits(self.model, encoder_outputs, self.attention_mask, sequences)[:, -1].float()
        new_tokens = sequences[:, -1:] if (self.use_cache and self.cache is not None) else sequences
        if self.is_encoder_decoder:
            encoder_outputs = BaseModelOutput(last_hidden_state=self.encoder_hidden_states)
            outputs = self.model(encoder_outputs=encoder_outputs, attention_mask=self.attention_mask,
                                 decoder_input_ids=new_tokens, cache=self.cache, use_cache=self.use_cache)
        else:
            outputs = self.model(input_ids=new_tokens, attention_mask=torch.ones_like(sequences),
                                 cache=self.cache, use_cache=self.use_cache)
        if self.use_cache:
            self.cache = outputs.cache
        return outputs.logits[:, -1].float()

    def reorder(self, row_index: torch.Tensor) -> None:
        """Row i of the next step continues row `row_index[i]` of this one."""
        if self.encoder_hidden_states is not None:
            self.encoder_hidden_states = self.encoder_hidden_states.index_select(0, row_index)
        self.attention_mask = self.attention_mask.index_select(0, row_index)
        if self.cache is not None:
            self.cache.reorder_cache(row_index)


def _initial_prefix(input_ids: torch.Tensor, ids: SpecialIds) -> torch.Tensor:
    """(B, 1) start tokens for an encoder-decoder, the prompt itself for a decoder-only model."""
    if ids.decoder_start_token_id is None:
        return input_ids
    return input_ids.new_full((input_ids.shape[0], 1), ids.decoder_start_token_id)


def _force_eos(scores: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """Every token but <eos> becomes impossible (HF's ForcedEOSTokenLogitsProcessor at the last position)."""
    forced = torch.full_like(scores, -math.inf)
    forced[:, eos_token_id] = 0.0
    return forced


# ---------------------------------------------------------------------------------------------------------
# greedy and sampling: one loop, two ways of choosing the next token


@torch.no_grad()
def autoregressive_decode(model, input_ids, attention_mask=None, max_new_tokens: int = 20, choose_next=None,
                          use_cache: bool | None = None, stop_at_eos: bool = True,
                          forced_eos_token_id: int | None = None, **special) -> torch.Tensor:
    """The researcher's loop: prefix = start token; repeat {logits of the last position -> next token}.

    `choose_next(scores (B, V)) -> (B,)` picks the token. Finished rows get pad, and the loop stops when
    every row has produced <eos> (unless `stop_at_eos=False`, for timing fixed lengths) or after
    `max_new_tokens`. `forced_eos_token_id` forces <eos> at the last allowed position, as generate() does
    when the generation config sets it (Marian, BART).
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    ids = special_token_ids(model, **special)
    step_model = StepModel(model, input_ids, attention_mask, use_cache)
    sequences = _initial_prefix(input_ids, ids)
    unfinished = torch.ones(sequences.shape[0], dtype=torch.bool, device=sequences.device)
    for step in range(max_new_tokens):
        scores = step_model.next_logits(sequences)  # (B, V)
        if forced_eos_token_id is not None and step == max_new_tokens - 1:
            scores = _force_eos(scores, forced_eos_token_id)
        next_tokens = choose_next(scores)
        if stop_at_eos and ids.eos_token_id is not None:
            next_tokens = torch.where(unfinished, next_tokens, ids.pad_token_id)
            unfinished = unfinished & (next_tokens != ids.eos_token_id)
        sequences = torch.cat([sequences, next_tokens[:, None]], dim=-1)  # (B, T + 1)
        if not bool(unfinished.any()):
            break
    return sequences


def greedy_decode(model, input_ids, attention_mask=None, max_new_tokens: int = 20, use_cache: bool | None = None,
                  stop_at_eos: bool = True, forced_eos_token_id: int | None = None, **special) -> torch.Tensor:
    """Argmax at every step: what `generate(num_beams=1, do_sample=False)` does. Returns (B, L) ids."""
    return autoregressive_decode(model, input_ids, attention_mask, max_new_tokens, lambda s: s.argmax(dim=-1),
                                 use_cache, stop_at_eos, forced_eos_token_id, **special)


def process_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                   min_tokens_to_keep: int = 1) -> torch.Tensor:
    """Temperature, then top-k, then top-p (nucleus), in generate()'s order; removed tokens get -inf.

    logits: (B, V). top_k=0 and top_p=1.0 switch those filters off.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (use greedy_decode for argmax), got {temperature}")
    if top_k < 0 or not 0.0 <= top_p <= 1.0:
        raise ValueError(f"top_k must be >= 0 and top_p in [0, 1], got top_k={top_k}, top_p={top_p}")
    scores = logits / temperature
    if top_k > 0:
        k = min(max(top_k, min_tokens_to_keep), scores.shape[-1])
        kth_best = scores.topk(k, dim=-1).values[..., -1:]  # (B, 1)
        scores = scores.masked_fill(scores < kth_best, -math.inf)
    if top_p < 1.0:
        sorted_scores, order = scores.sort(dim=-1)  # ascending: the worst token first
        mass_up_to = sorted_scores.softmax(dim=-1).cumsum(dim=-1)  # mass of this token and all worse ones
        remove_sorted = mass_up_to <= 1.0 - top_p  # the worst tokens, whose mass stays within 1 - top_p
        remove_sorted[..., -min_tokens_to_keep:] = False
        remove = remove_sorted.scatter(-1, order, remove_sorted)
        scores = scores.masked_fill(remove, -math.inf)
    return scores


def sample_decode(model, input_ids, attention_mask=None, max_new_tokens: int = 20, temperature: float = 1.0,
                  top_k: int = 0, top_p: float = 1.0, generator: torch.Generator | None = None,
                  use_cache: bool | None = None, forced_eos_token_id: int | None = None, **special) -> torch.Tensor:
    """Draw each token from softmax(process_logits(...)). With `generator=None` the global RNG is used, the
    way `generate(do_sample=True)` draws, so a shared `torch.manual_seed` gives comparable samples."""
    def choose_next(scores):
        probs = process_logits(scores, temperature, top_k, top_p).softmax(dim=-1)
        return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(1)  # (B, 1) -> (B,)

    return autoregressive_decode(model, input_ids, attention_mask, max_new_tokens, choose_next, use_cache,
                                 True, forced_eos_token_id, **special)


# ---------------------------------------------------------------------------------------------------------
# beam search


def length_penalty_value(length: int | float, alpha: float, form: str = "hf") -> float:
    """The divisor of a finished hypothesis' summed log-probability.

    hf:   length ** alpha                   (generate's `length_penalty`, length = generated tokens incl. <eos>)
    gnmt: ((5 + length) / (5 + 1)) ** alpha (Wu et al. 2016, eq. 14; alpha = 0.6 in Vaswani et al. and T5)
    """
    if form not in LENGTH_PENALTY_FORMS:
        raise ValueError(f"length_penalty_form must be one of {LENGTH_PENALTY_FORMS}, got {form!r}")
    return length**alpha if form == "hf" else ((5.0 + length) / 6.0) ** alpha


@dataclass
class BeamSearchOutput:
    sequences: torch.Tensor  # (B * num_return_sequences, L), padded like generate()'s output
    sequences_scores: torch.Tensor  # (B * num_return_sequences,) penalized scores
    # every hypothesis offered to the finished pool, per input: (token ids, summed log-prob, generated length)
    candidates: list[list[tuple[list[int], float, int]]] = field(default_factory=list)


class _FinishedPool:
    """The best `num_beams` finished hypotheses of one input, by penalized score."""

    def __init__(self, num_beams: int):
        self.num_beams = num_beams
        self.hypotheses: list[tuple[float, list[int]]] = []

    def add(self, score: float, tokens: list[int]) -> None:
        self.hypotheses.append((score, tokens))
        self.hypotheses.sort(key=lambda h: -h[0])
        del self.hypotheses[self.num_beams:]

    def is_full(self) -> bool:
        return len(self.hypotheses) >= self.num_beams

    def worst_score(self) -> float:
        return self.hypotheses[-1][0] if self.is_full() else -math.inf


def _beam_can_improve(pool: _FinishedPool, best_running_score: float, length: int, alpha: float, form: str) -> bool:
    """HF's stopping heuristic: an input stays open while its pool has a free slot or the best running
    beam, penalized at `length`, would beat the worst finished hypothesis."""
    return not pool.is_full() or best_running_score / length_penalty_value(length, alpha, form) > pool.worst_score()


def _pad_hypotheses(hypotheses: list[list[int]], fill_value: int) -> torch.Tensor:
    length = max(len(h) for h in hypotheses)
    return torch.tensor([h + [fill_value] * (length - len(h)) for h in hypotheses], dtype=torch.long)


@torch.no_grad()
def beam_search(model, input_ids, attention_mask=None, num_beams: int = 4, max_new_tokens: int = 20,
                length_penalty: float = 1.0, length_penalty_form: str = "hf", early_stopping: bool | str = False,
                num_return_sequences: int = 1, use_cache: bool | None = None,
                forced_eos_token_id: int | None = None, fill_value: int | None = None,
                **special) -> BeamSearchOutput:
    """Beam search as `generate(num_beams=..., length_penalty=..., early_stopping=...)` runs it in 5.x.

    Each step: extend every running beam by every token, keep the 2 * num_beams best candidates by
    summed log-probability; candidates among the first num_beams that end in <eos> (or reach the length
    limit) are offered to the finished pool with score / penalty(length); the best num_beams unfinished
    candidates run on. An input closes when its pool is full and cannot improve (`early_stopping=False`:
    penalty at the current length; `"never"`: at the longest possible length when lp > 0) or, with
    `early_stopping=True`, as soon as its pool is full.
    `fill_value` pads finished rows (default: pad id); generate() pads beams with `pad or eos`.
    """
    if num_beams < 1 or not 1 <= num_return_sequences <= num_beams:
        raise ValueError(f"need num_beams >= 1 and 1 <= num_return_sequences <= num_beams, got {num_beams}, "
                         f"{num_return_sequences}")
    if early_stopping not in (True, False, "never"):
        raise ValueError(f"early_stopping must be True, False or 'never', got {early_stopping!r}")
    length_penalty_value(1, length_penalty, length_penalty_form)  # validates the form
    ids = special_token_ids(model, **special)
    batch_size = input_ids.shape[0]
    step_model = StepModel(model, input_ids, attention_mask, use_cache)
    device = input_ids.device
    step_model.reorder(torch.arange(batch_size, device=device).repeat_interleave(num_beams))  # each input K times
    running = _initial_prefix(input_ids, ids).repeat_interleave(num_beams, dim=0)  # (B * K, T)
    running_scores = torch.zeros(batch_size, num_beams, device=device)
    running_scores[:, 1:] = _NEG_INF  # all beams start equal: only the first may expand at step 1
    pools = [_FinishedPool(num_beams) for _ in range(batch_size)]
    candidates_offered: list[list[tuple[list[int], float, int]]] = [[] for _ in range(batch_size)]
    is_open = [True] * batch_size

    for step in range(max_new_tokens):
        log_probs = F.log_softmax(step_model.next_logits(running), dim=-1)  # (B * K, V)
        if forced_eos_token_id is not None and step == max_new_tokens - 1:
            log_probs = _force_eos(log_probs, forced_eos_token_id)
        vocab_size = log_probs.shape[-1]
        totals = (log_probs.view(batch_size, num_beams, vocab_size) + running_scores[:, :, None])  # (B, K, V)
        top_scores, top_index = totals.view(batch_size, -1).topk(2 * num_beams, dim=-1)  # (B, 2K)
        source_beam, token = top_index // vocab_size, top_index % vocab_size
        source_row = source_beam + torch.arange(batch_size, device=device)[:, None] * num_beams  # (B, 2K) rows
        extended = torch.cat([running[source_row.flatten()], token.flatten()[:, None]], dim=-1)  # (B * 2K, T + 1)
        extended = extended.view(batch_size, 2 * num_beams, -1)  # (B, 2K, T + 1)
        generated_length = step + 1
        finishes = (token == ids.eos_token_id) | (step == max_new_tokens - 1)  # (B, 2K)

        penalty = length_penalty_value(generated_length, length_penalty, length_penalty_form)
        for b in range(batch_size):
            if not is_open[b] or (early_stopping is True and pools[b].is_full()):
                continue
            for k in range(num_beams):  # only the first num_beams candidates may finish
                if finishes[b, k]:
                    tokens = extended[b, k].tolist()
                    pools[b].add(float(top_scores[b, k] / penalty), tokens)
                    candidates_offered[b].append((tokens, float(top_scores[b, k]), generated_length))

        keep_scores = top_scores + finishes.float() * _NEG_INF
        keep_scores, keep = keep_scores.topk(num_beams, dim=-1)  # (B, K) best unfinished candidates
        running_scores = keep_scores
        running = extended.gather(1, keep[:, :, None].expand(-1, -1, extended.shape[-1]))  # (B, K, T + 1)
        running = running.view(batch_size * num_beams, -1)  # (B * K, T + 1)
        step_model.reorder(source_row.gather(1, keep).flatten())  # (B * K,) source rows

        hypothetical = max_new_tokens if (early_stopping == "never" and length_penalty > 0) else generated_length
        is_open = [is_open[b] and _beam_can_improve(pools[b], float(running_scores[b, 0]), hypothetical,
                                                   length_penalty, length_penalty_form) for b in range(batch_size)]
        all_full = all(pool.is_full() for pool in pools)
        if not any(is_open) or (early_stopping is True and all_full) or bool(finishes.all()):
            break

    fill = ids.pad_token_id if fill_value is None else fill_value
    best = [pool.hypotheses[r] for pool in pools for r in range(num_return_sequences)]
    return BeamSearchOutput(sequences=_pad_hypotheses([tokens for _, tokens in best], fill).to(device),
                            sequences_scores=torch.tensor([score for score, _ in best]),
                            candidates=candidates_offered)


def rerank(candidates: list[tuple[list[int], float, int]], alpha: float, form: str) -> list[tuple[list[int], float]]:
    """Finished hypotheses sorted by summed log-prob / penalty(length), best first: (tokens, score)."""
    scored = [(tokens, log_prob / length_penalty_value(length, alpha, form)) for tokens, log_prob, length in candidates]
    return sorted(scored, key=lambda item: -item[1])
