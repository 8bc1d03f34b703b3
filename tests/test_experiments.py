"""utils/experiments/tinfer_training.py: step loop, greedy evaluation, token accuracies, checkpoints."""

import pytest
import torch
from transformers import MarianConfig, MarianMTModel, T5Config, T5ForConditionalGeneration

from utils.experiments.tinfer_training import (
    VERDICT,
    TrainingSetup,
    compare_gradients,
    decoder_positions_ratio,
    evaluate_greedy,
    find_sweep_results,
    headline_figures,
    loss_gradients,
    next_position_attention,
    one_pass_loss,
    restore_variant,
    run_rows,
    seconds_per_batch,
    step_loop_loss,
    synthetic_batch,
    train_and_evaluate,
    training_flops,
    verdict_records,
)
from utils.handwritten.teacher_forcing import decoder_attention_mask_from_labels
from utils.handwritten.tinfer import TinferConfig, TinferModel
from utils.reporting.provenance import provenance_problems
from utils.workbench.batching import pad_features
from utils.workbench.tokenizers import load_tokenizer
from utils.workbench.tolerance import compare
from utils.workbench.variants import (
    VARIANTS,
    build_variant,
    check_variant,
    free_running_accuracy,
    generated_ids,
    load_checkpoint,
    save_checkpoint,
    teacher_forced_accuracy,
    train_variant,
)

PAD, EOS, VOCAB = 0, 1, 20


def tiny_tinfer(causal: bool = True, seed: int = 0) -> TinferModel:
    torch.manual_seed(seed)
    config = TinferConfig(vocab_size=VOCAB, pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=PAD,
                          d_model=16, n_heads=2, d_ff=32, n_encoder_layers=1, n_decoder_layers=2, dropout=0.0,
                          causal=causal)
    return TinferModel(config).eval()


def tiny_t5() -> T5ForConditionalGeneration:
    torch.manual_seed(0)
    config = T5Config(vocab_size=VOCAB, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_decoder_layers=2, num_heads=2,
                      dropout_rate=0.0, pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=PAD)
    return T5ForConditionalGeneration(config).eval()


def tiny_marian() -> MarianMTModel:
    torch.manual_seed(0)
    config = MarianConfig(vocab_size=VOCAB, d_model=16, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2,
                          decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64,
                          dropout=0.0, pad_token_id=VOCAB - 1, eos_token_id=EOS, decoder_start_token_id=VOCAB - 1)
    return MarianMTModel(config).eval()


def padded_batch() -> dict[str, torch.Tensor]:
    """Three examples of different source and target lengths (so both paddings occur)."""
    features = [
        {"input_ids": [5, 6, 7, EOS], "labels": [8, 9, 10, 11, EOS]},
        {"input_ids": [12, EOS], "labels": [13, EOS]},
        {"input_ids": [3, 4, 5, 6, 7, EOS], "labels": [14, 15, 16, EOS]},
    ]
    return pad_features(features, PAD)


def test_check_variant():
    assert check_variant("causal") == "causal"
    with pytest.raises(ValueError, match="variant must be one of"):
        check_variant("step_loop")  # (e) is a loss, not a trained model


@pytest.mark.parametrize("make_model", [tiny_tinfer, tiny_t5, tiny_marian], ids=["tinfer", "t5", "marian"])
def test_step_loop_loss_and_gradients_equal_one_pass_with_a_causal_decoder(make_model):
    model = make_model()
    batch = padded_batch()
    if isinstance(model, MarianMTModel):  # Marian pads with its own pad id
        batch["input_ids"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, VOCAB - 1)
    one_pass, one_pass_grads = loss_gradients(model, batch, one_pass_loss)
    step_loop, step_loop_grads = loss_gradients(model, batch, step_loop_loss)
    assert compare(step_loop, one_pass).same
    gradients, _ = compare_gradients(step_loop_grads, one_pass_grads)
    assert gradients.same
    assert gradients.magnitude > 1e-3  # the comparison is not between two zero gradients
    assert all(p.grad is None for p in model.parameters())  # loss_gradients leaves no gradient behind


def test_step_loop_differs_from_one_pass_without_causal_mask():
    model = tiny_tinfer(causal=False)
    batch = padded_batch()
    one_pass, one_pass_grads = loss_gradients(model, batch, one_pass_loss)
    step_loop, step_loop_grads = loss_gradients(model, batch, step_loop_loss)
    assert compare(step_loop, one_pass).different
    assert compare_gradients(step_loop_grads, one_pass_grads)[0].different


