"""The model interface `utils.experiments.audit_your_model` audits, and adapters that give HF and nn.Transformer
models that interface.

An *auditable model* is any object with

    vocab_size, pad_token_id, decoder_start_token_id, eos_token_id          ints
    forward(input_ids, decoder_input_ids, attention_mask=None, decoder_attention_mask=None) -> logits (B, T, V)

and, optionally, any of these (each one switches on one more check):

    decoder_input_ids_from_labels(labels) -> decoder_input_ids (B, T)   how your training code builds decoder inputs
    loss(input_ids, labels, attention_mask=None) -> scalar tensor       your training loss; labels padded with -100
    generate(input_ids, attention_mask=None, max_new_tokens=20) -> ids  your greedy test-time loop: (B, L) ids that
                                                                        begin with the start token, pad after <eos>

and, when `generate` does more than take the arg-max of `forward` (a library's search often does), its decoding
constraints, which the audit applies to the one-pass arg-max it compares the loop with:

    banned_token_ids                  ints the loop never emits (e.g. the start token, <pad>, <unk>)
    min_new_tokens                    int: <eos> is never emitted before this many tokens (step 0 is the first)
    constrain_next_token_logits(decoder_input_ids, logits) -> logits
                                      anything else: the prefix (B, t+1) and the next-token logits (B, V), return
                                      the logits the loop takes the arg-max of (-inf where a token is not allowed)

and, when the encoder reads its own vocabulary (letters in, phonemes out, as in a G2P model):

    source_vocab_size, source_pad_token_id, source_eos_token_id        ints; the audit draws input_ids from it
                                                                        (default: the decoder's vocab_size and ids)

Any decoder qualifies, attention or recurrent: the audit only calls `forward` (a GRU decoder that reads the
prefix left to right passes the leakage check by construction, and the audit confirms it).

Conventions: batch first; masks are 1/True for a real token and 0/False for padding; `forward` is one
teacher-forced pass, computed the way your training code computes it (same masks). `decoder_attention_mask=None`
means "every decoder position is real" (an all-ones mask), as in HF: a wrapper around a library that requires a
mask builds the all-ones mask itself. The audit itself never passes None: it always passes an explicit mask (all
ones, or 0 at the padding it appended), so a wrapper that forwards the mask as it is works too.

Adapters for models that are not written to this interface:

    Seq2SeqLMAdapter(model)             any HF encoder-decoder (AutoModelForSeq2SeqLM: T5, Marian, BART, ...) or
    Seq2SeqLMAdapter.from_pretrained(p) a utils.handwritten.tinfer.TinferModel; from_pretrained loads a local
                                        checkpoint folder
    TorchTransformerAdapter(model, ...) a model built on torch.nn.Transformer, called with nn.Transformer's
                                        keyword names (src, tgt, tgt_mask, *_key_padding_mask)

`as_auditable(obj)` accepts an auditable object, an HF encoder-decoder or a TinferModel and refuses anything else
with an `AuditInputError` that says what was expected; `check_forward` calls `forward` once on a tiny batch and
checks the shape of what comes back.
"""

from collections.abc import Callable
from typing import Protocol

import torch

from utils.handwritten.decoding import greedy_decode
from utils.handwritten.seq2seq import is_encoder_decoder, special_token_ids, watch_decoder_input_ids
from utils.handwritten.teacher_forcing import causal_mask

__all__ = ["AuditInputError", "Seq2SeqLMAdapter", "TorchTransformerAdapter", "as_auditable", "check_forward",
           "check_interface", "check_logits", "constrain_logits", "decoding_constraints", "move_model", "set_eval",
           "source_ids", "torch_modules"]

REQUIRED_IDS = ("vocab_size", "pad_token_id", "decoder_start_token_id", "eos_token_id")
SOURCE_IDS = ("source_vocab_size", "source_pad_token_id", "source_eos_token_id")  # optional: a separate encoder table
OPTIONAL_METHODS = ("decoder_input_ids_from_labels", "loss", "generate")
CONSTRAINTS = ("banned_token_ids", "min_new_tokens", "constrain_next_token_logits")  # optional: how generate decodes
FORWARD_SIGNATURE = "forward(input_ids, decoder_input_ids, attention_mask=None, decoder_attention_mask=None)"
INTERFACE = (f"an object with int attributes {', '.join(REQUIRED_IDS)} and a method {FORWARD_SIGNATURE} returning "
             "logits (B, T, vocab_size) (see utils/experiments/auditable_models.py), an HF encoder-decoder model "
             "or a TinferModel")
