"""A "tinfer"-style translation model as a researcher would hook it into the audit: the decoder has NO causal mask.

    python -m utils.audit_model examples/tinfer_no_mask.py:build      # exits 1: the decoder sees the future

The network is `utils.handwritten.tinfer.TinferModel` (Vaswani et al. layout), `causal=False`: decoder self-attention
masks padding only. Training feeds the whole right-shifted target in one pass; test time is a greedy loop until
<eos>. The class below is the interface the audit expects, written by hand (see utils/experiments/auditable_models.py):
the four ids, `forward` (one teacher-forced pass -> logits), and the optional `decoder_input_ids_from_labels`,
`loss` and `generate`. Weights are random: the audit tests the architecture, not what it has learned.
"""

import torch
from torch import nn

from utils.handwritten.teacher_forcing import shift_right
from utils.handwritten.tinfer import TinferConfig, TinferModel

VOCAB_SIZE = 96
PAD, EOS = 0, 1
START = PAD  # T5-style: the decoder starts from the pad id


class Translator(nn.Module):
    def __init__(self, causal: bool = False, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.vocab_size, self.pad_token_id, self.eos_token_id, self.decoder_start_token_id = VOCAB_SIZE, PAD, EOS, START
        config = TinferConfig(vocab_size=VOCAB_SIZE, pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=START,
                              d_model=64, n_heads=4, d_ff=128, n_encoder_layers=2, n_decoder_layers=2, causal=causal)
        self.net = TinferModel(config)

    def forward(self, input_ids, decoder_input_ids, attention_mask=None, decoder_attention_mask=None):
        """Training: the whole target in one pass -> logits (B, T, V)."""
        return self.net(input_ids, attention_mask, decoder_input_ids, decoder_attention_mask).logits

    def decoder_input_ids_from_labels(self, labels):
        return shift_right(labels, START, PAD)

    def loss(self, input_ids, labels, attention_mask=None):
        """Cross-entropy over the non-padding (-100) target tokens, decoder inputs built from the labels."""
        return self.net(input_ids, attention_mask, labels=labels).loss

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, max_new_tokens=20):
        """Test time: start token, then the arg-max of the last position, one token at a time, until <eos>."""
        memory = self.net.encode(input_ids, attention_mask)
        sequences = torch.full((input_ids.shape[0], 1), START, device=input_ids.device)
        finished = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for _ in range(max_new_tokens):
            logits, _ = self.net.decode(sequences, memory, attention_mask)
            next_token = logits[:, -1].argmax(dim=-1).masked_fill(finished, PAD)
            sequences = torch.cat([sequences, next_token[:, None]], dim=1)
            finished |= next_token == EOS
            if finished.all():
                break
        return sequences


def build():
    return Translator(causal=False).eval()
