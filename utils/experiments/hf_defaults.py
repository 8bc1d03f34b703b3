"""HF's defaults, measured (notebook 12): what T5, Marian and BART do when you do not tell them otherwise.

Each family is built from two configs, every behavioural field untouched and only the sizes shrunk:

    default      T5Config(), MarianConfig(), BartConfig() with d_model / layers / heads / ffn of `SIZES[size]`
    checkpoint   the behavioural fields of the reference checkpoint's config.json and generation_config.json
                 (t5-small, Helsinki-NLP/opus-mt-en-de, facebook/bart-base), written out below, same shrunk sizes

The vocabulary keeps its default size in both kinds: the special ids are behavioural (MarianConfig's default
pad_token_id is 58100, which must be a row of the embedding), so the token ids are synthetic (random ids
above the special ones). Each model is then called in each of the `CALL_FORMS` and the function that
measures a cell returns a plain dict: which decoder inputs were built, the mask decoder self-attention
applied (read from what the attention kernel received), whether a cache came back, the loss reduction, or
the error raised. `measure_generation` does the same for `generate()`.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    GenerationConfig,
    MarianConfig,
    MarianMTModel,
    T5Config,
    T5ForConditionalGeneration,
)

from utils.handwritten.leakage_audit import (
    BLOCKED_BELOW,
    capture_sdpa_kernel_calls,
    capture_self_attention_masks,
    future_leakage,
    seq2seq_logits_fn,
)
from utils.handwritten.teacher_forcing import IGNORE_INDEX, masked_cross_entropy, shift_right
from utils.workbench import models
from utils.workbench.device import to_device
from utils.workbench.tolerance import compare

__all__ = [
    "ATTN_IMPLEMENTATIONS", "CALL_FORMS", "CHECKPOINTS", "CHECKPOINT_CONFIGS", "CHECKPOINT_GENERATION_CONFIGS",
    "CONFIG_KINDS", "FAMILIES", "MODEL_CLASSES", "UNCONFIRMED",
    "build_config", "build_hf_model", "build_matrix", "call_kwargs", "cell_text", "check_family", "decoder_is_causal",
    "describe_allowed", "example_batch", "matrix_rows", "measure_call",
    "measure_generation", "padding_only_4d_mask", "size_fields", "t5_v1_1_tie",
]

FAMILIES = ("t5", "marian", "bart")
CONFIG_KINDS = ("default", "checkpoint")
ATTN_IMPLEMENTATIONS = ("eager", "sdpa")
CALL_FORMS = ("labels_only", "decoder_input_ids_only", "neither", "decoder_attention_mask_2d",
              "decoder_attention_mask_4d")
CHECKPOINTS = {"t5": "t5-small", "marian": "Helsinki-NLP/opus-mt-en-de", "bart": "facebook/bart-base"}
MODEL_CLASSES = {"t5": (T5Config, T5ForConditionalGeneration), "marian": (MarianConfig, MarianMTModel),
                 "bart": (BartConfig, BartForConditionalGeneration)}

# Behavioural fields of each reference checkpoint's config.json on the HF hub (sizes left out: they are shrunk).
# Fields a config.json does not list keep the config class default, as they do under `from_pretrained`.
# Confirmed with the `search` tool over stored public code/docs (where it was found, in brackets):
#   t5-small        decoder_start_token_id 0, pad 0, eos 1, task_specific_params (translation_en_to_de:
#                   num_beams 4, max_length 300, early_stopping, prefix) [a file "Taken from HF:
#                   https://huggingface.co/t5-small/resolve/main/config.json", and T5 config.json copies]
#   opus-mt-en-de   pad 58100, eos 0, bos 0, decoder_start 58100, num_beams 4, max_length 512, bad_words_ids
#                   [[58100]], scale_embedding true, activation swish, max_position_embeddings 512
#                   [harisnae/multilingual-translator-offline README quoting the config.json of
#                   Xenova/opus-mt-en-de, whose _name_or_path is Helsinki-NLP/opus-mt-en-de]
#   bart-base       the generation fields (num_beams 4, no_repeat_ngram_size 3, early_stopping, forced_bos 0,
#                   forced_eos 2, decoder_start 2, pad 1, eos 2, bos 0) [public mirrors of its generation_config.json]
CHECKPOINT_CONFIGS = {
    "t5": {  # https://huggingface.co/google-t5/t5-small/blob/main/config.json
        "decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 1, "feed_forward_proj": "relu",
        "relative_attention_num_buckets": 32, "dropout_rate": 0.1, "layer_norm_epsilon": 1e-6,
        "initializer_factor": 1.0, "is_encoder_decoder": True,
        "task_specific_params": {"translation_en_to_de": {"early_stopping": True, "max_length": 300, "num_beams": 4,
                                                          "prefix": "translate English to German: "}},
    },
    "marian": {  # https://huggingface.co/Helsinki-NLP/opus-mt-en-de/blob/main/config.json
        "pad_token_id": 58100, "eos_token_id": 0, "bos_token_id": 0, "decoder_start_token_id": 58100,
        "scale_embedding": True, "activation_function": "swish", "max_position_embeddings": 512,
        "share_encoder_decoder_embeddings": True, "dropout": 0.1, "attention_dropout": 0.0,
        "activation_dropout": 0.0, "use_cache": True,
    },
    "bart": {  # https://huggingface.co/facebook/bart-base/blob/main/config.json
        "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "decoder_start_token_id": 2,
        "forced_bos_token_id": 0, "forced_eos_token_id": 2, "scale_embedding": False, "activation_function": "gelu",
        "dropout": 0.1, "attention_dropout": 0.1, "activation_dropout": 0.1, "max_position_embeddings": 1024,
    },
}
# generation_config.json of each checkpoint on the HF hub.
CHECKPOINT_GENERATION_CONFIGS = {
    "t5": {"decoder_start_token_id": 0, "eos_token_id": 1, "pad_token_id": 0},  # NOT CONFIRMED (from_model_config)
    "marian": {"bad_words_ids": [[58100]], "bos_token_id": 0, "decoder_start_token_id": 58100, "eos_token_id": 0,
               "forced_eos_token_id": 0,  # NOT CONFIRMED (MarianConfig's default, which from_model_config copies)
               "max_length": 512, "num_beams": 4, "pad_token_id": 58100},
    "bart": {"bos_token_id": 0, "decoder_start_token_id": 2, "early_stopping": True, "eos_token_id": 2,
             "forced_bos_token_id": 0, "forced_eos_token_id": 2, "no_repeat_ngram_size": 3, "num_beams": 4,
             "pad_token_id": 1},
}
UNCONFIRMED = {"t5": ["generation_config.json (taken as the ids of config.json)"],
               "marian": ["generation_config.json forced_eos_token_id", "renormalize_logits (left out)"],
               "bart": []}


def check_family(family: str) -> str:
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    return family


# ---------------------------------------------------------------- building


def size_fields(family: str, size: str = "tiny") -> dict:
    """The only fields changed from a config's defaults: d_model, layers, heads, ffn (and T5's d_kv)."""
    fields = models.size_fields(check_family(family), size)  # the one builder's size fields
    return {**fields, "num_decoder_layers": fields["num_layers"]} if family == "t5" else fields


def build_config(family: str, kind: str, size: str = "tiny"):
    """`T5Config()` & co. with shrunk sizes (kind "default"), or with the checkpoint's fields too ("checkpoint")."""
    if kind not in CONFIG_KINDS:
        raise ValueError(f"kind must be one of {CONFIG_KINDS}, got {kind!r}")
    behaviour = CHECKPOINT_CONFIGS[check_family(family)] if kind == "checkpoint" else {}
    return models.build_config(family, size=size, **behaviour, **size_fields(family, size))


