"""Read an architecture off a built model (notebook 08): every answer comes from running or inspecting modules.

For the original Transformer (Vaswani et al. 2017) the collection has only the paper; for T5, Marian, BART
(Hugging Face) and the hand-written "tinfer" model it has code, so each property is measured:

    position_information    relative-position bias / fixed sinusoid / learned table, found in the modules
    norm_placement          pre-LN or post-LN from forward hooks; RMSNorm vs LayerNorm from a constant shift
    embedding_scale         the factor between the embedding table and what the encoder stack receives
    output_scale            the factor between the decoder's last hidden state and the logits
    attention_score_scale   the factor on q.k, fitted from the attention weights a module returns
    vocab_tensors           tied input/output embeddings and `final_logits_bias`
    ffn_activation          the function between the two FFN projections, found from hooked tensors
    bias_census             Linear and norm layers with and without bias
    dropout_settings        dropout probabilities in the config and whether training mode is stochastic
    decoder_causality       whether decoder position t reacts to inputs after t (leakage_audit.future_leakage)
    decoder_start           the first decoder input from labels and from generation
    decoding_defaults       the generation config a built model carries

Each HF family is probed twice: on the collection's config (`utils.workbench.models.build_config`, opus-mt style
for Marian) and on the library's default config (`T5Config()`, `MarianConfig()`, `BartConfig()` with only the sizes
shrunk: `build_library_default_model`), so a cell can say which of the two it describes.

plus the data of the figure "sinusoidal positions vs T5's relative-position buckets".
Models are expected in float32 and eager attention (`build_model(..., attn_implementation="eager")`).
"""

import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    BartForConditionalGeneration,
    MarianMTModel,
    T5ForConditionalGeneration,
)
from transformers.models.t5.modeling_t5 import T5Attention

from utils.handwritten.decoding import greedy_decode
from utils.handwritten.leakage_audit import future_leakage, seq2seq_logits_fn
from utils.handwritten.teacher_forcing import shift_right
from utils.handwritten.tinfer import sinusoidal_positions
from utils.workbench.models import build_config, check_model_name_or_path
from utils.workbench.tolerance import Comparison, compare, tolerance_for

__all__ = [
    "DEFAULT_CLAIMS",
    "HF_FAMILIES",
    "SANITY_CELLS",
    "TABLE_CLAIMS",
    "TABLE_ROWS",
    "attention_score_scale",
    "bias_census",
    "bucket_by_offset",
    "build_library_default_model",
    "check_family",
    "checkpoint_family",
    "decoder_causality",
    "decoder_start",
    "decoding_defaults",
    "dropout_settings",
    "embedding_scale",
    "expected_cells",
    "ffn_activation",
    "forward",
    "library_default_config",
    "norm_placement",
    "norms_outside_layers",
    "output_scale",
    "position_information",
    "query_key_init_ratio",
    "relative_position_buckets",
    "summarize",
    "table_claims",
    "vocab_tensors",
]

HF_FAMILIES = ("t5", "marian", "bart")
_ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu (swish)": F.silu,
}


def checkpoint_family(model_name_or_path: str) -> str:
    """The family ("t5", "marian", "bart") of a local checkpoint folder, from its config's model_type."""
    from transformers import AutoConfig

    check_model_name_or_path(model_name_or_path)
    model_type = AutoConfig.from_pretrained(model_name_or_path).model_type
    if model_type not in HF_FAMILIES:
        raise ValueError(f"parameter 'model_name_or_path' holds a {model_type!r} model; allowed: {HF_FAMILIES}")
    return model_type


def library_default_config(family: str, size: str = "tiny"):
    """`T5Config()`, `MarianConfig()` or `BartConfig()` as the installed library ships them, with only the sizes of
    `SIZES[size]` (width, heads, FFN, layers) changed: vocabulary, special ids, activation, scaling and positions stay
    the library's defaults (`utils.workbench.models.build_config` without a tokenizer)."""
    if family not in HF_FAMILIES:
        raise ValueError(f"family must be one of {HF_FAMILIES}, got {family!r}")
    return build_config(family, size=size)


def build_library_default_model(family: str, size: str = "tiny", seed: int = 0) -> nn.Module:
    """A freshly initialised HF model of `library_default_config(family, size)`, eager attention, eval mode."""
    config = library_default_config(family, size)
    config._attn_implementation = "eager"
    model_class = {"t5": T5ForConditionalGeneration, "marian": MarianMTModel, "bart": BartForConditionalGeneration}
    torch.manual_seed(seed)
    return model_class[family](config).eval()


def _start_token_id(config) -> int:
    """The config's decoder start id; the pad id where the config defines none (`T5Config()` does not: the released
    T5 checkpoints set it to pad). For probes whose answer does not depend on the start token."""
    start = getattr(config, "decoder_start_token_id", None)
    return config.pad_token_id if start is None else start


