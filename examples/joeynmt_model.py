"""A Transformer from Joey NMT 2.3.0 (Apache-2.0), built with the library's own `build_model` from a small config
(random init) and wrapped to the audit's interface the way its training and translation code call it:

    python -m utils.audit_model examples/joeynmt_model.py:build                  # exits 0
    python -m utils.audit_model examples/joeynmt_model.py:build_no_causal_mask   # exits 1: the decoder leaks

Joey NMT's dependencies are heavy (tensorboard, pylint, plotly, ...) and it pins protobuf, so the project does not
install it into .venv: `make vendor-joeynmt` (a step of `make test`) downloads the wheels of joeynmt==2.3.0 and
subword-nmt==0.3.8 without dependencies into build/vendor/joeynmt/ and unpacks them; this file puts that folder on
sys.path when `import joeynmt` fails otherwise. Joey NMT imports `torch.utils.tensorboard` for its training logger;
when tensorboard is absent, an empty stand-in module is registered (the audit never trains through Joey NMT's loop).

What the wrapper uses, all Joey NMT's own code:
- its `Batch` (joeynmt.batch) turns a target row `<s> y1 .. yn </s> <pad>..` into decoder inputs (`trg_input`: </s>
  replaced by <pad>, the last column dropped), loss targets (`trg`) and the decoder mask (`trg_mask`: the positions
  whose target is not <pad>);
- its loss: `model(return_type="loss", ...)` (XentLoss, a sum) normalised by `Batch.normalize(..., "batch")`, Joey
  NMT's default: the sum divided by the number of sentences;
- its greedy search `joeynmt.search.search(beam_size=1)`, which never emits <s> and cannot emit </s> before
  `min_output_length` (1) tokens: declared to the audit as `banned_token_ids` and `min_new_tokens`;
- `forward` is `model(return_type="encode")` then `model(return_type="decode")`; the decoder asserts a target mask,
  and the audit always passes one.

`build_no_causal_mask` is the same model and weights with Joey NMT's `subsequent_mask` replaced, inside every call of
the wrapper, by an all-True mask: the decoder keeps its padding mask only.
"""

import contextlib
import importlib.util
import logging
import sys
import types
from pathlib import Path
from unittest import mock

import torch

VENDOR = Path(__file__).resolve().parents[1] / "build" / "vendor" / "joeynmt" / "site"
VERSION = "2.3.0"


def import_joeynmt():
    """Import joeynmt (installed, or unpacked by `make vendor-joeynmt`); ImportError says how to get it."""
    if importlib.util.find_spec("joeynmt") is None and VENDOR.is_dir():
        sys.path.insert(0, str(VENDOR))
    if importlib.util.find_spec("joeynmt") is None:
        raise ImportError(f"joeynmt is not installed: run `make vendor-joeynmt` (joeynmt=={VERSION} unpacked into "
                          f"{VENDOR}) or pip install joeynmt=={VERSION}")
    if importlib.util.find_spec("tensorboard") is None and "torch.utils.tensorboard" not in sys.modules:
        stand_in = types.ModuleType("torch.utils.tensorboard")
        stand_in.SummaryWriter = object  # Joey NMT's training logger; never constructed here
        sys.modules["torch.utils.tensorboard"] = stand_in
    import joeynmt
    import joeynmt.batch
    import joeynmt.decoders
    import joeynmt.model
    import joeynmt.search
    import joeynmt.vocabulary

    for name in list(logging.root.manager.loggerDict):  # each module's logger prints INFO ("Building ...")
        if name.startswith("joeynmt"):
            logging.getLogger(name).setLevel(logging.WARNING)
    return joeynmt


UNK, PAD, BOS, EOS = 0, 1, 2, 3  # Joey NMT's default special ids
N_WORDS = 60


def config(d_model: int = 32, heads: int = 4, ff: int = 64, layers: int = 2) -> dict:
    """A small Joey NMT model config (the `model:` section of its YAML files), tied embeddings and softmax."""
    side = {"type": "transformer", "num_layers": layers, "num_heads": heads, "hidden_size": d_model,
            "ff_size": ff, "dropout": 0.1, "embeddings": {"embedding_dim": d_model, "scale": True, "dropout": 0.1}}
    return {"initializer": "xavier_uniform", "embed_initializer": "xavier_uniform", "init_gain": 1.0,
            "bias_initializer": "zeros", "tied_embeddings": True, "tied_softmax": True,
            "encoder": dict(side), "decoder": dict(side)}


def vocabulary(joeynmt):
    specials = types.SimpleNamespace(unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                     sep_token=None, lang_tags=[], unk_id=UNK, pad_id=PAD, bos_id=BOS, eos_id=EOS,
                                     sep_id=None)
    return joeynmt.vocabulary.Vocabulary([f"w{i}" for i in range(N_WORDS)], specials)