TGT_MASKS = ("causal", "none")


class AuditInputError(ValueError):
    """The thing handed to the audit is not what it needs; the message says what was expected."""


class _AuditableModel(Protocol):
    """What the audit needs (the optional methods are listed in the module docstring)."""

    vocab_size: int
    pad_token_id: int
    decoder_start_token_id: int
    eos_token_id: int

    def forward(self, input_ids: torch.Tensor, decoder_input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None,
                decoder_attention_mask: torch.Tensor | None = None) -> torch.Tensor: ...


def _is_seq2seq_model(obj) -> bool:
    """An HF encoder-decoder (its config says so) or the hand-written TinferModel."""
    return is_encoder_decoder(obj)


def check_interface(obj):
    """Return `obj` if it has `forward` and the four int ids (each within the vocabulary); raise otherwise."""
    missing = [name for name in REQUIRED_IDS if not hasattr(obj, name)]
    if not callable(getattr(obj, "forward", None)):
        missing.insert(0, "forward")
    if missing:
        raise AuditInputError(f"expected {INTERFACE}; got {type(obj).__name__}, which has no {', '.join(missing)}")
    values = {name: getattr(obj, name) for name in REQUIRED_IDS}
    not_int = [f"{n}={v!r}" for n, v in values.items() if isinstance(v, bool) or not isinstance(v, int)]
    if not_int:
        raise AuditInputError(f"{', '.join(REQUIRED_IDS)} must be ints; {type(obj).__name__} has {', '.join(not_int)}")
    outside = [f"{n}={values[n]}" for n in REQUIRED_IDS[1:] if not 0 <= values[n] < values["vocab_size"]]
    if values["vocab_size"] < 4 or outside:
        raise AuditInputError(f"expected vocab_size >= 4 and special ids in [0, vocab_size={values['vocab_size']}); "
                              f"got {', '.join(outside) or 'vocab_size too small'}")
    _check_source_ids(obj)
    return obj


def source_ids(model) -> tuple[int, int, int]:
    """(vocab size, pad id, eos id) of the encoder's input: the optional `source_*` attributes, else the decoder's."""
    return (getattr(model, "source_vocab_size", None) or model.vocab_size,
            _first_given(getattr(model, "source_pad_token_id", None), model.pad_token_id),
            _first_given(getattr(model, "source_eos_token_id", None), model.eos_token_id))


def _first_given(value, default):
    return default if value is None else value


def _check_source_ids(obj) -> None:
    """The optional `source_*` ids, when given, are ints and the source specials lie inside the source vocabulary."""
    given = {name: getattr(obj, name) for name in SOURCE_IDS if getattr(obj, name, None) is not None}
    not_int = [f"{n}={v!r}" for n, v in given.items() if isinstance(v, bool) or not isinstance(v, int)]
    if not_int:
        raise AuditInputError(f"{', '.join(SOURCE_IDS)} must be ints when given; {type(obj).__name__} has "
                              f"{', '.join(not_int)}")
    vocab_size, pad, eos = source_ids(obj)
    if vocab_size < 3 or not (0 <= pad < vocab_size and 0 <= eos < vocab_size):
        raise AuditInputError(f"expected source_vocab_size >= 3 and source pad/eos ids in [0, {vocab_size}); got "
                              f"pad {pad}, eos {eos}")


def as_auditable(obj):
    """The object itself if it has the interface; an HF encoder-decoder or TinferModel wrapped in Seq2SeqLMAdapter."""
    if isinstance(obj, torch.nn.Transformer):
        raise AuditInputError("a bare torch.nn.Transformer has no embeddings and no output layer, so it cannot map ids "
                              "to logits: return your whole model wrapped in "
                              "utils.experiments.auditable_models.TorchTransformerAdapter")
    if _is_seq2seq_model(obj) and not hasattr(obj, "decoder_start_token_id"):
        return Seq2SeqLMAdapter(obj)
    if hasattr(obj, "config") and not hasattr(obj, "decoder_start_token_id") and hasattr(obj, "get_input_embeddings"):
        raise AuditInputError(f"{type(obj).__name__} is not an encoder-decoder (config.is_encoder_decoder is not "
                              f"True); expected {INTERFACE}")
    return check_interface(obj)


