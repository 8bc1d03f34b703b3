"""The trained T5 / Marian / BART tokenizers: special ids, sentinels, eos, exact round trips, reproducible."""

import json

import pytest
import sentencepiece
from tokenizers import Tokenizer

from utils.harness.paths import TOKENIZERS_DIR
from utils.workbench.data import LANGUAGES, SPLITS, load_english_corpus, load_split
from utils.workbench.tokenizers import TOKENIZER_FILES, TOKENIZER_NAMES, _build_tokenizers, load_tokenizer

EXPECTED_IDS = {
    "t5": {"pad": 0, "eos": 1, "unk": 2, "bos": None, "mask": None, "size": 612},
    "marian": {"pad": 511, "eos": 0, "unk": 1, "bos": None, "mask": None, "size": 512},
    "bart": {"pad": 1, "eos": 2, "unk": 3, "bos": 0, "mask": 1999, "size": 2000},
}


@pytest.fixture(scope="module")
def tokenizers():
    return {name: load_tokenizer(name) for name in TOKENIZER_NAMES}


@pytest.fixture(scope="module")
def corpus_texts():
    return [record[lang] for split in SPLITS for record in load_split(split) for lang in LANGUAGES]


@pytest.mark.parametrize("name", TOKENIZER_NAMES)
def test_special_token_ids(tokenizers, name):
    tokenizer, expected = tokenizers[name], EXPECTED_IDS[name]
    assert tokenizer.pad_token_id == expected["pad"]
    assert tokenizer.eos_token_id == expected["eos"]
    assert tokenizer.unk_token_id == expected["unk"]
    assert tokenizer.bos_token_id == expected["bos"]
    assert getattr(tokenizer, "mask_token_id", None) == expected["mask"]
    assert len(tokenizer) == tokenizer.vocab_size == expected["size"]


def test_pad_is_the_last_marian_id(tokenizers):
    tokenizer = tokenizers["marian"]
    assert tokenizer.pad_token_id == len(tokenizer) - 1
    assert tokenizer.convert_ids_to_tokens([0, 1, 511]) == ["</s>", "<unk>", "<pad>"]


def test_t5_sentinels_count_down_from_the_last_id(tokenizers):
    tokenizer = tokenizers["t5"]
    ids = [tokenizer.convert_tokens_to_ids(f"<extra_id_{i}>") for i in range(100)]
    assert ids == [len(tokenizer) - 1 - i for i in range(100)]
    assert ids[0] == 611 and ids[99] == 512
    assert tokenizer("<extra_id_0> twenty <extra_id_1>")["input_ids"] == [611, 101, 610, 1]
    assert tokenizer.decode([611, 101, 610, 1], skip_special_tokens=True) == "twenty"


def test_bart_mask_is_the_last_id(tokenizers):
    tokenizer = tokenizers["bart"]
    assert tokenizer.convert_ids_to_tokens([0, 1, 2, 3, 1999]) == ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


@pytest.mark.parametrize("name", TOKENIZER_NAMES)
def test_eos_is_appended(tokenizers, name):
    tokenizer = tokenizers[name]
    for text in ("twenty-one", "einundzwanzig", "21 mars 2024"):
        ids = tokenizer(text)["input_ids"]
        assert ids[-1] == tokenizer.eos_token_id and ids.count(tokenizer.eos_token_id) == 1
        if name == "bart":
            assert ids[0] == tokenizer.bos_token_id
        assert tokenizer(text_target=text)["input_ids"] == ids


@pytest.mark.parametrize("name", TOKENIZER_NAMES)
def test_round_trip_on_the_whole_corpus(tokenizers, corpus_texts, name):
    tokenizer = tokenizers[name]
    ids = tokenizer(corpus_texts)["input_ids"]
    decoded = tokenizer.batch_decode(ids, skip_special_tokens=True)
    mismatches = [(text, back) for text, back in zip(corpus_texts, decoded, strict=True) if text != back]
    assert mismatches == []
    assert tokenizer.unk_token_id not in {token for sequence in ids for token in sequence}


def test_bart_round_trip_on_english_corpus(tokenizers):
    tokenizer, lines = tokenizers["bart"], load_english_corpus()
    assert tokenizer.batch_decode(tokenizer(lines)["input_ids"], skip_special_tokens=True) == lines


@pytest.mark.parametrize("name", TOKENIZER_NAMES)
def test_batch_with_text_target_and_padding(tokenizers, name):
    tokenizer = tokenizers[name]
    batch = tokenizer(
        ["twenty-one", "March 21, 2024"],
        text_target=["einundzwanzig", "21. März 2024"],
        padding=True,
        return_tensors="pt",
    )
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert batch["input_ids"].shape == batch["attention_mask"].shape
    assert batch["labels"].shape[0] == 2
    padded = batch["attention_mask"] == 0
    assert padded.any() or name == "bart"
    assert (batch["input_ids"][padded] == tokenizer.pad_token_id).all()
    assert tokenizer.decode(batch["labels"][1], skip_special_tokens=True) == "21. März 2024"


def test_german_compounds_and_french_hyphens_split_into_pieces(tokenizers):
    pieces = tokenizers["t5"].tokenize("neuntausendneunhundertneunundneunzig")
    assert len(pieces) > 1 and "".join(pieces) == "▁neuntausendneunhundertneunundneunzig"
    french = tokenizers["marian"].tokenize("quatre-vingt-dix-neuf")
    assert french == ["▁quatre", "-", "vingt", "-", "dix", "-", "neuf"]


def test_t5_tokenizer_json_agrees_with_its_sentencepiece_model(corpus_texts):
    processor = sentencepiece.SentencePieceProcessor(model_file=str(TOKENIZERS_DIR / "t5" / "spiece.model"))
    backend = Tokenizer.from_file(str(TOKENIZERS_DIR / "t5" / "tokenizer.json"))
    for text in corpus_texts[::7]:
        assert backend.encode(text).ids == processor.encode(text) + [processor.eos_id()]


def test_marian_vocab_matches_its_sentencepiece_ids():
    processor = sentencepiece.SentencePieceProcessor(model_file=str(TOKENIZERS_DIR / "marian" / "source.spm"))
    vocab = json.loads((TOKENIZERS_DIR / "marian" / "vocab.json").read_text(encoding="utf-8"))
    assert {processor.id_to_piece(i): i for i in range(processor.get_piece_size())} == {
        piece: i for piece, i in vocab.items() if piece != "<pad>"
    }


def test_regenerated_tokenizers_match_committed_files(tmp_path):
    _build_tokenizers(out_dir=tmp_path)
    for name in TOKENIZER_NAMES:
        committed, rebuilt = TOKENIZERS_DIR / name, tmp_path / name
        files = sorted(path.name for path in committed.iterdir())
        assert sorted(path.name for path in rebuilt.iterdir()) == files == sorted(TOKENIZER_FILES[name])
        for file in files:
            assert (rebuilt / file).read_bytes() == (committed / file).read_bytes(), f"{name}/{file} differs"


def test_load_tokenizer_errors(tmp_path):
    with pytest.raises(ValueError, match="t5, marian, bart"):
        load_tokenizer("gpt2")
    with pytest.raises(FileNotFoundError, match=r"tokenizer\.json.*python -m utils\.tokenizers"):
        load_tokenizer("bart", tokenizers_dir=tmp_path)
