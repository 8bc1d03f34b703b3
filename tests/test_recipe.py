"""utils.experiments.recipe: the HF translation recipe on transformers 5.x (data, preprocessing, metrics, trainer)."""

import numpy as np
import pytest
import torch
from transformers import DataCollatorForSeq2Seq, EvalPrediction, Seq2SeqTrainer

from utils.experiments import recipe
from utils.handwritten.teacher_forcing import IGNORE_INDEX
from utils.workbench.models import build_model, build_tokenizer


@pytest.fixture(scope="module")
def t5_tokenizer():
    return build_tokenizer("t5")


@pytest.fixture(scope="module")
def raw():
    return recipe.load_translation_dataset({"train": 24, "test": 6})


@pytest.fixture(scope="module")
def tokenized(raw, t5_tokenizer):
    return {split: recipe.tokenize_dataset(raw[split], t5_tokenizer, source_prefix="translate: ") for split in raw}


def test_load_translation_dataset_limits_and_columns(raw):
    assert {split: len(raw[split]) for split in raw} == {"train": 24, "test": 6}
    assert set(raw["train"].column_names) == {"id", "en", "de", "fr", "kind"}
    whole = recipe.load_translation_dataset({"validation": None})
    assert len(whole["validation"]) == 500


@pytest.mark.parametrize("splits, error", [({"dev": 3}, ValueError), ({}, ValueError), ({"train": 0}, ValueError)])
def test_load_translation_dataset_rejects_bad_requests(splits, error):
    with pytest.raises(error):
        recipe.load_translation_dataset(splits)


def test_load_translation_dataset_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m utils.data"):
        recipe.load_translation_dataset({"test": 2}, data_dir=tmp_path)


def test_preprocess_uses_text_target_and_prefix(raw, t5_tokenizer):
    preprocess = recipe.make_preprocess_function(t5_tokenizer, "en", "de", source_prefix="translate: ")
    features = preprocess(raw["test"][:2])
    expected_labels = t5_tokenizer(text_target=raw["test"]["de"][:2])["input_ids"]
    assert features["labels"] == expected_labels
    assert features["input_ids"][0] == t5_tokenizer("translate: " + raw["test"]["en"][0])["input_ids"]
    assert all(labels[-1] == t5_tokenizer.eos_token_id for labels in features["labels"])


def test_preprocess_truncates(raw, t5_tokenizer):
    features = recipe.make_preprocess_function(t5_tokenizer, max_source_length=4, max_target_length=3)(raw["test"][:3])
    assert max(len(ids) for ids in features["input_ids"]) <= 4 and max(len(ids) for ids in features["labels"]) <= 3


@pytest.mark.parametrize("source, target", [("en", "en"), ("en", "es")])
def test_preprocess_rejects_bad_languages(t5_tokenizer, source, target):
    with pytest.raises(ValueError):
        recipe.make_preprocess_function(t5_tokenizer, source, target)


def test_tokenize_dataset_keeps_model_columns_only(tokenized):
    assert set(tokenized["test"].column_names) == {"input_ids", "attention_mask", "labels"}


def test_token_ids_to_lists_strips_start_padding_and_after_eos():
    ids = np.array([[0, 5, 6, 1, 0, 0], [0, 7, 1, 9, 9, 9], [0, 8, 8, 8, 8, 8], [5, IGNORE_INDEX, 1, -100, 0, 0]])
    assert recipe.token_ids_to_lists(ids, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0) == [
        [5, 6, 1], [7, 1], [8, 8, 8, 8, 8], [5, 1]]
    assert recipe.token_ids_to_lists(ids[:1], 0, 1) == [[5, 6, 1]]  # pad dropped even without a start token


def test_concat_padded_right_pads_with_pad():
    out = recipe.concat_padded([torch.tensor([[1, 2]]), torch.tensor([[3, 4, 5], [6, 7, 8]])], pad_token_id=0)
    assert out.tolist() == [[1, 2, 0], [3, 4, 5], [6, 7, 8]]
    with pytest.raises(ValueError):
        recipe.concat_padded([], 0)


def test_decode_token_ids_handles_minus_100(t5_tokenizer):
    ids = t5_tokenizer(text_target=["10. Juli 1967"])["input_ids"][0]
    padded = np.array([ids + [IGNORE_INDEX] * 3])
    assert recipe.decode_token_ids(t5_tokenizer, padded) == ["10. Juli 1967"]


