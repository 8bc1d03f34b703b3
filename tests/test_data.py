"""The parallel corpus and the English corpus: reproducible, disjoint splits, exact fields, loadable."""

import datetime
import os
import subprocess
import sys

import pytest

from utils.harness.paths import DATA_DIR, REPO_ROOT
from utils.workbench.data import (
    ENGLISH_CORPUS_FILE,
    EXAMPLES_PER_KIND,
    FIELDS,
    KINDS,
    LANGUAGES,
    SPLITS,
    date_example,
    generate,
    load_english_corpus,
    load_pairs,
    load_split,
    number_example,
)

GENERATED_FILES = [f"{split}.jsonl" for split in SPLITS] + [ENGLISH_CORPUS_FILE]


@pytest.fixture(scope="module")
def splits():
    return {split: load_split(split) for split in SPLITS}


def assert_same_files(folder):
    for name in GENERATED_FILES:
        assert (folder / name).read_bytes() == (DATA_DIR / name).read_bytes(), f"{name} differs from data/"


def test_regenerated_data_matches_committed_files(tmp_path):
    written = generate(tmp_path)
    assert sorted(path.name for path in written) == sorted(GENERATED_FILES)
    assert_same_files(tmp_path)


def test_generation_does_not_depend_on_environment(tmp_path):
    env = {**os.environ, "PYTHONHASHSEED": "12345", "LC_ALL": "C", "LANG": "de_DE.UTF-8", "TZ": "Asia/Tokyo"}
    command = [sys.executable, "-m", "utils.data", "--out", str(tmp_path)]
    subprocess.run(command, cwd=REPO_ROOT, env=env, check=True, capture_output=True)
    assert_same_files(tmp_path)


def test_files_use_unix_line_endings_and_utf8():
    for name in GENERATED_FILES:
        raw = (DATA_DIR / name).read_bytes()
        assert b"\r" not in raw and raw.endswith(b"\n") and not raw.endswith(b"\n\n")
        raw.decode("utf-8")
    assert "ß" in (DATA_DIR / "train.jsonl").read_text(encoding="utf-8")  # written with ensure_ascii=False


def test_split_sizes_and_kinds(splits):
    for split, records in splits.items():
        counts = {kind: sum(record["kind"] == kind for record in records) for kind in KINDS}
        assert counts == {kind: EXAMPLES_PER_KIND[split] for kind in KINDS}
    assert [len(splits[split]) for split in SPLITS] == [4000, 500, 500]


def test_splits_are_disjoint_by_id_and_english_text(splits):
    for key in ("id", "en"):
        values = [record[key] for records in splits.values() for record in records]
        assert len(values) == len(set(values)), f"duplicate {key} across or within splits"


def test_records_have_exactly_the_fields(splits):
    for records in splits.values():
        for record in records:
            assert tuple(record) == FIELDS
            assert record["kind"] in KINDS and record["id"].startswith(record["kind"] + "-")
            for lang in LANGUAGES:
                assert isinstance(record[lang], str) and record[lang].strip() == record[lang] != ""


def test_records_are_what_num2words_and_babel_say(splits):
    for records in splits.values():
        for record in records:
            value = record["id"].split("-", 1)[1]
            if record["kind"] == "number":
                assert record == number_example(int(value))
            else:
                assert record == date_example(datetime.date.fromisoformat(value))
    assert number_example(21) == {
        "id": "number-21",
        "en": "twenty-one",
        "de": "einundzwanzig",
        "fr": "vingt et un",
        "kind": "number",
    }
    assert date_example(datetime.date(2024, 3, 21))["de"] == "21. März 2024"


def test_first_records_mix_both_kinds(splits):
    for records in splits.values():
        assert {record["kind"] for record in records[:20]} == set(KINDS)


def test_loads_with_datasets(tmp_path, splits):
    datasets = pytest.importorskip("datasets")
    data_files = {split: str(DATA_DIR / f"{split}.jsonl") for split in SPLITS}
    dataset = datasets.load_dataset("json", data_files=data_files, cache_dir=str(tmp_path))
    for split in SPLITS:
        assert dataset[split].num_rows == len(splits[split])
        assert dataset[split].column_names == list(FIELDS)
        assert dataset[split][0] == splits[split][0]


def test_load_split_errors(tmp_path):
    with pytest.raises(ValueError, match="train, validation, test"):
        load_split("dev")
    with pytest.raises(FileNotFoundError, match=r"train\.jsonl.*python -m utils\.data"):
        load_split("train", data_dir=tmp_path)


def test_load_pairs(splits):
    pairs = load_pairs("validation")
    assert pairs == [(record["en"], record["de"]) for record in splits["validation"]]
    assert load_pairs("test", "fr", "en", limit=3) == [(r["fr"], r["en"]) for r in splits["test"][:3]]
    assert load_pairs("train", limit=0) == []


@pytest.mark.parametrize(
    ("source", "target", "limit", "message"),
    [("en", "es", None, "allowed: en, de, fr"), ("de", "de", None, "both"), ("en", "fr", -1, "limit")],
)
def test_load_pairs_errors(source, target, limit, message):
    with pytest.raises(ValueError, match=message):
        load_pairs("train", source, target, limit=limit)


def test_english_corpus():
    lines = load_english_corpus()
    assert 3000 <= len(lines) <= 10000
    assert (DATA_DIR / ENGLISH_CORPUS_FILE).stat().st_size < 1_500_000
    assert len(lines) == len(set(lines))
    assert all(line.isascii() and line == " ".join(line.split()) and 40 <= len(line) <= 300 for line in lines)
    assert load_english_corpus(limit=5) == lines[:5]


def test_english_corpus_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"english\.txt.*python -m utils\.data"):
        load_english_corpus(data_dir=tmp_path)


def test_data_folder_stays_small():
    total = sum(path.stat().st_size for path in DATA_DIR.rglob("*") if path.is_file())
    assert total < 5_000_000
