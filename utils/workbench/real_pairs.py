"""Real English -> German pairs (notebook 14): UI strings from the gettext catalogs of wagtail, Django and Apache
Superset, built by `python data/make_real_pairs.py` and committed in data/real_pairs/ (see data/README.md)."""

import json

from utils.harness.paths import DATA_DIR

__all__ = ["FIELDS", "REAL_PAIRS_DIR", "SPLITS", "load_real_pairs", "load_real_split"]

__all__ = ["FIELDS", "REAL_PAIRS_DIR", "SPLITS", "load_real_pairs", "load_real_split"]

REAL_PAIRS_DIR = DATA_DIR / "real_pairs"
SPLITS = ("train", "validation", "test")
FIELDS = ("id", "en", "de", "package", "file")


def load_real_split(split: str) -> list[dict[str, str]]:
    """The records of one split, in the committed (hash) order: the first N are a random sample."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    path = REAL_PAIRS_DIR / f"{split}.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: rebuild it with `python data/make_real_pairs.py --download`")
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def load_real_pairs(split: str, limit: int = 0) -> list[tuple[str, str]]:
    """(en, de) pairs of one split; the first `limit` of them when limit > 0."""
    records = load_real_split(split)
    return [(record["en"], record["de"]) for record in (records[:limit] if limit > 0 else records)]
