"""Scores of decoded outputs against references: one place for every metric the notebooks report."""

import sacrebleu


def translation_scores(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """Exact match (a fraction in [0, 1], surrounding spaces ignored), corpus chrF and BLEU (sacrebleu defaults,
    0-100) of hypotheses against one reference each."""
    if len(hypotheses) != len(references) or not references:
        raise ValueError(f"need as many hypotheses as references (> 0), got {len(hypotheses)} and {len(references)}")
    exact = sum(h.strip() == r.strip() for h, r in zip(hypotheses, references, strict=True))
    return {"exact_match": exact / len(references),
            "chrf": sacrebleu.corpus_chrf(hypotheses, [references]).score,
            "bleu": sacrebleu.corpus_bleu(hypotheses, [references]).score}
