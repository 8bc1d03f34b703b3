"""A hand-written encoder-decoder in the style of the researcher's "tinfer" model.

Embeddings scaled by sqrt(d_model) plus sinusoidal positions, post-LN encoder and decoder layers and a
tied output layer, as in Vaswani et al. (2017) §3. One switch matters for the question:

    causal=True   decoder self-attention sees positions <= t (the paper's "masking", §3.2.3)
    causal=False  padding masks only, "masks only for out of bounds" (the researcher's setup)

Attention is written out (no `nn.MultiheadAttention`) so that the weights can be returned and inspected.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from utils.handwritten.teacher_forcing import (
    decoder_attention_mask_from_labels,
    decoder_self_attention_mask,
    masked_cross_entropy,
    shift_right,
)

__all__ = [
    "TinferConfig",
    "TinferEncoderOutput",
    "TinferModel",
    "TinferOutput",
    "sinusoidal_positions",
]


@dataclass
class TinferConfig:
    vocab_size: int
    pad_token_id: int
    eos_token_id: int
    decoder_start_token_id: int
    d_model: int = 64
    n_heads: int = 4
    d_ff: int = 256
    n_encoder_layers: int = 2
    n_decoder_layers: int = 2
    dropout: float = 0.1
    max_positions: int = 256
    causal: bool = True


@dataclass
class TinferOutput:
    logits: torch.Tensor  # (B, T, V)
    loss: torch.Tensor | None = None
    encoder_hidden_states: torch.Tensor | None = None  # (B, S, d_model)
    decoder_self_attentions: tuple[torch.Tensor, ...] | None = None  # per layer (B, H, T, T)


def sinusoidal_positions(max_positions: int, d_model: int) -> torch.Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...): (max_positions, d_model)."""
    position = torch.arange(max_positions, dtype=torch.float32)[:, None]  # (max_positions, 1)
    inverse_frequency = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(max_positions, d_model)
    table[:, 0::2] = torch.sin(position * inverse_frequency)
    table[:, 1::2] = torch.cos(position * inverse_frequency)
    return table


class _MultiHeadAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        self.q_proj, self.k_proj = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)
        self.v_proj, self.out_proj = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch_size, length, _ = x.shape
        return x.view(batch_size, length, self.n_heads, self.d_head).transpose(1, 2)  # (B, H, L, d_head)

    def forward(self, query_states, key_value_states, allowed: torch.Tensor):
        """allowed: boolean, broadcastable to (B, H, T_query, T_key); True where attention is allowed."""
        q = self._split_heads(self.q_proj(query_states))
        k = self._split_heads(self.k_proj(key_value_states))
        v = self._split_heads(self.v_proj(key_value_states))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.d_head)  # (B, H, T, S)
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        weights = scores.softmax(dim=-1)
        context = self.dropout(weights) @ v  # (B, H, T, d_head)
        batch_size, _, length, _ = context.shape
        context = context.transpose(1, 2).reshape(batch_size, length, -1)  # (B, T, d_model)
        return self.out_proj(context), weights


class _FeedForward(nn.Module):
    def __init__(self, d_model: int, d_ff: int, dropout: float):
        super().__init__()
        self.linear_in, self.linear_out = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.linear_out(self.dropout(F.relu(self.linear_in(x))))


class _EncoderLayer(nn.Module):
    def __init__(self, config: TinferConfig):
        super().__init__()
        self.self_attn = _MultiHeadAttention(config.d_model, config.n_heads, config.dropout)
        self.feed_forward = _FeedForward(config.d_model, config.d_ff, config.dropout)
        self.norm_attn, self.norm_ff = nn.LayerNorm(config.d_model), nn.LayerNorm(config.d_model)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, hidden_states, allowed):
        attended, _ = self.self_attn(hidden_states, hidden_states, allowed)
        hidden_states = self.norm_attn(hidden_states + self.dropout(attended))  # post-LN, as in §3.1
        return self.norm_ff(hidden_states + self.dropout(self.feed_forward(hidden_states)))


class _DecoderLayer(nn.Module):
    def __init__(self, config: TinferConfig):
        super().__init__()
        self.self_attn = _MultiHeadAttention(config.d_model, config.n_heads, config.dropout)
        self.cross_attn = _MultiHeadAttention(config.d_model, config.n_heads, config.dropout)
        self.feed_forward = _FeedForward(config.d_model, config.d_ff, config.dropout)
        self.norm_self, self.norm_cross, self.norm_ff = (nn.LayerNorm(config.d_model) for _ in range(3))
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, hidden_states, encoder_hidden_states, self_allowed, cross_allowed):
        attended, self_weights = self.self_attn(hidden_states, hidden_states, self_allowed)
        hidden_states = self.norm_self(hidden_states + self.dropout(attended))
        attended, _ = self.cross_attn(hidden_states, encoder_hidden_states, cross_allowed)
        hidden_states = self.norm_cross(hidden_states + self.dropout(attended))
        hidden_states = self.norm_ff(hidden_states + self.dropout(self.feed_forward(hidden_states)))
        return hidden_states, self_weights


@dataclass
class TinferEncoderOutput:
    """What `model.get_encoder()(...)` returns, named as in HF's `BaseModelOutput`."""

    last_hidden_state: torch.Tensor  # (B, S, d_model)