def build_hf_model(family: str, kind: str, size: str = "tiny", attn_implementation: str = "eager", seed: int = 0):
    """A freshly initialised model in eval mode; kind "checkpoint" also carries the checkpoint's generation config."""
    config = build_config(family, kind, size)
    config._attn_implementation = attn_implementation
    torch.manual_seed(seed)
    model = MODEL_CLASSES[family][1](config).eval()
    if kind == "checkpoint":
        model.generation_config = GenerationConfig(**CHECKPOINT_GENERATION_CONFIGS[family])
    return model


def t5_v1_1_tie(size: str = "tiny", seed: int = 0) -> dict:
    """A T5 built from a v1.1-style config (`tie_word_embeddings=False`, gated-gelu, as the v1.1 checkpoints'
    config.json say): is its `lm_head` the shared input embedding anyway, and what does the config read back?"""
    v1_1 = {"tie_word_embeddings": False, "feed_forward_proj": "gated-gelu"}
    config = models.build_config("t5", size=size, **(CHECKPOINT_CONFIGS["t5"] | size_fields("t5", size) | v1_1))
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(config).eval()
    return {"config_tie_word_embeddings": config.tie_word_embeddings,
            "scale_decoder_outputs": getattr(config, "scale_decoder_outputs", None),
            "lm_head_is_shared_embedding": model.lm_head.weight.data_ptr() == model.shared.weight.data_ptr(),
            "is_gated_act": getattr(config, "is_gated_act", None)}


