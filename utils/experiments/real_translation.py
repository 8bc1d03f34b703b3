"""Helpers of notebook 14: notebook 04's variants on real English -> German sentence pairs (UI strings).

The data are the human translations of wagtail, Django and Apache Superset (`utils.workbench.real_pairs`,
`data/README.md`). One *job* is one variant (`no_mask`, `causal`, `t5`, `marian`: `utils.workbench.variants`) and
one seed: build and train it with notebook 04's `train_variant`, decode the test pairs greedily with notebook 04's
`evaluate_greedy` (exact match, chrF, BLEU, teacher-forced and free-running token accuracy) and with the
hand-written beam search, and run the future-leakage audit of notebook 02 on the trained model. Jobs run in worker
processes with `utils.workbench.jobs.run_jobs`, so the numbers depend only on a job's seed and settings.

Tokenizers: notebook 04's two kinds (a T5-style SentencePiece Unigram for no_mask, causal and t5; a Marian-style
one for marian), with the same code and vocabulary size (`utils.workbench.tokenizers.build_t5` / `build_marian`),
trained on the English and German sides of the *training* split only (`train_tokenizers`).
"""

import hashlib
import shutil
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from utils.experiments.tinfer_training import evaluate_greedy
from utils.handwritten.decoding import beam_search
from utils.handwritten.leakage_audit import future_leakage, seq2seq_logits_fn
from utils.handwritten.seq2seq import special_token_ids
from utils.harness.paths import REPO_ROOT
from utils.reporting.findings import sentences_of
from utils.reporting.provenance import render_all
from utils.workbench.batching import make_batches, pad_features, tokenize_pairs
from utils.workbench.jobs import run_jobs
from utils.workbench.metrics import sentence_statistics, statistics_score, translation_scores
from utils.workbench.models import count_parameters
from utils.workbench.real_pairs import REAL_PAIRS_DIR, load_real_pairs
from utils.workbench.reproducibility import set_seed
from utils.workbench.tokenizers import build_marian, build_t5, load_tokenizer
from utils.workbench.training import evaluate_loss
from utils.workbench.uncertainty import (
    _percentiles,
    _resampled_sums,
    chrf_two_level_bootstrap,
    record_seed_figure,
    two_level_bootstrap,
)
from utils.workbench.variants import (
    VARIANT_FAMILY,
    VARIANTS,
    decoder_input_ids_from_labels,
    generated_ids,
    train_variant,
)

__all__ = ["METRICS", "NOTEBOOK_STEM", "VARIANTS", "TranslationSetup", "fits", "job_tasks", "load_data",
           "record_seed_summaries", "run_jobs", "seed_summary", "train_tokenizers", "verdict_records"]

NOTEBOOK_STEM = "14_tinfer_real_translation"
TOKENIZER_OF_FAMILY = {"tinfer": "t5", "t5": "t5", "marian": "marian"}
DECODE_BATCH = 100
MAX_LENGTH = 128  # truncation limit of the tokenizer call; max_tokens below keeps every pair far under it
METRICS = ("exact_match", "chrf", "bleu")


def train_tokenizers(out_dir: str | Path | None = None) -> Path:
    """T5- and Marian-style tokenizers trained on the English and German sides of the training pairs, in
    `<out_dir>/t5` and `<out_dir>/marian`. Training is deterministic (single-threaded SentencePiece on fixed input),
    so by default they are cached under build/ in a folder named by the hash of the training file: a changed
    training split trains new ones."""
    train_file = REAL_PAIRS_DIR / "train.jsonl"
    if out_dir is None:
        digest = hashlib.sha256(train_file.read_bytes()).hexdigest()[:16]
        out_dir = REPO_ROOT / "build" / "real_pairs_tokenizers" / digest
    out_dir = Path(out_dir)
    if all((out_dir / name / "tokenizer_config.json").is_file() for name in ("t5", "marian")):
        return out_dir
    texts = [text for pair in load_real_pairs("train") for text in pair]
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=out_dir.parent if out_dir.parent.exists() else None))
    for name, build in (("t5", build_t5), ("marian", build_marian)):
        (staging / name).mkdir()
        build(texts, staging / name)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        staging.rename(out_dir)  # all or nothing; a concurrent run that got there first wrote the same bytes
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


