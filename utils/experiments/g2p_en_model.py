"""The pretrained g2p-en model (Park & Kim, Apache-2.0) as a torch module that speaks HF's seq2seq call signature.

`g2p-en` 2.1.0 ships `g2p_en/checkpoint20.npz`: a GRU encoder-decoder for English grapheme-to-phoneme conversion
(about 0.8M parameters) trained on CMUdict, decoded greedily in numpy by `G2p.predict`. Importing `g2p_en` calls
`nltk.download` (network), so nothing here imports it: the checkpoint is read from the installed package's folder,
and the package's own numpy decoding is run from its installed source (`package_predictor`), without the
module-level download.

The torch port (`G2pEnModel`):

    encoder   Embedding(29, 256) -> GRU(256, 256) over the letters and </s>
    decoder   Embedding(74, 256) -> GRU(256, 256), started from the encoder's last state; Linear(256, 74)

It offers what the collection's code calls: `model(input_ids, attention_mask, labels=...)` (teacher-forced loss),
`model.get_encoder()`, `model(encoder_outputs=..., decoder_input_ids=...)`, and a cache: the GRU state after the
prefix, which `cache=` / `use_cache=True` carry between decoding steps (HF's KV cache plays that role for T5), so
`utils.handwritten.decoding.greedy_decode` and `beam_search` run on it unchanged.
"""

import ast
import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_outputs import BaseModelOutput

from utils.handwritten.teacher_forcing import IGNORE_INDEX, shift_right

__all__ = [
    "GRAPHEMES", "PHONEMES", "G2pEnError", "G2pEnModel", "decode_ids", "encode_pronunciations",
    "encode_words", "load_checkpoint", "package_predictor",
]

PACKAGE = "g2p_en"
PACKAGE_PIN = "g2p-en==2.1.0"
CHECKPOINT = "checkpoint20.npz"
SOURCE = "g2p.py"

# Copied from g2p_en.g2p.G2p.__init__ (tests/test_g2p_en_model.py checks them against the installed source).
GRAPHEMES = ("<pad>", "<unk>", "</s>") + tuple("abcdefghijklmnopqrstuvwxyz")
PHONEMES = ("<pad>", "<unk>", "<s>", "</s>") + (
    "AA0", "AA1", "AA2", "AE0", "AE1", "AE2", "AH0", "AH1", "AH2", "AO0", "AO1", "AO2", "AW0", "AW1", "AW2", "AY0",
    "AY1", "AY2", "B", "CH", "D", "DH", "EH0", "EH1", "EH2", "ER0", "ER1", "ER2", "EY0", "EY1", "EY2", "F", "G", "HH",
    "IH0", "IH1", "IH2", "IY0", "IY1", "IY2", "JH", "K", "L", "M", "N", "NG", "OW0", "OW1", "OW2", "OY0", "OY1", "OY2",
    "P", "R", "S", "SH", "T", "TH", "UH0", "UH1", "UH2", "UW", "UW0", "UW1", "UW2", "V", "W", "Y", "Z", "ZH")
MAX_STEPS = 20  # G2p.predict's decoding limit: `for i in range(20)`
# npz array -> torch parameter
WEIGHT_NAMES = {
    "enc_emb": "encoder_embedding.weight", "enc_w_ih": "encoder_gru.weight_ih_l0",
    "enc_w_hh": "encoder_gru.weight_hh_l0", "enc_b_ih": "encoder_gru.bias_ih_l0", "enc_b_hh": "encoder_gru.bias_hh_l0",
    "dec_emb": "decoder.embedding.weight", "dec_w_ih": "decoder.gru.weight_ih_l0",
    "dec_w_hh": "decoder.gru.weight_hh_l0", "dec_b_ih": "decoder.gru.bias_ih_l0", "dec_b_hh": "decoder.gru.bias_hh_l0",
    "fc_w": "fc.weight", "fc_b": "fc.bias",
}


class G2pEnError(FileNotFoundError):
    """The g2p-en package or its checkpoint is missing or damaged; the message names the file."""


