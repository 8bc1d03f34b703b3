"""Notebook 13: HF behaviours measured on whichever transformers this Python imports, one JSON record per version.

Run by each environment's own Python in a subprocess (`make drift` runs .venv, .venv-tf4.46 and .venv-tf4.57):

    PYTHONPATH=. .venv-tf4.46/bin/python -m utils.experiments.version_drift --out build/drift/4.46.json

so this module imports only the standard library, torch and names that exist in transformers 4.46, 4.57 and 5.24
(anything else through `getattr` or inside a measurement), and nothing of this repository. Every behaviour is measured
on tiny random T5 / Marian configs (no downloads) inside its own try: one that fails records its error and the others
still run. `run_version` is the driver side: it starts one environment's Python and returns its record, or raises
`DriftEnvironmentError` naming the version when the environment is missing, broken or the wrong release.
"""

import argparse
import contextlib
import copy
import dataclasses
import datetime
import importlib
import importlib.metadata
import importlib.util
import inspect
import io
import json
import logging
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

__all__ = ["BEHAVIOURS", "CONTROLS", "GA_STEPS", "UPSTREAM", "DriftEnvironmentError", "cell_text",
           "load_records", "matrix_rows", "measure", "run_version", "source_citations", "value_of", "version_key"]

GA_STEPS = 4  # gradient_accumulation_steps k of the GA measurement (8 examples: micro-batches of 2 vs one batch of 8)

# behaviour id -> what is measured; the value each version records is in its record's "behaviours"[id]["value"]
BEHAVIOURS = {
    "ga_ratio_sgd": f"|update| with gradient_accumulation_steps={GA_STEPS} / |update| of the full batch, "
                    "Seq2SeqTrainer, SGD, T5 (1 = right, k = the pitfall)",
    "ga_ratio_adamw": "the same ratio with AdamW (Adam's first step normalises the gradient's scale)",
    "t5_forward_takes_kwargs": "T5ForConditionalGeneration.forward has **kwargs (the Trainer then trusts the model "
                               "to normalise the loss over the accumulated batch)",
    "average_tokens_across_devices_default": "TrainingArguments' default for average_tokens_across_devices",
    "t5config_decoder_start_token_id": "T5Config().decoder_start_token_id",
    "t5config_forward_with_labels": "T5 built from T5Config() called with labels only",
    "t5_untied_lm_head": "T5Config(tie_word_embeddings=False) (v1.1-style): lm_head.weight is shared.weight?",
    "t5_default_attn_implementation": "the attention implementation a T5 built from a config gets",
    "bare_generate_new_tokens": "new tokens of a bare generate() when eos never comes",
    "generation_setting_on_model_config": "num_beams=3 set on model.config after building, then generate()",
    "translation_pipeline": "pipeline('translation', model=T5, tokenizer=...) runs",
    "target_tokenizer_context": "tokenizer.as_target_tokenizer() (the labels context manager) exists and runs",
    "seq2seq_trainer_tokenizer_kwarg": "Seq2SeqTrainer(tokenizer=...) accepted",
    "constrained_beam_search": "generate(num_beams=2, force_words_ids=...) runs",
    "batched_generation_t5": "T5: greedy generate() on a padded batch == each source alone",
    "batched_generation_marian": "Marian: greedy generate() on a padded batch == each source alone",
}
# controls: behaviours that should be the same on every version
CONTROLS = {
    "shift_right_t5": "T5's _shift_right(labels) == start token + labels[:-1], -100 -> pad (max |diff|)",
    "shift_right_marian": "Marian's shift_tokens_right == the same, with Marian's start and pad ids (max |diff|)",
    "causal_mask_t5": "T5 decoder: one teacher-forced pass == one call per prefix (max |logit diff|)",
    "causal_mask_marian": "Marian decoder: one pass == one call per prefix (max |logit diff|)",
    "loss_ignores_minus_100": "T5 loss with -100 labels == cross-entropy over the kept positions (|diff|)",
    "greedy_generate_equals_loop_t5": "generate(num_beams=1, do_sample=False, max_new_tokens=8) == argmax loop, T5",
    "greedy_generate_equals_loop_marian": "the same for Marian",
}

