"""`python -m utils.train`: bad input is refused before any training; two torchrun CPU processes give (a) identical
parameters on both ranks and (b) the single-process step on the concatenated batch."""

import json

from torch.nn.utils import parameters_to_vector

from utils.experiments.data_parallel import (
    _command_arguments,
    _run_single,
    _run_torchrun,
    command_model_and_features,
    relative_difference,
    step_update,
)
from utils.experiments.train_command import CONFIG_FILE, STATE_FILE, build_parser, main

SGD_STEP = ["--variant", "causal", "--n-train", "32", "--batch-size", "8", "--optimizer", "sgd", "--lr", "1",
            "--schedule", "constant", "--warmup-steps", "0", "--weight-decay", "0", "--max-grad-norm", "0",
            "--dropout", "0", "--device", "cpu", "--no-progress"]


def refused(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    return capsys.readouterr().err


def test_a_batch_size_the_world_size_does_not_divide_is_refused(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    error = refused(capsys, ["--batch-size", "7", "--out", str(tmp_path)])
    assert "--batch-size 7" in error and "world size 2" in error and "allowed: a multiple of 2" in error
    assert not any(tmp_path.iterdir()), "nothing may be written before the checks pass"


def test_an_unknown_variant_or_task_is_refused(capsys, tmp_path):
    error = refused(capsys, ["--variant", "causl", "--out", str(tmp_path)])
    assert "'causl'" in error and "no_mask, causal, t5, marian" in error
    assert "allowed: translation" in refused(capsys, ["--task", "g2p_typo", "--out", str(tmp_path)])


def test_a_missing_data_file_is_refused(capsys, tmp_path):
    error = refused(capsys, ["--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path)])
    assert "nowhere/train.jsonl does not exist" in error and "python -m utils.data" in error


def test_a_checkpoint_written_with_another_config_is_refused(capsys, tmp_path):
    checkpoint = tmp_path / "checkpoints" / "step-000010"
    checkpoint.mkdir(parents=True)
    saved = vars(build_parser().parse_args(["--variant", "t5", "--out", str(tmp_path)]))
    (checkpoint / CONFIG_FILE).write_text(json.dumps(saved), encoding="utf-8")
    (checkpoint / STATE_FILE).write_text(json.dumps({"step": 10}), encoding="utf-8")
    error = refused(capsys, ["--variant", "causal", "--resume", str(checkpoint), "--out", str(tmp_path)])
    assert "written with another config" in error and "variant 't5' there, 'causal' here" in error
    assert f"no {CONFIG_FILE} there" in refused(capsys, ["--resume", str(tmp_path), "--out", str(tmp_path)])


def test_two_torchrun_cpu_processes_match_one_process(tmp_path):
    two, one = tmp_path / "two", tmp_path / "one"
    _run_torchrun(2, "utils.train", SGD_STEP + ["--steps", "2", "--save-every", "1", "--out", str(two)], timeout=300)
    _run_single("utils.train", SGD_STEP + ["--steps", "1", "--out", str(one)], timeout=300)
    ranks = [json.loads((two / "ranks" / f"rank{r}.json").read_text(encoding="utf-8")) for r in (0, 1)]
    results = json.loads((two / "results" / "train.json").read_text(encoding="utf-8"))
    # (a) after 2 steps both ranks hold bit-identical parameters, though they saw different examples and tokens
    assert {r["distributed_type"] for r in ranks} == {"DistributedType.MULTI_CPU"}
    assert ranks[0]["parameter_digest"] == ranks[1]["parameter_digest"]
    assert results["claims"]["parameters_identical_across_ranks"]["holds"]
    assert not set(ranks[0]["examples"][0]) & set(ranks[1]["examples"][0])
    # (b) step 1 of the two processes = the one-process step on the concatenated batch (fp32 tolerance)
    assert ranks[0]["examples"][0] + ranks[1]["examples"][0] == json.loads(
        (one / "ranks" / "rank0.json").read_text(encoding="utf-8"))["examples"][0]
    model, _, _ = command_model_and_features({"variant": "causal", "n_train": 32})
    initial = parameters_to_vector(model.parameters()).detach()
    two_update, one_update = (step_update(out, 1, model, initial) for out in (two, one))
    assert one_update.abs().max() > 0
    assert relative_difference(two_update, one_update) < 1e-5
    assert _command_arguments({"batch_size": 8}) == ["--batch-size", "8"]
