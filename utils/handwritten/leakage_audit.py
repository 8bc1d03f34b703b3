"""Does decoder position t see tokens after t? A black-box audit for any model that maps ids to logits.

Point it at a callable, not at code: `future_leakage` perturbs one decoder input position s at a time
(several random replacement tokens) and records how much the logits at every output position t move;
`gradient_leakage` measures |d logits[t] / d embeds[s]| instead, for callables that take embeddings.
Both return a `LeakageReport` whose `sensitivity[t, s]` matrix must be zero (below `tolerance`) above
the diagonal (s > t) for a decoder that is safe to train with one teacher-forced pass.

    model.eval()
    report = future_leakage(seq2seq_logits_fn(model, input_ids, attention_mask), decoder_input_ids,
                            vocab_size=model.config.vocab_size)
    print(report.summary())

The model must be deterministic (call `model.eval()` so dropout is off); the audit checks this first.
"""

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from utils.handwritten.seq2seq import decoder_self_attention_modules, encode, is_tinfer
from utils.handwritten.teacher_forcing import causal_mask

__all__ = [
    "BLOCKED_BELOW",
    "LeakageReport",
    "LogitsFn",
    "allowed_from_attention_mask",
    "capture_sdpa_kernel_calls",
    "capture_self_attention_masks",
    "decoder_input_embeddings",
    "decoder_only_embeds_logits_fn",
    "decoder_only_logits_fn",
    "future_leakage",
    "gradient_leakage",
    "max_abs_diff_per_position",
    "report_from_sensitivity",
    "seq2seq_embeds_logits_fn",
    "seq2seq_logits_fn",
]

LogitsFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class LeakageReport:
    """sensitivity[t, s]: largest change of the logits at output position t when input position s changes."""

    leaks: bool
    sensitivity: torch.Tensor  # (T, T): rows = output position t, columns = perturbed input position s
    tolerance: float
    max_future_sensitivity: float  # max of sensitivity[t, s] over s > t (0.0 when T == 1)
    leaking_positions: list[tuple[int, int]] = field(default_factory=list)  # (t, s) with s > t above tolerance
    method: str = "perturbation"

    def summary(self) -> str:
        length = self.sensitivity.shape[0]
        verdict = "LEAKS" if self.leaks else "no leakage"
        text = (f"{verdict} ({self.method}, T={length}): max future sensitivity "
                f"{self.max_future_sensitivity:.3g} vs tolerance {self.tolerance:.3g}")
        if self.leaks:
            shown = ", ".join(f"t={t}<-s={s}" for t, s in self.leaking_positions[:4])
            more = len(self.leaking_positions) - 4
            text += f"; {len(self.leaking_positions)} leaking (t, s) pairs: {shown}" + (f", +{more} more" if more > 0
                                                                                          else "")
        return text


def report_from_sensitivity(sensitivity: torch.Tensor, tolerance: float, method: str) -> LeakageReport:
    """Build the report from a (T, T) matrix: leakage = any entry strictly above the diagonal > tolerance."""
    if sensitivity.dim() != 2 or sensitivity.shape[0] != sensitivity.shape[1]:
        raise ValueError(f"sensitivity must be square (T, T), got shape {tuple(sensitivity.shape)}")
    sensitivity = sensitivity.detach().double().cpu()
    future = torch.ones_like(sensitivity, dtype=torch.bool).triu(diagonal=1)  # s > t
    future_values = sensitivity[future]
    max_future = float(future_values.max()) if future_values.numel() else 0.0
    leaking = [(int(t), int(s)) for t, s in ((future & (sensitivity > tolerance)).nonzero().tolist())]
    return LeakageReport(leaks=bool(leaking), sensitivity=sensitivity, tolerance=float(tolerance),
                         max_future_sensitivity=max_future, leaking_positions=leaking, method=method)


def _check_logits(logits: torch.Tensor, batch_size: int, length: int) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor) or logits.dim() != 3 or tuple(logits.shape[:2]) != (batch_size, length):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"the logits function must return logits shaped (batch={batch_size}, T={length}, vocab), "
                         f"got {shape}")
    return logits.detach().double()