PR = "https://github.com/huggingface/transformers/pull/"
ISSUE = "https://github.com/huggingface/transformers/issues/"
# behaviour -> the upstream change behind a difference between releases (PRs, issues, release notes), with links
UPSTREAM = {
    "ga_ratio_sgd": f"4.46.0 stopped dividing the loss by k before backward and left it to models that take loss "
                    f"kwargs ([PR #34191]({PR}34191)); models that take none (T5 on 4.x) got k times the gradient "
                    f"([issue #37766]({ISSUE}37766), 4.47.1); 4.48.0 scales the loss before backward again "
                    f"([PR #35207]({PR}35207)); on 5.x T5's forward takes `**kwargs`, so the Trainer trusts the model "
                    f"to normalise and skips the division ([issue #47688]({ISSUE}47688); 5.24 adds "
                    f"`Trainer.loss_is_scaled_for_ga`)",
    "t5_forward_takes_kwargs": "5.x model code passes `**kwargs: Unpack[TransformersKwargs]` through every T5 forward "
                               "(the attention-interface refactor); the Trainer reads the signature "
                               "(`model_accepts_loss_kwargs`)",
    "average_tokens_across_devices_default": f"default False -> True ([PR #39395]({PR}39395), released in 4.54)",
    "t5config_decoder_start_token_id": "4.x `PretrainedConfig.__init__` sets `decoder_start_token_id` (None) on every "
                                       "config; 5.x sets no generic token ids on configs that do not declare them "
                                       "(upstream PR not identified here; see the cited lines)",
    "t5config_forward_with_labels": "the same `_shift_right` check in all three; 5.24 fails one line earlier, reading "
                                    "the attribute that T5Config no longer has",
    "t5_untied_lm_head": f"5.x forces `tie_word_embeddings=True` for T5 and keeps the v1.1 meaning as "
                         f"`scale_decoder_outputs` ([PR #42815]({PR}42815); detection fixed in [PR #43681]({PR}43681))",
    "t5_default_attn_implementation": f"T5 moved to the attention interface with SDPA "
                                      f"([PR #47014]({PR}47014)); 4.x T5 declares no `_supports_sdpa`",
    "bare_generate_new_tokens": f"4.46 counts the decoder start token in the default `max_length=20` (19 new); later "
                                f"releases add the branch 'by default let's always generate 20 new tokens' "
                                f"([issue #35765]({ISSUE}35765), which cites [PR #34814]({PR}34814))",
    "generation_setting_on_model_config": f"the 4.x warning became a ValueError "
                                          f"([PR #41695]({PR}41695), 'Delete generation params from model config')",
    "translation_pipeline": f"deprecated in [PR #41996]({PR}41996), deleted for v5 in [PR #43256]({PR}43256)",
    "target_tokenizer_context": f"deprecated on 4.x ('will be removed in v5 of Transformers', the cited lines); "
                                f"gone with the v5 tokenization rework ([RFC issue #40938]({ISSUE}40938))",
    "seq2seq_trainer_tokenizer_kwarg": f"renamed `processing_class` with `@deprecate_kwarg(version='5.0.0')` in 4.46; "
                                       f"removed in [PR #41128]({PR}41128)",
    "constrained_beam_search": f"soft-deprecated in [PR #38406]({PR}38406); moved to the Hub repo "
                               f"transformers-community/constrained-beam-search, `trust_remote_code=True` required "
                               f"([PR #40518]({PR}40518)); its classes removed for v5 ([PR #41223]({PR}41223))",
    "batched_generation_t5": f"broke in 4.49.0, a release not measured here ([issue #36293]({ISSUE}36293), "
                             f"[issue #36338]({ISSUE}36338))",
    "batched_generation_marian": f"as for T5 ([issue #36293]({ISSUE}36293), [issue #36338]({ISSUE}36338))",
}

