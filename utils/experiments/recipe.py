"""The Hugging Face translation recipe, rebuilt for transformers 5.x, offline, on CPU (notebook 07).

The steps of HF's `translation.ipynb`, each with the 5.x API:

    load_translation_dataset   datasets.load_dataset("json", ...) on our jsonl splits
    make_preprocess_function   tokenizer(inputs, text_target=targets, ...) with an optional task prefix
    make_training_arguments    Seq2SeqTrainingArguments(predict_with_generate=True, eval_strategy=..., no hub)
    build_trainer              Seq2SeqTrainer(processing_class=tokenizer, data_collator=DataCollatorForSeq2Seq(...))
    make_compute_metrics       sacrebleu BLEU and chrF, exact match and generated length from token ids

`recipe_job` runs the whole recipe for one family and one seed (tokenize, build, train, predict), so that a
notebook can repeat it over seeds in worker processes; `linear_schedule_lr` is the learning rate the recipe's
linear schedule sets at a step.

Two checks tie the recipe to the hand-written code: `trainer_losses` (the Trainer's loss next
to the model's and a hand-computed cross-entropy) and `greedy_predictions` (the hand-written greedy
loop over the same batches that `Seq2SeqTrainer.predict` generates for).

Reading the scores: `scores_by_kind` (exact match, chrF and BLEU per kind of example: one-word numbers,
four-token dates), `bleu_by_length` (sacrebleu's n-gram statistics of short and long references apart),
`round_trip_mismatches` (does decoding the tokenized reference give the reference back?) and
`generation_lengths` (did any output run into the generation length limit?).
"""

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sacrebleu
import torch
from datasets import DatasetDict, load_dataset
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
from transformers import DataCollatorForSeq2Seq, EvalPrediction, Seq2SeqTrainer, Seq2SeqTrainingArguments

from utils.handwritten.decoding import greedy_decode
from utils.handwritten.teacher_forcing import IGNORE_INDEX, masked_cross_entropy
from utils.harness.paths import DATA_DIR
from utils.workbench.data import LANGUAGES, SPLITS
from utils.workbench.device import to_device
from utils.workbench.metrics import translation_scores
from utils.workbench.models import build_model, build_tokenizer
from utils.workbench.reproducibility import set_seed

__all__ = ["RecipeSetup", "bleu_by_length", "bleu_tokens", "bleu_with_and_without", "build_trainer", "concat_padded",
           "decode_token_ids", "generation_lengths", "greedy_predictions", "linear_schedule_lr",
           "load_translation_dataset", "make_compute_metrics", "make_preprocess_function", "make_training_arguments",
           "recipe_job", "round_trip_mismatches", "scores_by_kind", "token_ids_to_lists", "tokenize_dataset",
           "trainer_losses", "training_losses"]


def load_translation_dataset(splits: dict[str, int | None], data_dir: str | Path = DATA_DIR) -> DatasetDict:
    """`{split: limit}` -> a DatasetDict read with `load_dataset("json")`; limit None keeps the whole split.

    Each row is a record of our corpus: id, en, de, fr, kind.
    """
    unknown = [split for split in splits if split not in SPLITS]
    if unknown or not splits:
        raise ValueError(f"splits must name some of {SPLITS}, got {list(splits)}")
    data_files = {split: str(Path(data_dir) / f"{split}.jsonl") for split in splits}
    missing = [path for path in data_files.values() if not Path(path).is_file()]
    if missing:
        raise FileNotFoundError(f"{missing[0]} does not exist: run `python -m utils.data` to generate the data set")
    dataset = load_dataset("json", data_files=data_files)
    for split, limit in splits.items():
        if limit is not None:
            if limit < 1:
                raise ValueError(f"limit for split {split!r} must be >= 1 or None, got {limit}")
            dataset[split] = dataset[split].select(range(min(limit, len(dataset[split]))))
    return dataset


