"""The three pre-training objectives of notebook 06, written out by hand next to what Hugging Face does.

- causal LM (GPT-2): `labels = input_ids`; the model shifts inside, logits[:, t] is scored against labels[:, t + 1]
  -> `shifted_causal_lm_loss`, `prefix_consistency`
- masked LM (BERT / RoBERTa): 15% of the tokens are selected, of which 80% become `<mask>`, 10% a random token,
  10% stay as they are; labels are -100 everywhere else -> `count_mlm_replacements`, `measure_mlm_replacements`,
  `dynamic_mlm_loss_fn`
- T5 span corruption (Raffel et al. 2020, §3.1.4 and §3.3.4): about 15% of the tokens, in spans of mean length 3,
  are each replaced in the input by one sentinel `<extra_id_N>`; the target lists the sentinels with the spans they
  stand for -> `random_spans_noise_mask`, `span_corrupt`, `span_uncorrupt`, `check_span_corruption`,
  `span_corruption_features`

plus tiny GPT-2 / RoBERTa builders, a token-weighted perplexity, and a BPE vocabulary-size study.
"""

import math
import random
from dataclasses import dataclass

import torch
from matplotlib.ticker import MaxNLocator
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, RobertaConfig, RobertaForMaskedLM

from utils.handwritten.teacher_forcing import IGNORE_INDEX, masked_cross_entropy
from utils.workbench.device import to_device
from utils.workbench.models import build_config
from utils.workbench.tolerance import Comparison, compare

__all__ = [
    "ReplacementCounts",
    "build_causal_lm",
    "build_masked_lm",
    "check_span_corruption",
    "count_mlm_replacements",
    "count_spans",
    "dynamic_mlm_loss_fn",
    "masked_lm_nll_by_replacement",
    "measure_mlm_replacements",
    "noise_span_counts",
    "pack_sequences",
    "perplexity",
    "plot_attention",
    "prefix_consistency",
    "random_spans_noise_mask",
    "shifted_causal_lm_loss",
    "span_corrupt",
    "span_corruption_features",
    "span_uncorrupt",
    "t5_sentinel_ids",
    "token_weighted_nll",
    "train_byte_level_bpe",
    "vocab_size_study",
]

# ---------------------------------------------------------------- tiny decoder-only and encoder-only models


def _gpt2_config(tokenizer, size: str = "tiny", dropout: float = 0.1) -> GPT2Config:
    """A GPT-2 as deep as an encoder plus a decoder of `size` (so 4 layers for "tiny")."""
    return build_config("gpt2", tokenizer, size, dropout)


def _roberta_config(tokenizer, size: str = "tiny", dropout: float = 0.1) -> RobertaConfig:
    """A RoBERTa encoder as deep as an encoder plus a decoder of `size`; positions start after the pad id."""
    return build_config("roberta", tokenizer, size, dropout)


def build_causal_lm(tokenizer, size: str = "tiny", seed: int = 0, dropout: float = 0.1) -> GPT2LMHeadModel:
    """A freshly initialised tiny GPT-2 (eager attention, so that attention weights can be returned)."""
    config = _gpt2_config(tokenizer, size, dropout)
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    return GPT2LMHeadModel(config)


def build_masked_lm(tokenizer, size: str = "tiny", seed: int = 0, dropout: float = 0.1) -> RobertaForMaskedLM:
    """A freshly initialised tiny RoBERTa with its masked-LM head (eager attention)."""
    config = _roberta_config(tokenizer, size, dropout)
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    return RobertaForMaskedLM(config)


# ---------------------------------------------------------------- causal LM


def shifted_causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX,
                           reduction: str = "token_mean") -> torch.Tensor:
    """The causal-LM loss by hand: logits at position t are scored against the label at t + 1.

    logits: (B, T, V), labels: (B, T) with `labels = input_ids` (pads as -100). The last logit has nothing to
    predict and the first label is never predicted, so both are dropped: (B, T-1) scored positions.
    """
    if logits.dim() != 3 or logits.shape[:2] != labels.shape:
        raise ValueError(f"logits (B, T, V) and labels (B, T) do not line up: {tuple(logits.shape)} vs "
                         f"{tuple(labels.shape)}")
    return masked_cross_entropy(logits[:, :-1], labels[:, 1:], ignore_index=ignore_index, reduction=reduction)