# installed source lines each behaviour is read from: (module, regex); the record cites file:line per version
# (module, regex, "Class.function"): only that function's lines
SOURCE_PROBES = {
    "ga_ratio_sgd": [
        ("transformers.trainer", r"self\.model_accepts_loss_kwargs\s*="),
        ("transformers.trainer", r"loss_is_scaled_for_ga"),
        ("transformers.trainer", r"loss\s*=\s*loss\s*/\s*self\.(args\.)?(current_)?gradient_accumulation_steps"),
        ("transformers.trainer", r"return loss\.detach\(\) / self\.args\.gradient_accumulation_steps"),
    ],
    "t5_forward_takes_kwargs": [
        ("transformers.models.t5.modeling_t5", r"def forward\(", "T5ForConditionalGeneration.forward"),
        ("transformers.models.t5.modeling_t5", r"^\s+\*\*kwargs", "T5ForConditionalGeneration.forward"),
    ],
    "average_tokens_across_devices_default": [
        ("transformers.training_args", r"average_tokens_across_devices:"),
        ("transformers.training_args", r"self\.average_tokens_across_devices\s*="),
    ],
    "t5config_decoder_start_token_id": [
        ("transformers.configuration_utils", r"self\.decoder_start_token_id\s*="),
        ("transformers.models.t5.configuration_t5", r"decoder_start_token_id"),
    ],
    "t5config_forward_with_labels": [("transformers.models.t5.modeling_t5", r"decoder_start_token_id = self\.config"),
                                     ("transformers.models.t5.modeling_t5", r"has to be defined")],
    "t5_untied_lm_head": [
        ("transformers.models.t5.modeling_t5", r"_tied_weights_keys"),
        ("transformers.models.t5.configuration_t5", r"tie_word_embeddings"),
    ],
    "t5_default_attn_implementation": [
        ("transformers.models.t5.modeling_t5", r"_supports_sdpa|_supports_attention_backend")],
    "bare_generate_new_tokens": [
        ("transformers.generation.configuration_utils", r"self\.max_length\s*="),
        ("transformers.generation.utils", r"always generate 20 new tokens|model-agnostic default `max_length`"),
    ],
    "generation_setting_on_model_config": [
        ("transformers.generation.utils", r"modified the pretrained model configuration"),
        ("transformers.generation.utils",
         r"deprecated strategy to control generation|not supported anymore\. Please use and modify"),
    ],
    "translation_pipeline": [("transformers.pipelines", r"\"translation\"")],
    "target_tokenizer_context": [("transformers.tokenization_utils_base", r"def as_target_tokenizer")],
    "seq2seq_trainer_tokenizer_kwarg": [
        ("transformers.trainer", r"deprecate_kwarg\(\s*\"tokenizer\"|processing_class: \S")],
    "constrained_beam_search": [
        ("transformers.generation.utils", r"def _constrained_beam_search|community/constrained-beam-search")],
}

VOCAB = 64  # tiny vocabulary; ids 0 pad, 1 eos, 2 unk, 3.. words (Marian: pad and start 63)
T5_IDS = {"pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0}
MARIAN_IDS = {"pad_token_id": VOCAB - 1, "eos_token_id": 1, "decoder_start_token_id": VOCAB - 1}


class DriftEnvironmentError(RuntimeError):
    """An environment of `make drift` is missing, broken, or holds another release than its label says."""


# ---------------------------------------------------------------------------------------------- tiny models, inputs


def _t5(**overrides):
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    fields = dict(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
                  dropout_rate=0.0, **T5_IDS)
    fields.update(overrides)
    torch.manual_seed(0)
    return _redraw(T5ForConditionalGeneration(T5Config(**fields)).eval())


def _marian():
    import torch
    from transformers import MarianConfig, MarianMTModel

    config = MarianConfig(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                          decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
                          dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, forced_eos_token_id=None,
                          **MARIAN_IDS)
    torch.manual_seed(0)
    return _redraw(MarianMTModel(config).eval())


def _redraw(model, std: float = 1.0):
    """Every parameter drawn again from N(0, std) in name order with one generator: the same weights on every
    version wherever the parameter names agree (the versions' init code differs), and outputs that are not one
    repeated token (T5's init on a 64-word vocabulary predicts id 0 everywhere)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _, parameter in sorted(model.named_parameters(), key=lambda item: item[0]):
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
    return model


def _ids(rows: int, length: int, seed: int):
    import torch

    generator = torch.Generator().manual_seed(seed)
    return torch.randint(3, VOCAB - 1, (rows, length), generator=generator)


def _tokenizer():
    """A word-level fast tokenizer built in memory: 'w3 w4' -> [3, 4, 1] (eos appended), no download."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{f"w{i}": i for i in range(3, VOCAB)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    fast = getattr(transformers, "PreTrainedTokenizerFast", None) or transformers.TokenizersBackend
    return fast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


@contextlib.contextmanager
def _captured():
    """Warnings (warnings module and transformers' logger) raised inside, as a list of short strings."""
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield messages
        finally:
            logger.removeHandler(handler)
            messages.extend(str(w.message) for w in caught)


def _short(text: str, limit: int = 240) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error(exc: BaseException) -> str:
    return _short(f"{type(exc).__name__}: {exc}")


# ------------------------------------------------------------------------------------------------ trainer behaviours


class _Examples:
    """A map-style dataset of equal-length examples (no padding: the mean of micro-batch means is the full mean)."""

    def __init__(self, n: int):
        self.input_ids, self.labels = _ids(n, 6, seed=1), _ids(n, 5, seed=2)

    def __len__(self):
        return len(self.input_ids)

    def __getitem__(self, i):
        return {"input_ids": self.input_ids[i], "labels": self.labels[i]}


def _stack(features):
    import torch

    return {key: torch.stack([f[key] for f in features]) for key in features[0]}


def _trainer_update(model, optim: str, accumulation: int, n: int = 8) -> tuple:
    """One Seq2SeqTrainer optimizer step over n examples; (parameter change, trainer.model_accepts_loss_kwargs)."""
    import torch
    from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments

    before = torch.cat([p.detach().flatten() for p in model.parameters()]).clone()
    with tempfile.TemporaryDirectory() as output_dir:
        args = Seq2SeqTrainingArguments(
            output_dir=output_dir, per_device_train_batch_size=n // accumulation,
            gradient_accumulation_steps=accumulation, max_steps=1, learning_rate=0.1, optim=optim,
            lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=0.0, seed=0,
            eval_strategy="no", save_strategy="no", logging_strategy="no", report_to="none", use_cpu=True,
            disable_tqdm=True)
        trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=_Examples(n), data_collator=_stack)
        trainer.train()
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    return after - before, getattr(trainer, "model_accepts_loss_kwargs", "(no attribute)")