def check_family(family: str) -> str:
    if family not in (*HF_FAMILIES, "tinfer"):
        raise ValueError(f"family must be one of {(*HF_FAMILIES, 'tinfer')}, got {family!r}")
    return family


# ---------------------------------------------------------------- where things live in each family


def _first_encoder_layer(model, family: str) -> nn.Module:
    if check_family(family) == "t5":
        return model.encoder.block[0]
    if family == "tinfer":
        return model.encoder_layers[0]
    return model.model.encoder.layers[0]


def _first_self_attention(model, family: str) -> nn.Module:
    layer = _first_encoder_layer(model, family)
    return layer.layer[0].SelfAttention if family == "t5" else layer.self_attn


def _ffn_projections(model, family: str) -> tuple[nn.Linear, nn.Linear]:
    """(into d_ff, out of d_ff) linear layers of the first encoder layer's feed-forward block."""
    layer = _first_encoder_layer(model, family)
    if family == "t5":
        dense = layer.layer[-1].DenseReluDense
        return dense.wi, dense.wo
    if family == "tinfer":
        return layer.feed_forward.linear_in, layer.feed_forward.linear_out
    return layer.fc1, layer.fc2


def _final_decoder_module(model, family: str) -> nn.Module:
    """The module whose first output is the decoder state right before the output projection."""
    if check_family(family) == "t5":
        return model.decoder
    if family == "tinfer":
        return model.decoder_layers[-1]
    return model.model.decoder


def _d_model_of(model) -> int:
    return model.config.d_model


def _first_tensor(output) -> torch.Tensor:
    """A module's main output: the tensor itself, the first item of a tuple, or `last_hidden_state`."""
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "last_hidden_state"):
        return output.last_hidden_state
    return output[0]


@contextmanager
def _recording(modules: dict[str, nn.Module]):
    """Forward hooks that append (name, first positional input, main output) for every call, in call order."""
    calls: list[tuple[str, torch.Tensor, torch.Tensor]] = []
    handles = [module.register_forward_hook(lambda m, args, out, name=name: calls.append(
        (name, args[0] if args else None, _first_tensor(out)))) for name, module in modules.items()]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def _call(model, batch: dict[str, torch.Tensor]):
    """model(input_ids, attention_mask, labels): the model builds its decoder input from labels. A config without
    a decoder start id (`T5Config()`) cannot, so there the decoder input is given: shift_right(labels) from pad."""
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "labels": batch["labels"]}
    if getattr(model.config, "decoder_start_token_id", None) is None:
        inputs["decoder_input_ids"] = shift_right(batch["labels"], model.config.pad_token_id, model.config.pad_token_id)
    return model(**inputs)


@torch.no_grad()
def forward(model, family: str, batch: dict[str, torch.Tensor]):
    """One teacher-forced forward pass in eval mode (labels only: the model builds its decoder input)."""
    model.eval()
    return _call(model, batch)


# ---------------------------------------------------------------- positions


def _marian_layout(table: torch.Tensor) -> torch.Tensor:
    """The paper's interleaved sin/cos table with the sin columns first and the cos columns after."""
    return torch.cat([table[:, 0::2], table[:, 1::2]], dim=1)


def _relative_bias_modules(model) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, T5Attention) and m.has_relative_attention_bias]


def position_information(model, family: str) -> dict:
    """How position enters: kind ("relative_bias" | "sinusoidal" | "learned") with the evidence behind it."""
    if check_family(family) == "t5":
        absolute = [n for n, _ in model.named_modules() if "embed_positions" in n]
        buckets = model.config.relative_attention_num_buckets
        return {"kind": "relative_bias" if _relative_bias_modules(model) and not absolute else "unknown",
                "bias_tables": _relative_bias_modules(model), "absolute_tables": absolute, "num_buckets": buckets,
                "max_distance": model.config.relative_attention_max_distance}
    if family == "tinfer":
        table = model.positions.detach().cpu()  # (max_positions, d_model) on the host, beside the CPU formula
        comparison = _sinusoid_comparison(table, sinusoidal_positions(*table.shape))
        trainable = any(p is model.positions for p in model.parameters())
        return {"kind": "sinusoidal" if comparison.same and not trainable else "unknown", "trainable": trainable,
                "layout": "interleaved sin/cos", "max_abs_diff_to_sinusoid": comparison.max_abs_diff,
                "comparison": comparison.evidence()}
    weight = model.model.encoder.embed_positions.weight
    table = weight.detach().cpu()  # (rows, d_model) on the host
    comparison = _sinusoid_comparison(table, _marian_layout(sinusoidal_positions(table.shape[0], table.shape[1])))
    kind = "sinusoidal" if comparison.same and not weight.requires_grad else (
        "learned" if weight.requires_grad else "unknown")
    return {"kind": kind, "trainable": weight.requires_grad, "rows": table.shape[0],
            "offset": getattr(model.model.encoder.embed_positions, "offset", 0),
            "max_abs_diff_to_sinusoid_sin_half_cos_half": comparison.max_abs_diff, "comparison": comparison.evidence()}


