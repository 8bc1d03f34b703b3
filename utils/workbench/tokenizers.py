"""Small trained tokenizers that mirror T5, Marian and BART, saved so that `transformers` loads them offline.

Run `python -m utils.tokenizers [--data-dir DIR] [--out DIR]` after `python -m utils.data` to (re)train them:

- `t5`: SentencePiece Unigram (512 pieces: `<pad>`=0, `</s>`=1, `<unk>`=2) plus 100 sentinels at the end of
  the vocabulary, `<extra_id_0>` being the highest id (611), as in T5. Loaded as `T5Tokenizer` (the
  tokenizers-backed class in transformers 5). Appends `</s>`.
- `marian`: SentencePiece Unigram with Marian's layout: `</s>`=0, `<unk>`=1, `<pad>` the last id (511), the id
  Marian's decoder starts from. Real `source.spm` / `target.spm` / `vocab.json` files, loaded as
  `MarianTokenizer`. Appends `</s>`.
- `bart`: byte-level BPE (GPT-2 / RoBERTa / BART style): `<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3, `<mask>` the
  last id (1999). Loaded as `BartTokenizer` (= `RobertaTokenizer` in transformers 5). Encodes `<s> ... </s>`.

The Unigram vocabularies are shared by English, German and French and trained on the training split only; the
BPE one also on the English corpus. Training is deterministic, so the files are byte-for-byte reproducible.
"""

import argparse
import io
import json
import warnings
from pathlib import Path

import sentencepiece
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from utils.harness.paths import DATA_DIR, TOKENIZERS_DIR
from utils.workbench.data import LANGUAGES, load_english_corpus, load_split

__all__ = [
    "TOKENIZER_FILES", "TOKENIZER_NAMES", "build_marian", "build_t5", "load_tokenizer", "main",
]

TOKENIZER_NAMES = ("t5", "marian", "bart")

T5_PIECES = 512  # SentencePiece pieces incl. <pad>, </s>, <unk>; the corpus cannot fill many more
T5_EXTRA_IDS = 100
MARIAN_PIECES = 511  # plus <pad> as the last id: 512 ids
BART_VOCAB_SIZE = 2000  # incl. the 4 special tokens and <mask>

T5_FILES = ("spiece.model", "tokenizer.json", "tokenizer_config.json")
MARIAN_FILES = ("source.spm", "target.spm", "vocab.json", "tokenizer_config.json")
BART_FILES = ("tokenizer.json", "tokenizer_config.json")
TOKENIZER_FILES = {"t5": T5_FILES, "marian": MARIAN_FILES, "bart": BART_FILES}

SPIECE_UNDERLINE = "▁"
MODEL_MAX_LENGTH = 512


def _translation_texts(data_dir: Path = DATA_DIR) -> list[str]:
    """The training split in all three languages, record by record: the Unigram training text."""
    return [record[lang] for record in load_split("train", data_dir) for lang in LANGUAGES]


def _train_sentencepiece(texts: list[str], vocab_size: int, **special_ids: int) -> bytes:
    """A serialized SentencePiece Unigram model; single-threaded and on fixed input, so deterministic."""
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=model,
        model_type="unigram",
        vocab_size=vocab_size,
        character_coverage=1.0,
        normalization_rule_name="identity",  # keep text as is: decode(encode(text)) == text
        num_threads=1,
        minloglevel=2,
        **special_ids,
    )
    return model.getvalue()


def _t5_backend_tokenizer(spiece_model: bytes, extra_ids: int = T5_EXTRA_IDS) -> Tokenizer:
    """The tokenizers version of a T5 SentencePiece model: same pieces and scores, sentinels appended."""
    processor = sentencepiece.SentencePieceProcessor(model_proto=spiece_model)
    vocab = [(processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.get_piece_size())]
    vocab += [(f"<extra_id_{i}>", 0.0) for i in reversed(range(extra_ids))]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=processor.unk_id(), byte_fallback=False))
    # The same pipeline as transformers' T5Tokenizer, which rebuilds it when loading.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Metaspace(replacement=SPIECE_UNDERLINE, prepend_scheme="always", split=True),
        ]
    )
    tokenizer.decoder = decoders.Metaspace(replacement=SPIECE_UNDERLINE, prepend_scheme="always", split=True)
    specials = ["<pad>", "</s>", "<unk>"] + [f"<extra_id_{i}>" for i in range(extra_ids)]
    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in specials])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", tokenizer.token_to_id("</s>"))]
    )
    return tokenizer