def make_preprocess_function(tokenizer, source_lang: str = "en", target_lang: str = "de", source_prefix: str = "",
                             max_source_length: int = 64, max_target_length: int = 64) -> Callable[[dict], dict]:
    """The recipe's `preprocess_function` for `dataset.map(..., batched=True)`.

    Targets go through `text_target=` (which replaces the target-mode context manager of 4.x), so they come
    back as `labels`; sources get `source_prefix` (T5's "translate English to German: ").
    """
    for lang in (source_lang, target_lang):
        if lang not in LANGUAGES:
            raise ValueError(f"unknown language {lang!r}; allowed: {', '.join(LANGUAGES)}")
    if source_lang == target_lang:
        raise ValueError(f"source and target language are both {source_lang!r}")

    def preprocess(examples: dict[str, list]) -> dict[str, list]:
        inputs = [source_prefix + text for text in examples[source_lang]]
        model_inputs = tokenizer(inputs, max_length=max_source_length, truncation=True)
        targets = tokenizer(text_target=examples[target_lang], max_length=max_target_length, truncation=True)
        model_inputs["labels"] = targets["input_ids"]
        return model_inputs

    return preprocess


def tokenize_dataset(dataset, tokenizer, **preprocess_kwargs):
    """`dataset.map(preprocess, batched=True)`, keeping only input_ids, attention_mask and labels."""
    preprocess = make_preprocess_function(tokenizer, **preprocess_kwargs)
    return dataset.map(preprocess, batched=True, remove_columns=dataset.column_names, keep_in_memory=True)


def token_ids_to_lists(token_ids, pad_token_id: int, eos_token_id: int, decoder_start_token_id: int | None = None
                       ) -> list[list[int]]:
    """Generated or label ids (B, L) -> per row the ids up to and including the first eos.

    -100 (label padding, or `predict`'s padding between batches) and pad are dropped; a leading
    decoder start token is dropped. Rows of different generators become directly comparable.
    """
    rows = []
    for row in np.asarray(token_ids).tolist():
        if decoder_start_token_id is not None and row and row[0] == decoder_start_token_id:
            row = row[1:]
        kept = []
        for token in row:
            if token in (IGNORE_INDEX, pad_token_id):
                continue
            kept.append(token)
            if token == eos_token_id:
                break
        rows.append(kept)
    return rows


def concat_padded(batches: list[torch.Tensor], pad_token_id: int) -> np.ndarray:
    """(B_i, L_i) batches of token ids -> one (sum B_i, max L_i) array, right-padded with `pad_token_id`."""
    if not batches:
        raise ValueError("no batches to concatenate")
    width = max(batch.shape[1] for batch in batches)
    rows = [torch.nn.functional.pad(batch.cpu(), (0, width - batch.shape[1]), value=pad_token_id) for batch in batches]
    return torch.cat(rows).numpy()


def decode_token_ids(tokenizer, token_ids) -> list[str]:
    """Token ids (B, L), possibly with -100, -> stripped strings without special tokens."""
    token_ids = np.where(np.asarray(token_ids) != IGNORE_INDEX, token_ids, tokenizer.pad_token_id)
    return [text.strip() for text in tokenizer.batch_decode(token_ids, skip_special_tokens=True)]


def make_compute_metrics(tokenizer) -> Callable[[EvalPrediction], dict[str, float]]:
    """`compute_metrics` for `Seq2SeqTrainer(predict_with_generate=True)`: BLEU, chrF, exact match, gen_len.

    gen_len is the mean number of generated tokens that are not padding (the recipe's definition).
    """
    def compute_metrics(eval_preds: EvalPrediction) -> dict[str, float]:
        predictions, label_ids = eval_preds.predictions, eval_preds.label_ids
        if isinstance(predictions, tuple):
            predictions = predictions[0]
        predictions = np.where(predictions != IGNORE_INDEX, predictions, tokenizer.pad_token_id)
        scores = translation_scores(decode_token_ids(tokenizer, predictions), decode_token_ids(tokenizer, label_ids))
        scores["gen_len"] = float(np.mean(np.count_nonzero(predictions != tokenizer.pad_token_id, axis=1)))
        return {name: round(float(value), 4) for name, value in scores.items()}

    return compute_metrics