def _ga_ratio(optim: str) -> tuple:
    model = _t5()
    full, _ = _trainer_update(copy.deepcopy(model), optim, 1)
    accumulated, accepts = _trainer_update(copy.deepcopy(model), optim, GA_STEPS)
    full, accumulated = full.double(), accumulated.double()
    ratio = float(accumulated.norm() / full.norm())
    detail = {"norm_ratio": ratio, "projection": float(accumulated @ full / (full @ full)),
              "k": GA_STEPS, "optim": optim, "trainer_model_accepts_loss_kwargs": accepts,
              # closeness of the accumulated update to 1x and to kx the full-batch one, for the tolerance model
              "max_abs_diff_vs_1x": float((accumulated - full).abs().max()),
              "max_abs_diff_vs_kx": float((accumulated - GA_STEPS * full).abs().max()),
              "magnitude_1x": float(full.abs().max()), "magnitude_kx": float(GA_STEPS * full.abs().max())}
    return round(ratio, 4), detail


def _ga_ratio_sgd():
    return _ga_ratio("sgd")


def _ga_ratio_adamw():
    return _ga_ratio("adamw_torch")


def _t5_forward_takes_kwargs():
    from transformers import T5ForConditionalGeneration

    parameters = inspect.signature(T5ForConditionalGeneration.forward).parameters.values()
    takes = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    return takes, {"accepts_loss_kwargs": getattr(T5ForConditionalGeneration, "accepts_loss_kwargs", "(no attribute)")}


def _average_tokens_across_devices_default():
    from transformers import Seq2SeqTrainingArguments

    fields = {f.name: f.default for f in dataclasses.fields(Seq2SeqTrainingArguments)}
    if "average_tokens_across_devices" not in fields:
        return "(no such argument)", {}
    with tempfile.TemporaryDirectory() as output_dir:
        instance = Seq2SeqTrainingArguments(output_dir=output_dir, use_cpu=True, report_to="none")
        after_init = instance.average_tokens_across_devices
    return fields["average_tokens_across_devices"], {"single_process_value_after_init": after_init}


# ---------------------------------------------------------------------------------------------- config and modules


def _t5config_decoder_start_token_id():
    from transformers import T5Config

    try:
        return repr(T5Config().decoder_start_token_id), {}
    except Exception as exc:  # 5.x: the attribute is gone
        return type(exc).__name__, {"error": _error(exc)}


def _t5config_forward_with_labels():
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=2)
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(config).eval()
    try:
        loss = model(input_ids=_ids(2, 5, 3), labels=_ids(2, 4, 4)).loss
        return "runs", {"loss": float(loss)}
    except Exception as exc:
        return type(exc).__name__, {"error": _error(exc)}


def _t5_untied_lm_head():
    model = _t5(tie_word_embeddings=False, feed_forward_proj="gated-gelu")
    tied = model.lm_head.weight.data_ptr() == model.shared.weight.data_ptr()
    return "tied" if tied else "untied", {"config_tie_word_embeddings": model.config.tie_word_embeddings}


def _t5_default_attn_implementation():
    model = _t5()
    return str(getattr(model.config, "_attn_implementation", "(no attribute)")), {}


# ------------------------------------------------------------------------------------------------------- generation


def _new_tokens(model, sequences) -> int:
    return int(sequences.shape[1]) - 1  # encoder-decoder: the first position is the decoder start token