def test_compare_gradients_uses_the_tolerance_model_and_names_the_worst_parameter():
    expected = {"a": torch.zeros(2), "b": torch.tensor([1.0, -3.0])}
    actual = {"a": torch.tensor([0.5, 0.0]), "b": torch.tensor([1.0, -3.0])}
    comparison, worst = compare_gradients(actual, expected)
    assert worst == "a" and comparison.max_abs_diff == 0.5 and comparison.magnitude == 3.0
    assert comparison.different and not comparison.same  # 0.5 >> 100 x (1e-6 + 1e-5 x 3)
    nearly = {"a": torch.tensor([1e-6, 0.0]), "b": torch.tensor([1.0, -3.0])}
    assert compare_gradients(nearly, expected)[0].same  # 1e-6 <= 1e-6 + 3e-5
    with pytest.raises(ValueError, match="different parameters"):
        compare_gradients(expected, {"a": torch.zeros(2)})


def test_synthetic_batch_is_seeded_and_ends_in_eos():
    batch = synthetic_batch(VOCAB, batch_size=4, source_length=5, target_length=7, eos_token_id=EOS, seed=3)
    assert batch["input_ids"].shape == (4, 5) and batch["labels"].shape == (4, 7)
    assert (batch["labels"][:, -1] == EOS).all() and (batch["labels"][:, :-1] >= 3).all()
    assert batch["attention_mask"].all()
    again = synthetic_batch(VOCAB, batch_size=4, source_length=5, target_length=7, eos_token_id=EOS, seed=3)
    assert all(torch.equal(batch[k], again[k]) for k in batch)
    with pytest.raises(ValueError):
        synthetic_batch(VOCAB, batch_size=0, source_length=5, target_length=7, eos_token_id=EOS)


def test_training_flops_grow_faster_for_the_step_loop():
    model = tiny_tinfer()
    short, long = (synthetic_batch(VOCAB, 2, 4, length, EOS) for length in (2, 8))
    one_pass = [training_flops(model, batch, one_pass_loss) for batch in (short, long)]
    step_loop = [training_flops(model, batch, step_loop_loss) for batch in (short, long)]
    assert one_pass[0] > 0 and training_flops(model, short, one_pass_loss) == one_pass[0]  # deterministic
    assert step_loop[0] > one_pass[0]
    assert step_loop[1] / one_pass[1] > step_loop[0] / one_pass[0]  # the ratio grows with the target length
    assert all(p.grad is None for p in model.parameters())


def test_seconds_per_batch_and_positions_ratio():
    model = tiny_tinfer()
    batch = synthetic_batch(VOCAB, 2, 4, 6, EOS)
    assert seconds_per_batch(model, batch, one_pass_loss, repeats=2) > 0
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="repeats"):
        seconds_per_batch(model, batch, one_pass_loss, repeats=0)
    assert decoder_positions_ratio(1) == 1.0 and decoder_positions_ratio(9) == 5.0
    with pytest.raises(ValueError):
        decoder_positions_ratio(0)


def test_generated_ids_cuts_after_the_first_eos():
    sequences = torch.tensor([[PAD, 5, 6, EOS, PAD], [PAD, 7, EOS, 8, PAD], [PAD, 9, 9, 9, 9]])
    assert generated_ids(sequences, EOS) == [[5, 6, EOS], [7, EOS], [9, 9, 9, 9]]


def test_free_running_accuracy_counts_missing_and_shifted_tokens_as_wrong():
    labels = torch.tensor([[5, 6, EOS], [7, EOS, -100]])
    assert free_running_accuracy([[5, 6, EOS], [7, EOS]], labels) == (5, 5)
    assert free_running_accuracy([[5, EOS], [7]], labels) == (2, 5)  # stopped early / no eos
    assert free_running_accuracy([[4, 5, 6, EOS], [7, EOS, 9, 9]], labels) == (2, 5)  # shifted by one: wrong


def test_teacher_forced_accuracy_counts_real_labels_only():
    model = tiny_tinfer()
    batch = padded_batch()
    correct, total = teacher_forced_accuracy(model, batch)
    assert total == int((batch["labels"] != -100).sum()) == 11
    expected = (model(**batch).logits.argmax(-1) == batch["labels"]).sum()
    assert correct == int(expected)


