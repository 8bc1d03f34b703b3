"""What HF's `Seq2SeqTrainer` does to the loss and the update, measured (notebook 03's helpers).

`hf_label_smoother_loss` is the loss `Trainer` computes with `label_smoothing_factor`; `trainer_sgd_update` runs one
real `Seq2SeqTrainer` optimizer step and returns the parameter change, to compare with the hand-written
`utils.handwritten.losses.accumulated_gradient`.
"""

import math
import tempfile
from functools import partial

import torch
import torch.nn.functional as F
from torch.nn.utils import parameters_to_vector
from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.trainer_pt_utils import LabelSmoother

from utils.handwritten.losses import count_target_tokens
from utils.handwritten.teacher_forcing import masked_cross_entropy, shift_right
from utils.workbench.batching import pad_features

__all__ = [
    "hf_label_smoother_loss", "relative_change", "seq2seq_collator", "token_mean_compute_loss",
    "trainer_sgd_update", "update_ratio",
]


def hf_label_smoother_loss(logits: torch.Tensor, labels: torch.Tensor, epsilon: float,
                           num_items_in_batch: int | torch.Tensor | None = None) -> torch.Tensor:
    """The loss `Trainer` computes with `label_smoothing_factor=epsilon` (its `LabelSmoother`), on given logits."""
    return LabelSmoother(epsilon=epsilon)({"logits": logits}, labels, num_items_in_batch=num_items_in_batch)


def token_mean_compute_loss(outputs, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
    """A `compute_loss_func` for `Trainer`: summed token loss / `num_items_in_batch` (the accumulated batch's
    real-token count), so accumulation reproduces the full batch's token mean."""
    loss_sum = masked_cross_entropy(outputs["logits"], labels, reduction="sum")
    denominator = num_items_in_batch if num_items_in_batch is not None else count_target_tokens(labels)
    return loss_sum / denominator


class _ListDataset(torch.utils.data.Dataset):
    def __init__(self, features):
        self.features = features

    def __len__(self):
        return len(self.features)

    def __getitem__(self, index):
        return self.features[index]


def seq2seq_collator(features: list[dict[str, list[int]]], pad_token_id: int,
                     decoder_start_token_id: int) -> dict[str, torch.Tensor]:
    """`pad_features` plus `decoder_input_ids = shift_right(labels)`, like `DataCollatorForSeq2Seq(model=...)`:
    the model then needs no labels to run, which a `compute_loss_func` requires (the Trainer pops them)."""
    batch = pad_features(features, pad_token_id)
    batch["decoder_input_ids"] = shift_right(batch["labels"], decoder_start_token_id, pad_token_id)
    return batch


def trainer_sgd_update(model: torch.nn.Module, features: list[dict[str, list[int]]],
                       gradient_accumulation_steps: int, lr: float = 0.1, seed: int = 0,
                       compute_loss_func=None, accepts_loss_kwargs: bool | None = None,
                       label_smoothing_factor: float = 0.0, optim: str = "sgd") -> torch.Tensor:
    """One `Seq2SeqTrainer` optimizer step over all `features` (plain SGD by default, or `optim="adamw_torch"`,
    the Trainer's default optimizer; no weight decay, no clipping, constant lr); returns the parameter change.
    Micro-batches hold len(features) / gradient_accumulation_steps examples, padded by `seq2seq_collator` with the
    model config's pad and decoder start ids.

    `accepts_loss_kwargs` overrides what the Trainer reads from the model (None: leave the model as is);
    `label_smoothing_factor` > 0 makes the Trainer compute the loss with its `LabelSmoother`.
    """
    if gradient_accumulation_steps < 1 or len(features) % gradient_accumulation_steps:
        raise ValueError(f"gradient_accumulation_steps must divide the {len(features)} features, "
                         f"got {gradient_accumulation_steps}")
    if accepts_loss_kwargs is not None:
        model.accepts_loss_kwargs = accepts_loss_kwargs
    before = parameters_to_vector(model.parameters()).detach()
    with tempfile.TemporaryDirectory() as output_dir:
        args = Seq2SeqTrainingArguments(
            output_dir=output_dir, per_device_train_batch_size=len(features) // gradient_accumulation_steps,
            gradient_accumulation_steps=gradient_accumulation_steps, max_steps=1, learning_rate=lr, optim=optim,
            lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=0.0, seed=seed,
            eval_strategy="no", save_strategy="no", logging_strategy="no", report_to="none", use_cpu=True,
            disable_tqdm=True, label_smoothing_factor=label_smoothing_factor,
        )
        trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=_ListDataset(features),
                                 data_collator=partial(seq2seq_collator, pad_token_id=model.config.pad_token_id,
                                                       decoder_start_token_id=model.config.decoder_start_token_id),
                                 compute_loss_func=compute_loss_func)
        for callback in (PrinterCallback, ProgressCallback):
            trainer.remove_callback(callback)
        trainer.train()
    model.eval()
    return parameters_to_vector(model.parameters()).detach() - before


def update_ratio(update: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """How `update` compares with `reference`: norm ratio, projection <u, r> / <r, r>, cosine, max |u - r|."""
    update, reference = update.double(), reference.double()
    return {
        "norm_ratio": float(update.norm() / reference.norm()),
        "projection": float(update @ reference / (reference @ reference)),
        "cosine": float(F.cosine_similarity(update, reference, dim=0)),
        "max_abs_diff": float((update - reference).abs().max()),
    }


def relative_change(changed: torch.Tensor, reference: torch.Tensor) -> float:
    """||changed - reference|| / ||reference|| (nan if the reference is zero)."""
    norm = float(reference.double().norm())
    return float((changed.double() - reference.double()).norm()) / norm if norm > 0 else math.nan