class JoeyNMTSeq2Seq:
    """Joey NMT's Transformer as an auditable model (interface: utils/experiments/auditable_models.py)."""

    pad_token_id, decoder_start_token_id, eos_token_id = PAD, BOS, EOS
    banned_token_ids = (BOS,)  # transformer_greedy: "don't generate BOS, SEP, language tags"
    min_new_tokens = 1  # transformer_greedy: "don't generate EOS until we reached min_output_length" (default 1)

    def __init__(self, seed: int = 0, causal: bool = True):
        self.joeynmt = import_joeynmt()
        vocab = vocabulary(self.joeynmt)
        torch.manual_seed(seed)
        self.model = self.joeynmt.model.build_model(config(), src_vocab=vocab, trg_vocab=vocab).eval()
        self.model.loss_function = ("crossentropy", 0.0)
        self.vocab_size = len(vocab)
        self.causal = causal

    def __repr__(self) -> str:
        return f"JoeyNMTSeq2Seq(joeynmt {VERSION} Transformer, causal={self.causal})"

    def to(self, device):
        self.model.to(device)
        return self

    def eval(self):
        self.model.eval()
        return self

    @contextlib.contextmanager
    def _masks(self):
        """Joey NMT's decoder with (causal) or without its subsequent mask."""
        if self.causal:
            yield
            return

        def no_subsequent_mask(size: int) -> torch.Tensor:
            return torch.ones(1, size, size, dtype=torch.bool)

        with mock.patch.object(self.joeynmt.decoders, "subsequent_mask", no_subsequent_mask):
            yield

    def _batch(self, input_ids, attention_mask=None, labels=None):
        """Joey NMT's Batch: source rows end with </s>; the target row is <s> + labels, -100 -> <pad>."""
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        source = input_ids.masked_fill(mask == 0, PAD)
        target = None
        if labels is not None:
            target = torch.cat([torch.full_like(labels[:, :1], BOS), labels.masked_fill(labels == -100, PAD)], dim=1)
        return self.joeynmt.batch.Batch(src=source, src_length=mask.sum(dim=1), src_prompt_mask=None, trg=target,
                                        trg_prompt_mask=None, indices=torch.arange(len(source)),
                                        device=source.device, pad_index=PAD, eos_index=EOS, is_train=False)

    def forward(self, input_ids, decoder_input_ids, attention_mask=None, decoder_attention_mask=None):
        """Encode, then decode the given inputs with trg_mask = the decoder mask, shaped (B, 1, T) as Joey wants."""
        batch = self._batch(input_ids, attention_mask)
        with self._masks():
            encoder_output, encoder_hidden, _, _ = self.model(return_type="encode", src=batch.src,
                                                              src_length=batch.src_length, src_mask=batch.src_mask)
            logits, _, _, _ = self.model(return_type="decode", trg_input=decoder_input_ids,
                                         encoder_output=encoder_output, encoder_hidden=encoder_hidden,
                                         src_mask=batch.src_mask, unroll_steps=decoder_input_ids.shape[1],
                                         trg_mask=decoder_attention_mask.bool().unsqueeze(1))
        return logits

    def loss(self, input_ids, labels, attention_mask=None):
        """Joey NMT's training loss: XentLoss (a sum) / number of sentences ("normalization: batch")."""
        batch = self._batch(input_ids, attention_mask, labels)
        with self._masks():
            batch_loss, _, _, _ = self.model(return_type="loss", **vars(batch))
        return batch.normalize(batch_loss, "batch")

    @torch.no_grad()
    def decoder_input_ids_from_labels(self, labels):
        """Joey NMT's `Batch.trg_input` for a target <s> + labels."""
        source = torch.full((labels.shape[0], 1), EOS, device=labels.device)
        return self._batch(source, labels=labels).trg_input

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, max_new_tokens=20):
        """Joey NMT's greedy search; <s> in front, <pad> after the first </s> (Joey keeps decoding other rows)."""
        batch = self._batch(input_ids, attention_mask)
        with self._masks():
            output, _, _ = self.joeynmt.search.search(model=self.model, batch=batch, max_output_length=max_new_tokens,
                                                      beam_size=1, beam_alpha=-1)
        generated = torch.as_tensor(output, device=input_ids.device).long()
        is_eos = (generated == EOS).long()
        after_eos = (is_eos.cumsum(dim=1) - is_eos) > 0
        generated = generated.masked_fill(after_eos, PAD)
        return torch.cat([torch.full_like(generated[:, :1], BOS), generated], dim=1)


def build() -> JoeyNMTSeq2Seq:
    return JoeyNMTSeq2Seq()


def build_no_causal_mask() -> JoeyNMTSeq2Seq:
    return JoeyNMTSeq2Seq(causal=False)