class _TinferEncoder:
    """HF's `get_encoder()` view of a TinferModel: `encoder(input_ids=, attention_mask=)`."""

    def __init__(self, model: "TinferModel"):
        self.model = model

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> TinferEncoderOutput:
        return TinferEncoderOutput(self.model.encode(input_ids, attention_mask))


class TinferModel(nn.Module):
    """Encoder-decoder with the call signature of HF's seq2seq models, for what the collection needs:
    `model(input_ids, attention_mask, labels=...)` (one teacher-forced pass), `model.get_encoder()` (encoder
    once) and `model(encoder_outputs=..., attention_mask=..., decoder_input_ids=prefix)` (decoder on a prefix).
    It has no key/value cache: `use_cache=True` is refused."""

    def __init__(self, config: TinferConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model, padding_idx=config.pad_token_id)
        self.register_buffer("positions", sinusoidal_positions(config.max_positions, config.d_model), persistent=False)
        self.encoder_layers = nn.ModuleList(_EncoderLayer(config) for _ in range(config.n_encoder_layers))
        self.decoder_layers = nn.ModuleList(_DecoderLayer(config) for _ in range(config.n_decoder_layers))
        self.dropout = nn.Dropout(config.dropout)
        nn.init.normal_(self.embed_tokens.weight, std=config.d_model**-0.5)

    @property
    def causal(self) -> bool:
        return self.config.causal

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Token embedding * sqrt(d_model) (§3.4); positions are added in `add_positions`."""
        return self.embed_tokens(ids) * math.sqrt(self.config.d_model)

    def add_positions(self, embeddings: torch.Tensor) -> torch.Tensor:
        length = embeddings.shape[1]
        if length > self.config.max_positions:
            raise ValueError(f"sequence length {length} exceeds max_positions={self.config.max_positions}")
        return self.dropout(embeddings + self.positions[:length])

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if attention_mask is None:
            attention_mask = input_ids != self.config.pad_token_id
        allowed = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, S)
        hidden_states = self.add_positions(self.embed(input_ids))
        for layer in self.encoder_layers:
            hidden_states = layer(hidden_states, allowed)
        return hidden_states  # (B, S, d_model)

    def decode(
        self,
        decoder_input_ids: torch.Tensor | None,
        encoder_hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        causal: bool | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Decoder logits (B, T, V) and per-layer self-attention weights (B, H, T, T).

        `decoder_inputs_embeds` (already scaled token embeddings) replaces `decoder_input_ids`, so a
        gradient can flow back to each decoder input position.
        """
        causal = self.config.causal if causal is None else causal
        if decoder_inputs_embeds is None:
            decoder_inputs_embeds = self.embed(decoder_input_ids)
        batch_size, length, _ = decoder_inputs_embeds.shape
        if decoder_attention_mask is None:
            decoder_attention_mask = torch.ones(batch_size, length, dtype=torch.bool,
                                                device=decoder_inputs_embeds.device)
        self_allowed = decoder_self_attention_mask(decoder_attention_mask, causal=causal)  # (B, 1, T, T)
        if attention_mask is None:
            attention_mask = torch.ones(encoder_hidden_states.shape[:2], dtype=torch.bool,
                                        device=encoder_hidden_states.device)
        cross_allowed = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, S)
        hidden_states = self.add_positions(decoder_inputs_embeds)
        self_attentions = []
        for layer in self.decoder_layers:
            hidden_states, weights = layer(hidden_states, encoder_hidden_states, self_allowed, cross_allowed)
            self_attentions.append(weights)
        logits = hidden_states @ self.embed_tokens.weight.T  # tied output layer (§3.4): (B, T, V)
        return logits, tuple(self_attentions)

    def get_encoder(self) -> _TinferEncoder:
        return _TinferEncoder(self)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        encoder_outputs: TinferEncoderOutput | None = None,
        use_cache: bool | None = None,
        label_smoothing: float = 0.0,
    ) -> TinferOutput:
        """One teacher-forced pass. With `labels` only, decoder inputs are `shift_right(labels)` and the
        decoder padding mask comes from the labels (the researcher's "masks only for out of bounds")."""
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            if labels is None:
                raise ValueError("pass decoder_input_ids, decoder_inputs_embeds or labels")
            decoder_input_ids = shift_right(labels, self.config.decoder_start_token_id, self.config.pad_token_id)
            if decoder_attention_mask is None:
                decoder_attention_mask = decoder_attention_mask_from_labels(labels)
        if use_cache:
            raise ValueError("TinferModel has no key/value cache: pass use_cache=False (or None)")
        if encoder_outputs is not None:
            encoder_hidden_states = encoder_outputs.last_hidden_state  # (B, S, d_model), the encoder run once
        elif input_ids is not None:
            encoder_hidden_states = self.encode(input_ids, attention_mask)
        else:
            raise ValueError("pass input_ids or encoder_outputs")
        logits, self_attentions = self.decode(decoder_input_ids, encoder_hidden_states, attention_mask,
                                              decoder_attention_mask, decoder_inputs_embeds)
        loss = None
        if labels is not None:
            loss = masked_cross_entropy(logits, labels, label_smoothing=label_smoothing)
        return TinferOutput(logits=logits, loss=loss, encoder_hidden_states=encoder_hidden_states,
                            decoder_self_attentions=self_attentions)