@dataclass(frozen=True)
class TranslationSetup:
    """Everything a job needs besides its variant and seed: the notebook's parameters, passed to the workers."""

    tokenizers_dir: str
    size: str = "tiny"
    n_steps: int = 300
    batch_size: int = 32
    lr: float = 3e-3
    warmup_steps: int = 30
    dropout: float = 0.1
    n_train: int = 0  # 0: every training pair
    n_validation: int = 200
    n_test: int = 0  # 0: every test pair (of those within max_tokens)
    max_tokens: int = 24  # pairs whose English or German side is longer (T5-style tokens, with </s>) are left out
    n_beam: int = 100  # the first n_beam test pairs are also decoded with beam search
    num_beams: int = 4
    max_new_tokens: int = 32
    audit_examples: int = 4
    audit_trials: int = 2


@dataclass(frozen=True)
class _Job:
    variant: str
    seed: int
    setup: TranslationSetup


@dataclass
class _TranslationData:
    pairs: dict[str, list[tuple[str, str]]]  # split -> (en, de)
    tokenizers: dict[str, Any]  # variant -> tokenizer
    features: dict[str, dict[str, list[dict[str, list[int]]]]]  # split -> variant -> input_ids / labels


@lru_cache(maxsize=2)
def load_data(tokenizers_dir: str, n_train: int = 0, n_validation: int = 200, n_test: int = 0,
              max_tokens: int = 24) -> _TranslationData:
    """The real pairs within `max_tokens` (both sides, T5-style tokens), the first n of each split (0 = all),
    tokenized for every variant; cached per process."""
    tokenizers = {v: load_tokenizer(TOKENIZER_OF_FAMILY[VARIANT_FAMILY[v]], Path(tokenizers_dir)) for v in VARIANTS}
    limits = {"train": n_train, "validation": n_validation, "test": n_test}
    pairs = {}
    for split, limit in limits.items():
        split_pairs = load_real_pairs(split)
        kept = [pair for pair, ok in zip(split_pairs, fits(tokenizers["causal"], split_pairs, max_tokens), strict=True)
                if ok]
        pairs[split] = kept[:limit] if limit > 0 else kept
    features = {split: {v: tokenize_pairs(tokenizers[v], split_pairs, max_length=MAX_LENGTH) for v in VARIANTS}
                for split, split_pairs in pairs.items()}
    return _TranslationData(pairs, tokenizers, features)


def fits(tokenizer, pairs: list[tuple[str, str]], max_tokens: int) -> list[bool]:
    """Per pair: both sides encode to at most `max_tokens` ids (with </s>)."""
    lengths = [[len(ids) for ids in tokenizer([pair[side] for pair in pairs])["input_ids"]] for side in (0, 1)]
    return [max(en, de) <= max_tokens for en, de in zip(*lengths, strict=True)]


def _data_for(setup: TranslationSetup) -> _TranslationData:
    return load_data(setup.tokenizers_dir, setup.n_train, setup.n_validation, setup.n_test, setup.max_tokens)


@torch.no_grad()
def _beam_hypotheses(model, tokenizer, features, num_beams: int, max_new_tokens: int) -> list[str]:
    """The hand-written beam search (HF's algorithm, notebook 05) on every example, decoded to text."""
    outputs = []
    for batch in make_batches(features, DECODE_BATCH, tokenizer.pad_token_id):
        sequences = beam_search(model, batch["input_ids"], batch["attention_mask"], num_beams=num_beams,
                                max_new_tokens=max_new_tokens).sequences
        outputs += tokenizer.batch_decode(generated_ids(sequences, model.config.eos_token_id),
                                          skip_special_tokens=True)
    return outputs