def _bare_generate_new_tokens():
    model = _t5()
    model.generation_config.eos_token_id = None  # eos switched off: only the length rule stops
    sequences = model.generate(_ids(1, 6, 5))
    return _new_tokens(model, sequences), {"generation_config_max_length": model.generation_config.max_length,
                                           "generation_config_max_new_tokens": model.generation_config.max_new_tokens}


def _generation_setting_on_model_config():
    """num_beams=3 written on model.config after the model exists: does generate() use it, warn, or raise?"""
    model = _t5()
    seen: list[int] = []

    def count_rows(module, args, kwargs):
        seen.append(len(kwargs.get("input_ids", args[0] if args else [])))

    model.get_decoder().register_forward_pre_hook(count_rows, with_kwargs=True)
    model.config.num_beams = 3
    with _captured() as messages:
        try:
            model.generate(_ids(2, 6, 5), max_new_tokens=3)
        except Exception as exc:
            return "raises", {"error": _error(exc), "warnings": [_short(m) for m in messages]}
    honoured = bool(seen) and seen[0] == 2 * 3
    warned = any("generation" in m.lower() or "config" in m.lower() for m in messages)
    value = ("honoured" if honoured else "ignored") + (" with a warning" if warned else "")
    return value, {"decoder_batch_first_call": seen[0] if seen else None,
                   "warnings": [_short(m) for m in messages][:3]}


def _translation_pipeline():
    import transformers

    supported = getattr(getattr(transformers, "pipelines", None), "SUPPORTED_TASKS", {})
    try:
        translator = transformers.pipeline("translation", model=_t5(), tokenizer=_tokenizer(), max_new_tokens=3)
        out = translator("w3 w4 w5")
        return "runs", {"in_SUPPORTED_TASKS": "translation" in supported, "output": _short(out)}
    except Exception as exc:
        return "absent", {"in_SUPPORTED_TASKS": "translation" in supported, "error": _error(exc)}


def _target_tokenizer_context():
    tokenizer = _tokenizer()
    if not hasattr(tokenizer, "as_target_tokenizer"):
        return "absent", {}
    with _captured() as messages, tokenizer.as_target_tokenizer():
        ids = tokenizer("w3 w4")["input_ids"]
    return "present", {"ids": ids, "warnings": [_short(m) for m in messages][:2]}


def _seq2seq_trainer_tokenizer_kwarg():
    from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments

    with tempfile.TemporaryDirectory() as output_dir, _captured() as messages:
        args = Seq2SeqTrainingArguments(output_dir=output_dir, use_cpu=True, report_to="none")
        try:
            trainer = Seq2SeqTrainer(model=_t5(), args=args, tokenizer=_tokenizer())
        except Exception as exc:
            return "rejected", {"error": _error(exc)}
    stored = getattr(trainer, "processing_class", getattr(trainer, "tokenizer", None))
    value = "accepted with a warning" if any("tokenizer" in m for m in messages) else "accepted"
    return value, {"stored_as_processing_class": stored is not None, "warnings": [_short(m) for m in messages][:2]}


def _constrained_beam_search():
    import transformers

    model = _t5()
    try:
        sequences = model.generate(_ids(1, 6, 5), num_beams=2, force_words_ids=[[7]], max_new_tokens=4)
        return "runs", {"has_PhrasalConstraint": hasattr(transformers, "PhrasalConstraint"),
                        "forced_word_in_output": 7 in sequences[0].tolist()}
    except Exception as exc:
        return "absent", {"has_PhrasalConstraint": hasattr(transformers, "PhrasalConstraint"), "error": _error(exc)}


def _batched_generation(model, pad_token_id: int):
    import torch

    lengths = [6, 3, 5]
    sources = [_ids(1, n, 10 + i)[0] for i, n in enumerate(lengths)]
    input_ids = torch.full((len(sources), max(lengths)), pad_token_id)
    attention_mask = torch.zeros_like(input_ids)
    for i, source in enumerate(sources):
        input_ids[i, : len(source)], attention_mask[i, : len(source)] = source, 1
    kwargs = dict(num_beams=1, do_sample=False, max_new_tokens=8)
    batched = model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
    alone = [model.generate(input_ids=s[None], **kwargs)[0] for s in sources]

    def strip(row):
        return [t for t in row.tolist() if t != pad_token_id]

    equal = [strip(b) == strip(a) for b, a in zip(batched, alone, strict=True)]
    return all(equal), {"per_source_equal": equal, "batched": [strip(b) for b in batched]}


