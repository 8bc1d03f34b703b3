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

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch

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


def seq2seq_logits_fn(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                      **decoder_kwargs) -> LogitsFn:
    """decoder_input_ids -> logits for an HF seq2seq model or a TinferModel, with the encoder inputs fixed.

    Extra keyword arguments (e.g. `decoder_attention_mask`) are passed on every call.
    """
    def logits_fn(decoder_input_ids: torch.Tensor) -> torch.Tensor:
        return model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
                     **decoder_kwargs).logits
    return logits_fn


def decoder_only_logits_fn(model, **kwargs) -> LogitsFn:
    """input_ids -> logits for an HF causal LM (GPT-2 and friends)."""
    def logits_fn(input_ids: torch.Tensor) -> torch.Tensor:
        return model(input_ids=input_ids, **kwargs).logits
    return logits_fn


def seq2seq_embeds_logits_fn(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                             **decoder_kwargs) -> LogitsFn:
    """decoder_inputs_embeds -> logits for an HF seq2seq model or a TinferModel (for `gradient_leakage`)."""
    def logits_fn(decoder_inputs_embeds: torch.Tensor) -> torch.Tensor:
        return model(input_ids=input_ids, attention_mask=attention_mask, decoder_inputs_embeds=decoder_inputs_embeds,
                     **decoder_kwargs).logits
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
    if hasattr(model, "embed") and hasattr(model, "decode"):  # TinferModel
        return model.embed(decoder_input_ids).detach()
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    embedding = decoder.get_input_embeddings() if decoder is not None else model.get_input_embeddings()
    return embedding(decoder_input_ids).detach()


# --- plotting ------------------------------------------------------------------------------------------------


def plot_sensitivity(report: LeakageReport, ax, title: str | None = None, floor: float = 1e-12):
    """Heatmap of log10(sensitivity) with the future region (s > t) outlined; returns the image for a colorbar."""
    values = report.sensitivity.clamp_min(floor).log10().numpy()
    length = values.shape[0]
    image = ax.imshow(values, cmap="magma", vmin=float(torch.log10(torch.tensor(floor))),
                      vmax=max(float(values.max()), 0.0), origin="upper")
    # staircase along the diagonal: everything above/right of it is the future (s > t)
    xs, ys = [-0.5], [-0.5]
    for t in range(length):
        xs += [t + 0.5, t + 0.5]
        ys += [t - 0.5, t + 0.5]
    ax.plot(xs + [length - 0.5, -0.5], ys + [-0.5, -0.5], color="cyan", linewidth=1.5,
            label=f"future s > t (tolerance {report.tolerance:.0e})")
    for t, s in report.leaking_positions:
        ax.plot(s, t, marker="x", color="cyan", markersize=4, linestyle="none")
    ax.set_xlim(-0.5, length - 0.5)
    ax.set_ylim(length - 0.5, -0.5)
    ax.set_xlabel("perturbed decoder input position s")
    ax.set_ylabel("output position t")
    verdict = "LEAKS" if report.leaks else "no leakage"
    ax.set_title(f"{title + ': ' if title else ''}{verdict} (max future {report.max_future_sensitivity:.1e})",
                 fontsize=9)
    ax.legend(loc="lower left", fontsize=7)
    return image
