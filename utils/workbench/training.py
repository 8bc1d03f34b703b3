"""One plain training loop for every seq2seq model in the collection.

HF models and the hand-written `TinferModel` are both called as `model(**batch)` with `labels` and
return `.loss` (a token mean over labels != -100). AdamW, warm-up then a decay schedule, gradient
clipping, a seeded data order. The loop goes through `accelerate`, so the same code runs on a GPU or
several devices (`accelerate launch`); here it runs as a single CPU process. Under several processes its loss
is each rank's own token mean (the naive per-rank mean of notebook 11); `python -m utils.train`
(`utils.experiments.train_command`) normalises by the global token count instead.
"""

import time
from dataclasses import dataclass, field
from functools import partial

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_inverse_sqrt_schedule, get_linear_schedule_with_warmup

from utils.workbench.batching import pad_features
from utils.workbench.device import resolve_device, to_device

__all__ = ["SCHEDULES", "TrainingHistory", "evaluate_loss", "make_dataloader", "make_scheduler", "train"]

SCHEDULES = ("linear", "inverse_sqrt", "constant")


@dataclass
class TrainingHistory:
    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def final_loss(self, last: int = 20) -> float:
        """Mean of the last `last` recorded losses (less noisy than the very last one)."""
        tail = self.losses[-last:]
        return sum(tail) / len(tail)


def make_dataloader(features, batch_size: int, pad_token_id: int, shuffle: bool = True, seed: int = 0):
    return DataLoader(features, batch_size=batch_size, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(seed),
                      collate_fn=partial(pad_features, pad_token_id=pad_token_id))


def make_scheduler(optimizer, schedule: str, warmup_steps: int, n_steps: int):
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if schedule == "linear":
        return get_linear_schedule_with_warmup(optimizer, warmup_steps, n_steps)
    if schedule == "inverse_sqrt":  # Vaswani et al. §5.3, up to a constant factor
        return get_inverse_sqrt_schedule(optimizer, num_warmup_steps=max(1, warmup_steps))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


def train(
    model: torch.nn.Module,
    features: list[dict[str, list[int]]],
    pad_token_id: int,
    n_steps: int,
    batch_size: int = 32,
    lr: float = 1e-3,
    warmup_steps: int = 50,
    schedule: str = "linear",
    weight_decay: float = 0.01,
    max_grad_norm: float = 1.0,
    seed: int = 0,
    device: torch.device | str = "cpu",
    loss_fn=None,
    progress: bool = True,
    description: str = "training",
) -> TrainingHistory:
    """Train for `n_steps` optimizer steps, cycling through the data; returns the loss of every step.

    `loss_fn(model, batch) -> loss` replaces `model(**batch).loss` (e.g. the step-by-step loop).
    `device` is a torch device or a name, "auto" included (`utils.workbench.device.resolve_device`).
    """
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    if not features:
        raise ValueError("no training features")
    device = resolve_device(device) if isinstance(device, str) else torch.device(device)
    # the model and each batch go to `device` here, explicitly (accelerate would pick its own device)
    accelerator = Accelerator(cpu=device.type == "cpu", device_placement=False)
    model.to(device)
    dataloader = make_dataloader(features, batch_size, pad_token_id, shuffle=True, seed=seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = make_scheduler(optimizer, schedule, warmup_steps, n_steps)
    model, optimizer, dataloader, scheduler = accelerator.prepare(model, optimizer, dataloader, scheduler)
    loss_fn = loss_fn or (lambda m, batch: m(**batch).loss)

    history = TrainingHistory()
    model.train()
    start = time.perf_counter()
    batches = iter(dataloader)
    for step in tqdm(range(1, n_steps + 1), desc=description, disable=not progress, mininterval=2.0):
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(dataloader)
            batch = next(batches)
        batch = to_device(batch, device)
        loss = loss_fn(model, batch)
        accelerator.backward(loss)
        if max_grad_norm:
            accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        history.steps.append(step)
        history.losses.append(loss.item())
    history.seconds = time.perf_counter() - start
    model.eval()
    return history


@torch.no_grad()
def evaluate_loss(model: torch.nn.Module, features, pad_token_id: int, batch_size: int = 64,
                  device: torch.device | str = "cpu") -> float:
    """Teacher-forced loss over a whole split, token-weighted across batches (not a mean of batch means)."""
    device = resolve_device(device) if isinstance(device, str) else torch.device(device)
    model.eval()
    total_loss, total_tokens = 0.0, 0
    for batch in make_dataloader(features, batch_size, pad_token_id, shuffle=False):
        batch = to_device(batch, device)
        n_tokens = int((batch["labels"] != -100).sum())
        total_loss += model(**batch).loss.item() * n_tokens
        total_tokens += n_tokens
    return total_loss / total_tokens