def _batched_generation_t5():
    return _batched_generation(_t5(), T5_IDS["pad_token_id"])


def _batched_generation_marian():
    return _batched_generation(_marian(), MARIAN_IDS["pad_token_id"])


# --------------------------------------------------------------------------------------------------------- controls


def _labels_with_ignored():
    labels = _ids(3, 5, 6)
    labels[0, 3:] = -100
    labels[2, 4:] = -100
    return labels


def _hand_shift_right(labels, decoder_start_token_id: int, pad_token_id: int):
    import torch

    start = torch.full_like(labels[:, :1], decoder_start_token_id)
    shifted = torch.cat([start, labels[:, :-1]], dim=1)  # (B, T)
    return shifted.masked_fill(shifted == -100, pad_token_id)


def _shift_right_t5():
    labels = _labels_with_ignored()
    hf = _t5()._shift_right(labels)
    diff = int((hf - _hand_shift_right(labels, 0, 0)).abs().max())
    return diff, {}


def _shift_right_marian():
    from transformers.models.marian.modeling_marian import shift_tokens_right

    labels = _labels_with_ignored()
    pad, start = MARIAN_IDS["pad_token_id"], MARIAN_IDS["decoder_start_token_id"]
    diff = int((shift_tokens_right(labels, pad, start) - _hand_shift_right(labels, start, pad)).abs().max())
    return diff, {}


def _causal_mask(model, start: int):
    import torch

    input_ids, decoder_input_ids = _ids(2, 6, 7), _ids(2, 6, 8)
    decoder_input_ids[:, 0] = start
    with torch.no_grad():
        one_pass = model(input_ids=input_ids, decoder_input_ids=decoder_input_ids, use_cache=False).logits  # (B, T, V)
        loop = torch.stack([model(input_ids=input_ids, decoder_input_ids=decoder_input_ids[:, : t + 1],
                                  use_cache=False).logits[:, t] for t in range(decoder_input_ids.shape[1])], dim=1)
    return float((one_pass - loop).abs().max()), {"magnitude": float(loop.abs().max())}


def _causal_mask_t5():
    return _causal_mask(_t5(), T5_IDS["decoder_start_token_id"])


def _causal_mask_marian():
    return _causal_mask(_marian(), MARIAN_IDS["decoder_start_token_id"])


def _loss_ignores_minus_100():
    import torch
    import torch.nn.functional as F

    model, labels, input_ids = _t5(), _labels_with_ignored(), _ids(3, 6, 9)
    with torch.no_grad():
        loss = model(input_ids=input_ids, labels=labels).loss
        logits = model(input_ids=input_ids, decoder_input_ids=_hand_shift_right(labels, 0, 0)).logits  # (B, T, V)
    kept = labels != -100
    expected = F.cross_entropy(logits[kept], labels[kept])
    return float((loss - expected).abs()), {"magnitude": float(expected.abs()), "loss": float(loss)}


def _greedy_equals_loop(model, ids: dict):
    import torch

    input_ids, steps = _ids(1, 6, 11), 8
    generated = model.generate(input_ids=input_ids, num_beams=1, do_sample=False, max_new_tokens=steps)[0].tolist()
    decoder_input_ids = torch.tensor([[ids["decoder_start_token_id"]]])
    with torch.no_grad():
        for _ in range(steps):
            logits = model(input_ids=input_ids, decoder_input_ids=decoder_input_ids, use_cache=False).logits
            next_id = logits[0, -1].argmax()
            decoder_input_ids = torch.cat([decoder_input_ids, next_id.view(1, 1)], dim=1)
            if int(next_id) == ids["eos_token_id"]:
                break
    loop = decoder_input_ids[0].tolist()
    return generated == loop, {"generate": generated, "loop": loop}


def _greedy_generate_equals_loop_t5():
    return _greedy_equals_loop(_t5(), T5_IDS)


def _greedy_generate_equals_loop_marian():
    return _greedy_equals_loop(_marian(), MARIAN_IDS)


# ---------------------------------------------------------------------------------------------------------- records


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def _version_label(version: str) -> str:
    """'4.46.3' -> '4.46': the column name of a release."""
    return ".".join(version.split(".")[:2])