def test_compute_metrics_perfect_and_wrong(t5_tokenizer):
    references = ["10. Juli 1967", "neunhundertzweiunddreißig", "5. Mai 1912"]
    labels = t5_tokenizer(text_target=references, padding=True)["input_ids"]
    labels = np.where(np.array(labels) == t5_tokenizer.pad_token_id, IGNORE_INDEX, labels)
    predictions = np.where(labels == IGNORE_INDEX, t5_tokenizer.pad_token_id, labels)
    compute_metrics = recipe.make_compute_metrics(t5_tokenizer)
    perfect = compute_metrics(EvalPrediction(predictions=predictions, label_ids=labels))
    assert perfect["bleu"] == 100.0 and perfect["chrf"] == 100.0 and perfect["exact_match"] == 1.0
    assert perfect["gen_len"] == pytest.approx(np.mean((labels != IGNORE_INDEX).sum(axis=1)), abs=1e-4)
    wrong = t5_tokenizer(text_target=["1. Mai 2000"] * 3, padding=True)["input_ids"]
    scores = compute_metrics(EvalPrediction(predictions=(np.array(wrong),), label_ids=labels))  # tuple form too
    assert scores["exact_match"] == 0.0 and scores["bleu"] < 50


def test_training_arguments_are_cpu_and_offline_friendly(tmp_path):
    args = recipe.make_training_arguments(tmp_path, max_steps=7, generation_max_length=9, seed=3)
    assert args.predict_with_generate and args.generation_num_beams == 1 and args.generation_max_length == 9
    assert args.eval_strategy == "no" and args.save_strategy == "no" and not args.push_to_hub
    assert args.report_to in ([], "none", ["none"]) and args.use_cpu and not args.fp16
    assert args.max_steps == 7 and args.seed == 3 and args.data_seed == 3
    with pytest.raises(ValueError, match="max_steps"):
        recipe.make_training_arguments(tmp_path, max_steps=0)


@pytest.fixture(scope="module")
def trainer(tokenized, t5_tokenizer, tmp_path_factory):
    model = build_model("t5", tokenizer=t5_tokenizer, seed=0)
    args = recipe.make_training_arguments(tmp_path_factory.mktemp("trainer"), max_steps=4, batch_size=4,
                                          logging_steps=2, generation_max_length=6, learning_rate=1e-3,
                                          warmup_steps=1)
    trainer = recipe.build_trainer(model, t5_tokenizer, args, tokenized["train"], tokenized["test"])
    trainer.train()
    return trainer


def test_build_trainer_uses_processing_class_and_seq2seq_collator(trainer, t5_tokenizer):
    assert isinstance(trainer, Seq2SeqTrainer)
    assert trainer.processing_class is t5_tokenizer
    assert isinstance(trainer.data_collator, DataCollatorForSeq2Seq) and trainer.data_collator.model is trainer.model


def test_training_losses_reads_the_log(trainer):
    steps, losses = recipe.training_losses(trainer.state.log_history)
    assert steps == [2, 4] and len(losses) == 2 and all(np.isfinite(losses))


def test_trainer_losses_agree(trainer, tokenized):
    batch = trainer.data_collator([tokenized["test"][i] for i in range(4)])
    found = recipe.trainer_losses(trainer, batch)
    assert found["label_tokens"] == int((batch["labels"] != IGNORE_INDEX).sum())
    assert found["trainer_compute_loss"] == pytest.approx(found["model_loss"], abs=1e-6)
    assert found["masked_cross_entropy"] == pytest.approx(found["model_loss"], abs=1e-5)


def test_greedy_predictions_match_predict(trainer, tokenized, t5_tokenizer):
    prediction = trainer.predict(tokenized["test"])
    greedy = recipe.greedy_predictions(trainer.model, tokenized["test"], trainer.data_collator, batch_size=4,
                                       max_new_tokens=5)
    assert [batch.shape[0] for batch in greedy] == [4, 2]
    special = (t5_tokenizer.pad_token_id, t5_tokenizer.eos_token_id, trainer.model.config.decoder_start_token_id)
    from_greedy = recipe.token_ids_to_lists(recipe.concat_padded(greedy, t5_tokenizer.pad_token_id), *special)
    assert recipe.token_ids_to_lists(prediction.predictions, *special) == from_greedy
    shorter = recipe.greedy_predictions(trainer.model, tokenized["test"], trainer.data_collator, 4, max_new_tokens=2)
    assert all(batch.shape[1] <= 3 for batch in shorter)