def _sinusoid_comparison(table: torch.Tensor, formula: torch.Tensor) -> Comparison:
    """A float32 position table against the formula, under the float32 tolerance at the scale of the largest
    argument pos * frequency (<= rows): sin of a float32 argument is only as exact as that argument (Marian's table is
    computed in float64 numpy, the formula here in float32 torch: 8.9e-6 apart on 258 rows)."""
    return compare(table, formula, dtype=torch.float32, magnitude=float(table.shape[0]))


# ---------------------------------------------------------------- normalisation


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, nn.LayerNorm) or type(module).__name__.endswith(("LayerNorm", "RMSNorm"))


def _norm_subtracts_mean(norm: nn.Module, d_model: int) -> bool:
    """LayerNorm is invariant to adding a constant to every feature; RMSNorm is not."""
    device = next(norm.parameters()).device
    x = torch.randn(2, 3, d_model, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        return compare(norm(x + 3.0), norm(x)).same


def norms_outside_layers(model) -> list[str]:
    """Norm modules of the stacks themselves (T5's final_layer_norm, BART's layernorm_embedding)."""
    layer_lists = [name for name, m in model.named_modules() if isinstance(m, nn.ModuleList)]
    return [name for name, m in model.named_modules()
            if _is_norm(m) and not any(name.startswith(prefix + ".") for prefix in layer_lists)]


def norm_placement(model, family: str, batch: dict[str, torch.Tensor]) -> dict:
    """Pre-LN when the first norm of a layer reads the layer's input, post-LN when the layer's output is
    the last norm's output (hooks on the first encoder layer during a forward pass)."""
    layer = _first_encoder_layer(model, family)
    norms = {f"norm.{name}": m for name, m in layer.named_modules() if _is_norm(m)}
    with _recording({"layer": layer, **norms}) as calls:
        forward(model, family, batch)
    layer_call = next(c for c in calls if c[0] == "layer")
    norm_calls = [c for c in calls if c[0].startswith("norm.")]
    reads_input = torch.equal(norm_calls[0][1], layer_call[1])
    writes_output = torch.equal(norm_calls[-1][2], layer_call[2])
    placement = "pre-LN" if reads_input and not writes_output else "post-LN" if writes_output else "unknown"
    norm = next(iter(norms.values()))
    return {"placement": placement, "norm_class": type(norm).__name__, "norms_per_layer": len(norms),
            "norms_outside_layers": norms_outside_layers(model),
            "subtracts_mean": _norm_subtracts_mean(norm, _d_model_of(model)),
            "norm_has_bias": getattr(norm, "bias", None) is not None,
            "first_norm_reads_layer_input": reads_input, "layer_output_is_last_norm_output": writes_output}


# ---------------------------------------------------------------- scales


@torch.no_grad()
def embedding_scale(model, family: str, input_ids: torch.Tensor) -> dict:
    """The factor s with encoder(input_ids) == encoder(s * table[input_ids]), among 1 and sqrt(d_model).

    TinferModel's encoder takes no embeddings, so there the decoder is probed (`decoder_inputs_embeds`
    are the already-scaled embeddings)."""
    model.eval()
    d_model = _d_model_of(model)
    table = model.get_input_embeddings().weight if family != "tinfer" else model.embed_tokens.weight
    encoder_states = model.encode(input_ids) if family == "tinfer" else None

    def run(ids=None, embeds=None) -> torch.Tensor:
        if family == "tinfer":
            return model.decode(ids, encoder_states, decoder_inputs_embeds=embeds)[0]
        return model.get_encoder()(input_ids=ids, inputs_embeds=embeds).last_hidden_state

    reference = run(ids=input_ids)
    differences = {name: float((run(embeds=s * table[input_ids]) - reference).abs().max()) for name, s in
                   (("1", 1.0), ("sqrt(d_model)", math.sqrt(d_model)))}
    best = min(differences, key=differences.get)
    scale = math.sqrt(d_model) if best != "1" else 1.0
    comparison = compare(run(embeds=scale * table[input_ids]), reference)
    return {"scale": best if comparison.same else "unknown", "max_abs_diff": differences, "d_model": d_model,
            "comparison": comparison.evidence()}


def _centred_rows(x: torch.Tensor) -> torch.Tensor:
    return x - x.mean(dim=-1, keepdim=True)


def _fitted_scale(y: torch.Tensor, x: torch.Tensor) -> tuple[float, float]:
    """Least-squares s in y ~ s * x, and the largest residual |y - s x|."""
    s = float((x * y).sum() / (x * x).sum())
    return s, float((y - s * x).abs().max())


@torch.no_grad()
def output_scale(model, family: str, batch: dict[str, torch.Tensor]) -> dict:
    """s in logits == s * (h @ E^T) + final_logits_bias, where h is the decoder's last hidden state."""
    with _recording({"final": _final_decoder_module(model, family)}) as calls:
        logits = forward(model, family, batch).logits
    hidden = calls[-1][2]
    table = model.get_output_embeddings().weight if family != "tinfer" else model.embed_tokens.weight
    bias = getattr(model, "final_logits_bias", torch.zeros(1, device=logits.device))
    s, residual = _fitted_scale(logits - bias, hidden @ table.T)
    return {"scale": s, "residual": residual, "d_model": _d_model_of(model),
            "inverse_sqrt_d_model": _d_model_of(model) ** -0.5}


def _query_key(attention: nn.Module, family: str, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Projected queries and keys split into heads: (B, H, T, d_head) each."""
    q_proj, k_proj = (attention.q, attention.k) if family == "t5" else (attention.q_proj, attention.k_proj)
    heads = attention.n_heads if family in ("t5", "tinfer") else attention.num_heads
    batch_size, length, _ = hidden_states.shape
    q = q_proj(hidden_states).view(batch_size, length, heads, -1).transpose(1, 2)  # (B, H, T, d_head)
    k = k_proj(hidden_states).view(batch_size, length, heads, -1).transpose(1, 2)  # (B, H, T, d_head)
    return q, k


@torch.no_grad()
def attention_score_scale(model, family: str, length: int = 6, seed: int = 0) -> dict:
    """Fit s in log softmax(s * q.k + position bias): the returned weights, centred per query row, against
    the centred raw dot products of the same module's projections."""
    attention = _first_self_attention(model, family).eval()
    device = next(attention.parameters()).device
    hidden_states = torch.randn(1, length, _d_model_of(model), generator=torch.Generator().manual_seed(seed)).to(device)
    bias = torch.zeros((), device=device)
    if family == "t5":
        _, bias, weights = attention(hidden_states)  # bias: (1, H, T, T) relative-position bias
    elif family == "tinfer":
        allowed = torch.ones(1, 1, 1, length, dtype=torch.bool, device=device)
        _, weights = attention(hidden_states, hidden_states, allowed)
    else:
        _, weights = attention(hidden_states)
    q, k = _query_key(attention, family, hidden_states)
    raw = q @ k.transpose(-1, -2)  # (B, H, T, T)
    log_weights = weights.log() - bias  # = s * raw - logsumexp(row): centring each row removes the logsumexp
    s, residual = _fitted_scale(_centred_rows(log_weights), _centred_rows(raw))
    d_head = q.shape[-1]
    return {"scale": s, "residual": residual, "d_head": d_head, "inverse_sqrt_d_head": d_head**-0.5}


def query_key_init_ratio(model, family: str) -> dict:
    """std(W_q) / std(W_k) of the first self-attention: about 1/sqrt(d_head) for a freshly initialised T5, whose
    initialisation stands in for the missing 1/sqrt(d_k) score scaling; about 1 when both are drawn alike."""
    attention = _first_self_attention(model, family)
    q_proj, k_proj = (attention.q, attention.k) if family == "t5" else (attention.q_proj, attention.k_proj)
    ratio = float(q_proj.weight.detach().std() / k_proj.weight.detach().std())
    d_head = q_proj.out_features // (attention.n_heads if family in ("t5", "tinfer") else attention.num_heads)
    return {"std_ratio_q_over_k": ratio, "d_head": d_head, "inverse_sqrt_d_head": d_head**-0.5}


# ---------------------------------------------------------------- output layer, FFN, biases, dropout


def vocab_tensors(model, vocab_size: int) -> dict:
    """Parameters and buffers with a vocabulary-sized dimension, counted by storage (tied weights once)."""
    parameters = {p.data_ptr(): name for name, p in model.named_parameters(remove_duplicate=False)
                  if vocab_size in p.shape}
    names = [name for name, p in model.named_parameters(remove_duplicate=False) if vocab_size in p.shape]
    bias = getattr(model, "final_logits_bias", None)
    return {"distinct_vocab_parameters": len(parameters), "vocab_parameter_names": names,
            "tied": len(parameters) == 1,
            "final_logits_bias": None if bias is None else {
                "shape": list(bias.shape), "trainable": any(p is bias for p in model.parameters()),
                "registered_buffer": any(b is bias for _, b in model.named_buffers()),
                "all_zero": bool((bias == 0).all())}}


def ffn_activation(model, family: str, batch: dict[str, torch.Tensor]) -> dict:
    """The activation between the FFN projections: compare the hooked input of the second projection
    with each candidate applied to the output of the first (eval mode: dropout is the identity)."""
    into, out_of = _ffn_projections(model, family)
    with _recording({"into": into, "out_of": out_of}) as calls:
        forward(model, family, batch)
    pre = next(c[2] for c in calls if c[0] == "into")
    post = next(c[1] for c in calls if c[0] == "out_of")
    differences = {name: float((function(pre) - post).abs().max()) for name, function in _ACTIVATIONS.items()}
    best = min(differences, key=differences.get)
    comparison = compare(_ACTIVATIONS[best](pre), post)
    return {"activation": best if comparison.same else "unknown", "max_abs_diff": differences,
            "d_ff": into.out_features, "comparison": comparison.evidence()}


def bias_census(model) -> dict:
    """Linear layers (the output projection left out: it is the tied embedding) and norms with a bias."""
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    linears = [m for m in model.modules() if isinstance(m, nn.Linear) and m is not output]
    norms = [m for m in model.modules() if _is_norm(m)]
    return {"linear_with_bias": sum(m.bias is not None for m in linears), "linear_total": len(linears),
            "norm_with_bias": sum(getattr(m, "bias", None) is not None for m in norms), "norm_total": len(norms)}


_DROPOUT_FIELDS = ("dropout", "dropout_rate", "attention_dropout", "activation_dropout")


@torch.no_grad()
def dropout_settings(model, family: str, batch: dict[str, torch.Tensor]) -> dict:
    """Config dropout values; max |logit difference| of two passes in train mode and in eval mode."""
    config = model.config
    values = {name: getattr(config, name) for name in _DROPOUT_FIELDS if hasattr(config, name)}
    passes = {}
    for mode in ("train", "eval"):
        model.train(mode == "train")
        first = _call(model, batch).logits
        second = _call(model, batch).logits
        passes[mode] = float((first - second).abs().max())
    model.eval()
    return {"config": values, "train_mode_max_abs_diff": passes["train"], "eval_mode_max_abs_diff": passes["eval"]}


# ---------------------------------------------------------------- decoder mask, start and decoding


@torch.no_grad()
def decoder_causality(model, batch: dict[str, torch.Tensor], vocab_size: int, special_ids=(), n_trials: int = 1,
                      seed: int = 0) -> dict:
    """Perturb each decoder input position in turn (one teacher-forced pass, no decoder padding mask):
    causal when no output position moves for a change after it by more than float32 allows at the logits' scale."""
    model.eval()
    decoder_input_ids = shift_right(batch["labels"], _start_token_id(model.config), model.config.pad_token_id)
    logits_fn = seq2seq_logits_fn(model, batch["input_ids"], batch["attention_mask"])
    tolerance = tolerance_for(torch.float32).allowed(float(logits_fn(decoder_input_ids).abs().max()))
    report = future_leakage(logits_fn, decoder_input_ids, vocab_size, n_trials=n_trials, tolerance=tolerance,
                            seed=seed, special_ids=special_ids)
    return {"causal": not report.leaks, "max_future_sensitivity": report.max_future_sensitivity,
            "leaking_pairs": len(report.leaking_positions), "tolerance": tolerance}



def _outcome(function):
    """function()'s value, or the error it raises as "Type: message" (the error is the measurement)."""
    try:
        return function()
    except (AttributeError, ValueError) as error:
        return f"{type(error).__name__}: {str(error)[:120]}"


@torch.no_grad()
def decoder_start(model, family: str, tokenizer, batch: dict[str, torch.Tensor]) -> dict:
    """The decoder's first input when training from labels and when generating, and which special id it is
    (pad / eos / bos of the config). `tokenizer` may be None (no token name); a config without a start id
    (`T5Config()`) is reported with the errors that labels and generate() raise."""
    config = model.config
    model.eval()
    start = getattr(config, "decoder_start_token_id", None)
    if start is None and family != "tinfer":
        return {"decoder_start_token_id": None, "token": None, "role": "not defined",
                "first_input_from_labels": _outcome(lambda: model.prepare_decoder_input_ids_from_labels(
                    labels=batch["labels"])),
                "first_token_of_generate": _outcome(lambda: model.generate(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], max_new_tokens=1))}
    if family == "tinfer":
        from_labels = shift_right(batch["labels"], config.decoder_start_token_id, config.pad_token_id)
        generated = greedy_decode(model, batch["input_ids"], batch["attention_mask"], max_new_tokens=1)
    else:
        from_labels = model.prepare_decoder_input_ids_from_labels(labels=batch["labels"])
        generated = model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                   max_new_tokens=1, do_sample=False, num_beams=1)
    role = "pad" if start == config.pad_token_id else "eos" if start == config.eos_token_id else (
        "bos" if start == getattr(config, "bos_token_id", None) else "other")
    token = tokenizer.convert_ids_to_tokens(start) if tokenizer is not None else None
    return {"decoder_start_token_id": start, "token": token, "role": role,
            "first_input_from_labels": sorted(set(from_labels[:, 0].tolist())),
            "first_token_of_generate": sorted(set(generated[:, 0].tolist()))}


