"""Helpers of notebook 11: start gloo processes on the CPU, read back what each rank wrote, compare updates.

`_run_torchrun` starts `torchrun --nproc_per_node N -m <module> ...` on loopback only (GLOO_SOCKET_IFNAME=lo,
master 127.0.0.1, a free port, one thread per process). `reference_gradients` computes, in this one process, the
two gradients a data-parallel step can follow: the global token mean over the concatenated batch, and the mean
over ranks of each rank's token mean. `python -m utils.experiments.data_parallel trainer-step --out DIR` (run
under torchrun) makes one real `Seq2SeqTrainer` step and writes what it saw and what it did.
"""

import argparse
import copy
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

import torch
from torch.nn.utils import parameters_to_vector

from utils.experiments.trainer_measurements import seq2seq_collator, token_mean_compute_loss
from utils.handwritten.teacher_forcing import masked_cross_entropy
from utils.harness.paths import REPO_ROOT
from utils.workbench.batching import pad_features
from utils.workbench.tolerance import compare

__all__ = [
    "TRAINER_SETTINGS", "command_model_and_features", "flat_gradient", "main", "rank_reports",
    "reference_gradients", "relative_difference", "step_update", "train_run",
    "trainer_measurement", "verdict_rows",
]

TORCHRUN = Path(sys.executable).with_name("torchrun")


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _loopback_environment() -> dict[str, str]:
    """This process's environment with gloo on loopback, one thread per process and the hub offline."""
    return os.environ | {"GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1",
                         "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _torchrun_command(n_processes: int, module: str, arguments: list[str], port: int) -> list[str]:
    return [str(TORCHRUN), "--nproc_per_node", str(n_processes), "--master_addr", "127.0.0.1", "--master_port",
            str(port), "-m", module, *arguments]


def _run_torchrun(n_processes: int, module: str, arguments: list[str], timeout: float = 300) -> str:
    """Run `module` under torchrun with `n_processes` gloo processes; returns its output, raises on failure."""
    command = _torchrun_command(n_processes, module, arguments, _free_port())
    done = subprocess.run(command, cwd=REPO_ROOT, env=_loopback_environment(), capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed with exit code {done.returncode}:\n{done.stderr[-3000:]}")
    return done.stdout + done.stderr


def _run_single(module: str, arguments: list[str], timeout: float = 300) -> str:
    """The same module as one plain process (no launcher)."""
    command = [sys.executable, "-m", module, *arguments]
    done = subprocess.run(command, cwd=REPO_ROOT, env=_loopback_environment(), capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed with exit code {done.returncode}:\n{done.stderr[-3000:]}")
    return done.stdout + done.stderr


def _run_accelerate_launch(launch_arguments: list[str], module: str, arguments: list[str], timeout: float = 300) -> str:
    """`accelerate launch <launch_arguments> -m module ...` (e.g. `--cpu --num_processes 2`)."""
    command = [str(Path(sys.executable).with_name("accelerate")), "launch", *launch_arguments, "-m", module, *arguments]
    done = subprocess.run(command, cwd=REPO_ROOT, env=_loopback_environment(), capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed with exit code {done.returncode}:\n{done.stderr[-3000:]}")
    return done.stdout + done.stderr


def _command_arguments(options: dict) -> list[str]:
    """{"batch_size": 8, "loss_normalisation": "global"} -> ["--batch-size", "8", "--loss-normalisation", "global"]."""
    return [item for name, value in options.items() for item in ("--" + name.replace("_", "-"), str(value))]


def train_run(out: str | Path, n_processes: int, options: dict, timeout: float = 300,
              accelerate_launch: list[str] | None = None) -> dict:
    """Run `python -m utils.train` into `out` (one process, torchrun with `n_processes`, or accelerate launch with
    `accelerate_launch` arguments); returns its results JSON."""
    shutil.rmtree(out, ignore_errors=True)  # no rank file of an earlier run may be read back
    arguments = _command_arguments(options | {"out": out}) + ["--no-progress"]
    if accelerate_launch is not None:
        _run_accelerate_launch(accelerate_launch, "utils.train", arguments, timeout)
    elif n_processes == 1:
        _run_single("utils.train", arguments, timeout)
    else:
        _run_torchrun(n_processes, "utils.train", arguments, timeout)
    return json.loads((Path(out) / "results" / "train.json").read_text(encoding="utf-8"))


def command_model_and_features(options: dict):
    """The command's freshly initialised model (its seed and size, dropout 0), tokenizer and training features."""
    from utils.experiments.train_command import TASKS, build_parser
    from utils.workbench.models import build_tokenizer
    from utils.workbench.variants import VARIANT_FAMILY, build_variant

    config = vars(build_parser().parse_args(_command_arguments(options)))
    tokenizer = build_tokenizer(VARIANT_FAMILY[config["variant"]])
    features = TASKS[config["task"]].features(tokenizer, config)
    model = build_variant(config["variant"], tokenizer, size=config["size"], seed=config["seed"], dropout=0.0)
    return model, tokenizer, features


def step_update(out: str | Path, step: int, model: torch.nn.Module, initial: torch.Tensor) -> torch.Tensor:
    """Parameters of the checkpoint at `step` minus `initial` (flat); `model` gives the layout and is left as is."""
    return _checkpoint_parameters(out, step, model) - initial


def rank_reports(out: str | Path) -> list[dict]:
    """`<out>/ranks/rank<r>.json` of every rank, in rank order."""
    paths = sorted(Path(out).glob("ranks/rank*.json"), key=lambda p: int(p.stem.removeprefix("rank")))
    if not paths:
        raise FileNotFoundError(f"no rank reports under {out}/ranks")
    return [json.loads(p.read_text(encoding="utf-8")) for p in paths]


def _checkpoint_parameters(out: str | Path, step: int, model: torch.nn.Module) -> torch.Tensor:
    """The flat parameters of `<out>/checkpoints/step-<step>/model.pt`, loaded into a copy of `model` (which
    keeps its own parameters)."""
    state = torch.load(Path(out) / "checkpoints" / f"step-{step:06d}" / "model.pt", map_location="cpu",
                       weights_only=True)
    container = copy.deepcopy(model)
    container.load_state_dict(state)
    return parameters_to_vector(container.parameters()).detach()


def flat_gradient(model: torch.nn.Module, loss: torch.Tensor) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    loss.backward()
    gradient = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten()
                          for p in model.parameters()])
    model.zero_grad(set_to_none=True)
    return gradient.detach().clone()


def reference_gradients(model: torch.nn.Module, shards: list[list[dict]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """In one process: `global`, the gradient of the token mean over all shards' examples (one padded batch), and
    `per_rank`, the mean over shards of each shard's token-mean gradient (what DDP averages without the fix)."""
    model.eval()
    everything = pad_features([f for shard in shards for f in shard], pad_token_id)
    logits = model(**everything).logits  # (B, T, V)
    global_gradient = flat_gradient(model, masked_cross_entropy(logits, everything["labels"]))
    per_rank = []
    for shard in shards:
        batch = pad_features(shard, pad_token_id)
        per_rank.append(flat_gradient(model, masked_cross_entropy(model(**batch).logits, batch["labels"])))
    return {"global": global_gradient, "per_rank": torch.stack(per_rank).mean(dim=0)}


def relative_difference(first: torch.Tensor, second: torch.Tensor) -> float:
    """||first - second|| / ||second|| in float64."""
    first, second = first.double(), second.double()
    return float((first - second).norm() / second.norm())


# ---------------------------------------------------------------- one Seq2SeqTrainer step under torchrun


class _IndexedDataset(torch.utils.data.Dataset):
    """Features with their index, so the collator can record which examples a rank saw."""

    def __init__(self, features):
        self.features = features

    def __len__(self):
        return len(self.features)

    def __getitem__(self, index):
        return self.features[index] | {"example_index": index}


def _recording_collator(features, seen: list, pad_token_id: int, decoder_start_token_id: int):
    seen.append([f.pop("example_index") for f in features])
    return seq2seq_collator(features, pad_token_id, decoder_start_token_id)


TRAINER_SETTINGS = ("default", "no_average", "token_sum_loss")


def _trainer_step(out: Path, n_examples: int, seed: int, setting: str = "default") -> None:
    """One `Seq2SeqTrainer` SGD step (lr 1, no clipping, no decay, dropout 0) of a tiny T5 on the first
    `n_examples` training pairs, each rank taking n_examples / world_size; writes rank<r>.json and, on rank 0,
    update.pt (the parameter change: minus the gradient the Trainer applied).

    setting: "default" (the pinned defaults), "no_average" (`average_tokens_across_devices=False`),
    "token_sum_loss" (defaults plus `compute_loss_func` = summed token loss / `num_items_in_batch`)."""
    from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from utils.workbench.batching import tokenize_pairs
    from utils.workbench.data import load_pairs
    from utils.workbench.models import build_model, build_tokenizer

    n_ranks = int(os.environ.get("WORLD_SIZE", "1"))
    tokenizer = build_tokenizer("t5")
    features = tokenize_pairs(tokenizer, load_pairs("train", "en", "de", limit=n_examples))
    model = build_model("t5", tokenizer=tokenizer, seed=seed, dropout=0.0)
    before = parameters_to_vector(model.parameters()).detach()
    seen: list[list[int]] = []
    if setting not in TRAINER_SETTINGS:
        raise ValueError(f"setting must be one of {TRAINER_SETTINGS}, got {setting!r}")
    options = {"average_tokens_across_devices": False} if setting == "no_average" else {}
    with tempfile.TemporaryDirectory() as output_dir:
        args = Seq2SeqTrainingArguments(
            output_dir=output_dir, per_device_train_batch_size=n_examples // n_ranks, max_steps=1, learning_rate=1.0,
            optim="sgd", lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=0.0,
            seed=seed, eval_strategy="no", save_strategy="no", logging_strategy="no", report_to="none", use_cpu=True,
            disable_tqdm=True, ddp_backend="gloo", remove_unused_columns=False, **options)
        trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=_IndexedDataset(features),
                                 data_collator=partial(_recording_collator, seen=seen,
                                                       pad_token_id=model.config.pad_token_id,
                                                       decoder_start_token_id=model.config.decoder_start_token_id),
                                 compute_loss_func=token_mean_compute_loss if setting == "token_sum_loss" else None)
        for callback in (PrinterCallback, ProgressCallback):
            trainer.remove_callback(callback)
        trainer.train()
        rank_index = args.process_index
        report = {"rank": rank_index, "setting": setting, "world_size": args.world_size,
                  "parallel_mode": str(args.parallel_mode),
                  "average_tokens_across_devices": args.average_tokens_across_devices,
                  "model_accepts_loss_kwargs": bool(getattr(trainer, "model_accepts_loss_kwargs", None)),
                  "examples": seen}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{rank_index}.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    if rank_index == 0:
        torch.save(parameters_to_vector(model.parameters()).detach() - before, out / "update.pt")


def trainer_measurement(out: Path, setting: str, n_processes: int, n_examples: int, seed: int,
                        timeout: float = 300) -> dict:
    """Run `_trainer_step` under torchrun and compare its update with three gradients computed here: the global
    token mean, the per-rank mean, and world_size x the per-rank mean (relative differences, and under
    "comparisons" the evidence of `utils.workbench.tolerance.compare` for each)."""
    from utils.workbench.batching import tokenize_pairs
    from utils.workbench.data import load_pairs
    from utils.workbench.models import build_model, build_tokenizer

    shutil.rmtree(out, ignore_errors=True)
    _run_torchrun(n_processes, "utils.experiments.data_parallel",
                 ["trainer-step", "--out", str(out), "--n-examples", str(n_examples), "--seed", str(seed),
                  "--setting", setting], timeout)
    reports = [json.loads((out / f"rank{r}.json").read_text(encoding="utf-8")) for r in range(n_processes)]
    tokenizer = build_tokenizer("t5")
    features = tokenize_pairs(tokenizer, load_pairs("train", "en", "de", limit=n_examples))
    model = build_model("t5", tokenizer=tokenizer, seed=seed, dropout=0.0)
    shards = [[features[i] for i in report["examples"][0]] for report in reports]
    reference = reference_gradients(model, shards, tokenizer.pad_token_id)
    gradient = -torch.load(out / "update.pt", weights_only=True)  # SGD, lr 1: update = -gradient
    targets = {"vs_global": reference["global"], "vs_per_rank": reference["per_rank"],
               "vs_world_size_times_per_rank": n_processes * reference["per_rank"]}
    return {"setting": setting, "average_tokens_across_devices": reports[0]["average_tokens_across_devices"],
            "model_accepts_loss_kwargs": reports[0]["model_accepts_loss_kwargs"],
            "rank_tokens": [sum(len(f["labels"]) for f in shard) for shard in shards],
            "vs_global": relative_difference(gradient, reference["global"]),
            "vs_per_rank": relative_difference(gradient, reference["per_rank"]),
            "vs_world_size_times_per_rank": relative_difference(gradient, n_processes * reference["per_rank"]),
            "comparisons": {name: compare(gradient, target).evidence() for name, target in targets.items()}}


# ---------------------------------------------------------------- the verdict, from the recorded claims


def _number(metrics: dict, name: str, spec: str = ".3g") -> str:
    value = metrics.get(name)
    return format(value, spec) if isinstance(value, int | float) else str(value)


VERDICT = (
    ("which launcher starts several CPU processes",
     ("accelerate_launch_cpu_starts_one_process", "torchrun_starts_gloo_processes"),
     lambda m: "accelerate launch --cpu: 1 process; torchrun: gloo, MULTI_CPU"),
    ("(a) parameters identical across ranks after k steps", ("parameters_identical_after_k_steps",),
     lambda m: f"max |difference| {_number(m, 'adamw_parameter_spread_across_ranks')}"),
    ("(b) global token normalisation: 2 processes = 1 process on the concatenated batch",
     ("global_step_equals_single_process_step", "single_step_is_global_token_mean_gradient"),
     lambda m: f"relative update difference {_number(m, 'global_two_process_vs_single_update_rel_diff')}"),
    ("(c) naive per-rank mean, ranks with different token counts",
     ("per_rank_mean_differs_from_global", "per_rank_step_is_mean_of_rank_means"),
     lambda m: (f"tokens {m.get('per_rank_rank_tokens')}, loss ratio {_number(m, 'per_rank_loss_ratio', '.4f')}, "
                f"relative update difference {_number(m, 'per_rank_update_rel_diff')}")),
    ("(d) Seq2SeqTrainer, pinned defaults", ("trainer_default_follows_world_size_times_per_rank",),
     lambda m: f"vs global {_number(m, 'trainer_default_update_rel_diff_vs_global')}"),
    ("(d) Seq2SeqTrainer, average_tokens_across_devices=False", ("trainer_no_average_follows_per_rank",),
     lambda m: f"vs global {_number(m, 'trainer_no_average_update_rel_diff_vs_global')}"),
    ("(d) Seq2SeqTrainer, defaults + token-sum compute_loss_func", ("trainer_token_sum_loss_follows_global",),
     lambda m: f"vs global {_number(m, 'trainer_token_sum_loss_update_rel_diff_vs_global')}"),
)


def verdict_rows(claims: dict, metrics: dict) -> list[dict[str, str]]:
    """One row per question: the claims behind it, whether they hold, and the measured numbers."""
    rows = []
    for question, claim_ids, evidence in VERDICT:
        missing = [c for c in claim_ids if c not in claims]
        failing = [c for c in claim_ids if c in claims and not claims[c]["holds"]]
        verdict = ("not measured in this run" if missing else
                   "DOES NOT HOLD: " + ", ".join(failing) if failing else "holds")
        rows.append({"question": question, "verdict": verdict,
                     "measured": "" if missing else evidence(metrics), "claims": ", ".join(claim_ids)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.experiments.data_parallel")
    commands = parser.add_subparsers(dest="command", required=True)
    step = commands.add_parser("trainer-step", help="one Seq2SeqTrainer step (run it under torchrun)")
    step.add_argument("--out", required=True)
    step.add_argument("--n-examples", type=int, default=8)
    step.add_argument("--seed", type=int, default=0)
    step.add_argument("--setting", choices=TRAINER_SETTINGS, default="default")
    args = parser.parse_args(argv)
    _trainer_step(Path(args.out), args.n_examples, args.seed, args.setting)
    return 0


if __name__ == "__main__":
    sys.exit(main())