def _run_job(job: _Job) -> dict:
    """Train one variant with one seed and evaluate it; a JSON-able dict with every hypothesis (for intervals)."""
    setup, variant = job.setup, job.variant
    torch.set_num_threads(1)
    data = _data_for(setup)
    tokenizer, features = data.tokenizers[variant], {split: data.features[split][variant] for split in data.pairs}
    set_seed(job.seed)
    start = time.perf_counter()
    model, history = train_variant(variant, tokenizer, features["train"], setup.n_steps, size=setup.size,
                                   seed=job.seed, dropout=setup.dropout, device="cpu", batch_size=setup.batch_size,
                                   lr=setup.lr, warmup_steps=setup.warmup_steps, progress=False)
    train_seconds = time.perf_counter() - start
    references = [de for _, de in data.pairs["test"]]
    result = {"variant": variant, "seed": job.seed, "parameters": count_parameters(model),
              "train_loss": history.final_loss(),
              "validation_loss": evaluate_loss(model, features["validation"], tokenizer.pad_token_id,
                                               batch_size=DECODE_BATCH)}
    start = time.perf_counter()
    greedy = evaluate_greedy(model, tokenizer, features["test"], references, batch_size=DECODE_BATCH,
                             max_new_tokens=setup.max_new_tokens)
    greedy_seconds = time.perf_counter() - start
    result |= {f"greedy_{name}": value for name, value in greedy.scores.items()}
    result |= {"greedy_hypotheses": greedy.hypotheses,
               "teacher_forced_accuracy": greedy.teacher_forced[0] / greedy.teacher_forced[1],
               "free_running_accuracy": greedy.free_running[0] / greedy.free_running[1]}
    start = time.perf_counter()
    beam = _beam_hypotheses(model, tokenizer, features["test"][: setup.n_beam], setup.num_beams, setup.max_new_tokens)
    beam_seconds = time.perf_counter() - start
    result |= {f"beam_{name}": value for name, value in
               translation_scores(beam, references[: setup.n_beam]).items()} | {"beam_hypotheses": beam}
    batch = pad_features(features["validation"][: setup.audit_examples], tokenizer.pad_token_id)
    result["leakage"] = _leakage_of(model, batch, len(tokenizer), setup.audit_trials, job.seed)
    result["timings"] = {"train_seconds": train_seconds, "seconds_per_step": train_seconds / setup.n_steps,
                         "greedy_seconds": greedy_seconds, "beam_seconds": beam_seconds}
    return result


def _leakage_of(model, batch: dict[str, torch.Tensor], vocab_size: int, n_trials: int, seed: int) -> dict:
    """Notebook 02's future-leakage audit on a trained model: perturb each decoder input, watch every output."""
    decoder_input_ids = decoder_input_ids_from_labels(model, batch["labels"])  # (B, T)
    report = future_leakage(seq2seq_logits_fn(model, batch["input_ids"], batch["attention_mask"]), decoder_input_ids,
                            vocab_size=vocab_size, n_trials=n_trials, seed=seed, special_ids=special_token_ids(model))
    return {"leaks": report.leaks, "max_future_sensitivity": report.max_future_sensitivity,
            "leaking_pairs": len(report.leaking_positions), "tolerance": report.tolerance}


def job_tasks(variants, seeds, setup: TranslationSetup) -> list[tuple]:
    """One (_run_job, (_Job,)) task per variant and seed; the HF models first (they take longest)."""
    order = sorted(variants, key=lambda v: (v not in ("marian", "t5"), VARIANTS.index(v)))
    return [(_run_job, (_Job(variant, seed, setup),)) for seed in seeds for variant in order]


# --- numbers over seeds and test sentences ----------------------------------------------------------------------