def _replacement_tokens(original: torch.Tensor, candidates: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random candidate token for each entry of `original` (B,), always different from it."""
    index = torch.randint(len(candidates), original.shape, generator=generator)
    replacement = candidates[index]
    same = replacement == original
    return torch.where(same, candidates[(index + 1) % len(candidates)], replacement)


@torch.no_grad()
def future_leakage(
    logits_fn: LogitsFn,
    decoder_input_ids: torch.Tensor,
    vocab_size: int,
    n_trials: int = 4,
    tolerance: float = 1e-4,
    seed: int = 0,
    special_ids: Iterable[int] = (),
) -> LeakageReport:
    """Perturbation audit: sensitivity[t, s] = max over batch, trials and vocab of |logits[t] change| when the
    token at s is replaced by a random non-special token. Leaks when any sensitivity[t, s] > tolerance, s > t.

    logits_fn: decoder_input_ids (B, T) -> logits (B, T, V), encoder inputs fixed inside the closure.
    Costs T * n_trials + 2 calls of `logits_fn`.
    """
    if decoder_input_ids.dim() != 2:
        raise ValueError(f"decoder_input_ids must be (batch, T), got shape {tuple(decoder_input_ids.shape)}")
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    excluded = {int(i) for i in special_ids if i is not None}
    candidates = torch.tensor([i for i in range(vocab_size) if i not in excluded], dtype=torch.long)
    if len(candidates) < 2:
        raise ValueError(f"need at least 2 non-special token ids to draw replacements, vocab_size={vocab_size}")
    batch_size, length = decoder_input_ids.shape
    device = decoder_input_ids.device

    base = _check_logits(logits_fn(decoder_input_ids), batch_size, length)
    repeat = _check_logits(logits_fn(decoder_input_ids), batch_size, length)
    noise = float((base - repeat).abs().max())
    if noise > tolerance:
        raise ValueError(f"logits_fn is not deterministic: two identical calls differ by {noise:.3g} > tolerance "
                         f"{tolerance:.3g} (dropout still on? call model.eval())")

    generator = torch.Generator().manual_seed(seed)
    sensitivity = torch.zeros(length, length, dtype=torch.float64)
    for s in range(length):
        for _ in range(n_trials):
            perturbed = decoder_input_ids.clone()
            perturbed[:, s] = _replacement_tokens(decoder_input_ids[:, s].cpu(), candidates, generator).to(device)
            change = (_check_logits(logits_fn(perturbed), batch_size, length) - base).abs()  # (B, T, V)
            sensitivity[:, s] = torch.maximum(sensitivity[:, s], change.amax(dim=(0, 2)).cpu())
    return report_from_sensitivity(sensitivity, tolerance, "perturbation")


def gradient_leakage(
    embeds_logits_fn: LogitsFn,
    decoder_inputs_embeds: torch.Tensor,
    tolerance: float = 1e-6,
    n_probes: int = 2,
    seed: int = 0,
) -> LeakageReport:
    """Gradient audit: sensitivity[t, s] = max |d (r . logits[:, t]) / d embeds[:, s]| over batch, embedding
    dimensions and `n_probes` random Gaussian directions r over the vocabulary (a random projection of the
    Jacobian: zero for every r exactly when logits[t] does not depend on embeds[s]).

    embeds_logits_fn: decoder_inputs_embeds (B, T, D) -> logits (B, T, V). Costs T * n_probes backward passes.
    """
    if decoder_inputs_embeds.dim() != 3:
        raise ValueError(f"decoder_inputs_embeds must be (batch, T, d_model), got {tuple(decoder_inputs_embeds.shape)}")
    if n_probes < 1:
        raise ValueError(f"n_probes must be >= 1, got {n_probes}")
    batch_size, length, _ = decoder_inputs_embeds.shape
    embeds = decoder_inputs_embeds.detach().clone().requires_grad_(True)
    logits = embeds_logits_fn(embeds)
    _check_logits(logits, batch_size, length)
    generator = torch.Generator().manual_seed(seed)
    sensitivity = torch.zeros(length, length, dtype=torch.float64)
    for t in range(length):
        for _ in range(n_probes):
            probe = torch.randn(logits.shape[-1], generator=generator).to(logits.device, logits.dtype)  # (V,)
            (grad,) = torch.autograd.grad((logits[:, t] * probe).sum(), embeds, retain_graph=True)  # (B, T, D)
            sensitivity[t] = torch.maximum(sensitivity[t], grad.detach().abs().double().amax(dim=(0, 2)).cpu())
    return report_from_sensitivity(sensitivity, tolerance, "gradient")


# --- adapters: a model -> the callable the audit needs -------------------------------------------------------


def _encoder_states(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None):
    """Run the encoder once (no grad)."""
    with torch.no_grad():
        return encode(model, input_ids, attention_mask)


def _seq2seq_call(model, input_ids, attention_mask, encoder_states, decoder_kwargs) -> torch.Tensor:
    """Decoder logits with the encoder either re-run (`encoder_states` None) or reused."""
    if encoder_states is None:
        return model(input_ids=input_ids, attention_mask=attention_mask, **decoder_kwargs).logits
    return model(encoder_outputs=encoder_states, attention_mask=attention_mask, **decoder_kwargs).logits


def seq2seq_logits_fn(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                      reuse_encoder: bool = True, **decoder_kwargs) -> LogitsFn:
    """decoder_input_ids -> logits for an HF seq2seq model or a TinferModel, with the encoder inputs fixed.

    Same logits as `model(input_ids=..., attention_mask=..., decoder_input_ids=...).logits`; with `reuse_encoder`
    the encoder runs once, when the function is made (the audit only perturbs decoder inputs). Extra keyword
    arguments (e.g. `decoder_attention_mask`) are passed on every call.
    """
    encoder_states = _encoder_states(model, input_ids, attention_mask) if reuse_encoder else None

    def logits_fn(decoder_input_ids: torch.Tensor) -> torch.Tensor:
        return _seq2seq_call(model, input_ids, attention_mask, encoder_states,
                             {"decoder_input_ids": decoder_input_ids, **decoder_kwargs})
    return logits_fn


def decoder_only_logits_fn(model, **kwargs) -> LogitsFn:
    """input_ids -> logits for an HF causal LM (GPT-2 and friends)."""
    def logits_fn(input_ids: torch.Tensor) -> torch.Tensor:
        return model(input_ids=input_ids, **kwargs).logits
    return logits_fn


def seq2seq_embeds_logits_fn(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                             reuse_encoder: bool = True, **decoder_kwargs) -> LogitsFn:
    """decoder_inputs_embeds -> logits for an HF seq2seq model or a TinferModel (for `gradient_leakage`)."""
    encoder_states = _encoder_states(model, input_ids, attention_mask) if reuse_encoder else None

    def logits_fn(decoder_inputs_embeds: torch.Tensor) -> torch.Tensor:
        return _seq2seq_call(model, input_ids, attention_mask, encoder_states,
                             {"decoder_inputs_embeds": decoder_inputs_embeds, **decoder_kwargs})
    return logits_fn


def decoder_only_embeds_logits_fn(model, **kwargs) -> LogitsFn:
    """inputs_embeds -> logits for an HF causal LM (for `gradient_leakage`)."""
    def logits_fn(inputs_embeds: torch.Tensor) -> torch.Tensor:
        return model(inputs_embeds=inputs_embeds, **kwargs).logits
    return logits_fn


def decoder_input_embeddings(model, decoder_input_ids: torch.Tensor) -> torch.Tensor:
    """The embeddings a model would compute itself for `decoder_input_ids`: the starting point of `gradient_leakage`.

    TinferModel: its scaled token embedding; HF models: the decoder's (or the model's) input embedding table.
    """
    if is_tinfer(model):
        return model.embed(decoder_input_ids).detach()
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    embedding = decoder.get_input_embeddings() if decoder is not None else model.get_input_embeddings()
    return embedding(decoder_input_ids).detach()


# --- the mask a decoder actually applies -----------------------------------------------------------------------

BLOCKED_BELOW = -1e4  # an additive mask entry below this blocks attention (HF uses finfo.min, others -1e9 or -inf)


@contextmanager
def capture_self_attention_masks(model) -> Iterator[list[dict]]:
    """Record what each decoder self-attention module receives as its mask, during the `with` block.

    Yields a list that fills with one dict per module call: `module` (name), `mask` (the tensor the module got,
    or None), `is_causal` (the module's flag that SDPA uses when the mask is None) and `query_length`.
    For TinferModel the recorded mask is its boolean `allowed` tensor.
    """
    records: list[dict] = []

    def hook(name, module, args, kwargs):
        if "mask" in kwargs:  # T5Attention
            mask = kwargs["mask"]
        elif "attention_mask" in kwargs:  # Marian / BART attention
            mask = kwargs["attention_mask"]
        else:  # TinferModel: (query_states, key_value_states, allowed)
            mask = args[2] if len(args) > 2 else kwargs.get("allowed")
        hidden_states = args[0] if args else kwargs["hidden_states"]
        records.append({"module": name, "mask": None if mask is None else mask.detach().clone(),
                        "is_causal": getattr(module, "is_causal", None), "query_length": hidden_states.shape[1]})

    handles = [module.register_forward_pre_hook(lambda m, a, k, name=name: hook(name, m, a, k), with_kwargs=True)
               for name, module in decoder_self_attention_modules(model)]
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def capture_sdpa_kernel_calls(model) -> Iterator[list[dict]]:
    """Record what reaches `torch.nn.functional.scaled_dot_product_attention` from the decoder self-attention
    modules during the `with` block: `mask` (the tensor the kernel got, or None), `is_causal` (the flag it got) and
    the query and key lengths. HF's SDPA path may turn a module's mask into something else before the kernel (T5
    folds its position bias into an explicit causal mask), so this is what the kernel actually applies."""
    records: list[dict] = []
    inside = []
    original = torch.nn.functional.scaled_dot_product_attention

    def recording(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, **kwargs):
        if inside:
            records.append({"module": inside[-1], "mask": None if attn_mask is None else attn_mask.detach().clone(),
                            "is_causal": bool(is_causal), "query_length": query.shape[-2],
                            "key_length": key.shape[-2]})
        return original(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, **kwargs)

    def leave(module, args, output) -> None:
        inside.pop()

    handles = []
    for name, module in decoder_self_attention_modules(model):
        handles.append(module.register_forward_pre_hook(lambda m, a, name=name: inside.append(name)))
        handles.append(module.register_forward_hook(leave))
    torch.nn.functional.scaled_dot_product_attention = recording
    try:
        yield records
    finally:
        torch.nn.functional.scaled_dot_product_attention = original
        for handle in handles:
            handle.remove()


def allowed_from_attention_mask(mask: torch.Tensor | None, is_causal: bool | None, query_length: int,
                                key_length: int | None = None) -> torch.Tensor:
    """A captured mask -> boolean (B or 1, 1, T_query, T_key), True where attention is allowed.

    bool masks are already "True = allowed" (SDPA convention); float masks are additive (0 allowed, very negative
    blocked); `None` means no mask tensor, and then SDPA's `is_causal` flag decides (causal when query_length > 1).
    """
    key_length = query_length if key_length is None else key_length
    if mask is None:
        allowed = torch.ones(1, 1, query_length, key_length, dtype=torch.bool)
        if is_causal and query_length > 1:
            if query_length != key_length:
                raise ValueError("is_causal with query_length != key_length is not a square causal pattern")
            allowed = allowed & causal_mask(query_length)
        return allowed
    if mask.dim() != 4:
        raise ValueError(f"expected a 4-D mask (B, 1, T_query, T_key), got shape {tuple(mask.shape)}")
    if mask.dtype == torch.bool:
        return mask.cpu()
    blocked = mask < BLOCKED_BELOW
    if not bool((blocked | (mask == 0)).all()):
        raise ValueError("additive mask has entries that are neither 0 nor strongly negative (a bias, not a mask)")
    return (~blocked).cpu()


# --- comparing logits ----------------------------------------------------------------------------------------


def max_abs_diff_per_position(logits: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """max over batch and vocab of |logits - other|: (B, T, V), (B, T, V) -> (T,)."""
    if logits.shape != other.shape:
        raise ValueError(f"shapes differ: {tuple(logits.shape)} vs {tuple(other.shape)}")
    return (logits.detach().double() - other.detach().double()).abs().amax(dim=(0, 2)).cpu()