def _package_dir() -> Path:
    """`<site-packages>/g2p_en`, found without importing the package (its import downloads nltk data)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise G2pEnError(f"the package {PACKAGE!r} is not installed: `pip install {PACKAGE_PIN}`")
    return Path(list(spec.submodule_search_locations)[0])


def _checkpoint_path() -> Path:
    path = _package_dir() / CHECKPOINT
    if not path.is_file():
        raise G2pEnError(f"{path} does not exist: the {PACKAGE!r} package is damaged; reinstall {PACKAGE_PIN}")
    return path


def load_checkpoint(path: str | Path | None = None) -> dict[str, np.ndarray]:
    path = Path(path) if path is not None else _checkpoint_path()
    try:
        with np.load(path) as variables:
            arrays = {name: variables[name] for name in variables.files}
    except (OSError, ValueError) as error:
        raise G2pEnError(f"cannot read the g2p-en checkpoint {path}: {error}") from error
    missing = sorted(set(WEIGHT_NAMES) - set(arrays))
    if missing:
        raise G2pEnError(f"{path} lacks the arrays {', '.join(missing)}: not a g2p-en checkpoint")
    return arrays


# --- the package's own numpy decoding, from its installed source -----------------------------------------------

_PACKAGE_METHODS = ("load_variables", "sigmoid", "grucell", "gru", "encode", "predict")
_VOCABULARY_ATTRIBUTES = ("graphemes", "phonemes", "g2idx", "idx2g", "p2idx", "idx2p")


def _package_class_source(source: str) -> str:
    """The installed `class G2p` cut down to its numpy decoding: the methods `_PACKAGE_METHODS`, and an `__init__`
    holding only its vocabulary assignments and `self.load_variables()` (no nltk, no homographs)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (SyntaxWarning, DeprecationWarning))  # g2p.py's regex "[^ a-z'.,?!\-]"
        tree = ast.parse(source)
    cls = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "G2p")
    methods = {node.name: node for node in cls.body if isinstance(node, ast.FunctionDef)}
    missing = [name for name in _PACKAGE_METHODS + ("__init__",) if name not in methods]
    if missing:
        raise G2pEnError(f"the installed {SOURCE} has no G2p.{', G2p.'.join(missing)}: a g2p-en version this code "
                         f"does not know (expected {PACKAGE_PIN})")

    def keeps(statement) -> bool:
        if isinstance(statement, ast.Assign):
            return all(isinstance(t, ast.Attribute) and t.attr in _VOCABULARY_ATTRIBUTES for t in statement.targets)
        return isinstance(statement, ast.Expr) and "load_variables" in ast.unparse(statement)

    init = methods["__init__"]
    init.body = [statement for statement in init.body if keeps(statement)]
    cls.body = [init] + [methods[name] for name in _PACKAGE_METHODS]
    return ast.unparse(cls)


def package_predictor():
    """An object with the package's `predict(word) -> list of phonemes`, built from the installed `g2p.py` (its
    `G2p` class: vocabulary, `load_variables`, `grucell`, `gru`, `encode`, `predict`), reading the installed
    checkpoint; what `g2p_en.G2p()(word)` returns for a word outside CMUdict, without importing g2p_en."""
    folder = _package_dir()
    source_path = folder / SOURCE
    if not source_path.is_file():
        raise G2pEnError(f"{source_path} does not exist: the {PACKAGE!r} package is damaged; reinstall {PACKAGE_PIN}")
    _checkpoint_path()
    namespace = {"np": np, "os": __import__("os"), "dirname": str(folder), "__name__": "g2p_en_numpy"}
    exec(compile(_package_class_source(source_path.read_text(encoding="utf-8")), str(source_path), "exec"),
         namespace)
    return namespace["G2p"]()


# --- the torch port --------------------------------------------------------------------------------------------