def _bleu_two_level_bootstrap(hypotheses_per_seed: list[list[str]], references: list[str], n_resamples: int = 1000,
                             seed: int = 0) -> dict:
    """`uncertainty.chrf_two_level_bootstrap` for corpus BLEU: each resample (the same two-level draws) sums
    sacrebleu's per-sentence BLEU statistics of each drawn seed over its drawn sentences and scores the sums."""
    statistics = np.stack([sentence_statistics("bleu", hypotheses, references)
                           for hypotheses in hypotheses_per_seed])  # (S, N, K)
    per_seed = [statistics_score("bleu", seed_statistics.sum(axis=0)) for seed_statistics in statistics]
    sums = _resampled_sums(statistics, n_resamples, seed)  # (R, S, K)
    low, high = _percentiles(np.array([np.mean([statistics_score("bleu", row) for row in resample])
                                       for resample in sums]), 0.95)
    return {"mean": float(np.mean(per_seed)), "low": low, "high": high, "per_seed": per_seed,
            "seeds": int(statistics.shape[0]), "items": int(statistics.shape[1]), "method": "two-level bootstrap"}


def seed_summary(runs: list[dict], references: list[str], decoding: str = "greedy", n_resamples: int = 1000,
                 seed: int = 0) -> dict:
    """Exact match, chrF and BLEU of one variant over its seeds: per-seed values, the seed mean, the sample std and
    a 95% interval from the two-level bootstrap of `utils.workbench.uncertainty` (seeds, then test sentences); an
    exact match of 0/n or n/n in every seed gets the exact Clopper-Pearson interval there instead."""
    hypotheses = [run[f"{decoding}_hypotheses"] for run in runs]  # (S, N)
    references = references[: len(hypotheses[0])]
    exact = [[int(h.strip() == r.strip()) for h, r in zip(row, references, strict=True)] for row in hypotheses]
    summary = {"seeds": [run["seed"] for run in runs], "sentences": len(references),
               "exact_match": two_level_bootstrap(exact, None, n_resamples, seed),
               "chrf": chrf_two_level_bootstrap(hypotheses, references, n_resamples, seed),
               "bleu": _bleu_two_level_bootstrap(hypotheses, references, n_resamples, seed)}
    for name in METRICS:
        per_seed = summary[name]["per_seed"]
        summary[name]["std"] = float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0
        summary[name]["ci95"] = [summary[name]["low"], summary[name]["high"]]
    return summary


def record_seed_summaries(results, runs: dict[str, list[dict]], summaries: dict[str, dict]) -> None:
    """Record notebook 14's per-variant numbers with `results.metric`, variant by variant (in the order of `runs`):
    the seed means of the losses, token accuracies, share of greedy outputs without </s> and their mean length, the
    parameter count, and each decoding's exact match, chrF and BLEU (mean, 95% interval, spread, per-seed values,
    interval method, from `seed_summary`)."""
    for variant, variant_runs in runs.items():
        for key in ("train_loss", "validation_loss", "teacher_forced_accuracy", "free_running_accuracy",
                    "greedy_no_eos_fraction", "greedy_mean_output_tokens"):
            results.metric(f"{variant}_{key}", sum(r[key] for r in variant_runs) / len(variant_runs))
        results.metric(f"{variant}_parameters", variant_runs[0]["parameters"])
        for decoding in ("greedy", "beam"):
            for name in METRICS:
                record_seed_figure(results, f"{variant}_{decoding}_{name}", summaries[variant][decoding][name])


# --- the verdict, from the recorded numbers -----------------------------------------------------------------------


VERDICT = tuple(sentences_of(NOTEBOOK_STEM))  # the findings' real-translation sentences (utils.reporting.findings)


def verdict_records(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Notebook 14's verdict rendered from this run's results (`Results.to_dict()`)."""
    return render_all(list(VERDICT), {NOTEBOOK_STEM: results})