_DECODING_FIELDS = ("num_beams", "do_sample", "max_length", "length_penalty", "early_stopping",
                   "forced_eos_token_id", "no_repeat_ngram_size")


def decoding_defaults(model) -> dict | None:
    """What `generate()` does without arguments: the generation config, its unset fields filled with
    transformers' defaults (None for a model without a generation config, like TinferModel)."""
    config = getattr(model, "generation_config", None)
    if config is None:
        return None
    defaults = config._get_default_generation_params()
    return {name: getattr(config, name) if getattr(config, name, None) is not None else defaults.get(name)
            for name in _DECODING_FIELDS}


# ---------------------------------------------------------------- figure data


def relative_position_buckets(query_length: int, key_length: int, bidirectional: bool, num_buckets: int = 32,
                              max_distance: int = 128) -> torch.Tensor:
    """(query_length, key_length) bucket ids from T5's own `_relative_position_bucket` (key - query offsets)."""
    offsets = torch.arange(key_length)[None, :] - torch.arange(query_length)[:, None]
    return T5Attention._relative_position_bucket(offsets, bidirectional=bidirectional, num_buckets=num_buckets,
                                                 max_distance=max_distance)


def bucket_by_offset(offsets: torch.Tensor, bidirectional: bool, num_buckets: int = 32,
                     max_distance: int = 128) -> torch.Tensor:
    """Bucket id of each relative offset (key position - query position)."""
    return T5Attention._relative_position_bucket(offsets, bidirectional=bidirectional, num_buckets=num_buckets,
                                                 max_distance=max_distance)