def _config_id(config, name: str) -> int | None:
    """A special id of a config, None where the config has no such attribute (T5Config() has no start id)."""
    return getattr(config, name, None)


def example_batch(config, seed: int = 0, batch_size: int = 2, source_length: int = 7,
                  target_length: int = 6) -> dict[str, torch.Tensor]:
    """Synthetic ids: random content ids above the special ones, eos last; row 1 padded (source with the pad id,
    labels with -100) by two positions. Also `decoder_input_ids` = shift_right(labels) with the config's pad as
    start when the config has no start id, and its 2-D `decoder_attention_mask` (0 at the shifted -100s)."""
    generator = torch.Generator().manual_seed(seed)
    pad, eos = config.pad_token_id, config.eos_token_id
    input_ids = torch.randint(10, 200, (batch_size, source_length), generator=generator)
    labels = torch.randint(10, 200, (batch_size, target_length), generator=generator)
    input_ids[:, -1], labels[:, -1] = eos, eos
    input_ids[1, -3], input_ids[1, -2:] = eos, pad  # row 1: real tokens, eos, 2 pads
    labels[1, -3] = eos
    labels[1, -2:] = IGNORE_INDEX
    attention_mask = (input_ids != pad).long()
    start = _config_id(config, "decoder_start_token_id")
    decoder_input_ids = shift_right(labels, pad if start is None else start, pad)
    decoder_attention_mask = torch.ones_like(labels)
    decoder_attention_mask[:, 1:] = (labels[:, :-1] != IGNORE_INDEX).long()
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
            "decoder_input_ids": decoder_input_ids, "decoder_attention_mask": decoder_attention_mask}


def padding_only_4d_mask(decoder_attention_mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, T) -> additive (B, 1, T, T): 0 where the key is real, finfo.min at padded keys; no causal part."""
    batch_size, length = decoder_attention_mask.shape
    blocked = decoder_attention_mask[:, None, None, :].expand(batch_size, 1, length, length) == 0  # (B, 1, T, T)
    return torch.zeros(blocked.shape, dtype=dtype).masked_fill(blocked, torch.finfo(dtype).min)


def call_kwargs(form: str, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The keyword arguments of one way of calling the model (the encoder inputs always go in)."""
    if form not in CALL_FORMS:
        raise ValueError(f"form must be one of {CALL_FORMS}, got {form!r}")
    kwargs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if form == "labels_only":
        return {**kwargs, "labels": batch["labels"]}
    if form == "decoder_input_ids_only":
        return {**kwargs, "decoder_input_ids": batch["decoder_input_ids"]}
    if form == "decoder_attention_mask_2d":
        return {**kwargs, "labels": batch["labels"], "decoder_attention_mask": batch["decoder_attention_mask"]}
    if form == "decoder_attention_mask_4d":
        return {**kwargs, "labels": batch["labels"],
                "decoder_attention_mask": padding_only_4d_mask(batch["decoder_attention_mask"])}
    return kwargs


# ---------------------------------------------------------------- watching a call