@torch.no_grad()
def prefix_consistency(logits_fn, input_ids: torch.Tensor) -> Comparison:
    """One pass against prefix by prefix: logits_fn(ids)[:, t] vs logits_fn(ids[:, :t+1])[:, t] for every t, under
    the tolerance model (`.same` when position t ignores the future, `.max_abs_diff` the largest gap).

    This is what makes one teacher-forced pass equal to running the model prefix by prefix, as at generation.
    """
    full = logits_fn(input_ids)  # (B, T, V)
    steps = [logits_fn(input_ids[:, : t + 1])[:, t] for t in range(input_ids.shape[1])]  # T x (B, V)
    return compare(torch.stack(steps, dim=1), full)  # (B, T, V) vs (B, T, V)


# ---------------------------------------------------------------- masked LM


@dataclass
class ReplacementCounts:
    """How the selected tokens of masked-LM batches were replaced, summed over batches."""

    n_candidates: int = 0  # tokens that could be selected (not special, not padding)
    n_selected: int = 0  # labels != -100
    n_mask: int = 0  # selected and replaced by the mask token
    n_random: int = 0  # selected and replaced by another token
    n_unchanged: int = 0  # selected and left as they were
    n_label_errors: int = 0  # labels set to something other than the original token, or set on a special token
    n_unselected_changed: int = 0  # inputs changed at positions that were not selected

    def __add__(self, other: "ReplacementCounts") -> "ReplacementCounts":
        return ReplacementCounts(*(a + b for a, b in zip(vars(self).values(), vars(other).values(), strict=True)))

    def rates(self) -> dict[str, float]:
        """selected / candidates, and the mask / random / unchanged shares of the selected tokens."""
        selected = max(self.n_selected, 1)
        return {
            "selected": self.n_selected / max(self.n_candidates, 1),
            "mask": self.n_mask / selected,
            "random": self.n_random / selected,
            "unchanged": self.n_unchanged / selected,
        }


def count_mlm_replacements(original_ids: torch.Tensor, input_ids: torch.Tensor, labels: torch.Tensor,
                           mask_token_id: int, special_tokens_mask: torch.Tensor) -> ReplacementCounts:
    """Classify each selected position (labels != -100) of one masked-LM batch (all tensors (B, T)).

    A random replacement that happens to draw the original token counts as unchanged, one that draws the mask
    token as mask (each has probability 1 / vocab size).
    """
    selected = labels != IGNORE_INDEX
    candidates = ~special_tokens_mask.bool()
    label_errors = selected & ((labels != original_ids) | ~candidates)
    is_mask = selected & (input_ids == mask_token_id)
    is_unchanged = selected & (input_ids == original_ids) & ~is_mask
    return ReplacementCounts(
        n_candidates=int(candidates.sum()),
        n_selected=int(selected.sum()),
        n_mask=int(is_mask.sum()),
        n_random=int((selected & ~is_mask & ~is_unchanged).sum()),
        n_unchanged=int(is_unchanged.sum()),
        n_label_errors=int(label_errors.sum()),
        n_unselected_changed=int((~selected & (input_ids != original_ids)).sum()),
    )


def measure_mlm_replacements(collator, examples: list[dict], n_rounds: int, batch_size: int = 64
                             ) -> ReplacementCounts:
    """Run `collator` (a `DataCollatorForLanguageModeling(mlm=True)`) over `examples` `n_rounds` times and count.

    `examples` are `{"input_ids": [...]}` dicts; the originals come from padding them with the same tokenizer.
    """
    tokenizer = collator.tokenizer
    total = ReplacementCounts()
    for _ in range(n_rounds):
        for start in range(0, len(examples), batch_size):
            chunk = examples[start:start + batch_size]
            original = tokenizer.pad([{"input_ids": e["input_ids"]} for e in chunk], return_tensors="pt")["input_ids"]
            batch = collator([{"input_ids": e["input_ids"]} for e in chunk])
            special = torch.tensor([tokenizer.get_special_tokens_mask(row, already_has_special_tokens=True)
                                    for row in original.tolist()])
            total = total + count_mlm_replacements(original, batch["input_ids"], batch["labels"],
                                                   tokenizer.mask_token_id, special)
    return total


def dynamic_mlm_loss_fn(collator):
    """A `loss_fn(model, batch)` for `utils.workbench.training.train` that masks each batch afresh (dynamic masking).

    The batch's `input_ids` are the clean padded tokens; `collator.torch_mask_tokens` picks the positions.
    """
    def loss_fn(model, batch):
        input_ids, labels = collator.torch_mask_tokens(batch["input_ids"].clone())
        return model(input_ids=input_ids, attention_mask=batch["attention_mask"], labels=labels).loss
    return loss_fn


# ---------------------------------------------------------------- T5 span corruption