@dataclass
class _G2pEnConfig:
    vocab_size: int = len(PHONEMES)  # decoder (phoneme) vocabulary: what the logits range over
    encoder_vocab_size: int = len(GRAPHEMES)  # encoder (letter) vocabulary: a separate table
    d_embedding: int = 256  # the checkpoint's sizes (g2p.py's shape comments say 64 and 128: they are stale)
    d_hidden: int = 256
    pad_token_id: int = 0  # "<pad>" in both vocabularies
    eos_token_id: int = PHONEMES.index("</s>")  # 3
    decoder_start_token_id: int = PHONEMES.index("<s>")  # 2
    encoder_eos_token_id: int = GRAPHEMES.index("</s>")  # 2
    encoder_pad_token_id: int = 0
    is_encoder_decoder: bool = True


@dataclass
class _GRUCache:
    """The decoder's state after the tokens seen so far: (1, B, d_hidden). Beam search reorders its rows."""

    hidden: torch.Tensor

    def reorder_cache(self, row_index: torch.Tensor) -> None:
        self.hidden = self.hidden.index_select(1, row_index)


@dataclass
class _G2pEnOutput:
    logits: torch.Tensor  # (B, T, V)
    loss: torch.Tensor | None = None
    cache: _GRUCache | None = None
    encoder_last_hidden_state: torch.Tensor | None = None


class _Decoder(nn.Module):
    """Embedding + GRU: `decoder(input_ids, initial_state)` -> states (B, T, d_hidden), last state (1, B, d_hidden)."""

    def __init__(self, config: _G2pEnConfig):
        super().__init__()
        self.embedding = nn.Embedding(config.vocab_size, config.d_embedding)
        self.gru = nn.GRU(config.d_embedding, config.d_hidden, batch_first=True)

    def forward(self, input_ids: torch.Tensor | None, initial_state: torch.Tensor,
                inputs_embeds: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        embeds = self.embedding(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, d_embedding)
        return self.gru(embeds, initial_state)


class _Encoder:
    """HF's `get_encoder()` view: `encoder(input_ids=, attention_mask=)` -> `.last_hidden_state` (B, S, d_hidden)."""

    def __init__(self, model: "G2pEnModel"):
        self.model = model

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> BaseModelOutput:
        return BaseModelOutput(last_hidden_state=self.model.encode(input_ids))


class G2pEnModel(nn.Module):
    """g2p-en's GRU encoder-decoder in torch (see the module docstring); `from_checkpoint()` loads the weights."""

    def __init__(self, config: _G2pEnConfig | None = None):
        super().__init__()
        self.config = config or _G2pEnConfig()
        self.encoder_embedding = nn.Embedding(self.config.encoder_vocab_size, self.config.d_embedding)
        self.encoder_gru = nn.GRU(self.config.d_embedding, self.config.d_hidden, batch_first=True)
        self.decoder = _Decoder(self.config)
        self.fc = nn.Linear(self.config.d_hidden, self.config.vocab_size)

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None) -> "G2pEnModel":
        arrays = load_checkpoint(path)
        model = cls(_G2pEnConfig(vocab_size=arrays["fc_w"].shape[0], encoder_vocab_size=arrays["enc_emb"].shape[0],
                                d_embedding=arrays["enc_emb"].shape[1], d_hidden=arrays["enc_w_hh"].shape[1]))
        state = {WEIGHT_NAMES[name]: torch.from_numpy(arrays[name].astype(np.float32)) for name in WEIGHT_NAMES}
        model.load_state_dict(state, strict=True)
        return model.eval()

    def get_encoder(self) -> _Encoder:
        return _Encoder(self)

    def get_decoder(self) -> _Decoder:
        return self.decoder

    def get_input_embeddings(self) -> nn.Embedding:
        return self.decoder.embedding

    def encode(self, input_ids: torch.Tensor) -> torch.Tensor:
        """GRU states after each letter: (B, S, d_hidden). Right padding cannot change the states before it."""
        states, _ = self.encoder_gru(self.encoder_embedding(input_ids))
        return states

    @staticmethod
    def initial_state(encoder_states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """The encoder's state at each row's last real position (its `</s>`): (1, B, d_hidden)."""
        batch_size, length, _ = encoder_states.shape
        if attention_mask is None:
            last = torch.full((batch_size,), length - 1, device=encoder_states.device)
        else:
            last = attention_mask.long().sum(dim=1) - 1  # (B,)
        return encoder_states[torch.arange(batch_size, device=encoder_states.device), last][None]  # (1, B, H)

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                decoder_input_ids: torch.Tensor | None = None, decoder_attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, decoder_inputs_embeds: torch.Tensor | None = None,
                encoder_outputs: BaseModelOutput | None = None, cache: _GRUCache | None = None,
                use_cache: bool | None = None) -> _G2pEnOutput:
        """One teacher-forced pass (with `labels` only: decoder inputs = `shift_right(labels)`), or a decoding step.

        With `cache`, the decoder continues from the cached state over `decoder_input_ids` (the new tokens only).
        `decoder_attention_mask` is accepted and not needed: a GRU never reads a later position, and padding after
        the last real position does not change the outputs before it.
        """
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            if labels is None:
                raise ValueError("pass decoder_input_ids, decoder_inputs_embeds or labels")
            decoder_input_ids = shift_right(labels, self.config.decoder_start_token_id, self.config.pad_token_id)
        if encoder_outputs is not None:
            encoder_states = encoder_outputs.last_hidden_state  # (B, S, H), the encoder run once
        elif input_ids is not None:
            encoder_states = self.encode(input_ids)
        else:
            raise ValueError("pass input_ids or encoder_outputs")
        state = cache.hidden if cache is not None else self.initial_state(encoder_states, attention_mask)
        states, last = self.decoder(decoder_input_ids, state, decoder_inputs_embeds)  # (B, T, H), (1, B, H)
        logits = self.fc(states)  # (B, T, V)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX)
        return _G2pEnOutput(logits=logits, loss=loss, cache=_GRUCache(last) if use_cache else None,
                           encoder_last_hidden_state=encoder_states)


