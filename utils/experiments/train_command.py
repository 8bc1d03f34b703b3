"""`python -m utils.train`: train one of the collection's variants outside a notebook, on one or more devices.

The same command runs as one process, under `torchrun --nproc_per_node N -m utils.train ...` and under
`accelerate launch -m utils.train ...`. `--batch-size` is the global batch (examples per optimizer step, over
all ranks and micro-batches); each rank takes a contiguous shard of it (`utils.workbench.distributed`), and the
loss is normalised by the target tokens of the whole step, all-reduced over ranks (`--loss-normalisation
per_rank` gives the naive per-rank token mean instead, for comparison).

Writes under `--out`:
    checkpoints/step-NNNNNN/   model.pt, optimizer.pt, scheduler.pt, train_config.json, state.json (rank 0)
    model/<variant>/           the final model, readable by `utils.workbench.variants.load_checkpoint`
    results/train.json         config, claims, metrics (per-step losses and token counts), timings (rank 0)
    ranks/rank<r>.json         what each rank saw: examples, token counts, its parameter digest (every rank)

Every input is checked before any training: task, variant, batch size against the world size, data files, and a
checkpoint to resume from against this run's config.
"""

import argparse
import json
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from utils.harness.paths import DATA_DIR
from utils.harness.results import Results
from utils.workbench.batching import pad_features, tokenize_pairs
from utils.workbench.data import load_pairs
from utils.workbench.distributed import (
    LOSS_NORMALISATIONS,
    all_gather_objects,
    all_reduce_sum,
    count_tokens,
    normalised_loss,
    parameter_digest,
    parameter_spread,
    shard_indices,
    summed_token_loss,
)
from utils.workbench.models import SIZES, build_tokenizer
from utils.workbench.reproducibility import set_seed
from utils.workbench.training import SCHEDULES, make_scheduler
from utils.workbench.variants import VARIANT_FAMILY, VARIANTS, build_variant, save_checkpoint

__all__ = [
    "CONFIG_FILE", "STATE_FILE", "TASKS", "build_parser", "data_parallel_step", "main", "prepare", "train_command",
]

OPTIMIZERS = ("adamw", "sgd")
RESULTS_NAME = "train"
CONFIG_FILE, STATE_FILE = "train_config.json", "state.json"
# what may differ between a run and the checkpoint it resumes from: where it writes, how long, how it shows it
RESUMABLE_CHANGES = ("steps", "out", "resume", "save_every", "progress", "device", "data_dir")


class _CommandError(ValueError):
    """Bad input, found before any training; the message names the value and what is allowed."""


# ---------------------------------------------------------------- tasks: where the data comes from


@dataclass(frozen=True)
class _Task:
    """A training task: its variants and how to turn the project's data into features for one of them."""

    description: str
    variants: tuple[str, ...]
    data_files: callable  # config -> the files it reads (checked before training)
    features: callable  # (tokenizer, config) -> [{"input_ids", "labels"}]


def _translation_files(config: dict) -> list[Path]:
    return [Path(config["data_dir"]) / "train.jsonl"]


def _translation_features(tokenizer, config: dict) -> list[dict[str, list[int]]]:
    pairs = load_pairs("train", "en", config["target_lang"], limit=config["n_train"], data_dir=Path(config["data_dir"]))
    return tokenize_pairs(tokenizer, pairs)


TASKS = {
    "translation": _Task("notebook 04's English -> German/French numbers and dates (data/train.jsonl)", VARIANTS,
                        _translation_files, _translation_features),
}