def make_training_arguments(output_dir: str | Path, max_steps: int, batch_size: int = 32, learning_rate: float = 1e-3,
                            warmup_steps: int = 50, weight_decay: float = 0.01, seed: int = 0,
                            generation_max_length: int = 48, device: torch.device | str = "cpu",
                            logging_steps: int = 50) -> Seq2SeqTrainingArguments:
    """The recipe's `Seq2SeqTrainingArguments`, CPU-friendly: no fp16, no checkpoints, no hub, no reporting."""
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    return Seq2SeqTrainingArguments(
        output_dir=str(output_dir),
        max_steps=max_steps,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size,
        learning_rate=learning_rate,
        warmup_steps=warmup_steps,
        weight_decay=weight_decay,
        lr_scheduler_type="linear",
        max_grad_norm=1.0,
        eval_strategy="no",
        save_strategy="no",
        logging_steps=logging_steps,
        report_to="none",
        push_to_hub=False,
        disable_tqdm=True,
        predict_with_generate=True,
        generation_max_length=generation_max_length,
        generation_num_beams=1,
        seed=seed,
        data_seed=seed,
        use_cpu=torch.device(device).type == "cpu",
        dataloader_num_workers=0,
    )


def build_trainer(model, tokenizer, args: Seq2SeqTrainingArguments, train_dataset=None,
                  eval_dataset=None) -> Seq2SeqTrainer:
    """`Seq2SeqTrainer` with `processing_class=tokenizer` (5.x's name for the old `tokenizer=` argument),
    `DataCollatorForSeq2Seq(tokenizer, model=model)` and the sacrebleu `compute_metrics`."""
    return Seq2SeqTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
        processing_class=tokenizer,
        compute_metrics=make_compute_metrics(tokenizer),
    )


def training_losses(log_history: list[dict]) -> tuple[list[int], list[float]]:
    """(steps, losses) that the Trainer logged every `logging_steps` (`trainer.state.log_history`)."""
    logged = [entry for entry in log_history if "loss" in entry]
    return [entry["step"] for entry in logged], [float(entry["loss"]) for entry in logged]


def linear_schedule_lr(step: int, max_steps: int, warmup_steps: int, learning_rate: float) -> float:
    """The learning rate of the recipe's schedule (`lr_scheduler_type="linear"`) at `step`: linear warm-up over
    `warmup_steps`, then linear decay to 0 at `max_steps` (transformers' `get_linear_schedule_with_warmup`)."""
    if step < warmup_steps:
        return learning_rate * step / max(1, warmup_steps)
    return learning_rate * max(0.0, (max_steps - step) / max(1, max_steps - warmup_steps))


@dataclass(frozen=True)
class RecipeSetup:
    """The notebook's settings a run of the recipe needs besides its family, seed and number of steps."""

    size: str = "tiny"
    model_name_or_path: str | None = None
    source_lang: str = "en"
    target_lang: str = "de"
    t5_source_prefix: str = ""
    n_train_examples: int = 4000
    n_eval_examples: int = 200
    batch_size: int = 32
    learning_rate: float = 3e-3
    warmup_steps: int = 50
    weight_decay: float = 0.01
    max_source_length: int = 64
    max_target_length: int = 32
    max_new_tokens: int = 24
    logging_steps: int = 50
    device: str = "cpu"


