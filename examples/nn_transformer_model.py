"""A translation model built on torch.nn.Transformer, the way PyTorch's translation tutorial builds one.

    python -m utils.audit_model examples/nn_transformer_model.py:build    # exits 0: every check passes

Token embeddings * sqrt(d_model) plus sinusoidal positions, `nn.Transformer(batch_first=True)`, a linear output
layer. Training (`loss`) passes the causal `tgt_mask` and padding masks; test time (`greedy_decode`) encodes once
and runs the decoder on the growing prefix. `build` hands it to the audit through `TorchTransformerAdapter`,
which calls `forward` with nn.Transformer's keyword names and the same causal `tgt_mask` as training.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from utils.experiments.auditable_models import TorchTransformerAdapter
from utils.handwritten.tinfer import sinusoidal_positions

VOCAB_SIZE = 96
UNK, PAD, BOS, EOS = 0, 1, 2, 3  # the tutorial's special ids: the decoder starts from <bos>


def future_mask(length: int, device=None) -> torch.Tensor:
    """(T, T) bool, True above the diagonal: position t may not attend to positions after t."""
    return torch.triu(torch.ones(length, length, dtype=torch.bool, device=device), diagonal=1)


class Seq2SeqTransformer(nn.Module):
    def __init__(self, d_model: int = 64, n_heads: int = 4, d_ff: int = 128, n_layers: int = 2):
        super().__init__()
        self.d_model = d_model
        self.src_embed = nn.Embedding(VOCAB_SIZE, d_model, padding_idx=PAD)
        self.tgt_embed = nn.Embedding(VOCAB_SIZE, d_model, padding_idx=PAD)
        self.register_buffer("positions", sinusoidal_positions(256, d_model), persistent=False)
        self.transformer = nn.Transformer(d_model, n_heads, n_layers, n_layers, d_ff, dropout=0.1, batch_first=True)
        self.generator = nn.Linear(d_model, VOCAB_SIZE)

    def embed(self, embedding: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
        return embedding(ids) * math.sqrt(self.d_model) + self.positions[: ids.shape[1]]

    def forward(self, src, tgt, tgt_mask=None, src_key_padding_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None):
        hidden = self.transformer(self.embed(self.src_embed, src), self.embed(self.tgt_embed, tgt), tgt_mask=tgt_mask,
                                  src_key_padding_mask=src_key_padding_mask, tgt_key_padding_mask=tgt_key_padding_mask,
                                  memory_key_padding_mask=memory_key_padding_mask)
        return self.generator(hidden)  # (B, T, V)

    def shift_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """Decoder inputs: <bos> then the target without its last token; -100 padding becomes <pad>."""
        decoder_input_ids = torch.cat([torch.full_like(labels[:, :1], BOS), labels[:, :-1]], dim=1)
        return decoder_input_ids.masked_fill(decoder_input_ids == -100, PAD)

    def loss(self, input_ids, labels, attention_mask=None):
        """The training step's loss: one pass with the causal mask, cross-entropy ignoring -100."""
        decoder_input_ids = self.shift_labels(labels)
        source_padding = None if attention_mask is None else ~attention_mask.bool()
        logits = self(input_ids, decoder_input_ids, tgt_mask=future_mask(labels.shape[1], labels.device),
                      src_key_padding_mask=source_padding, tgt_key_padding_mask=decoder_input_ids == PAD,
                      memory_key_padding_mask=source_padding)
        return F.cross_entropy(logits.reshape(-1, VOCAB_SIZE), labels.reshape(-1), ignore_index=-100)

    @torch.no_grad()
    def greedy_decode(self, input_ids, attention_mask=None, max_new_tokens=20):
        """Encode once; then <bos>, and the arg-max of the last position, one token at a time, until <eos>."""
        source_padding = None if attention_mask is None else ~attention_mask.bool()
        memory = self.transformer.encoder(self.embed(self.src_embed, input_ids), src_key_padding_mask=source_padding)
        sequences = torch.full((input_ids.shape[0], 1), BOS, device=input_ids.device)
        finished = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for _ in range(max_new_tokens):
            hidden = self.transformer.decoder(self.embed(self.tgt_embed, sequences), memory,
                                              tgt_mask=future_mask(sequences.shape[1], sequences.device),
                                              memory_key_padding_mask=source_padding)
            next_token = self.generator(hidden[:, -1]).argmax(dim=-1).masked_fill(finished, PAD)
            sequences = torch.cat([sequences, next_token[:, None]], dim=1)
            finished |= next_token == EOS
            if finished.all():
                break
        return sequences


def build():
    torch.manual_seed(0)
    model = Seq2SeqTransformer().eval()
    return TorchTransformerAdapter(model, vocab_size=VOCAB_SIZE, pad_token_id=PAD, decoder_start_token_id=BOS,
                                   eos_token_id=EOS, tgt_mask="causal", generate=model.greedy_decode, loss=model.loss,
                                   decoder_input_ids_from_labels=model.shift_labels)
