"""utils/workbench/training.py: the one loop every variant trains with."""

import pytest
import torch

from utils.handwritten.teacher_forcing import IGNORE_INDEX
from utils.handwritten.tinfer import TinferConfig, TinferModel
from utils.workbench.batching import pad_features
from utils.workbench.training import SCHEDULES, TrainingHistory, evaluate_loss, make_dataloader, make_scheduler, train

PAD, EOS, VOCAB = 0, 1, 12


def tiny_model(seed: int = 0, dropout: float = 0.0) -> TinferModel:
    torch.manual_seed(seed)
    config = TinferConfig(vocab_size=VOCAB, pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=PAD,
                          d_model=16, n_heads=2, d_ff=32, n_encoder_layers=1, n_decoder_layers=1, dropout=dropout)
    return TinferModel(config)


def copy_features(n: int = 64, seed: int = 0) -> list[dict[str, list[int]]]:
    """A copy task with lengths 2..5: the target is the source (ids 2..VOCAB-1) followed by eos."""
    generator = torch.Generator().manual_seed(seed)
    features = []
    for _ in range(n):
        length = int(torch.randint(2, 6, (1,), generator=generator))
        ids = torch.randint(2, VOCAB, (length,), generator=generator).tolist()
        features.append({"input_ids": ids + [EOS], "labels": ids + [EOS]})
    return features


def test_same_seed_gives_identical_losses():
    features = copy_features()
    first = train(tiny_model(dropout=0.1), features, PAD, n_steps=8, batch_size=8, warmup_steps=2, seed=3,
                  progress=False)
    second = train(tiny_model(dropout=0.1), features, PAD, n_steps=8, batch_size=8, warmup_steps=2, seed=3,
                   progress=False)
    assert first.losses == second.losses
    assert first.steps == list(range(1, 9))


def test_different_data_order_seed_changes_losses():
    features = copy_features()
    first = train(tiny_model(), features, PAD, n_steps=4, batch_size=8, seed=0, progress=False)
    second = train(tiny_model(), features, PAD, n_steps=4, batch_size=8, seed=1, progress=False)
    assert first.losses != second.losses


def test_loss_decreases_on_a_copy_task():
    features = copy_features(128)
    model = tiny_model()
    before = evaluate_loss(model, features, PAD)
    history = train(model, features, PAD, n_steps=150, batch_size=16, lr=3e-3, warmup_steps=10, progress=False)
    after = evaluate_loss(model, features, PAD)
    assert after < 0.5 * before, (before, after)
    assert history.final_loss(10) < sum(history.losses[:10]) / 10
    assert not model.training  # train() hands the model back in eval mode


def test_cycles_through_the_data_for_more_steps_than_batches():
    features = copy_features(16)
    history = train(tiny_model(), features, PAD, n_steps=7, batch_size=8, progress=False)  # 2 batches per epoch
    assert len(history.losses) == 7 and history.seconds > 0


def test_custom_loss_fn_is_used():
    calls = []

    def loss_fn(model, batch):
        calls.append(batch["labels"].shape[0])
        return model(**batch).loss * 0.0 + 1.5

    history = train(tiny_model(), copy_features(16), PAD, n_steps=3, batch_size=8, loss_fn=loss_fn, progress=False)
    assert calls == [8, 8, 8]
    assert history.losses == [1.5, 1.5, 1.5]


def test_evaluate_loss_is_token_weighted_not_a_mean_of_batch_means():
    short = {"input_ids": [3, EOS], "labels": [EOS]}  # 1 label token
    long = {"input_ids": [4, 5, 6, EOS], "labels": [4, 5, 6, 7, 8, EOS]}  # 6 label tokens
    features = [short, long]
    model = tiny_model().eval()
    per_batch = [model(**pad_features([f], PAD)).loss.item() for f in features]
    expected = (per_batch[0] * 1 + per_batch[1] * 6) / 7
    assert evaluate_loss(model, features, PAD, batch_size=1) == pytest.approx(expected, rel=1e-6)
    assert evaluate_loss(model, features, PAD, batch_size=2) == pytest.approx(expected, rel=1e-5)
    assert expected != pytest.approx(sum(per_batch) / 2, rel=1e-3)  # the test can tell the two apart


def test_dataloader_pads_labels_with_ignore_index_and_is_seeded():
    features = copy_features(20)
    first = [b["labels"] for b in make_dataloader(features, 4, PAD, shuffle=True, seed=5)]
    second = [b["labels"] for b in make_dataloader(features, 4, PAD, shuffle=True, seed=5)]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert any((labels == IGNORE_INDEX).any() for labels in first)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_schedules_warm_up(schedule):
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([parameter], lr=1.0)
    scheduler = make_scheduler(optimizer, schedule, warmup_steps=4, n_steps=20)
    rates = []
    for _ in range(10):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    if schedule == "constant":
        assert rates == [1.0] * 10
    else:
        assert rates[0] < rates[3] <= 1.0 and rates[9] < rates[4]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"n_steps": 0}, "n_steps"), ({"schedule": "cosine"}, "schedule"), ({"features": []}, "no training features")],
)
def test_bad_arguments_raise(kwargs, message):
    arguments = {"features": copy_features(8), "n_steps": 2, "progress": False} | kwargs
    with pytest.raises(ValueError, match=message):
        train(tiny_model(), pad_token_id=PAD, **arguments)


def test_device_auto_and_bad_device_names():
    features = copy_features(16)
    history = train(tiny_model(), features, PAD, n_steps=2, batch_size=8, device="auto", progress=False)
    assert len(history.losses) == 2
    assert evaluate_loss(tiny_model(), features, PAD, device="cpu") > 0
    with pytest.raises(ValueError, match="parameter 'device'"):
        train(tiny_model(), features, PAD, n_steps=2, device="tpu", progress=False)


def test_final_loss_averages_the_tail():
    history = TrainingHistory(steps=[1, 2, 3, 4], losses=[4.0, 3.0, 2.0, 1.0])
    assert history.final_loss(2) == 1.5
    assert history.final_loss(10) == 2.5