def _source_lines(probes: list[tuple[str, str]]) -> list[dict]:
    """Each probe's matching lines in the installed source: file relative to site-packages, line number, text."""
    found = []
    for module, pattern, *within in probes:
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.origin:
            found.append({"module": module, "pattern": pattern, "file": None, "lines": []})
            continue
        path = Path(spec.origin)
        numbered = list(enumerate(path.read_text(encoding="utf-8").splitlines(), start=1))
        if within:  # only the lines of one function, e.g. T5ForConditionalGeneration.forward
            target = importlib.import_module(module)
            for attribute in within[0].split("."):
                target = getattr(target, attribute)
            body, first = inspect.getsourcelines(target)
            numbered = numbered[first - 1: first - 1 + len(body)]
        relative = path.as_posix().split("site-packages/")[-1]
        lines = [{"line": number, "text": _short(text.strip(), 160)} for number, text in numbered
                 if re.search(pattern, text)]
        found.append({"module": module, "pattern": pattern, "file": relative, "lines": lines[:6]})
    return found


def measure(only: list[str] | None = None) -> dict:
    """Every behaviour and control on the transformers this Python imports: one record (JSON-ready)."""
    import torch
    import transformers

    torch.set_num_threads(1)
    transformers.logging.set_verbosity_warning()
    record = {
        "transformers": transformers.__version__, "label": _version_label(transformers.__version__),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "versions": {name: _package_version(name) for name in
                     ("torch", "tokenizers", "huggingface-hub", "accelerate", "safetensors", "sentencepiece", "numpy")},
        "python": platform.python_version(), "behaviours": {}, "controls": {}, "sources": {}, "seconds": {},
    }
    for section, names in (("behaviours", BEHAVIOURS), ("controls", CONTROLS)):
        for name in names:
            if only and name not in only:
                continue
            start = time.perf_counter()
            try:
                value, detail = globals()["_" + name]()  # the function _<id> measures <id>
                record[section][name] = {"value": value, "detail": detail}
            except Exception as exc:  # one failing behaviour records its error; the others still run
                record[section][name] = {"value": None, "error": _error(exc),
                                         "traceback": traceback.format_exc(limit=-3)[-1500:]}
            record["seconds"][name] = round(time.perf_counter() - start, 3)
    record["sources"] = {name: _source_lines(probes) for name, probes in SOURCE_PROBES.items()}
    return json.loads(json.dumps(record, default=str))


# ------------------------------------------------------------------------------------------- reading the records


def version_key(label: str) -> tuple[int, ...]:
    """'4.46' -> (4, 46), so 4.46 < 4.57 < 5.24."""
    return tuple(int(part) for part in label.split(".") if part.isdigit())