# ---------------------------------------------------------------- one comparable value and one table cell per row
# Each summary maps a row's evidence to (value compared by a claim, text of the table cell).


def _positions(e: dict):
    if e["kind"] == "relative_bias":
        return e["kind"], f"relative-position bias ({e['num_buckets']} buckets up to {e['max_distance']}), no absolute"
    if e["kind"] == "learned":
        return e["kind"], f"learned absolute table ({e['rows']} rows, offset {e['offset']})"
    layout = e.get("layout", "sin half, then cos half")
    diff = e.get("max_abs_diff_to_sinusoid", e.get("max_abs_diff_to_sinusoid_sin_half_cos_half"))
    return e["kind"], f"fixed sinusoid, {layout} (max |diff| to the formula {diff:.1e})"


def _norm(e: dict):
    kind = "LayerNorm" if e["subtracts_mean"] else "RMSNorm"
    extra = f" + {', '.join(e['norms_outside_layers'])}" if e["norms_outside_layers"] else ""
    bias = "with" if e["norm_has_bias"] else "no"
    return f"{kind} {e['placement']}", f"{e['placement']}, {kind} ({bias} bias){extra}"


def _embedding_scale(e: dict):
    return e["scale"], f"x {e['scale']}" + (f" = {math.sqrt(e['d_model']):g}" if e["scale"] != "1" else "")


