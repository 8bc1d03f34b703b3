"""utils/workbench/metrics.py: the scores every notebook reports."""

import pytest

from utils.workbench.metrics import translation_scores


def test_translation_scores():
    perfect = translation_scores(["zwei", "21. März 2024"], ["zwei", "21. März 2024"])
    assert perfect["exact_match"] == 1.0 and perfect["chrf"] == pytest.approx(100.0)
    assert perfect["bleu"] == pytest.approx(100.0)
    # corpus BLEU needs 4-grams: outputs of 1-3 tokens alone score 0 even when they are all right
    assert translation_scores(["zwei", "drei"], ["zwei", "drei"])["bleu"] == 0.0
    half = translation_scores(["zwei", "vier"], ["zwei", "drei"])
    assert half["exact_match"] == 0.5 and half["chrf"] < 100.0
    assert translation_scores([" zwei "], ["zwei"])["exact_match"] == 1.0  # surrounding spaces do not count
    with pytest.raises(ValueError):
        translation_scores(["a"], ["a", "b"])
    with pytest.raises(ValueError):
        translation_scores([], [])


# --- word and phoneme error rates (grapheme-to-phoneme) -------------------------------------------------------


def test_edit_distance_hand_made_cases():
    from utils.workbench.metrics import edit_distance

    assert edit_distance([], []) == 0
    assert edit_distance(["K", "AE", "T"], ["K", "AE", "T"]) == 0
    assert edit_distance(["K", "AE", "T"], ["K", "AH", "T"]) == 1  # one substitution
    assert edit_distance(["K", "T"], ["K", "AE", "T"]) == 1  # one deletion
    assert edit_distance(["K", "AE", "AE", "T"], ["K", "AE", "T"]) == 1  # one insertion
    assert edit_distance([], ["K", "AE", "T"]) == 3 and edit_distance(["K", "AE", "T"], []) == 3
    assert edit_distance(["AE", "K", "T"], ["K", "AE", "T"]) == 2  # a swap is two edits
    assert edit_distance("kitten", "sitting") == 3  # the textbook case, on characters


def test_word_and_phoneme_error_rate_hand_made_cases():
    from utils.workbench.metrics import g2p_scores, phoneme_error_rate, word_error_rate

    references = [("K", "AE", "T"), ("D", "AO", "G")]
    assert word_error_rate([("K", "AE", "T"), ("D", "AO", "G")], references) == 0.0
    assert phoneme_error_rate([("K", "AE", "T"), ("D", "AO", "G")], references) == 0.0
    # one substitution in the second word: WER 1/2, PER 1 edit / 6 reference phonemes
    assert word_error_rate([("K", "AE", "T"), ("D", "AA", "G")], references) == 0.5
    assert phoneme_error_rate([("K", "AE", "T"), ("D", "AA", "G")], references) == pytest.approx(1 / 6)
    # PER is summed edits over summed reference lengths (not a mean of per-word rates), and can exceed 1
    scores = g2p_scores([("K",), ("D", "AO", "G", "Z", "Z", "Z", "Z")], [("K", "AE", "T"), ("D", "AO", "G")])
    assert scores["per"] == pytest.approx((2 + 4) / 6) and scores["wer"] == 1.0
    assert scores["word_errors"] == [1, 1] and scores["edits"] == [2, 4] and scores["reference_lengths"] == [3, 3]
    assert phoneme_error_rate([("Z",) * 8], [("K", "AE", "T")]) == pytest.approx(8 / 3)
    with pytest.raises(ValueError):
        word_error_rate([("K",)], [])


def test_alternate_pronunciations_count_as_correct():
    from utils.workbench.metrics import g2p_scores, word_errors

    either = [("IY", "DH", "ER"), ("AY", "DH", "ER")]  # "either", two pronunciations
    assert word_errors(("AY", "DH", "ER"), either) == (0, 0, 3)
    assert word_errors(("IY", "DH", "ER"), either) == (0, 0, 3)
    # wrong: the edits are counted against the closest alternative, and its length is the denominator
    assert word_errors(("AY", "DH", "AH"), either) == (1, 1, 3)
    long_or_short = [("T", "AH", "M", "EY", "T", "OW"), ("T", "AH", "M", "AA", "T", "OW")]
    assert word_errors(("T", "AH", "M", "AA", "T"), long_or_short) == (1, 1, 6)
    assert g2p_scores([("AY", "DH", "ER")], [either])["wer"] == 0.0
