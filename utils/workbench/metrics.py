"""Scores of decoded outputs against references: one place for every metric the notebooks report."""

import sacrebleu

__all__ = ["edit_distance", "first_pronunciation_scores", "g2p_literature_scores", "g2p_scores", "phoneme_error_rate",
           "sentence_statistics", "statistics_score", "translation_scores", "word_error_rate", "word_errors"]


def translation_scores(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """Exact match (a fraction in [0, 1], surrounding spaces ignored), corpus chrF and BLEU (sacrebleu defaults,
    0-100) of hypotheses against one reference each."""
    if len(hypotheses) != len(references) or not references:
        raise ValueError(f"need as many hypotheses as references (> 0), got {len(hypotheses)} and {len(references)}")
    exact = sum(h.strip() == r.strip() for h, r in zip(hypotheses, references, strict=True))
    return {"exact_match": exact / len(references),
            "chrf": sacrebleu.corpus_chrf(hypotheses, [references]).score,
            "bleu": sacrebleu.corpus_bleu(hypotheses, [references]).score}


# --- grapheme-to-phoneme: word and phoneme error rates -------------------------------------------------------


def edit_distance(hypothesis, reference) -> int:
    """Levenshtein distance between two token sequences: the fewest insertions, deletions and substitutions."""
    previous = list(range(len(reference) + 1))
    for i, token in enumerate(hypothesis, start=1):
        current = [i]
        for j, gold in enumerate(reference, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (token != gold)))
        previous = current
    return previous[-1]


def _alternatives(reference) -> list:
    """A reference is one token sequence (e.g. ("HH", "AH", "L", "OW")) or a list of acceptable ones."""
    if not reference:
        raise ValueError("empty reference")
    return [reference] if isinstance(reference[0], str) else list(reference)


def word_errors(hypothesis, reference) -> tuple[int, int, int]:
    """(word error 0/1, edits, reference length) against the closest acceptable pronunciation.

    The word is correct when the hypothesis equals any alternative; the phoneme edits are counted against the
    alternative with the fewest edits (the first of equals), whose length is the denominator of the PER.
    """
    scored = [(edit_distance(hypothesis, alternative), len(alternative)) for alternative in _alternatives(reference)]
    edits, length = min(scored, key=lambda pair: pair[0])
    if length == 0:
        raise ValueError("a reference pronunciation has no tokens")
    return int(edits > 0), edits, length


def g2p_scores(hypotheses: list, references: list) -> dict:
    """Word error rate (share of words whose output matches no reference pronunciation) and phoneme error rate
    (edit distance over phoneme tokens, summed over words, divided by the summed reference lengths), with the
    per-word numbers behind them (for bootstrap intervals)."""
    if len(hypotheses) != len(references) or not references:
        raise ValueError(f"need as many hypotheses as references (> 0), got {len(hypotheses)} and {len(references)}")
    rows = [word_errors(h, r) for h, r in zip(hypotheses, references, strict=True)]
    word_error, edits, lengths = (list(column) for column in zip(*rows, strict=True))
    return {"wer": sum(word_error) / len(rows), "per": sum(edits) / sum(lengths), "word_errors": word_error,
            "edits": edits, "reference_lengths": lengths}


def word_error_rate(hypotheses: list, references: list) -> float:
    return g2p_scores(hypotheses, references)["wer"]


def phoneme_error_rate(hypotheses: list, references: list) -> float:
    return g2p_scores(hypotheses, references)["per"]



# --- corpus metrics from per-sentence statistics (for intervals that resample sentences) --------------------------


def _corpus_metric(name: str):
    from sacrebleu.metrics import BLEU, CHRF

    if name not in ("chrf", "bleu"):
        raise ValueError(f"metric must be 'chrf' or 'bleu', got {name!r}")
    return _CORPUS_METRIC_CACHE.setdefault(name, CHRF() if name == "chrf" else BLEU())


_CORPUS_METRIC_CACHE: dict = {}


def sentence_statistics(name: str, hypotheses: list[str], references: list[str]):
    """Per-sentence sufficient statistics of sacrebleu's corpus chrF or BLEU, (sentences, K): summed over any set
    of sentences they give that set's corpus score (`statistics_score`), as sacrebleu's own bootstrap uses them."""
    import numpy as np

    if len(hypotheses) != len(references) or not references:
        raise ValueError(f"need as many hypotheses as references (> 0), got {len(hypotheses)} and {len(references)}")
    return np.asarray(_corpus_metric(name)._extract_corpus_statistics(hypotheses, [references]), dtype=np.float64)


def statistics_score(name: str, summed) -> float:
    """The corpus chrF or BLEU (0-100) of summed `sentence_statistics`."""
    return float(_corpus_metric(name)._compute_score_from_stats([float(x) for x in summed]).score)


# --- CMUdict as the literature scores it: any listed pronunciation, beside the first one ---------------------------


def first_pronunciation_scores(hypotheses: list, references: list) -> dict:
    """`g2p_scores` against the first listed pronunciation only (the one the models are trained on): a word whose
    output equals a later alternate counts as an error here."""
    return g2p_scores(hypotheses, [_alternatives(reference)[:1] for reference in references])


def g2p_literature_scores(hypotheses: list, references: list) -> dict:
    """WER and PER as the CMUdict literature reports them (cmusphinx g2p-seq2seq, Sequitur, Phonetisaurus): a word
    is correct when the output equals ANY listed pronunciation, and its phoneme edits are counted against the closest
    one (`wer_any`, `per_any`), beside the same rates against the first listed pronunciation (`wer_first`,
    `per_first`); any <= first always. Per-word numbers for bootstrap intervals under `*_word_errors` / `*_edits` /
    `*_reference_lengths`."""
    scores = {}
    for label, result in (("any", g2p_scores(hypotheses, references)),
                          ("first", first_pronunciation_scores(hypotheses, references))):
        scores |= {f"{key}_{label}" if key in ("wer", "per") else f"{label}_{key}": value
                   for key, value in result.items()}
    scores["words_with_alternates"] = sum(len(_alternatives(reference)) > 1 for reference in references)
    return scores