def test_scores_by_kind_splits_and_counts():
    by_kind = recipe.scores_by_kind(["10. Juli 1967", "zwei", "drei"], ["10. Juli 1967", "zwei", "vier"],
                                    ["date", "number", "number"])
    assert by_kind["date"]["exact_match"] == 1.0 and by_kind["date"]["examples"] == 1
    assert by_kind["number"]["exact_match"] == 0.5 and by_kind["number"]["examples"] == 2
    with pytest.raises(ValueError):
        recipe.scores_by_kind(["a"], ["a"], [])


def test_bleu_tokens_are_sacrebleus_13a():
    assert recipe.bleu_tokens("10. Juli 1967") == ["10", ".", "Juli", "1967"]
    assert recipe.bleu_tokens(" neunhundertzweiunddreißig ") == ["neunhundertzweiunddreißig"]


def test_bleu_by_length_one_word_outputs_score_zero_even_when_right():
    hyps, refs = ["10. Juli 1967", "zwei", "drei"], ["10. Juli 1967", "zwei", "vier"]
    stats = recipe.bleu_by_length(hyps, refs, min_tokens=4)
    assert [stats[g]["pairs"] for g in ("all", "long", "short")] == [3, 1, 2]
    assert stats["short"]["bleu"] == 0.0 and stats["short"]["exact_match"] == 0.5
    assert stats["long"]["bleu"] == pytest.approx(100.0) and stats["all"]["counts"][3] == stats["long"]["counts"][3]
    assert stats["all"]["bleu"] > 90  # one date right, one number of two: BLEU above 90, exact match 2/3
    multi_word = recipe.bleu_by_length(["zwei und zwanzig drei vier", "zwei"], ["zweiundzwanzig", "zwei"])
    assert multi_word["short"]["bleu"] > 0  # sacrebleu's exp smoothing: a long output gets BLEU above 0
    assert recipe.bleu_by_length(["a"], ["a"])["long"] == {"pairs": 0}
    with pytest.raises(ValueError):
        recipe.bleu_by_length([], [])


def test_round_trip_mismatches_finds_what_decoding_changes(t5_tokenizer):
    assert recipe.round_trip_mismatches(t5_tokenizer, ["10. Juli 1967", "neunhundertzweiunddreißig"]) == []
    assert recipe.round_trip_mismatches(t5_tokenizer, ["x  y"]) == [{"text": "x  y", "decoded": "x y"}]


def test_generation_lengths_counts_cut_and_eos_less_outputs():
    ids = np.array([[0, 5, 1, 0, 0], [0, 5, 6, 7, 1], [0, 5, 6, 7, 8]])
    found = recipe.generation_lengths(ids, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, max_length=5)
    assert found == {"outputs": 3, "longest_output_tokens": 4, "without_eos": 1, "at_the_length_limit": 2,
                     "max_length": 5}


def test_linear_schedule_lr_warms_up_then_decays_to_zero():
    assert recipe.linear_schedule_lr(0, 1000, 50, 3e-3) == 0.0
    assert recipe.linear_schedule_lr(25, 1000, 50, 3e-3) == pytest.approx(1.5e-3)
    assert recipe.linear_schedule_lr(50, 1000, 50, 3e-3) == pytest.approx(3e-3)
    assert recipe.linear_schedule_lr(500, 600, 50, 3e-3) < recipe.linear_schedule_lr(500, 1000, 50, 3e-3)
    assert recipe.linear_schedule_lr(1000, 1000, 50, 3e-3) == 0.0


def test_bleu_with_and_without_short_outputs_differ_through_unigrams_and_length():
    references = ["10. Juli 1967", "3. März 2001", "zwei", "drei"]
    perfect = recipe.bleu_with_and_without(references, references)
    assert perfect["bleu_all_pairs"] == pytest.approx(100.0) and perfect["short_pairs"] == 2
    wrong_numbers = recipe.bleu_with_and_without(["10. Juli 1967", "3. März 2001", "vier", "fünf"], references)
    assert wrong_numbers["bleu_without_short_outputs"] == pytest.approx(100.0)  # the dates alone are perfect
    assert wrong_numbers["bleu_all_pairs"] < 100.0  # wrong one-word outputs still lower the unigram precision
    assert wrong_numbers["counts_all"][3] == wrong_numbers["counts_without_short"][3]  # and add no 4-gram
    with pytest.raises(ValueError):
        recipe.bleu_with_and_without(["zwei"], ["zwei"])