# --- words in, phonemes out ------------------------------------------------------------------------------------

_GRAPHEME_IDS = {g: i for i, g in enumerate(GRAPHEMES)}
_PHONEME_IDS = {p: i for i, p in enumerate(PHONEMES)}


def encode_words(words: list[str]) -> dict[str, torch.Tensor]:
    """Letters (unknown characters -> `<unk>`, as `G2p.encode`) and `</s>`, right-padded: input_ids, attention_mask."""
    rows = [[_GRAPHEME_IDS.get(c, _GRAPHEME_IDS["<unk>"]) for c in word] + [_GRAPHEME_IDS["</s>"]] for word in words]
    length = max(map(len, rows))
    input_ids = torch.tensor([row + [0] * (length - len(row)) for row in rows])
    attention_mask = torch.tensor([[1] * len(row) + [0] * (length - len(row)) for row in rows])
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def encode_pronunciations(pronunciations: list[tuple[str, ...]]) -> torch.Tensor:
    """Stressed phonemes + `</s>` as labels, padded with -100: (B, T)."""
    rows = [[_PHONEME_IDS[p] for p in pronunciation] + [_PHONEME_IDS["</s>"]] for pronunciation in pronunciations]
    length = max(map(len, rows))
    return torch.tensor([row + [IGNORE_INDEX] * (length - len(row)) for row in rows])


def decode_ids(sequences: torch.Tensor) -> list[list[str]]:
    """`greedy_decode` / `beam_search` output (start token first) -> phonemes up to `</s>`, as `G2p.predict` returns
    them (unknown ids -> "<unk>")."""
    eos = _PHONEME_IDS["</s>"]
    rows = []
    for row in sequences[:, 1:].tolist():
        row = row[: row.index(eos)] if eos in row else row
        rows.append([PHONEMES[i] if 0 <= i < len(PHONEMES) else "<unk>" for i in row])
    return rows