def test_next_position_attention_reads_the_superdiagonal_of_real_pairs():
    # one layer, one head, T = 3: query t puts weight 0.7 on key t + 1 where it exists
    weights = torch.tensor([[0.3, 0.7, 0.0], [0.1, 0.2, 0.7], [0.2, 0.3, 0.5]])[None, None]  # (1, 1, 3, 3)
    full = next_position_attention((weights,), torch.ones(1, 3))
    assert full.shape == (1, 1) and full.item() == pytest.approx(0.7)
    weights_b = torch.tensor([[0.3, 0.7, 0.0], [0.1, 0.2, 0.0], [0.0, 0.0, 1.0]])[None, None]
    masked = next_position_attention((weights_b,), torch.tensor([[1, 1, 0]]))  # key 2 is padding: one pair
    assert masked.item() == pytest.approx(0.7)
    causal = tiny_tinfer().eval()
    batch = padded_batch()
    output = causal(**batch)
    values = next_position_attention(output.decoder_self_attentions,
                                     decoder_attention_mask_from_labels(batch["labels"]))
    assert values.shape == (2, 2) and torch.equal(values, torch.zeros(2, 2))  # a causal decoder never looks ahead
    with pytest.raises(ValueError, match="no position"):
        next_position_attention((weights,), torch.tensor([[1, 0, 0]]))


def test_evaluate_greedy_on_an_untrained_model():
    model = tiny_tinfer()

    class Tokenizer:  # the two things evaluate_greedy needs from a tokenizer
        pad_token_id = PAD

        def batch_decode(self, rows, skip_special_tokens=True):
            return [" ".join(str(i) for i in row if i not in (PAD, EOS)) for row in rows]

    features = [{"input_ids": [5, 6, EOS], "labels": [8, EOS]}, {"input_ids": [7, EOS], "labels": [9, 10, EOS]}]
    evaluation = evaluate_greedy(model, Tokenizer(), features, ["8", "9 10"], batch_size=1, max_new_tokens=4)
    assert len(evaluation.generated) == 2 and all(1 <= len(ids) <= 4 for ids in evaluation.generated)
    assert evaluation.teacher_forced[1] == evaluation.free_running[1] == 5
    assert evaluation.scores["mean_reference_tokens"] == 2.5
    assert 0.0 <= evaluation.scores["no_eos_fraction"] <= 1.0
    assert 0.0 <= evaluation.scores["exact_match"] <= 1.0


def test_train_variant_learns_and_differs_only_in_the_mask():
    tokenizer = load_tokenizer("t5")
    no_mask = build_variant("no_mask", tokenizer, seed=1)
    causal = build_variant("causal", tokenizer, seed=1)
    assert (no_mask.config.causal, causal.config.causal) == (False, True)
    assert all(torch.equal(a, b) for a, b in zip(no_mask.state_dict().values(), causal.state_dict().values(),
                                                  strict=True))
    features = [{"input_ids": tokenizer("two").input_ids, "labels": tokenizer("zwei").input_ids}] * 8
    model, history = train_variant("causal", tokenizer, features, n_steps=5, batch_size=4, warmup_steps=1,
                                   progress=False)
    assert not model.training and len(history.losses) == 5 and history.losses[-1] < history.losses[0]


@pytest.mark.parametrize("variant", VARIANTS)
def test_checkpoint_round_trip(tmp_path, variant):
    tokenizer = load_tokenizer("marian" if variant == "marian" else "t5")
    model = build_variant(variant, tokenizer, seed=2).eval()
    folder = save_checkpoint(model, variant, tmp_path)
    assert folder == tmp_path / variant
    loaded = load_checkpoint(variant, tmp_path)
    assert type(loaded) is type(model) and not loaded.training
    batch = pad_features([{"input_ids": [5, 6, tokenizer.eos_token_id], "labels": [7, tokenizer.eos_token_id]}],
                         tokenizer.pad_token_id)
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, loaded(**batch).logits)
    if variant == "no_mask":
        assert loaded.config.causal is False