def t5_sentinel_ids(tokenizer, n: int = 100) -> list[int]:
    """Ids of `<extra_id_0>` ... `<extra_id_{n-1}>` (in T5 they count down from the top of the vocabulary)."""
    ids = tokenizer.convert_tokens_to_ids([f"<extra_id_{i}>" for i in range(n)])
    if tokenizer.unk_token_id in ids:
        raise ValueError(f"the tokenizer has fewer than {n} <extra_id_N> sentinel tokens")
    return ids


def _random_composition(total: int, n_parts: int, rng: random.Random) -> list[int]:
    """`total` split into `n_parts` positive integers, uniformly over all such splits."""
    cuts = sorted(rng.sample(range(1, total), n_parts - 1))
    return [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)]


def noise_span_counts(length: int, noise_density: float = 0.15, mean_noise_span_length: float = 3.0
                      ) -> tuple[int, int]:
    """(noise tokens, noise spans) for a sequence of `length`, rounded as T5 does, at least one of each."""
    if length < 2:
        raise ValueError(f"span corruption needs at least 2 tokens, got {length}")
    if not 0.0 < noise_density < 1.0:
        raise ValueError(f"noise_density must be in (0, 1), got {noise_density}")
    if mean_noise_span_length < 1.0:
        raise ValueError(f"mean_noise_span_length must be >= 1, got {mean_noise_span_length}")
    n_noise = min(max(round(length * noise_density), 1), length - 1)
    n_spans = max(round(n_noise / mean_noise_span_length), 1)
    return n_noise, min(n_spans, n_noise, length - n_noise)


def random_spans_noise_mask(length: int, noise_density: float = 0.15, mean_noise_span_length: float = 3.0,
                            rng: random.Random | None = None) -> list[bool]:
    """T5's noise mask: `noise_span_counts` noise tokens in that many spans, True = dropped.

    Noise and kept tokens are each split into spans at random, then interleaved kept-first (kept, noise, kept,
    noise, ...), as in T5's `random_spans_noise_mask`, so the mask starts with a kept token and ends with noise.
    """
    rng = rng if rng is not None else random.Random(0)
    n_noise, n_spans = noise_span_counts(length, noise_density, mean_noise_span_length)
    noise_lengths = _random_composition(n_noise, n_spans, rng)
    kept_lengths = _random_composition(length - n_noise, n_spans, rng)
    mask = []
    for kept, noise in zip(kept_lengths, noise_lengths, strict=True):
        mask += [False] * kept + [True] * noise
    return mask


def count_spans(noise_mask: list[bool]) -> int:
    """Number of maximal runs of True."""
    return sum(1 for i, noisy in enumerate(noise_mask) if noisy and (i == 0 or not noise_mask[i - 1]))


def span_corrupt(token_ids: list[int], noise_mask: list[bool], sentinel_ids: list[int]
                 ) -> tuple[list[int], list[int]]:
    """(inputs, targets): each noise span -> one sentinel in the inputs; the targets list sentinel + span, in order.

    As in Figure 2 of the T5 paper, the targets end with one more sentinel when the sequence ends with kept
    tokens ("<X> for inviting <Y> last <Z>"). No eos is added here.
    """
    if len(token_ids) != len(noise_mask):
        raise ValueError(f"{len(token_ids)} tokens but a noise mask of {len(noise_mask)}")
    if set(token_ids) & set(sentinel_ids):
        raise ValueError("the tokens already contain a sentinel id: the corruption could not be undone")
    n_spans = count_spans(noise_mask)
    closing = int(bool(noise_mask) and not noise_mask[-1] and n_spans > 0)
    if n_spans + closing > len(sentinel_ids):
        raise ValueError(f"{n_spans + closing} sentinels needed, only {len(sentinel_ids)} given")
    inputs, targets, span = [], [], -1
    for i, (token, noisy) in enumerate(zip(token_ids, noise_mask, strict=True)):
        if noisy and (i == 0 or not noise_mask[i - 1]):
            span += 1
            inputs.append(sentinel_ids[span])
            targets.append(sentinel_ids[span])
        (targets if noisy else inputs).append(token)
    if closing:
        targets.append(sentinel_ids[span + 1])
    return inputs, targets


def span_uncorrupt(inputs: list[int], targets: list[int], sentinel_ids: list[int]) -> list[int]:
    """Undo `span_corrupt`: put each span of the targets back in place of its sentinel in the inputs."""
    sentinels = set(sentinel_ids)
    spans, current = {}, None
    for token in targets:
        if token in sentinels:
            current = token
            spans[current] = []
        elif current is None:
            raise ValueError("the targets do not start with a sentinel")
        else:
            spans[current].append(token)
    original = []
    for token in inputs:
        if token in sentinels:
            if token not in spans:
                raise ValueError(f"sentinel {token} of the inputs is missing from the targets")
            original.extend(spans[token])
        else:
            original.append(token)
    return original


