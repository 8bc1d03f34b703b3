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