def recipe_job(family: str, seed: int, steps: int, setup: RecipeSetup) -> dict:
    """The recipe once, end to end: tokenize, build the model with `seed`, `Seq2SeqTrainer.train()` for `steps`
    (`set_seed(seed)` right before it), then `predict` on the test split. Returns the training loss, the log
    history, predict's metrics, token ids and decoded outputs, and the trained weights on the CPU."""
    import datasets

    datasets.disable_progress_bars()
    raw = load_translation_dataset({"train": setup.n_train_examples, "test": setup.n_eval_examples})
    tokenizer = build_tokenizer(family, setup.model_name_or_path)
    tokenized = {split: tokenize_dataset(raw[split], tokenizer, source_lang=setup.source_lang,
                                         target_lang=setup.target_lang,
                                         source_prefix=setup.t5_source_prefix if family == "t5" else "",
                                         max_source_length=setup.max_source_length,
                                         max_target_length=setup.max_target_length) for split in raw}
    model = build_model(family, setup.size, model_name_or_path=setup.model_name_or_path, tokenizer=tokenizer,
                        seed=seed).to(setup.device)
    with tempfile.TemporaryDirectory() as output_dir:
        args = make_training_arguments(output_dir, steps, setup.batch_size, setup.learning_rate, setup.warmup_steps,
                                       setup.weight_decay, seed, generation_max_length=setup.max_new_tokens + 1,
                                       device=setup.device, logging_steps=setup.logging_steps)
        trainer = build_trainer(model, tokenizer, args, tokenized["train"], tokenized["test"])
        set_seed(seed)
        train_output = trainer.train()
        prediction = trainer.predict(tokenized["test"])
    return {"family": family, "seed": seed, "steps": steps, "train_loss": train_output.training_loss,
            "log_history": trainer.state.log_history, "metrics": prediction.metrics,
            "predictions": prediction.predictions, "label_ids": prediction.label_ids,
            "hypotheses": decode_token_ids(tokenizer, prediction.predictions),
            "state_dict": {name: tensor.cpu() for name, tensor in model.state_dict().items()}}


def bleu_with_and_without(hypotheses: list[str], references: list[str], min_tokens: int = 4) -> dict[str, float]:
    """sacrebleu corpus BLEU of all pairs and of the pairs left when those whose reference has fewer than
    `min_tokens` BLEU tokens are dropped; the 1..4-gram matches of both (short outputs enter the unigram precision
    and the brevity penalty, and no 4-gram)."""
    kept = [i for i, r in enumerate(references) if len(bleu_tokens(r)) >= min_tokens]
    if not kept or len(kept) == len(references):
        raise ValueError(f"need pairs both under and at least {min_tokens} BLEU tokens long")
    every = sacrebleu.corpus_bleu(hypotheses, [references])
    without = sacrebleu.corpus_bleu([hypotheses[i] for i in kept], [[references[i] for i in kept]])
    return {"bleu_all_pairs": every.score, "bleu_without_short_outputs": without.score,
            "short_pairs": len(references) - len(kept), "counts_all": list(every.counts),
            "counts_without_short": list(without.counts), "brevity_penalty_all": every.bp,
            "brevity_penalty_without_short": without.bp}


@torch.no_grad()
def trainer_losses(trainer: Seq2SeqTrainer, batch: dict[str, torch.Tensor]) -> dict[str, float]:
    """One collated batch, in eval mode, three ways: the Trainer's `compute_loss` (with the label-token
    count the training step passes it), `model(**batch).loss`, and `masked_cross_entropy` on the logits."""
    model = trainer.model.eval()
    device = next(model.parameters()).device
    batch = to_device(batch, device)
    n_label_tokens = int((batch["labels"] != IGNORE_INDEX).sum())
    outputs = model(**batch)
    return {
        "trainer_compute_loss": float(trainer.compute_loss(model, dict(batch), num_items_in_batch=n_label_tokens)),
        "model_loss": float(outputs.loss),
        "masked_cross_entropy": float(masked_cross_entropy(outputs.logits, batch["labels"])),
        "label_tokens": n_label_tokens,
    }


@torch.no_grad()
def greedy_predictions(model, dataset, collator: DataCollatorForSeq2Seq, batch_size: int, max_new_tokens: int,
                       forced_eos_token_id: int | None = None) -> list[torch.Tensor]:
    """The hand-written greedy loop (`utils.handwritten.decoding.greedy_decode`) over the dataset, batch by batch in
    order, with the same collator and batch size as `Seq2SeqTrainer.predict`: one (B, L) tensor per batch."""
    model.eval()
    device = next(model.parameters()).device
    outputs = []
    for start in range(0, len(dataset), batch_size):
        features = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        batch = collator(features)
        outputs.append(greedy_decode(model, batch["input_ids"].to(device), batch["attention_mask"].to(device),
                                     max_new_tokens=max_new_tokens, forced_eos_token_id=forced_eos_token_id))
    return outputs