# ---------------------------------------------------------------- arguments and their checks


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m utils.train", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add("--task", default="translation", help=f"one of {', '.join(TASKS)}")
    add("--variant", default="causal", help=f"for translation: one of {', '.join(VARIANTS)}")
    add("--size", default="tiny", help=f"model size: one of {', '.join(SIZES)}")
    add("--target-lang", default="de", choices=("de", "fr"), help="translation target language")
    add("--n-train", type=int, default=4000, help="training examples read from the data")
    add("--data-dir", default=str(DATA_DIR), help="folder with train.jsonl")
    add("--steps", type=int, default=1000, help="optimizer steps in all (a resumed run continues up to this)")
    add("--batch-size", type=int, default=32, help="GLOBAL batch: examples per optimizer step over all ranks")
    add("--grad-accum", type=int, default=1, help="micro-batches per rank and optimizer step")
    add("--loss-normalisation", default="global", help=f"one of {', '.join(LOSS_NORMALISATIONS)}")
    add("--optimizer", default="adamw", help=f"one of {', '.join(OPTIMIZERS)}")
    add("--lr", type=float, default=3e-3, help="peak learning rate")
    add("--schedule", default="linear", help=f"one of {', '.join(SCHEDULES)}")
    add("--warmup-steps", type=int, default=50, help="learning-rate warm-up steps")
    add("--weight-decay", type=float, default=0.01, help="AdamW weight decay (0 for sgd)")
    add("--max-grad-norm", type=float, default=1.0, help="gradient clipping; 0 turns it off")
    add("--dropout", type=float, default=0.1, help="dropout of the model")
    add("--seed", type=int, default=0, help="model initialisation and data order")
    add("--device", default="auto", help="auto, cpu or cuda (under a launcher each rank takes its own GPU)")
    add("--out", default="build/train", help="output folder (checkpoints, model, results)")
    add("--save-every", type=int, default=0, help="checkpoint every N steps; 0: at the end only")
    add("--resume", default=None, help="a checkpoint folder (checkpoints/step-NNNNNN) to continue from")
    add("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return parser


def _one_of(flag: str, value, allowed) -> None:
    if value not in allowed:
        raise _CommandError(f"{flag} {value!r} is not known; allowed: {', '.join(map(str, allowed))}")


def _at_least(flag: str, value, low) -> None:
    if value < low:
        raise _CommandError(f"{flag} must be >= {low}, got {value}")


def _launch_world_size() -> int:
    """The number of processes the launcher started (torchrun and accelerate launch set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _check_config(config: dict, n_ranks: int) -> None:
    """Every check that needs no model and no data: raises CommandError naming the value and what is allowed."""
    _one_of("--task", config["task"], tuple(TASKS))
    _one_of("--variant", config["variant"], TASKS[config["task"]].variants)
    _one_of("--size", config["size"], tuple(SIZES))
    _one_of("--loss-normalisation", config["loss_normalisation"], LOSS_NORMALISATIONS)
    _one_of("--optimizer", config["optimizer"], OPTIMIZERS)
    _one_of("--schedule", config["schedule"], SCHEDULES)
    minimum = {"steps": 1, "batch_size": 1, "grad_accum": 1, "n_train": 1, "warmup_steps": 0, "save_every": 0,
               "seed": 0, "lr": 0.0, "max_grad_norm": 0.0}
    for name, low in minimum.items():
        _at_least("--" + name.replace("_", "-"), config[name], low)
    if not 0.0 <= config["dropout"] < 1.0:
        raise _CommandError(f"--dropout must be in [0, 1), got {config['dropout']}")
    parts = n_ranks * config["grad_accum"]
    if config["batch_size"] % parts:
        multiples = ", ".join(str(parts * k) for k in range(1, 5))
        raise _CommandError(
            f"--batch-size {config['batch_size']} is the global batch and must be divisible by world size {n_ranks} x "
            f"--grad-accum {config['grad_accum']} = {parts} (each rank takes batch_size / {parts} examples per "
            f"micro-batch); allowed: a multiple of {parts} ({multiples}, ...)")
    if config["n_train"] < config["batch_size"]:
        raise _CommandError(f"--n-train {config['n_train']} is smaller than one global batch (--batch-size "
                           f"{config['batch_size']}); allowed: n_train >= batch_size")


def _check_data_files(config: dict) -> None:
    missing = [str(p) for p in TASKS[config["task"]].data_files(config) if not p.is_file()]
    if missing:
        raise _CommandError(f"data file {missing[0]} does not exist (--data-dir {config['data_dir']}); "
                           "run `python -m utils.data` to generate the data set, or pass the folder that holds it")


def _check_resume(config: dict) -> dict:
    """The checkpoint's state ({"step": ...}); CommandError when absent or written with another config."""
    folder = Path(config["resume"])
    if not (folder / CONFIG_FILE).is_file():
        raise _CommandError(f"--resume {folder}: no {CONFIG_FILE} there; allowed: a folder "
                           "<out>/checkpoints/step-NNNNNN written by this command")
    saved = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    differences = [f"{key} {saved.get(key)!r} there, {config[key]!r} here" for key in config
                   if key not in RESUMABLE_CHANGES and saved.get(key) != config[key]]
    if differences:
        raise _CommandError(f"--resume {folder} was written with another config: " + "; ".join(differences)
                           + f". Only {', '.join(RESUMABLE_CHANGES)} may change on resume")
    state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    if state["step"] >= config["steps"]:
        raise _CommandError(f"--resume {folder} is at step {state['step']}; --steps {config['steps']} must be larger")
    return state


# ---------------------------------------------------------------- the data order: a function of (seed, step)


def _global_batch_indices(n_examples: int, batch_size: int, seed: int, step: int) -> list[int]:
    """The examples of optimizer step `step` (1-based): a seeded permutation per epoch, incomplete batches dropped.
    Stateless, so a resumed run sees the batches it would have seen, whatever its world size."""
    per_epoch = n_examples // batch_size
    epoch, position = divmod(step - 1, per_epoch)
    order = torch.randperm(n_examples, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    return order[position * batch_size:(position + 1) * batch_size]


# ---------------------------------------------------------------- one optimizer step


def data_parallel_step(model, accelerator, micro_batches: list[dict[str, torch.Tensor]], normalisation: str) -> dict:
    """Forward and backward over this rank's micro-batches, with the loss normalised as asked; gradients are
    synchronised (DDP's mean over ranks) after the last micro-batch only. Returns the step's token counts and
    losses: `loss` is the global token mean, `per_rank_mean_loss` the mean over ranks of rank token means."""
    local_counts = [count_tokens(batch["labels"]) for batch in micro_batches]
    local_step_tokens = int(torch.stack(local_counts).sum())
    global_tokens = int(all_reduce_sum(torch.stack(local_counts).sum()))
    local_loss_sum = torch.zeros((), device=accelerator.device)
    for k, batch in enumerate(micro_batches):
        sync = k == len(micro_batches) - 1
        with nullcontext() if sync else accelerator.no_sync(model):
            loss_sum = summed_token_loss(model, batch)
            accelerator.backward(normalised_loss(loss_sum, int(local_counts[k]), local_step_tokens, global_tokens,
                                                 accelerator.num_processes, normalisation))
        local_loss_sum += loss_sum.detach()
    global_loss_sum = float(all_reduce_sum(local_loss_sum))
    rank_means = all_gather_objects(float(local_loss_sum) / local_step_tokens)
    return {"loss": global_loss_sum / global_tokens, "per_rank_mean_loss": sum(rank_means) / len(rank_means),
            "local_tokens": local_step_tokens, "global_tokens": global_tokens,
            "local_loss_sum": float(local_loss_sum)}


def _make_optimizer(model, config: dict) -> torch.optim.Optimizer:
    if config["optimizer"] == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"])
    return torch.optim.AdamW(model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"])


def _save_training_checkpoint(folder: Path, accelerator, model, optimizer, scheduler, config: dict, step: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(accelerator.unwrap_model(model).state_dict(), folder / "model.pt")
    torch.save(optimizer.state_dict(), folder / "optimizer.pt")
    torch.save(scheduler.state_dict(), folder / "scheduler.pt")
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (folder / STATE_FILE).write_text(json.dumps({"step": step}) + "\n", encoding="utf-8")


# ---------------------------------------------------------------- the command


def _config_from_args(args: argparse.Namespace) -> dict:
    return {key: value for key, value in vars(args).items()}


def prepare(config: dict) -> dict:
    """All checks, before any process group or model: returns the resume state ({} for a fresh run)."""
    _check_config(config, _launch_world_size())
    _check_data_files(config)
    return _check_resume(config) if config["resume"] else {}


def train_command(config: dict, resume_state: dict) -> dict:
    """Build, train, checkpoint and record one run; returns the results dict (on every rank)."""
    use_cpu = config["device"] == "cpu" or (config["device"] == "auto" and not torch.cuda.is_available())
    accelerator = Accelerator(cpu=use_cpu)
    n_ranks, rank_index = accelerator.num_processes, accelerator.process_index
    set_seed(config["seed"])
    task = TASKS[config["task"]]
    tokenizer = build_tokenizer(VARIANT_FAMILY[config["variant"]])
    features = task.features(tokenizer, config)
    if len(features) < config["batch_size"]:
        raise _CommandError(f"the data holds {len(features)} examples, fewer than --batch-size {config['batch_size']}")
    model = build_variant(config["variant"], tokenizer, size=config["size"], seed=config["seed"],
                          dropout=config["dropout"])
    optimizer = _make_optimizer(model, config)
    scheduler = make_scheduler(optimizer, config["schedule"], config["warmup_steps"], config["steps"])
    start_step = resume_state.get("step", 0)
    if start_step:
        folder = Path(config["resume"])
        model.load_state_dict(torch.load(folder / "model.pt", map_location="cpu", weights_only=True))
        optimizer.load_state_dict(torch.load(folder / "optimizer.pt", map_location="cpu", weights_only=True))
        scheduler.load_state_dict(torch.load(folder / "scheduler.pt", map_location="cpu", weights_only=True))
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    torch.manual_seed(config["seed"] + 1000 * (rank_index + 1) + start_step)  # dropout: its own stream per rank

    out = Path(config["out"])
    results = Results(RESULTS_NAME, config | {"world_size": n_ranks})
    history = {"step": [], "loss": [], "per_rank_mean_loss": [], "global_tokens": []}
    seen = {"examples": [], "local_tokens": [], "local_loss_sum": []}
    model.train()
    start = time.perf_counter()
    steps = range(start_step + 1, config["steps"] + 1)
    bar = tqdm(steps, desc=f"train {config['variant']} ({n_ranks} process{'es' * (n_ranks > 1)})",
               disable=not (config["progress"] and accelerator.is_main_process), mininterval=1.0)
    for step in bar:
        indices = _global_batch_indices(len(features), config["batch_size"], config["seed"], step)
        shards = shard_indices(indices, n_ranks, rank_index, config["grad_accum"])
        micro_batches = [{name: t.to(accelerator.device) for name, t in
                          pad_features([features[i] for i in shard], tokenizer.pad_token_id).items()}
                         for shard in shards]
        report = data_parallel_step(model, accelerator, micro_batches, config["loss_normalisation"])
        if config["max_grad_norm"]:
            accelerator.clip_grad_norm_(model.parameters(), config["max_grad_norm"])
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        for name in history:
            history[name].append(step if name == "step" else report[name])
        seen["examples"].append([i for shard in shards for i in shard])
        seen["local_tokens"].append(report["local_tokens"])
        seen["local_loss_sum"].append(report["local_loss_sum"])
        bar.set_postfix(loss=f"{report['loss']:.4f}", tokens=report["global_tokens"])
        if config["save_every"] and step % config["save_every"] == 0 and step != config["steps"]:
            if accelerator.is_main_process:
                _save_training_checkpoint(out / "checkpoints" / f"step-{step:06d}", accelerator, model, optimizer,
                                         scheduler, config, step)
            accelerator.wait_for_everyone()
    seconds = time.perf_counter() - start
    model.eval()

    spread = parameter_spread(accelerator.unwrap_model(model))
    digests = all_gather_objects(parameter_digest(accelerator.unwrap_model(model)))
    rank_file = out / "ranks" / f"rank{rank_index}.json"
    rank_file.parent.mkdir(parents=True, exist_ok=True)
    rank_file.write_text(json.dumps({"rank": rank_index, "world_size": n_ranks,
                                     "distributed_type": str(accelerator.distributed_type),
                                     "device": str(accelerator.device), "steps": history["step"], **seen,
                                     "parameter_digest": digests[rank_index]}, indent=1) + "\n", encoding="utf-8")
    results.metric("world_size", n_ranks)
    results.metric("distributed_type", str(accelerator.distributed_type))
    results.metric("steps", history["step"])
    results.metric("losses", history["loss"])
    results.metric("per_rank_mean_losses", history["per_rank_mean_loss"])
    results.metric("global_tokens", history["global_tokens"])
    results.metric("final_loss", history["loss"][-1] if history["loss"] else None)
    results.metric("parameter_spread_across_ranks", spread)
    results.claim("parameters_identical_across_ranks", len(set(digests)) == 1 and spread == 0.0,
                  f"after step {config['steps']} every one of the {n_ranks} ranks holds bit-identical parameters",
                  {"digests": digests, "max_abs_difference": spread}, sanity=n_ranks == 1)
    results.timing("train_seconds", seconds)
    if accelerator.is_main_process:
        _save_training_checkpoint(out / "checkpoints" / f"step-{config['steps']:06d}", accelerator, model, optimizer,
                                 scheduler, config, config["steps"])
        save_checkpoint(accelerator.unwrap_model(model).cpu(), config["variant"], out / "model")
        results.save(out / "results")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return results.to_dict()


def main(argv: list[str] | None = None) -> int:
    config = _config_from_args(build_parser().parse_args(argv))
    try:
        resume_state = prepare(config)
    except _CommandError as error:
        print(f"python -m utils.train: error: {error}", file=sys.stderr)
        return 2
    train_command(config, resume_state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