@dataclass
class _SpanCorruptionCheck:
    """The invariants of one corrupted sequence; `holds` is True when all of them do."""

    length: int
    n_noise: int
    n_spans: int
    dropped_in_targets_in_order: bool  # targets without sentinels == the dropped tokens, each once, in order
    kept_in_inputs_in_order: bool  # inputs without sentinels == the kept tokens, in order
    sentinels_numbered: bool  # inputs hold <extra_id_0..k-1>, targets the same (+ <extra_id_k> when closing)
    lengths_match: bool  # len(inputs) = L - noise + spans, len(targets) = noise + spans (+ 1 when closing)
    density_matches: bool  # noise tokens and spans are those `noise_span_counts` asks for
    reconstructs: bool  # span_uncorrupt(inputs, targets) == the original

    @property
    def holds(self) -> bool:
        return all((self.dropped_in_targets_in_order, self.kept_in_inputs_in_order, self.sentinels_numbered,
                    self.lengths_match, self.density_matches, self.reconstructs))


def check_span_corruption(token_ids: list[int], noise_mask: list[bool], inputs: list[int], targets: list[int],
                          sentinel_ids: list[int], noise_density: float = 0.15,
                          mean_noise_span_length: float = 3.0) -> _SpanCorruptionCheck:
    """Check (inputs, targets) against the original tokens and the mask, independently of how they were made."""
    sentinels = set(sentinel_ids)
    n_noise, n_spans = sum(noise_mask), count_spans(noise_mask)
    closing = int(n_spans > 0 and not noise_mask[-1])
    dropped = [t for t, noisy in zip(token_ids, noise_mask, strict=True) if noisy]
    kept = [t for t, noisy in zip(token_ids, noise_mask, strict=True) if not noisy]
    try:
        reconstructs = span_uncorrupt(inputs, targets, sentinel_ids) == list(token_ids)
    except ValueError:
        reconstructs = False
    return _SpanCorruptionCheck(
        length=len(token_ids), n_noise=n_noise, n_spans=n_spans,
        dropped_in_targets_in_order=[t for t in targets if t not in sentinels] == dropped,
        kept_in_inputs_in_order=[t for t in inputs if t not in sentinels] == kept,
        sentinels_numbered=([t for t in inputs if t in sentinels] == sentinel_ids[:n_spans]
                            and [t for t in targets if t in sentinels] == sentinel_ids[:n_spans + closing]),
        lengths_match=(len(inputs) == len(token_ids) - n_noise + n_spans
                       and len(targets) == n_noise + n_spans + closing),
        density_matches=(n_noise, n_spans) == noise_span_counts(len(token_ids), noise_density,
                                                                mean_noise_span_length),
        reconstructs=reconstructs,
    )


def pack_sequences(sequences: list[list[int]], chunk_length: int) -> list[list[int]]:
    """Concatenate the sequences and cut them into chunks of `chunk_length`, dropping the remainder (as T5 does)."""
    if chunk_length < 2:
        raise ValueError(f"chunk_length must be >= 2, got {chunk_length}")
    stream = [token for sequence in sequences for token in sequence]
    return [stream[start:start + chunk_length] for start in range(0, len(stream) - chunk_length + 1, chunk_length)]


def span_corruption_features(sequences: list[list[int]], sentinel_ids: list[int], eos_token_id: int,
                             noise_density: float = 0.15, mean_noise_span_length: float = 3.0,
                             seed: int = 0) -> list[dict[str, list[int]]]:
    """`{"input_ids", "labels"}` per sequence: corrupted input + eos, span targets + eos (a seeded mask each)."""
    rng = random.Random(seed)
    features = []
    for token_ids in sequences:
        noise_mask = random_spans_noise_mask(len(token_ids), noise_density, mean_noise_span_length, rng)
        inputs, targets = span_corrupt(token_ids, noise_mask, sentinel_ids)
        features.append({"input_ids": inputs + [eos_token_id], "labels": targets + [eos_token_id]})
    return features


# ---------------------------------------------------------------- perplexity