def _output_scale(e: dict):
    scale = round(e["scale"], 6)
    return scale, "logits = h E^T" if scale == 1.0 else f"logits = ({scale:g} h) E^T, {scale:g} = d_model^-0.5"


def _attention_scale(e: dict):
    scale = round(e["scale"], 4)
    is_inverse_sqrt = abs(scale - e["inverse_sqrt_d_head"]) < 1e-4
    return scale, f"q.k x {scale:g}" + (" = 1/sqrt(d_head)" if is_inverse_sqrt else " (unscaled)")


def _tied(e: dict):
    return e["tied"], f"{'tied' if e['tied'] else 'untied'} ({e['distinct_vocab_parameters']} vocab matrix)"


def _final_logits_bias(e: dict):
    bias = e["final_logits_bias"]
    if bias is None:
        return None, "none"
    if bias["trainable"]:
        return "parameter", f"{tuple(bias['shape'])} parameter"
    kind = "buffer" if bias.get("registered_buffer", True) else "plain tensor"
    return kind, f"{tuple(bias['shape'])} {kind}, not a Parameter" + (", zeros at init" if bias["all_zero"] else "")


def _biases(e: dict):
    with_bias, total = e["linear_with_bias"] + e["norm_with_bias"], e["linear_total"] + e["norm_total"]
    value = "none" if with_bias == 0 else "all" if with_bias == total else "some"
    return value, f"{e['linear_with_bias']}/{e['linear_total']} Linear, {e['norm_with_bias']}/{e['norm_total']} norms"


def _dropout(e: dict):
    value = "train only" if e["train_mode_max_abs_diff"] > 0 and e["eval_mode_max_abs_diff"] == 0 else "other"
    return value, ", ".join(f"{k} {v:g}" for k, v in e["config"].items()) + f"; active in {value}"


def _causal(e: dict):
    value = "causal" if e["causal"] else "sees future"
    return value, f"{value} (max future sensitivity {e['max_future_sensitivity']:.1e})"


def _decoder_start(e: dict):
    if e["decoder_start_token_id"] is None:
        return e["role"], "not defined: labels and generate() raise"
    token = f"{e['token']} " if e["token"] is not None else ""
    return e["role"], f"{token}(id {e['decoder_start_token_id']}) = {e['role']}"


def _decoding(e: dict | None):
    if e is None:
        return None, "no generation config (a hand-written loop)"
    value = "greedy" if e["num_beams"] == 1 and not e["do_sample"] else f"beam {e['num_beams']}"
    forced = f", forced eos {e['forced_eos_token_id']}" if e["forced_eos_token_id"] is not None else ""
    return value, f"{value}, max_length {e['max_length']}{forced}"


