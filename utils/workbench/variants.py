"""The trained variants of the tinfer experiment (notebook 04, reused by 10, 11 and `python -m utils.train`):

    no_mask   (a) TinferModel, decoder sees the whole right-shifted target, padding masks only
    causal    (b) TinferModel with the decoder causal mask
    t5        (c) T5ForConditionalGeneration from a config, trained with `labels` only
    marian    (d) MarianMTModel from a config, trained with `labels` only

Same data, model size and budget for each: `build_variant` makes one, `train_variant` trains it with the shared
loop; checkpoints are state_dict + config JSON for tinfer, `save_pretrained` for HF. The token accuracies and the
cut after `</s>` are how every notebook scores a greedy output against its labels.
"""

import json
from pathlib import Path

import torch

from utils.handwritten.seq2seq import is_tinfer
from utils.handwritten.teacher_forcing import IGNORE_INDEX, shift_right
from utils.handwritten.tinfer import TinferConfig, TinferModel
from utils.harness.paths import reports_dir
from utils.workbench.models import build_model
from utils.workbench.training import TrainingHistory, train

__all__ = ["VARIANTS", "VARIANT_FAMILY", "build_variant", "check_variant", "checkpoint_dir",
           "decoder_input_ids_from_labels", "free_running_accuracy", "generated_ids", "load_checkpoint",
           "save_checkpoint", "teacher_forced_accuracy", "train_variant"]

VARIANTS = ("no_mask", "causal", "t5", "marian")
VARIANT_FAMILY = {"no_mask": "tinfer", "causal": "tinfer", "t5": "t5", "marian": "marian"}
_CHECKPOINT_NOTEBOOK = "04_tinfer_training"  # notebook 04 saves them, notebook 05 loads them
_TINFER_WEIGHTS, _TINFER_CONFIG = "model.pt", "tinfer_config.json"


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    return variant


def build_variant(variant: str, tokenizer, size: str = "tiny", seed: int = 0, dropout: float = 0.1):
    """A freshly initialised model for a variant; `no_mask` and `causal` differ only in the decoder mask."""
    family = VARIANT_FAMILY[check_variant(variant)]
    return build_model(family, size=size, tokenizer=tokenizer, seed=seed, causal=variant != "no_mask",
                       dropout=dropout)


def train_variant(variant: str, tokenizer, features, n_steps: int, size: str = "tiny", seed: int = 0,
                  dropout: float = 0.1, device="cpu", **train_kwargs) -> tuple[torch.nn.Module, TrainingHistory]:
    """Build a variant and train it with the shared loop (`utils.workbench.training.train`), in eval mode."""
    model = build_variant(variant, tokenizer, size=size, seed=seed, dropout=dropout).to(device)
    history = train(model, features, tokenizer.pad_token_id, n_steps, seed=seed, device=device,
                    description=f"training {variant}", **train_kwargs)
    return model.eval(), history


def decoder_input_ids_from_labels(model, labels: torch.Tensor) -> torch.Tensor:
    """What the model feeds its decoder when it gets `labels` only: start id + labels[:-1], -100 -> pad."""
    config = model.config
    return shift_right(labels, config.decoder_start_token_id, config.pad_token_id)


def generated_ids(sequences: torch.Tensor, eos_token_id: int) -> list[list[int]]:
    """Greedy or beam output (B, L), start token first and pad after eos -> per example the generated ids up to and
    including the first eos (all of them when eos never came)."""
    rows = []
    for row in sequences[:, 1:].tolist():  # .tolist() copies to the host, from any device
        rows.append(row[: row.index(eos_token_id) + 1] if eos_token_id in row else row)
    return rows


@torch.no_grad()
def teacher_forced_accuracy(model, batch: dict[str, torch.Tensor]) -> tuple[int, int]:
    """(correct, total) real label positions where the one-pass argmax equals the label."""
    logits = model(**batch).logits  # (B, T, V)
    real = batch["labels"] != IGNORE_INDEX
    correct = (logits.argmax(-1) == batch["labels"]) & real
    return int(correct.sum()), int(real.sum())


def free_running_accuracy(generated: list[list[int]], labels: torch.Tensor) -> tuple[int, int]:
    """(correct, total) label positions t where the greedy output's t-th id equals labels[t] (missing = wrong)."""
    correct = total = 0
    for ids, row in zip(generated, labels.tolist(), strict=True):
        gold = [i for i in row if i != IGNORE_INDEX]
        correct += sum(t < len(ids) and ids[t] == token for t, token in enumerate(gold))
        total += len(gold)
    return correct, total


def checkpoint_dir() -> Path:
    """Trained models of a run live beside its reports (never committed), so a smoke or sweep run
    into another folder cannot replace the checkpoints that `make run`'s notebook 05 loads."""
    return reports_dir() / "checkpoints" / _CHECKPOINT_NOTEBOOK


def save_checkpoint(model, variant: str, directory: str | Path | None = None) -> Path:
    """`<directory>/<variant>/`: save_pretrained for HF models, state_dict + config JSON for tinfer."""
    folder = Path(directory or checkpoint_dir()) / check_variant(variant)
    folder.mkdir(parents=True, exist_ok=True)
    if is_tinfer(model):
        torch.save({name: tensor.cpu() for name, tensor in model.state_dict().items()}, folder / _TINFER_WEIGHTS)
        (folder / _TINFER_CONFIG).write_text(json.dumps(vars(model.config), indent=2) + "\n", encoding="utf-8")
    else:
        model.save_pretrained(folder)
    return folder


def load_checkpoint(variant: str, directory: str | Path | None = None):
    """A model saved by notebook 04, in eval mode, on the CPU; FileNotFoundError (saying how to make it) when
    absent."""
    folder = Path(directory or checkpoint_dir()) / check_variant(variant)
    family = VARIANT_FAMILY[variant]
    needed = folder / (_TINFER_CONFIG if family == "tinfer" else "config.json")
    if not needed.is_file():
        raise FileNotFoundError(f"no {variant!r} checkpoint: {needed} does not exist; run "
                                "`python -m utils.run 04` (with save_checkpoints true) first")
    if family == "tinfer":
        config = TinferConfig(**json.loads(needed.read_text(encoding="utf-8")))
        model = TinferModel(config)
        model.load_state_dict(torch.load(folder / _TINFER_WEIGHTS, map_location="cpu", weights_only=True))
    else:
        model = build_model(family, model_name_or_path=str(folder))
    return model.eval()
