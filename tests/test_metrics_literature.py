"""CMUdict scored as the literature scores it (any listed pronunciation vs the first one), and corpus chrF / BLEU
from per-sentence statistics (what the intervals of notebook 14 resample)."""

import pytest
import sacrebleu

from utils.workbench.metrics import (
    first_pronunciation_scores,
    g2p_literature_scores,
    g2p_scores,
    sentence_statistics,
    statistics_score,
)

EITHER = [("IY", "DH", "ER"), ("AY", "DH", "ER")]  # "either": the first and an alternate pronunciation
CAT = [("K", "AE", "T")]


def test_alternate_counts_as_correct_against_any_but_not_against_the_first():
    hypotheses = [("AY", "DH", "ER"), ("K", "AE", "T")]
    scores = g2p_literature_scores(hypotheses, [EITHER, CAT])
    assert scores["wer_any"] == 0.0 and scores["per_any"] == 0.0
    assert scores["wer_first"] == 0.5  # the alternate is one substitution away from the first pronunciation
    assert scores["per_first"] == pytest.approx(1 / 6)
    assert scores["first_word_errors"] == [1, 0] and scores["any_word_errors"] == [0, 0]
    assert scores["words_with_alternates"] == 1


def test_any_equals_the_existing_g2p_scores_and_first_uses_only_the_first():
    hypotheses = [("IY", "TH", "ER"), ("K", "AH", "T"), ("D", "AO")]
    references = [EITHER, CAT, [("D", "AO", "G")]]
    scores = g2p_literature_scores(hypotheses, references)
    any_scores = g2p_scores(hypotheses, references)
    assert (scores["wer_any"], scores["per_any"]) == (any_scores["wer"], any_scores["per"])
    first = first_pronunciation_scores(hypotheses, references)
    assert first == g2p_scores(hypotheses, [[r[0]] for r in references])
    assert scores["wer_any"] <= scores["wer_first"] and scores["per_any"] <= scores["per_first"]


def test_phoneme_edits_count_against_the_closest_alternate():
    # one edit from the alternate "AY DH ER", two from the first "IY DH ER": any counts 1 edit, first counts 2
    scores = g2p_literature_scores([("AY", "DH", "AH")], [EITHER])
    assert scores["any_edits"] == [1] and scores["first_edits"] == [2] and scores["per_first"] == pytest.approx(2 / 3)


def test_a_single_pronunciation_given_as_a_tuple_is_accepted():
    scores = g2p_literature_scores([("K", "AE", "T")], [("K", "AE", "T")])
    assert scores["wer_any"] == scores["wer_first"] == 0.0 and scores["words_with_alternates"] == 0


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="as many hypotheses"):
        g2p_literature_scores([("K",)], [CAT, CAT])


HYPOTHESES = ["Seite löschen", "Abfrage ausführen", "Benutzer", "Hallo Welt, wie geht es"]
REFERENCES = ["Seite löschen", "Abfrage starten", "Benutzerin", "Hallo Welt, wie geht's"]


@pytest.mark.parametrize(("name", "corpus"), [("chrf", sacrebleu.corpus_chrf), ("bleu", sacrebleu.corpus_bleu)])
def test_summed_sentence_statistics_give_the_corpus_score(name, corpus):
    statistics = sentence_statistics(name, HYPOTHESES, REFERENCES)
    assert statistics.shape[0] == len(HYPOTHESES)
    assert statistics_score(name, statistics.sum(axis=0)) == pytest.approx(corpus(HYPOTHESES, [REFERENCES]).score)
    subset = [0, 2, 2]  # a resample: the corpus score of those sentences
    expected = corpus([HYPOTHESES[i] for i in subset], [[REFERENCES[i] for i in subset]]).score
    assert statistics_score(name, statistics[subset].sum(axis=0)) == pytest.approx(expected)


def test_unknown_corpus_metric_is_refused():
    with pytest.raises(ValueError, match="'chrf' or 'bleu'"):
        sentence_statistics("ter", HYPOTHESES, REFERENCES)