@contextmanager
def _watch_decoder_calls(model) -> Iterator[list[dict]]:
    """Record each call of the decoder stack: its input ids (or None) and batch size."""
    calls: list[dict] = []

    def hook(module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        embeds = kwargs.get("inputs_embeds")
        source = ids if ids is not None else embeds
        calls.append({"input_ids": None if ids is None else ids.detach().cpu(),
                      "batch_size": None if source is None else source.shape[0]})

    handle = model.get_decoder().register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield calls
    finally:
        handle.remove()


@contextmanager
def _watch_self_attention_kernel(model) -> Iterator[list[dict]]:
    """Record the mask that reaches the attention computation inside each decoder self-attention module.

    eager: the module's mask argument is added to the scores as is (`is_causal` unused). sdpa: what
    `torch.nn.functional.scaled_dot_product_attention` received (`attn_mask`, `is_causal`); for T5 this is the
    mask `create_position_bias_mask` built with the relative-position bias folded in. The list fills when the
    block ends, one record per module call, from the two captures of `utils.handwritten.leakage_audit`.
    """
    records: list[dict] = []
    with capture_self_attention_masks(model) as module_calls, capture_sdpa_kernel_calls(model) as kernel_calls:
        yield records
    kernels = kernel_calls if len(kernel_calls) == len(module_calls) else [None] * len(module_calls)  # eager: none
    for call, kernel in zip(module_calls, kernels, strict=True):
        records.append({"module": call["module"], "query_length": call["query_length"],
                        "module_mask": None if call["mask"] is None else call["mask"].cpu(),
                        "module_is_causal": call["is_causal"],
                        "kernel": None if kernel is None else {
                            "mask": None if kernel["mask"] is None else kernel["mask"].cpu(),
                            "is_causal": kernel["is_causal"]}})


def _allowed_from_record(record: dict, attn_implementation: str) -> torch.Tensor:
    """(B or 1, 1, T, T) boolean, True where the query may attend, from what the kernel received."""
    length = record["query_length"]
    if attn_implementation == "sdpa" and record["kernel"] is not None:
        mask, is_causal = record["kernel"]["mask"], record["kernel"]["is_causal"]
    else:
        mask, is_causal = record["module_mask"], False  # eager adds the mask and nothing else
    if mask is None:
        allowed = torch.ones(1, 1, length, length, dtype=torch.bool)
        return allowed.tril() if is_causal else allowed
    allowed = mask if mask.dtype == torch.bool else mask >= BLOCKED_BELOW  # additive: very negative = blocked
    return allowed.expand(-1, -1, length, length).all(dim=1, keepdim=True)  # T5's sdpa mask is per head


def describe_allowed(allowed: torch.Tensor, decoder_attention_mask: torch.Tensor) -> dict:
    """causal (no query sees a later key), pads_visible (the last query of a padded row sees its padded keys)."""
    length = allowed.shape[-1]
    allowed = allowed.expand(decoder_attention_mask.shape[0], 1, length, length)[:, 0]  # (B, T, T)
    future = torch.ones(length, length, dtype=torch.bool).triu(diagonal=1)
    causal = not bool(allowed[:, future].any())
    padded = decoder_attention_mask == 0  # (B, T)
    pads_visible = bool(allowed[:, -1][padded].all()) if padded.any() else None
    if causal:
        text = "causal only, pads visible" if pads_visible else "causal + padding"
    else:
        text = "no mask (sees future and pads)" if pads_visible else "padding only (sees future)"
    return {"causal": causal, "pads_visible": pads_visible, "mask": text}


# ---------------------------------------------------------------- measuring one cell


def _start_name(config, token_id: int) -> str:
    """Which special token an id is: "pad", "eos", "bos" (first match), else the id."""
    for name in ("pad", "eos", "bos"):
        if _config_id(config, f"{name}_token_id") == token_id:
            return f"{name}={token_id}"
    return str(token_id)


def _describe_decoder_inputs(decoder_input_ids: torch.Tensor | None, batch: dict, config, given: bool = False) -> str:
    """What the decoder received, in terms of the batch: the given ids, a shift of labels or of input_ids."""
    if decoder_input_ids is None:
        return "none"
    if given and torch.equal(decoder_input_ids, batch["decoder_input_ids"]):
        return "decoder_input_ids as given"
    start = int(decoder_input_ids[0, 0])
    pad = config.pad_token_id
    if decoder_input_ids.shape == batch["labels"].shape and torch.equal(
            decoder_input_ids, shift_right(batch["labels"], start, pad)):
        return f"shift_right(labels), start {_start_name(config, start)}"
    if decoder_input_ids.shape == batch["input_ids"].shape and torch.equal(
            decoder_input_ids, shift_right(batch["input_ids"], start, pad)):
        return f"shift_right(input_ids), start {_start_name(config, start)}"
    return "other"


def _loss_reduction(loss: torch.Tensor | None, logits: torch.Tensor, labels: torch.Tensor | None) -> str:
    """Which reduction of `masked_cross_entropy` the model's loss equals (`compare(...).same`: the tolerance of the
    logits' dtype)."""
    if loss is None or labels is None:
        return "no loss"
    for reduction in ("token_mean", "sequence_mean", "sum"):
        if compare(loss, masked_cross_entropy(logits, labels, reduction=reduction), dtype=logits.dtype).same:
            return {"token_mean": "mean over non -100 tokens", "sequence_mean": "mean of sequence means",
                    "sum": "sum"}[reduction]
    return "other"


def _error_text(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"


def _decoder_padding(decoder_input_ids: torch.Tensor, batch: dict, pad_token_id: int) -> torch.Tensor:
    """(B, T) 1 at real decoder inputs: from labels when the decoder got a shift of the labels, else `!= pad`."""
    if decoder_input_ids.shape == batch["labels"].shape:
        return batch["decoder_attention_mask"]
    return (decoder_input_ids != pad_token_id).long()


@torch.no_grad()
def measure_call(model, form: str, batch: dict, attn_implementation: str) -> dict:
    """One cell: the model called in `form`; what it built, masked, cached and returned, or what it raised."""
    kwargs = call_kwargs(form, batch)
    with _watch_decoder_calls(model) as calls, _watch_self_attention_kernel(model) as records:
        try:
            outputs = model(**kwargs)
        except Exception as error:  # the error is the measurement
            return {"error": _error_text(error)}
    decoder_input_ids = calls[0]["input_ids"]
    loss = _loss_reduction(outputs.loss, outputs.logits, kwargs.get("labels"))
    batch = {name: tensor.cpu() for name, tensor in batch.items()}
    padding = _decoder_padding(decoder_input_ids, batch, model.config.pad_token_id)
    return {"decoder_inputs": _describe_decoder_inputs(decoder_input_ids, batch, model.config,
                                                       given="decoder_input_ids" in kwargs),
            **describe_allowed(_allowed_from_record(records[0], attn_implementation), padding),
            "cache_returned": getattr(outputs, "cache", None) is not None, "loss": loss,
            "kernel_got": _kernel_summary(records[0], attn_implementation)}


def _kernel_summary(record: dict, attn_implementation: str) -> str:
    """The form in which the mask reached the attention kernel."""
    if attn_implementation == "sdpa" and record["kernel"] is not None:
        mask, flag = record["kernel"]["mask"], record["kernel"]["is_causal"]
        return f"sdpa attn_mask={'None' if mask is None else tuple(mask.shape)}, is_causal={flag}"
    mask = record["module_mask"]
    return f"eager additive mask {'None' if mask is None else tuple(mask.shape)}"


def decoder_is_causal(model, batch: dict, decoder_attention_mask: torch.Tensor | None = None,
                      n_trials: int = 1) -> bool:
    """The perturbation audit on `decoder_input_ids` (with an optional decoder mask): no position reacts to
    a later one."""
    extra = {} if decoder_attention_mask is None else {"decoder_attention_mask": decoder_attention_mask}
    logits_fn = seq2seq_logits_fn(model, batch["input_ids"], batch["attention_mask"], use_cache=False, **extra)
    report = future_leakage(logits_fn, batch["decoder_input_ids"], vocab_size=300, n_trials=n_trials,
                            special_ids=range(10))
    return not report.leaks


# ---------------------------------------------------------------- generate()


@contextmanager
def _counting_multinomial() -> Iterator[list[int]]:
    """Count calls of `torch.multinomial` (what every sampling mode of `generate` draws tokens with)."""
    calls: list[int] = []
    original = torch.multinomial

    def multinomial(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    torch.multinomial = multinomial
    try:
        yield calls
    finally:
        torch.multinomial = original


@torch.no_grad()
def _generate_once(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, seed: int = 0) -> dict:
    """A bare `model.generate(input_ids, attention_mask)`: the sequences, the decoder batch size per step and
    the number of sampling draws."""
    torch.manual_seed(seed)
    with _watch_decoder_calls(model) as calls, _counting_multinomial() as draws:
        sequences = model.generate(input_ids=input_ids, attention_mask=attention_mask)
    return {"sequences": sequences, "batch_sizes": [call["batch_size"] for call in calls], "draws": len(draws)}


def _new_tokens_until_eos(sequences: torch.Tensor, eos_token_id: int) -> list[list[int]]:
    """Per row: the generated ids after the start token, up to and including the first eos."""
    rows = []
    for row in sequences[:, 1:].tolist():
        rows.append(row[: row.index(eos_token_id) + 1] if eos_token_id in row else row)
    return rows


def measure_generation(model, batch: dict, seed: int = 0) -> dict:
    """What a bare `generate()` on the first sentence does: beams (decoder batch / 1), sampling (torch.multinomial
    called?), the start id, the new tokens, a forced eos at the end, banned ids kept out — or the error raised."""
    try:
        run = _generate_once(model, batch["input_ids"][:1], batch["attention_mask"][:1], seed)
    except Exception as error:  # the error is the measurement
        return {"error": _error_text(error)}
    config, generation = model.config, model.generation_config
    eos = generation.eos_token_id if generation.eos_token_id is not None else config.eos_token_id
    sequences = run["sequences"]
    (row,) = _new_tokens_until_eos(sequences.cpu(), eos)
    banned = {ids[0] for ids in (generation.bad_words_ids or []) if len(ids) == 1}
    return {
        "num_beams": run["batch_sizes"][0], "sampled": run["draws"] > 0,
        "start": _start_name(config, int(sequences[0, 0])),
        "new_tokens": sequences.shape[1] - 1, "decoder_steps": len(run["batch_sizes"]),
        "first_eos_at": len(row) if row[-1] == eos else None,  # 1-based among the new tokens
        "banned_ids_generated": sorted(set(row) & banned) if banned else None,
        "max_length": generation.max_length, "max_new_tokens": generation.max_new_tokens,
    }


# ---------------------------------------------------------------- the matrix


def _measure_family(family: str, kind: str, attn_implementation: str, size: str = "tiny", seed: int = 0,
                   with_generation: bool = True, device: torch.device | str = "cpu") -> dict:
    """Every call form (and a bare generate) of one family, config kind and attention implementation."""
    model = build_hf_model(family, kind, size, attn_implementation, seed).to(device)
    batch = to_device(example_batch(model.config, seed), device)
    cells = {form: measure_call(model, form, batch, attn_implementation) for form in CALL_FORMS}
    if with_generation:
        cells["generate"] = measure_generation(model, batch, seed)
    return cells


def build_matrix(families: list[str], attn_implementations: list[str], size: str = "tiny", seed: int = 0,
                 device: torch.device | str = "cpu") -> dict:
    """matrix[family][kind][attn_implementation][form] -> cell dict; generate() under the first implementation."""
    return {family: {kind: {attn: _measure_family(family, kind, attn, size, seed, i == 0, device)
                            for i, attn in enumerate(attn_implementations)}
                     for kind in CONFIG_KINDS}
            for family in families}


def cell_text(cell: dict) -> str:
    """One cell as a short line for the table."""
    if "error" in cell:
        return f"raises {cell['error']}"
    if "num_beams" in cell:
        strategy = "sampling" if cell["sampled"] else ("greedy" if cell["num_beams"] == 1 else
                                                       f"beam search ({cell['num_beams']} beams)")
        eos = cell["first_eos_at"]
        stop = "no eos" if eos is None else ("eos last" if eos == cell["new_tokens"] else f"eos at {eos}")
        return f"{strategy}, start {cell['start']}, {cell['new_tokens']} new tokens ({stop})"
    cache = "cache on" if cell["cache_returned"] else "no cache"
    return f"{cell['decoder_inputs']}; {cell['mask']}; {cache}; loss: {cell['loss']}"


def matrix_rows(matrix: dict) -> list[dict[str, str]]:
    """Table rows: one per (family, config kind, attention), one column per call form."""
    rows = []
    for family, kinds in matrix.items():
        for kind, attns in kinds.items():
            for attn, cells in attns.items():
                row = {"family": family, "config": CHECKPOINTS[family] if kind == "checkpoint" else f"{kind} config",
                       "attention": attn}
                row.update({form: cell_text(cells[form]) if form in cells else "-"
                            for form in (*CALL_FORMS, "generate")})
                rows.append(row)
    return rows