def test_load_checkpoint_missing_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `python -m utils.run 04"):
        load_checkpoint("causal", tmp_path)
    with pytest.raises(ValueError):
        load_checkpoint("gpt", tmp_path)


def test_verdict_sentences_are_generated_from_their_claims():
    assert provenance_problems(list(VERDICT)) == []
    claims = {c.id: {"holds": True, "statement": c.id} for sentence in VERDICT for c in sentence.claims}
    metrics = {m.id: 0.5 for sentence in VERDICT for m in sentence.metrics.values()}
    metrics |= {m.interval: [0.4, 0.6] for sentence in VERDICT for m in sentence.metrics.values() if m.interval}
    records = verdict_records({"claims": claims, "metrics": metrics})
    assert all(record["established"] for record in records)
    assert "0.50 (95% interval 0.40–0.60)" in next(r for r in records if r["id"] == "nb04.greedy")["text"]
    claims["no_mask_model_leaks"]["holds"] = False
    del claims["step_loop_gradients_equal_one_pass"]
    records = {r["id"]: r for r in verdict_records({"claims": claims, "metrics": metrics})}
    assert records["nb04.mask"]["text"].startswith("not established") and \
        "04:no_mask_model_leaks does not hold" in records["nb04.mask"]["text"]
    assert "04:step_loop_gradients_equal_one_pass missing" in records["nb04.loss"]["text"]


def test_find_sweep_results_and_run_rows(tmp_path):
    assert find_sweep_results("") == [] and find_sweep_results(tmp_path / "absent") == []
    for name in ("seed1_n100", "seed0_n100"):
        (tmp_path / name / "results").mkdir(parents=True)
        (tmp_path / name / "results" / "04_tinfer_training.json").write_text("{}")
    (tmp_path / "stray" / "results").mkdir(parents=True)  # a run folder without the notebook's results
    assert [p.parts[-3] for p in find_sweep_results(tmp_path)] == ["seed0_n100", "seed1_n100"]
    run = {"parameters": {"seed": 1, "n_train": 100}, "metrics": {"a": 0.5, "b": 2},
           "claims": {"x": {"holds": True}, "y": {"holds": False}}}
    assert run_rows(run, ["a"]) == [{"seed": 1, "n_train": 100, "a": 0.5, "failing_claims": ["y"]}]
    with pytest.raises(KeyError, match="no metrics"):
        run_rows(run, ["c"])
    seeded = {"parameters": {"seeds": [3, 4], "seed": 0, "n_train": 100},
              "metrics": {"a": 0.5, "a_per_seed": [0.4, 0.6], "b": 2}, "claims": {}}
    assert run_rows(seeded, ["a", "b"]) == [{"seed": 3, "n_train": 100, "a": 0.4, "b": 2, "failing_claims": []},
                                           {"seed": 4, "n_train": 100, "a": 0.6, "b": 2, "failing_claims": []}]


def test_train_and_evaluate_is_a_pure_job_and_restores_the_model_it_scored():
    tokenizer = load_tokenizer("t5")
    pairs = [("two", "zwei"), ("three", "drei"), ("four", "vier"), ("five", "fünf")]
    rows = [{"input_ids": tokenizer(s).input_ids, "labels": tokenizer(text_target=t).input_ids} for s, t in pairs]
    features = {"train": rows * 4, "validation": rows, "test": rows}
    references = [t for _, t in pairs]
    setup = TrainingSetup(n_steps=3, batch_size=4, warmup_steps=1, max_new_tokens=6)
    first = train_and_evaluate("causal", 1, tokenizer, features, references, setup)
    again = train_and_evaluate("causal", 1, tokenizer, features, references, setup)
    other_seed = train_and_evaluate("causal", 2, tokenizer, features, references, setup)
    assert all(torch.equal(first["state_dict"][k], again["state_dict"][k]) for k in first["state_dict"])
    assert not all(torch.equal(first["state_dict"][k], other_seed["state_dict"][k]) for k in first["state_dict"])
    assert all(t.device.type == "cpu" for t in first["state_dict"].values())
    restored = restore_variant(first, tokenizer, setup, "cpu")
    rescored = evaluate_greedy(restored, tokenizer, features["test"], references, max_new_tokens=6)
    assert rescored.hypotheses == first["evaluation"].hypotheses and rescored.exact == first["evaluation"].exact
    figures = headline_figures([first, other_seed], references, n_resamples=50)
    assert figures["exact_match"]["per_seed"] == [first["evaluation"].scores["exact_match"],
                                                  other_seed["evaluation"].scores["exact_match"]]
    assert figures["chrf"]["per_seed"] == pytest.approx([first["evaluation"].scores["chrf"],
                                                         other_seed["evaluation"].scores["chrf"]])
    assert figures["exact_match"]["low"] <= figures["exact_match"]["mean"] <= figures["exact_match"]["high"]
