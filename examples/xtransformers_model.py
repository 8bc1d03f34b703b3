"""An encoder-decoder from x-transformers (lucidrains, MIT licence; `pip install x-transformers==2.31.10`), built
with the library's own `XTransformer` from a small config (random init) and wrapped to the audit's interface the way
its README trains and decodes it:

    python -m utils.audit_model examples/xtransformers_model.py:build                  # exits 0
    python -m utils.audit_model examples/xtransformers_model.py:build_no_causal_mask   # exits 1: the decoder leaks

The library's conventions, kept as they are: the target given to `XTransformer.forward` is the start token followed
by the labels; its `AutoregressiveWrapper` turns -100 (its `ignore_index`) into the pad id for the decoder inputs,
drops the last position and takes cross-entropy with `ignore_index=-100` (a token mean). It trains without a decoder
padding mask (the causal mask hides right padding), so `forward` passes none either. `generate` is the library's
`XTransformer.generate` with `temperature=0.` (its greedy arg-max) and `eos_token`: it pads after </s> and returns
the tokens after the start token, to which the wrapper prepends the start token.

`build_no_causal_mask` builds the same model (same seed, same weights) and switches the decoder's causal flag off
(`Decoder` always sets it; a user who wanted "padding masks only" would do just this) and decodes without the
key/value cache (the library asserts a causal decoder for it): the audit flags it.
"""

import torch

VOCAB_SIZE = 64
PAD, START, EOS = 0, 1, 2  # x-transformers' AutoregressiveWrapper pads with 0 (pad_value); start and </s> are ours
IGNORE_INDEX = -100


def _import_xtransformers():
    try:
        from x_transformers import XTransformer
    except ImportError as error:  # the audit reports this as a clear import error (exit 2)
        raise ImportError("x-transformers is not installed: pip install x-transformers==2.31.10") from error
    return XTransformer


class XTransformerSeq2Seq:
    """x-transformers' XTransformer as an auditable model (interface: utils/experiments/auditable_models.py)."""

    vocab_size, pad_token_id, decoder_start_token_id, eos_token_id = VOCAB_SIZE, PAD, START, EOS

    def __init__(self, seed: int = 0, dim: int = 32, depth: int = 2, heads: int = 4, max_seq_len: int = 64):
        XTransformer = _import_xtransformers()
        torch.manual_seed(seed)
        self.model = XTransformer(dim=dim, enc_num_tokens=VOCAB_SIZE, enc_depth=depth, enc_heads=heads,
                                  enc_max_seq_len=max_seq_len, dec_num_tokens=VOCAB_SIZE, dec_depth=depth,
                                  dec_heads=heads, dec_max_seq_len=max_seq_len, tie_token_emb=True,
                                  ignore_index=IGNORE_INDEX, pad_value=PAD).eval()
        self.cache_kv = True  # the library's key/value cache while decoding

    def __repr__(self) -> str:
        return "XTransformerSeq2Seq(x_transformers.XTransformer)"

    def to(self, device):
        self.model.to(device)
        return self

    def eval(self):
        self.model.eval()
        return self

    def forward(self, input_ids, decoder_input_ids, attention_mask=None, decoder_attention_mask=None):
        """One teacher-forced pass as XTransformer.forward computes it (no decoder padding mask, as in training)."""
        source_mask = None if attention_mask is None else attention_mask.bool()
        encodings = self.model.encoder(input_ids, mask=source_mask, return_embeddings=True)
        return self.model.decoder.net(decoder_input_ids, context=encodings, context_mask=source_mask)

    def _target(self, labels):
        return torch.cat([torch.full_like(labels[:, :1], START), labels], dim=1)

    def loss(self, input_ids, labels, attention_mask=None):
        """The library's training loss: XTransformer(src, start + labels, mask=source mask)."""
        mask = None if attention_mask is None else attention_mask.bool()
        return self.model(input_ids, self._target(labels), mask=mask)

    def decoder_input_ids_from_labels(self, labels):
        """What AutoregressiveWrapper.forward feeds the decoder: -100 -> pad, the last position dropped."""
        target = self._target(labels)
        return torch.where(target == IGNORE_INDEX, PAD, target)[:, :-1]

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, max_new_tokens=20):
        """The library's greedy search (temperature 0), then the start token in front."""
        mask = None if attention_mask is None else attention_mask.bool()
        start = torch.full((input_ids.shape[0], 1), START, device=input_ids.device)
        generated = self.model.generate(input_ids, start, max_new_tokens, mask=mask, eos_token=EOS, temperature=0.0,
                                        cache_kv=self.cache_kv)
        return torch.cat([start, generated], dim=1)


def remove_causal_mask(wrapper: XTransformerSeq2Seq) -> XTransformerSeq2Seq:
    """Switch off every `causal` flag in the decoder's attention layers (AttentionLayers, Attention, Attend)."""
    switched = 0
    for module in wrapper.model.decoder.net.attn_layers.modules():
        if getattr(module, "causal", None) is True:
            module.causal = False
            switched += 1
    if not switched:
        raise RuntimeError("found no causal flag in x-transformers' decoder: the library changed")
    wrapper.cache_kv = False  # the library asserts a causal decoder when it caches keys and values
    return wrapper


def build() -> XTransformerSeq2Seq:
    return XTransformerSeq2Seq()


def build_no_causal_mask() -> XTransformerSeq2Seq:
    return remove_causal_mask(XTransformerSeq2Seq())