def check_logits(logits, batch_size: int, length: int, vocab_size: int, where: str = "forward") -> torch.Tensor:
    """`logits` must be a float tensor (batch_size, length, vocab_size); the error says what came back instead."""
    expected = f"{where} must return logits shaped (B={batch_size}, T={length}, V=vocab_size={vocab_size})"
    if not isinstance(logits, torch.Tensor):
        hint = (" (an output object: return its .logits, or wrap an HF-style model in Seq2SeqLMAdapter)"
                if hasattr(logits, "logits") else "")
        raise AuditInputError(f"{expected}; got a {type(logits).__name__}{hint}")
    if tuple(logits.shape) == (batch_size, length, vocab_size) and logits.is_floating_point():
        return logits
    hint = ""
    if tuple(logits.shape) == (length, batch_size, vocab_size):
        hint = " (sequence first? use TorchTransformerAdapter(..., batch_first=False) or transpose)"
    elif logits.dim() == 2:
        hint = " (only the last position? forward must return every decoder position)"
    raise AuditInputError(f"{expected}; got {str(logits.dtype).replace('torch.', '')} {tuple(logits.shape)}{hint}")


@torch.no_grad()
def check_forward(model, device: str | torch.device = "cpu") -> None:
    """Call `forward` once on a tiny padded batch (B=2, S=3, T=4) and check the logits' shape."""
    special = (model.pad_token_id, model.eos_token_id, model.decoder_start_token_id)
    pool = [i for i in range(model.vocab_size) if i not in special]
    ids = [pool[i % len(pool)] for i in range(12)]
    source_vocab_size, source_pad, source_eos = source_ids(model)
    source_pool = [i for i in range(source_vocab_size) if i not in (source_pad, source_eos)]
    input_ids = torch.tensor([[source_pool[i % len(source_pool)] for i in range(start, start + 3)] for start in (0, 3)],
                             device=device)
    decoder_input_ids = torch.tensor([[model.decoder_start_token_id] + ids[6:9],
                                      [model.decoder_start_token_id] + ids[9:12]], device=device)
    attention_mask = torch.ones_like(input_ids)
    try:
        logits = model.forward(input_ids, decoder_input_ids, attention_mask=attention_mask,
                               decoder_attention_mask=torch.ones_like(decoder_input_ids))
    except Exception as error:
        raise AuditInputError(f"calling {type(model).__name__}.{FORWARD_SIGNATURE} with input_ids (2, 3) and "
                              f"decoder_input_ids (2, 4) failed: {type(error).__name__}: {error}") from error
    check_logits(logits, 2, 4, model.vocab_size)


def decoding_constraints(model) -> dict:
    """The decoding constraints the model declares (see the module docstring): {"banned_token_ids": [...],
    "min_new_tokens": int, "constrain_next_token_logits": bool}; AuditInputError when they are malformed."""
    banned = getattr(model, "banned_token_ids", None) or ()
    try:
        banned = sorted({int(i) for i in banned})
    except (TypeError, ValueError) as error:
        raise AuditInputError(f"banned_token_ids must be ints, got {banned!r}") from error
    outside = [i for i in banned if not 0 <= i < model.vocab_size]
    if outside:
        raise AuditInputError(f"banned_token_ids must lie in [0, vocab_size={model.vocab_size}), got {outside}")
    min_new_tokens = getattr(model, "min_new_tokens", None) or 0
    if isinstance(min_new_tokens, bool) or not isinstance(min_new_tokens, int) or min_new_tokens < 0:
        raise AuditInputError(f"min_new_tokens must be an int >= 0, got {min_new_tokens!r}")
    return {"banned_token_ids": banned, "min_new_tokens": min_new_tokens,
            "constrain_next_token_logits": callable(getattr(model, "constrain_next_token_logits", None))}


