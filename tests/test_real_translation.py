"""Notebook 14's numbers over seeds: per-seed scores equal sacrebleu's corpus scores, intervals cover seeds and
sentences, and an exact match of 0/n in every seed gets the exact Clopper-Pearson interval."""

import pytest
import sacrebleu

from utils.experiments.real_translation import seed_summary
from utils.reporting.provenance import provenance_problems

REFERENCES = ["Die Seite wurde erfolgreich gelöscht", "Abfrage ausführen", "Benutzer", "Hallo Welt", "Neue Seite",
              "Diese Seite kann nicht verschoben werden"]


def run(seed: int, hypotheses: list[str]) -> dict:
    scores = sacrebleu.corpus_chrf(hypotheses, [REFERENCES]).score, sacrebleu.corpus_bleu(hypotheses, [REFERENCES])
    return {"seed": seed, "greedy_hypotheses": hypotheses, "greedy_chrf": scores[0], "greedy_bleu": scores[1].score,
            "greedy_exact_match": sum(h == r for h, r in zip(hypotheses, REFERENCES, strict=True)) / len(REFERENCES)}


def test_per_seed_scores_are_sacrebleus_and_intervals_cover_the_mean():
    runs = [run(0, ["Die Seite wurde erfolgreich gelöscht", "Abfrage starten", "Benutzer", "Hallo", "Neue Seite",
                    "Diese Seite kann nicht gelöscht werden"]),
            run(1, ["Die Seite wurde gelöscht", "Abfrage ausführen", "Nutzer", "Hallo", "Seite",
                    "Diese Seite kann nicht verschoben werden"])]
    summary = seed_summary(runs, REFERENCES, n_resamples=200)
    for name in ("chrf", "bleu", "exact_match"):
        assert summary[name]["per_seed"] == pytest.approx([r[f"greedy_{name}"] for r in runs])
        low, high = summary[name]["ci95"]
        assert low <= summary[name]["mean"] <= high and low < high
        assert summary[name]["method"] == "two-level bootstrap" and summary[name]["std"] > 0


def test_exact_match_zero_in_every_seed_gets_the_clopper_pearson_interval():
    runs = [run(seed, ["falsch"] * len(REFERENCES)) for seed in (0, 1, 2)]
    summary = seed_summary(runs, REFERENCES, n_resamples=100)
    exact = summary["exact_match"]
    assert exact["mean"] == 0.0 and exact["method"] == "clopper-pearson"
    assert exact["ci95"][0] == 0.0 and exact["ci95"][1] == pytest.approx(1 - 0.025 ** (1 / len(REFERENCES)))


def test_verdict_sentences_pass_the_reviewer_check():
    from utils.experiments.real_translation import VERDICT

    assert provenance_problems(list(VERDICT)) == []