def _train_bart_tokenizer(texts: list[str], vocab_size: int = BART_VOCAB_SIZE) -> Tokenizer:
    """Byte-level BPE like RoBERTa / BART: <s>=0, <pad>=1, </s>=2, <unk>=3, <mask>=vocab_size-1."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,  # <mask> comes last
        special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    # <mask> joins the BPE vocabulary itself, as in RoBERTa's vocab.json, so that vocab_size counts it.
    state = json.loads(tokenizer.to_str())
    state["model"]["vocab"]["<mask>"] = vocab_size - 1
    tokenizer = Tokenizer.from_str(json.dumps(state))
    tokenizer.add_special_tokens([AddedToken("<mask>", special=True, lstrip=True, normalized=False)])
    tokenizer.post_processor = processors.RobertaProcessing(
        ("</s>", tokenizer.token_to_id("</s>")),  # sep
        ("<s>", tokenizer.token_to_id("<s>")),  # cls
        trim_offsets=True,
        add_prefix_space=False,
    )
    return tokenizer


def _write_json(data: dict, path: Path) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n")


def _save_backend(tokenizer: Tokenizer, path: Path) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(tokenizer.to_str(pretty=True) + "\n")


def build_t5(texts: list[str], out_dir: Path) -> None:
    spiece_model = _train_sentencepiece(texts, T5_PIECES, pad_id=0, eos_id=1, unk_id=2, bos_id=-1)
    (out_dir / "spiece.model").write_bytes(spiece_model)
    _save_backend(_t5_backend_tokenizer(spiece_model), out_dir / "tokenizer.json")
    config = {
        "tokenizer_class": "T5Tokenizer",
        "pad_token": "<pad>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "extra_ids": T5_EXTRA_IDS,
        "model_max_length": MODEL_MAX_LENGTH,
        "clean_up_tokenization_spaces": False,
    }
    _write_json(config, out_dir / "tokenizer_config.json")


def build_marian(texts: list[str], out_dir: Path) -> None:
    spm_model = _train_sentencepiece(texts, MARIAN_PIECES, eos_id=0, unk_id=1, bos_id=-1, pad_id=-1)
    (out_dir / "source.spm").write_bytes(spm_model)
    (out_dir / "target.spm").write_bytes(spm_model)  # one shared vocabulary, as in many opus-mt models
    processor = sentencepiece.SentencePieceProcessor(model_proto=spm_model)
    vocab = {processor.id_to_piece(i): i for i in range(processor.get_piece_size())}
    vocab["<pad>"] = len(vocab)
    _write_json(vocab, out_dir / "vocab.json")
    config = {
        "tokenizer_class": "MarianTokenizer",
        "pad_token": "<pad>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "separate_vocabs": False,
        "model_max_length": MODEL_MAX_LENGTH,
        "clean_up_tokenization_spaces": False,
    }
    _write_json(config, out_dir / "tokenizer_config.json")


def _build_bart(texts: list[str], out_dir: Path) -> None:
    _save_backend(_train_bart_tokenizer(texts), out_dir / "tokenizer.json")
    config = {
        "tokenizer_class": "BartTokenizer",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "cls_token": "<s>",
        "sep_token": "</s>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "mask_token": "<mask>",
        "add_prefix_space": False,
        "model_max_length": MODEL_MAX_LENGTH,
        "clean_up_tokenization_spaces": False,
    }
    _write_json(config, out_dir / "tokenizer_config.json")


def _build_tokenizers(data_dir: Path = DATA_DIR, out_dir: Path = TOKENIZERS_DIR) -> dict[str, Path]:
    """Train all tokenizers from the data in data_dir and save them under out_dir/<name>/."""
    texts = _translation_texts(data_dir)
    english = load_english_corpus(data_dir=data_dir)
    builders = {
        "t5": lambda folder: build_t5(texts, folder),
        "marian": lambda folder: build_marian(texts, folder),
        "bart": lambda folder: _build_bart(texts + english, folder),
    }
    folders = {}
    for name in TOKENIZER_NAMES:
        folder = Path(out_dir) / name
        folder.mkdir(parents=True, exist_ok=True)
        builders[name](folder)
        folders[name] = folder
    return folders


def _tokenizer_class(name: str) -> type:
    """The transformers class that loads tokenizer `name`."""
    from transformers import BartTokenizer, MarianTokenizer, T5Tokenizer

    return {"t5": T5Tokenizer, "marian": MarianTokenizer, "bart": BartTokenizer}[name]


def load_tokenizer(name: str, tokenizers_dir: Path = TOKENIZERS_DIR):
    """The trained tokenizer `name` ("t5", "marian" or "bart") as a transformers tokenizer, loaded offline."""
    if name not in TOKENIZER_NAMES:
        raise ValueError(f"unknown tokenizer {name!r}; allowed: {', '.join(TOKENIZER_NAMES)}")
    folder = Path(tokenizers_dir) / name
    missing = [file for file in TOKENIZER_FILES[name] if not (folder / file).is_file()]
    if missing:
        hint = "run `python -m utils.tokenizers` to train the tokenizers"
        raise FileNotFoundError(f"{folder} lacks {', '.join(missing)}: {hint}")
    with warnings.catch_warnings():
        # MarianTokenizer asks for sacremoses, which only normalises punctuation; not needed for this data.
        warnings.filterwarnings("ignore", message="Recommended: pip install sacremoses")
        return _tokenizer_class(name).from_pretrained(str(folder), local_files_only=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR, help="with train.jsonl and english.txt")
    parser.add_argument("--out", type=Path, default=TOKENIZERS_DIR, help="default: data/tokenizers")
    args = parser.parse_args(argv)
    for name, folder in _build_tokenizers(args.data_dir, args.out).items():
        print(f"wrote {name} tokenizer to {folder}")


if __name__ == "__main__":
    main()