_SUMMARIES = {
    "positions": _positions, "norm": _norm, "embedding_scale": _embedding_scale, "output_scale": _output_scale,
    "attention_scale": _attention_scale, "tied": _tied, "final_logits_bias": _final_logits_bias,
    "activation": lambda e: (e["activation"], e["activation"]), "biases": _biases, "dropout": _dropout,
    "causal": _causal, "decoder_start": _decoder_start, "decoding": _decoding,
}


def summarize(row: str, evidence: dict | None):
    """(value compared by a claim, text of the table cell) for one measured row of one family."""
    if row not in _SUMMARIES:
        raise ValueError(f"unknown row {row!r}; rows: {', '.join(_SUMMARIES)}")
    return _SUMMARIES[row](evidence)


# ---------------------------------------------------------------- the table of notebook 08 and its claims

# row -> (label of the table row, the paper's column: the only typed-in cell, with its section)
TABLE_ROWS = {
    "positions": ("position information", "fixed sinusoids added to the embeddings, sin/cos interleaved (§3.5)"),
    "norm": ("normalisation", "post-LN: LayerNorm(x + Sublayer(x)) (§3.1)"),
    "embedding_scale": ("embedding scaling", "x sqrt(d_model) (§3.4)"),
    "attention_scale": ("attention score scaling", "q.k / sqrt(d_k) (§3.2.1)"),
    "output_scale": ("logits from the last hidden state", "pre-softmax linear = the shared embedding matrix (§3.4)"),
    "tied": ("tied input/output embeddings", "tied: one matrix for both embeddings and the output (§3.4)"),
    "final_logits_bias": ("final_logits_bias", "not described (§3.4: 'the usual learned linear transformation')"),
    "activation": ("FFN activation", "ReLU: max(0, xW1 + b1)W2 + b2 (§3.3)"),
    "biases": ("biases", "FFN biases b1, b2 (§3.3); attention projections written without bias (§3.2.2)"),
    "dropout": ("dropout", "P_drop = 0.1 on sub-layer outputs and on embeddings + positions (§5.4)"),
    "causal": ("decoder self-attention mask", "causal: illegal connections set to -inf (§3.2.3)"),
    "decoder_start": ("decoder start token", "not named; outputs 'offset by one position' (§3.1)"),
    "decoding": ("default decoding", "beam 4, length penalty 0.6, max length input + 50 (§6.1)"),
}
_OTHERS = ("marian", "bart", "tinfer")
# row -> the claim id of each family's cell
TABLE_CLAIMS = {
    "positions": {"t5": "t5_has_relative_position_bias", "marian": "marian_uses_fixed_sinusoidal_positions",
                  "bart": "bart_learns_absolute_positions", "tinfer": "tinfer_uses_fixed_sinusoidal_positions"},
    "norm": {"t5": "t5_uses_rmsnorm_pre_ln", "marian": "marian_uses_layernorm_post_ln",
             "bart": "bart_uses_layernorm_post_ln", "tinfer": "tinfer_uses_layernorm_post_ln"},
    "embedding_scale": {"t5": "t5_does_not_scale_embeddings", "marian": "marian_scales_embeddings",
                        "bart": "bart_does_not_scale_embeddings", "tinfer": "tinfer_scales_embeddings"},
    "attention_scale": {"t5": "t5_does_not_scale_attention_scores",
                        **{f: f"{f}_scales_attention_by_inverse_sqrt_d_head" for f in _OTHERS}},
    "output_scale": {"t5": "t5_rescales_decoder_output_by_inverse_sqrt_d_model",
                     **{f: f"{f}_does_not_rescale_decoder_output" for f in _OTHERS}},
    "tied": {f: f"{f}_ties_input_and_output_embeddings" for f in ("t5", *_OTHERS)},
    "final_logits_bias": {"t5": "t5_has_no_final_logits_bias", "marian": "marian_has_final_logits_bias_buffer",
                          "bart": "bart_has_final_logits_bias_buffer", "tinfer": "tinfer_has_no_final_logits_bias"},
    "activation": {"t5": "t5_ffn_uses_relu", "marian": "marian_ffn_uses_swish", "bart": "bart_ffn_uses_gelu",
                   "tinfer": "tinfer_ffn_uses_relu"},
    "biases": {"t5": "t5_has_no_biases", **{f: f"{f}_has_biases_everywhere" for f in _OTHERS}},
    "dropout": {f: f"{f}_dropout_only_in_training" for f in ("t5", *_OTHERS)},
    "causal": {"t5": "t5_decoder_is_causal", "marian": "marian_decoder_is_causal", "bart": "bart_decoder_is_causal",
               "tinfer": "tinfer_decoder_mask_matches_its_setting"},
    "decoder_start": {"t5": "t5_decoder_starts_with_pad", "marian": "marian_decoder_starts_with_pad",
                      "bart": "bart_decoder_starts_with_eos", "tinfer": "tinfer_decoder_starts_with_pad"},
    "decoding": {f: f"{f}_default_generation_is_greedy" for f in HF_FAMILIES},
}
# (row, family) -> (what the library's default config gives, the id of the claim measured there); the collection's
# claim for these cells reads a value we set, so it is sanity only
DEFAULT_CLAIMS = {
    ("embedding_scale", "marian"): ("1", "marian_default_config_does_not_scale_embeddings"),
    ("activation", "marian"): ("gelu", "marian_default_config_ffn_uses_gelu"),
    ("decoder_start", "t5"): ("not defined", "t5_default_config_defines_no_decoder_start"),
    ("decoder_start", "marian"): ("pad", "marian_default_config_decoder_starts_with_pad"),
    ("decoder_start", "bart"): ("eos", "bart_default_config_decoder_starts_with_eos"),
}
SANITY_CELLS = set(DEFAULT_CLAIMS) | {("decoder_start", "tinfer")}  # tinfer's start id is set in its config too