def load_records(directory: str | Path) -> dict[str, dict]:
    """Every <label>.json record in `directory` (written by `make drift`), by label, oldest release first.
    A file that is not a record of this module is refused with its name."""
    records = {}
    for path in sorted(Path(directory).glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        if not {"transformers", "label", "behaviours", "controls"} <= set(record):
            raise ValueError(f"{path} is not a version-drift record (keys: {sorted(record)})")
        record["file"] = path.name
        records[record["label"]] = record
    return dict(sorted(records.items(), key=lambda item: version_key(item[0])))


def value_of(record: dict, name: str):
    """The measured value of a behaviour or control in one record (None when it raised or is missing)."""
    cell = record["behaviours"].get(name) or record["controls"].get(name) or {}
    return cell.get("value")


def cell_text(record: dict, name: str) -> str:
    """A matrix cell: the value, or 'raised <error>' when the measurement itself failed."""
    cell = record["behaviours"].get(name) or record["controls"].get(name)
    if cell is None:
        return "(not measured)"
    if "error" in cell:
        return f"measurement raised: {cell['error'][:80]}"
    value = cell["value"]
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def matrix_rows(records: dict[str, dict]) -> list[dict]:
    """One row per behaviour and control: what it is, the value on each version, and whether they differ."""
    rows = []
    for kind, names in (("behaviour", BEHAVIOURS), ("control", CONTROLS)):
        for name, what in names.items():
            cells = {label: cell_text(record, name) for label, record in records.items()}
            rows.append({"id": name, "kind": kind, "what": what, **cells,
                         "differs": len(set(cells.values())) > 1})
    return rows


def source_citations(records: dict[str, dict], name: str) -> dict[str, list[str]]:
    """For one behaviour: per version, the installed source lines its probes matched ('file:line  text')."""
    cited = {}
    for label, record in records.items():
        lines = []
        for probe in record.get("sources", {}).get(name, []):
            if probe["file"] is None:
                lines.append(f"{probe['module']}: module absent")
            lines += [f"{probe['file']}:{hit['line']}  {hit['text']}" for hit in probe["lines"][:3]]
        cited[label] = lines
    return cited


# ----------------------------------------------------------------------------------------------------------- driver


def run_version(label: str, python: str | Path, out: str | Path | None = None, timeout: float = 600.0) -> dict:
    """Run this module under `python` (one environment) and return its record; also write it to `out` if given.

    Raises DriftEnvironmentError naming `label` when the interpreter is missing, the measurement cannot start
    (transformers not importable, a crash), or the environment holds another release than `label`."""
    python = Path(python)
    repo_root = Path(__file__).resolve().parents[2]
    if not python.exists():
        requirements = f"requirements/drift-{label}.txt"
        how = (f"make drift installs it from {requirements}" if (repo_root / requirements).exists()
               else f"there is no {requirements} to install it from")
        raise DriftEnvironmentError(f"transformers {label}: no environment, {python} does not exist ({how})")
    env = {**os.environ, "PYTHONPATH": str(repo_root), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "PYTHONNOUSERSITE": "1"}
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "record.json"
        try:
            done = subprocess.run([str(python), "-m", "utils.experiments.version_drift", "--out", str(target)],
                                  cwd=repo_root, env=env, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DriftEnvironmentError(f"transformers {label}: {python} could not run the measurement: "
                                        f"{_error(exc)}") from exc
        if done.returncode != 0 or not target.exists():
            tail = "\n".join(done.stderr.strip().splitlines()[-6:])
            raise DriftEnvironmentError(f"transformers {label}: the measurement under {python} failed "
                                        f"(exit code {done.returncode}):\n{tail}")
        record = json.loads(target.read_text(encoding="utf-8"))
    if label != "main" and record["label"] != label:
        raise DriftEnvironmentError(f"transformers {label}: {python} imports transformers {record['transformers']}, "
                                    f"not {label}.* (reinstall with make drift)")
    executable = Path(python).absolute()  # repository-relative when inside it: no machine's path in a record
    inside = executable.is_relative_to(Path(repo_root).absolute())
    record["python_executable"] = str(executable.relative_to(Path(repo_root).absolute()) if inside else python)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(record, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    return record


def _drive(venvs: dict[str, str], out_dir: str | Path, include_main: bool = True) -> int:
    """`make drift`: the main Python and every venv (label -> folder), each record to out_dir/<label>.json.
    A broken environment is reported by name and skipped; exit code 1 if any was, else 0."""
    out_dir = Path(out_dir)
    jobs = [("main", Path(sys.executable))] if include_main else []
    jobs += [(label, Path(folder) / "bin" / "python") for label, folder in venvs.items()]
    failed = []
    for label, python in jobs:
        stamp = python.parent.parent / ".installed"
        start = time.perf_counter()
        try:
            if label != "main" and python.exists() and not stamp.exists():
                raise DriftEnvironmentError(f"transformers {label}: {python.parent.parent} is incomplete (no "
                                            ".installed stamp: its installation failed); rerun make drift")
            record = run_version(label, python)
        except DriftEnvironmentError as exc:
            print(f"drift: ERROR {exc}", file=sys.stderr)
            failed.append(label)
            continue
        path = out_dir / f"{record['label']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        errors = [n for s in ("behaviours", "controls") for n, cell in record[s].items() if "error" in cell]
        print(f"drift: transformers {record['transformers']} -> {path} ({time.perf_counter() - start:.0f} s"
              + (f"; behaviours that raised: {', '.join(errors)}" if errors else "") + ")")
    if failed:
        print(f"drift: {len(failed)} environment(s) failed: {', '.join(failed)}; the others were measured",
              file=sys.stderr)
    return 1 if failed else 0


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure HF behaviours on the transformers this Python imports "
                                                 "(--out FILE), or drive several environments (--venv, --out-dir).")
    parser.add_argument("--out", help="write this Python's record here")
    parser.add_argument("--only", nargs="*", help="measure only these behaviours (ids)")
    parser.add_argument("--venv", action="append", default=[], metavar="LABEL=FOLDER",
                        help="drive: an extra environment, e.g. 4.46=.venv-tf4.46 (repeatable)")
    parser.add_argument("--out-dir", help="drive: write <label>.json per environment here")
    args = parser.parse_args(argv)
    if args.out_dir:
        venvs = dict(item.split("=", 1) for item in args.venv)
        return _drive(venvs, args.out_dir)
    record = measure(args.only)
    text = json.dumps(record, indent=1) + "\n"
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    with contextlib.redirect_stdout(io.StringIO()) if "--out" in sys.argv else contextlib.nullcontext():
        code = _main()
    sys.exit(code)