def scores_by_kind(hypotheses: list[str], references: list[str], kinds: list[str]) -> dict[str, dict[str, float]]:
    """`translation_scores` of each kind of example apart (e.g. "number", "date"), with the example count."""
    if not len(hypotheses) == len(references) == len(kinds):
        raise ValueError(f"need one kind per pair, got {len(hypotheses)}, {len(references)}, {len(kinds)}")
    by_kind = {}
    for kind in sorted(set(kinds)):
        rows = [i for i, k in enumerate(kinds) if k == kind]
        by_kind[kind] = {**translation_scores([hypotheses[i] for i in rows], [references[i] for i in rows]),
                         "examples": len(rows)}
    return by_kind


def bleu_tokens(text: str) -> list[str]:
    """The tokens sacrebleu's default BLEU counts n-grams over (the 13a tokenizer): "10. Juli 1967" -> 4 tokens."""
    return Tokenizer13a()(text.strip()).split()


def bleu_by_length(hypotheses: list[str], references: list[str], min_tokens: int = 4) -> dict[str, dict]:
    """sacrebleu's corpus BLEU statistics for all pairs, for pairs whose reference has >= `min_tokens` BLEU tokens
    ("long") and for the rest ("short"): score, n-gram matches (counts) and totals per order, exact match, size.

    Corpus BLEU adds up n-gram matches and totals over the corpus before the geometric mean of the 1..4-gram
    precisions, so an output of fewer than n tokens adds nothing to the n-gram statistics.
    """
    if len(hypotheses) != len(references) or not references:
        raise ValueError(f"need as many hypotheses as references (> 0), got {len(hypotheses)} and {len(references)}")
    groups = {"all": list(range(len(references))),
              "long": [i for i, r in enumerate(references) if len(bleu_tokens(r)) >= min_tokens],
              "short": [i for i, r in enumerate(references) if len(bleu_tokens(r)) < min_tokens]}
    out = {}
    for name, rows in groups.items():
        if not rows:
            out[name] = {"pairs": 0}
            continue
        hyps, refs = [hypotheses[i] for i in rows], [references[i] for i in rows]
        bleu = sacrebleu.corpus_bleu(hyps, [refs])
        out[name] = {"pairs": len(rows), "bleu": bleu.score, "counts": list(bleu.counts), "totals": list(bleu.totals),
                     "brevity_penalty": bleu.bp,
                     "exact_match": sum(h.strip() == r.strip() for h, r in zip(hyps, refs, strict=True)) / len(rows)}
    return out


def round_trip_mismatches(tokenizer, texts: list[str]) -> list[dict[str, str]]:
    """The texts that do not come back unchanged from `tokenizer(text_target=text)` then
    `batch_decode(skip_special_tokens=True)` (the way `compute_metrics` decodes labels and predictions)."""
    token_ids = tokenizer(text_target=list(texts))["input_ids"] if texts else []
    decoded = [text.strip() for text in tokenizer.batch_decode(token_ids, skip_special_tokens=True)]
    return [{"text": text, "decoded": back} for text, back in zip(texts, decoded, strict=True) if text != back]


def generation_lengths(token_ids, pad_token_id: int, eos_token_id: int, decoder_start_token_id: int | None,
                       max_length: int) -> dict[str, float]:
    """How `predict`'s outputs ended: the longest output (tokens after the start token, eos included), how many
    have no eos, and how many reach `max_length` - 1 generated tokens (where generate stops, cutting them)."""
    rows = token_ids_to_lists(token_ids, pad_token_id, eos_token_id, decoder_start_token_id)
    return {"outputs": len(rows), "longest_output_tokens": max(len(row) for row in rows),
            "without_eos": sum(not row or row[-1] != eos_token_id for row in rows),
            "at_the_length_limit": sum(len(row) >= max_length - 1 for row in rows),
            "max_length": max_length}