def expected_cells(d_model: dict[str, int], inverse_sqrt_d_head: dict[str, float], tinfer_causal: bool) -> dict:
    """row -> family -> the literature's answer (T5: Raffel et al. 2020 §2.1 and the HF/Mesh-TF code; Marian: the
    opus-mt configs; BART: Lewis et al. 2020 §2.1 and the HF code), for models of these sizes."""
    return {
        "positions": {"t5": "relative_bias", "marian": "sinusoidal", "bart": "learned", "tinfer": "sinusoidal"},
        "norm": {"t5": "RMSNorm pre-LN", **{f: "LayerNorm post-LN" for f in _OTHERS}},
        "embedding_scale": {"t5": "1", "marian": "sqrt(d_model)", "bart": "1", "tinfer": "sqrt(d_model)"},
        "attention_scale": {"t5": 1.0, **{f: round(inverse_sqrt_d_head[f], 4) for f in _OTHERS}},
        "output_scale": {"t5": round(d_model["t5"] ** -0.5, 6), **{f: 1.0 for f in _OTHERS}},
        "tied": {f: True for f in ("t5", *_OTHERS)},
        "final_logits_bias": {"t5": None, "marian": "buffer", "bart": "buffer", "tinfer": None},
        "activation": {"t5": "relu", "marian": "silu (swish)", "bart": "gelu", "tinfer": "relu"},
        "biases": {"t5": "none", **{f: "all" for f in _OTHERS}},
        "dropout": {f: "train only" for f in ("t5", *_OTHERS)},
        "causal": {**{f: "causal" for f in HF_FAMILIES}, "tinfer": "causal" if tinfer_causal else "sees future"},
        "decoder_start": {"t5": "pad", "marian": "pad", "bart": "eos", "tinfer": "pad"},
        "decoding": {f: "greedy" for f in HF_FAMILIES},
    }


def table_claims(expected: dict, values: dict, default_values: dict, cells, config_names: dict[str, str]) -> list:
    """The claims of the table, as keyword arguments of `Results.claim`: one per cell, measured on the collection's
    config and (HF) the library's default config; a cell decided by a value we set is sanity only, and its
    library-default claim (`DEFAULT_CLAIMS`) backs the finding. `cells(row, family)` gives the cells' texts."""
    claims = []
    for row, claim_ids in TABLE_CLAIMS.items():
        label = TABLE_ROWS[row][0]
        for family, claim_id in claim_ids.items():
            measured, want = values[row][family], expected[row][family]
            if (row, family) in SANITY_CELLS:
                claims.append({"claim_id": claim_id, "holds": measured == want, "sanity": True,
                               "statement": f"{label} of {family} with the collection's config: {want!r} (a value "
                                            "we set)", "evidence": {"measured": measured,
                                                                   "cell": cells(row, family)["this_collection"]}})
            if (row, family) in DEFAULT_CLAIMS:
                default_want, default_id = DEFAULT_CLAIMS[(row, family)]
                claims.append({"claim_id": default_id, "holds": default_values[row][family] == default_want,
                               "statement": f"{label} of {family} with {config_names[family]} (sizes shrunk): "
                                            f"{default_want!r}",
                               "evidence": {"measured": default_values[row][family],
                                            "cell": cells(row, family)["library_default"]}})
            if (row, family) in SANITY_CELLS:
                continue
            measured_both = {"this_collection": measured}
            if family in HF_FAMILIES:
                measured_both["library_default"] = default_values[row][family]
            claims.append({"claim_id": claim_id, "holds": all(v == want for v in measured_both.values()),
                           "statement": f"{label} of {family}: {want!r}" + (
                               f" with {config_names[family]} (sizes shrunk) and with the collection's config"
                               if family in HF_FAMILIES else ""),
                           "evidence": {"measured": measured_both, "cell": cells(row, family)}})
    return claims