@torch.no_grad()
def token_weighted_nll(model, batches: list[dict[str, torch.Tensor]], shift: bool) -> tuple[float, int]:
    """(mean negative log-likelihood per scored token, number of scored tokens) over all batches.

    Every scored token weighs the same, whatever its batch: sum of losses / sum of tokens, not a mean of batch
    means. `shift=True` for causal LMs (logits[t] vs labels[t + 1]), False when labels line up with the logits
    (masked LM, seq2seq). Batches are passed to the model whole (`model(**batch)`).
    """
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for batch in batches:
        batch = to_device(batch, device)
        logits, labels = model(**batch).logits, batch["labels"]  # (B, T, V), (B, T)
        if shift:
            logits, labels = logits[:, :-1], labels[:, 1:]
        total += float(masked_cross_entropy(logits, labels, reduction="sum"))
        count += int((labels != IGNORE_INDEX).sum())
    if count == 0:
        raise ValueError("no scored tokens (every label is -100)")
    return total / count, count


def perplexity(nll: float) -> float:
    return math.exp(nll)


@torch.no_grad()
def masked_lm_nll_by_replacement(model, batches: list[dict[str, torch.Tensor]], mask_token_id: int
                                 ) -> dict[str, tuple[float, int]]:
    """Masked-LM loss split by what the scored position shows the model: {kind: (mean nll, tokens)}.

    kinds: "mask" (the input holds the mask token), "random" (another token), "unchanged" (the answer itself
    is visible), and "all". Batches are a masked-LM collator's output: input_ids, attention_mask, labels.
    """
    model.eval()
    device = next(model.parameters()).device
    sums = {kind: [0.0, 0] for kind in ("mask", "random", "unchanged", "all")}
    for batch in batches:
        batch = to_device(batch, device)
        input_ids, labels = batch["input_ids"], batch["labels"]
        per_token = masked_cross_entropy(model(**batch).logits, labels, reduction="none")  # (B, T)
        scored = labels != IGNORE_INDEX
        is_mask = scored & (input_ids == mask_token_id)
        is_unchanged = scored & (input_ids == labels) & ~is_mask
        kinds = {"mask": is_mask, "unchanged": is_unchanged, "random": scored & ~is_mask & ~is_unchanged,
                 "all": scored}
        for kind, where in kinds.items():
            sums[kind][0] += float(per_token[where].sum())
            sums[kind][1] += int(where.sum())
    return {kind: (total / count if count else float("nan"), count) for kind, (total, count) in sums.items()}


# ---------------------------------------------------------------- plots


def plot_attention(weights: torch.Tensor, ax, title: str, tokens: list[str] | None = None,
                   key_tokens: list[str] | None = None):
    """(T_query, T_key) attention weights as a heatmap (rows = query, columns = key); returns the image."""
    if weights.dim() != 2:
        raise ValueError(f"plot one (T_query, T_key) matrix at a time, got shape {tuple(weights.shape)}")
    image = ax.imshow(weights.detach().float().cpu().numpy(), cmap="viridis", vmin=0.0)
    key_tokens = tokens if key_tokens is None else key_tokens
    if tokens is not None:
        ax.set_yticks(range(len(tokens)), tokens, fontsize=6)
        ax.set_xticks(range(len(key_tokens)), key_tokens, fontsize=6, rotation=90)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("key position (attended to)")
    ax.set_ylabel("query position")
    ax.set_title(title, fontsize=9)
    return image


# ---------------------------------------------------------------- tokenizer training


def train_byte_level_bpe(lines: list[str], vocab_size: int) -> Tokenizer:
    """A byte-level BPE (GPT-2 / RoBERTa style) trained on `lines`; the 256 bytes plus 5 specials come first."""
    special_tokens = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    minimum = len(pre_tokenizers.ByteLevel.alphabet()) + len(special_tokens)
    if vocab_size < minimum:
        raise ValueError(f"vocab_size must be >= {minimum} (256 bytes + {len(special_tokens)} specials), "
                         f"got {vocab_size}")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special_tokens, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(lines, trainer)
    return tokenizer


def vocab_size_study(train_lines: list[str], eval_lines: list[str], vocab_sizes: list[int]) -> list[dict]:
    """For each requested size: train a BPE on `train_lines`, encode `eval_lines`, report lengths.

    Rows: vocab_size (requested), learned_vocab_size, tokens_per_line (mean), chars_per_token, max_tokens.
    """
    if not eval_lines:
        raise ValueError("eval_lines is empty")
    rows = []
    n_chars = sum(len(line) for line in eval_lines)
    for vocab_size in vocab_sizes:
        tokenizer = train_byte_level_bpe(train_lines, vocab_size)
        lengths = [len(encoding.ids) for encoding in tokenizer.encode_batch(eval_lines)]
        rows.append({
            "vocab_size": vocab_size,
            "learned_vocab_size": tokenizer.get_vocab_size(),
            "tokens_per_line": sum(lengths) / len(lengths),
            "chars_per_token": n_chars / sum(lengths),
            "max_tokens": max(lengths),
        })
    return rows