def constrain_logits(model, decoder_input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Apply the model's declared decoding constraints to one-pass logits (B, L, V) over `decoder_input_ids`
    (B, L): position j predicts the token of step j (the start token is at position 0). Returns a new tensor."""
    constraints = decoding_constraints(model)
    logits = logits.clone()
    if constraints["banned_token_ids"]:
        logits[..., constraints["banned_token_ids"]] = float("-inf")
    steps = min(constraints["min_new_tokens"], logits.shape[1])
    if steps:
        logits[:, :steps, model.eos_token_id] = float("-inf")
    if constraints["constrain_next_token_logits"]:
        for position in range(logits.shape[1]):
            step_logits = model.constrain_next_token_logits(decoder_input_ids[:, : position + 1],
                                                            logits[:, position].clone())
            logits[:, position] = check_logits(step_logits[:, None], logits.shape[0], 1, logits.shape[2],
                                               "constrain_next_token_logits")[:, 0].to(logits.dtype)
    return logits


def torch_modules(model) -> list[torch.nn.Module]:
    """The nn.Modules behind an auditable model: the model itself, or the modules among its attributes."""
    if isinstance(model, torch.nn.Module):
        return [model]
    return [value for value in vars(model).values() if isinstance(value, torch.nn.Module)]


def move_model(model, device: str | torch.device):
    """Move the model if it knows how (`nn.Module`, adapters); returns the (possibly new) object."""
    move = getattr(model, "to", None)
    if callable(move):
        moved = move(device)
        return model if moved is None else moved
    return model


def set_eval(model) -> None:
    """Dropout off: the audit compares logits of repeated calls and needs a deterministic model."""
    if callable(getattr(model, "eval", None)):
        model.eval()


# --- HF encoder-decoders and TinferModel ---------------------------------------------------------------------


class _WrappedModel:
    """Device moves and eval mode pass through to the wrapped `self.model`."""

    model: torch.nn.Module

    def to(self, device):
        self.model.to(device)
        return self

    def eval(self):
        self.model.eval()
        return self


class Seq2SeqLMAdapter(_WrappedModel):
    """An HF encoder-decoder (`AutoModelForSeq2SeqLM`: T5, Marian, BART, ...) or a TinferModel as an auditable model.

    forward: `model(input_ids=..., attention_mask=..., decoder_input_ids=..., decoder_attention_mask=...).logits`
    loss:    `model(input_ids=..., attention_mask=..., labels=labels).loss` (the model builds its decoder inputs)
    decoder_input_ids_from_labels: what the decoder actually receives in that call, captured with a hook
    generate: plain greedy, `model.generate(do_sample=False, num_beams=1)` with no forced <eos> (TinferModel:
              utils.handwritten.decoding.greedy_decode), so that every token is an arg-max
    Special ids come from the arguments, else the generation config, else the config. A config with its own encoder
    vocabulary (`encoder_vocab_size`, `encoder_pad_token_id`, `encoder_eos_token_id`, as the g2p-en port in
    utils/experiments/g2p_en_model.py has) sets the adapter's `source_*` ids.
    """

    def __init__(self, model, decoder_start_token_id: int | None = None, eos_token_id: int | None = None,
                 pad_token_id: int | None = None, generate_kwargs: dict | None = None):
        if not _is_seq2seq_model(model):
            raise AuditInputError(f"Seq2SeqLMAdapter needs an HF encoder-decoder or a TinferModel, got "
                                  f"{type(model).__name__}")
        self.model = model.eval()
        ids = special_token_ids(model, decoder_start_token_id, eos_token_id, pad_token_id)
        self.vocab_size = int(model.config.vocab_size)
        self.decoder_start_token_id, self.eos_token_id = ids.decoder_start_token_id, ids.eos_token_id
        self.pad_token_id = ids.pad_token_id
        config = model.config
        self.source_vocab_size = getattr(config, "encoder_vocab_size", None)
        self.source_pad_token_id = getattr(config, "encoder_pad_token_id", None)
        self.source_eos_token_id = getattr(config, "encoder_eos_token_id", None)
        self.generate_kwargs = {"do_sample": False, "num_beams": 1, "forced_eos_token_id": None,
                                **(generate_kwargs or {})}

    @classmethod
    def from_pretrained(cls, model_name_or_path: str, **kwargs) -> "Seq2SeqLMAdapter":
        """A local checkpoint folder (offline, a hub name fails with a clear message) -> adapter."""
        from transformers import AutoModelForSeq2SeqLM

        from utils.workbench.models import check_model_name_or_path

        check_model_name_or_path(model_name_or_path)
        try:
            model = AutoModelForSeq2SeqLM.from_pretrained(model_name_or_path)
        except (OSError, ValueError, KeyError) as error:
            raise AuditInputError(f"{model_name_or_path!r} is not a checkpoint AutoModelForSeq2SeqLM can load: "
                                  f"{error}") from error
        return cls(model, **kwargs)

    def __repr__(self) -> str:
        return f"Seq2SeqLMAdapter({type(self.model).__name__})"

    def forward(self, input_ids, decoder_input_ids, attention_mask=None, decoder_attention_mask=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
                          decoder_attention_mask=decoder_attention_mask).logits

    def loss(self, input_ids, labels, attention_mask=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss

    @torch.no_grad()
    def decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """Call the model with labels only (a one-token source) and return the ids its decoder received."""
        source = labels.new_full((labels.shape[0], 1), source_ids(self)[2])
        with watch_decoder_input_ids(self.model) as seen:
            self.model(input_ids=source, labels=labels)
        if not seen or seen[0] is None:
            raise AuditInputError(f"could not see the decoder input ids of {type(self.model).__name__}")
        return seen[0]

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, max_new_tokens: int = 20) -> torch.Tensor:
        if not hasattr(self.model, "generate"):  # the hand-written model: the hand-written greedy loop
            return greedy_decode(self.model, input_ids, attention_mask, max_new_tokens=max_new_tokens)
        return self.model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_new_tokens,
                                   **self.generate_kwargs)


# --- models built on torch.nn.Transformer --------------------------------------------------------------------


class TorchTransformerAdapter(_WrappedModel):
    """A model built on `torch.nn.Transformer`, whose forward takes nn.Transformer's keyword names:

        model(src, tgt, tgt_mask=..., src_key_padding_mask=..., tgt_key_padding_mask=...,
              memory_key_padding_mask=...) -> logits, (B, T, V) if batch_first else (T, B, V)

    ids are (B, S) / (B, T) when `batch_first`, else (S, B) / (T, B); padding masks are True at padding and
    `tgt_mask` is (T, T), True where attention is blocked (nn.Transformer's conventions).
    `tgt_mask` states what your training code passes: "causal" (the staircase of
    `nn.Transformer.generate_square_subsequent_mask`, as PyTorch's translation tutorial does) or "none" (nothing).
    `generate`, `loss` and `decoder_input_ids_from_labels`: your own functions with the signatures of the
    interface (see the module docstring), attached as they are.
    """

    def __init__(self, model: torch.nn.Module, vocab_size: int, pad_token_id: int, decoder_start_token_id: int,
                 eos_token_id: int, tgt_mask: str = "causal", batch_first: bool = True,
                 generate: Callable | None = None, loss: Callable | None = None,
                 decoder_input_ids_from_labels: Callable | None = None):
        if tgt_mask not in TGT_MASKS:
            raise ValueError(f"tgt_mask must be one of {TGT_MASKS}, got {tgt_mask!r}")
        if not isinstance(model, torch.nn.Module):
            raise AuditInputError(f"TorchTransformerAdapter wraps an nn.Module, got {type(model).__name__}")
        self.model = model.eval()
        self.vocab_size, self.pad_token_id = vocab_size, pad_token_id
        self.decoder_start_token_id, self.eos_token_id = decoder_start_token_id, eos_token_id
        self.tgt_mask, self.batch_first = tgt_mask, batch_first
        for name, function in (("generate", generate), ("loss", loss),
                               ("decoder_input_ids_from_labels", decoder_input_ids_from_labels)):
            if function is not None:
                setattr(self, name, function)

    def __repr__(self) -> str:
        return f"TorchTransformerAdapter({type(self.model).__name__}, tgt_mask={self.tgt_mask!r})"

    def forward(self, input_ids, decoder_input_ids, attention_mask=None, decoder_attention_mask=None):
        length = decoder_input_ids.shape[1]
        blocked = None if self.tgt_mask == "none" else ~causal_mask(length, device=decoder_input_ids.device)  # (T, T)
        source_padding = None if attention_mask is None else ~attention_mask.bool()  # (B, S), True = pad
        target_padding = None if decoder_attention_mask is None else ~decoder_attention_mask.bool()  # (B, T)
        src, tgt = (input_ids, decoder_input_ids) if self.batch_first else (input_ids.T, decoder_input_ids.T)
        logits = self.model(src, tgt, tgt_mask=blocked, src_key_padding_mask=source_padding,
                            tgt_key_padding_mask=target_padding, memory_key_padding_mask=source_padding)
        if not self.batch_first and isinstance(logits, torch.Tensor):
            logits = logits.transpose(0, 1)  # (T, B, V) -> (B, T, V)
        return logits
