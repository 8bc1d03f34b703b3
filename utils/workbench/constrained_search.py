"""Constrained beam search, hand-written: outputs forced to contain words or phrases (or one of several
alternatives), beams allocated by constraint progress ("banks"; Post & Vilar 2018, simplified).

Constrained beam search left transformers' core in 5.x (`generate(force_words_ids=...)` raises), so nothing here is
compared with HF: it builds on the hand-written beam search of `utils.handwritten.decoding` (its `StepModel`, its
pool of finished hypotheses and its length penalty) and is measured in notebook 05.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from utils.handwritten.decoding import (  # the beam search's own parts, reused as they are
    StepModel,
    _beam_can_improve,
    _FinishedPool,
    _initial_prefix,
    _pad_hypotheses,
    length_penalty_value,
)
from utils.handwritten.seq2seq import special_token_ids

__all__ = ["constrained_beam_search", "constraints_from_words",
           "contains_sequence", "satisfies"]

# A constraint is a list of alternatives, each a token-id sequence: [[a, b]] forces the phrase "a b",
# [[x], [y, z]] forces "x" or "y z" (a disjunctive constraint).
_Constraint = list[list[int]]


def constraints_from_words(tokenizer, words: list) -> list[_Constraint]:
    """Each item a word or phrase (str) or a list of alternatives (list[str]) -> token-id constraints.

    Words are tokenized as they appear inside a sentence (a leading space; no special tokens).
    """
    constraints = []
    for item in words:
        alternatives = [item] if isinstance(item, str) else list(item)
        if not alternatives:
            raise ValueError("an empty list of alternatives can never be satisfied")
        encoded = [tokenizer(" " + text.strip(), add_special_tokens=False)["input_ids"] for text in alternatives]
        encoded = [[t for t in ids if t not in tokenizer.all_special_ids] for ids in encoded]
        if any(not ids for ids in encoded):
            raise ValueError(f"a forced word tokenizes to nothing: {alternatives!r}")
        constraints.append(encoded)
    return constraints


def contains_sequence(tokens: list[int], phrase: list[int]) -> bool:
    n = len(phrase)
    return any(tokens[i:i + n] == phrase for i in range(len(tokens) - n + 1))


def satisfies(tokens: list[int], constraints: list[_Constraint]) -> bool:
    """Every constraint has at least one alternative that occurs as a contiguous run of `tokens`."""
    return all(any(contains_sequence(tokens, alternative) for alternative in c) for c in constraints)


@dataclass(frozen=True)
class _ConstraintState:
    """Per constraint: satisfied already, or the tokens of a partial match at the end of the hypothesis."""
    done: tuple[bool, ...]
    partial: tuple[tuple[int, ...], ...]

    @classmethod
    def start(cls, constraints: list[_Constraint]) -> "_ConstraintState":
        return cls(tuple(False for _ in constraints), tuple(() for _ in constraints))

    def advance(self, token: int, constraints: list[_Constraint]) -> "_ConstraintState":
        done, partial = list(self.done), list(self.partial)
        for i, alternatives in enumerate(constraints):
            if done[i]:
                continue
            matched = self.partial[i] + (token,)
            if not any(tuple(a[:len(matched)]) == matched for a in alternatives):
                matched = (token,)  # a broken phrase may restart at this very token
                if not any(a[0] == token for a in alternatives):
                    matched = ()
            done[i] = any(tuple(a) == matched for a in alternatives)
            partial[i] = () if done[i] else matched
        return _ConstraintState(tuple(done), tuple(partial))

    def progress(self, constraints: list[_Constraint]) -> int:
        """Constraint tokens already placed: the "bank" of the hypothesis."""
        return sum(max(len(a) for a in c) if d else len(p) for c, d, p in zip(constraints, self.done, self.partial,
                                                                               strict=True))

    def complete(self) -> bool:
        return all(self.done)

    def next_tokens(self, constraints: list[_Constraint]) -> set[int]:
        """Tokens that make progress: the continuation of a started phrase, or the start of an open one."""
        tokens = set()
        for alternatives, done, partial in zip(constraints, self.done, self.partial, strict=True):
            if done:
                continue
            for a in alternatives:
                if partial and tuple(a[:len(partial)]) == partial and len(a) > len(partial):
                    tokens.add(a[len(partial)])
                elif not partial:
                    tokens.add(a[0])
        return tokens


def _allocate_by_bank(candidates: list[tuple[float, int, int, _ConstraintState, int]], num_beams: int) -> list:
    """Next beams from (score, row, token, state, bank) candidates: take the best of each bank in turn,
    the most advanced bank first, so that beams which placed constraint tokens survive lower scores."""
    banks: dict[int, list] = {}
    for candidate in sorted(candidates, key=lambda c: -c[0]):
        banks.setdefault(candidate[4], []).append(candidate)
    order = sorted(banks, reverse=True)
    chosen = []
    while len(chosen) < num_beams and any(banks[b] for b in order):
        for bank in order:
            if banks[bank] and len(chosen) < num_beams:
                chosen.append(banks[bank].pop(0))
    return chosen


@dataclass
class _ConstrainedOutput:
    sequences: torch.Tensor  # (B, L), padded with pad
    scores: list[float]  # penalized score of each returned hypothesis
    satisfied: list[bool]  # whether each returned hypothesis contains every constraint


@torch.no_grad()
def constrained_beam_search(model, input_ids, attention_mask=None, constraints: list[_Constraint] | None = None,
                            num_beams: int = 4, max_new_tokens: int = 20, length_penalty: float = 1.0,
                            length_penalty_form: str = "hf", use_cache: bool | None = None,
                            **special) -> _ConstrainedOutput:
    """Beam search whose outputs contain every constraint (when the length limit allows it).

    Per input: candidates are the 2 * num_beams best extensions plus, for every beam, the tokens that
    advance a constraint; <eos> is only allowed once all constraints are met; next beams are taken
    from the banks of constraint progress in turn (Post & Vilar 2018's dynamic beam allocation, simplified).
    """
    constraints = constraints or []
    if any(not alternatives or any(not a for a in alternatives) for alternatives in constraints):
        raise ValueError("every constraint needs at least one non-empty alternative")
    ids = special_token_ids(model, **special)
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    results = [_constrained_one(model, input_ids[b:b + 1], attention_mask[b:b + 1], constraints, num_beams,
                                max_new_tokens, length_penalty, length_penalty_form, use_cache, ids)
               for b in range(input_ids.shape[0])]
    return _ConstrainedOutput(sequences=_pad_hypotheses([tokens for tokens, _ in results], ids.pad_token_id).to(
                                 input_ids.device),
                             scores=[score for _, score in results],
                             satisfied=[satisfies(tokens, constraints) for tokens, _ in results])


def _constrained_one(model, input_ids, attention_mask, constraints, num_beams, max_new_tokens, length_penalty,
                     form, use_cache, ids) -> tuple[list[int], float]:
    """One input: returns (tokens, penalized score) of the best complete hypothesis (or best running one)."""
    step_model = StepModel(model, input_ids, attention_mask, use_cache)
    prefix = _initial_prefix(input_ids, ids)[0].tolist()
    beams = [(0.0, prefix, _ConstraintState.start(constraints))]
    finished = _FinishedPool(num_beams)
    for step in range(max_new_tokens):
        prefixes = torch.tensor([t for _, t, _ in beams], device=input_ids.device)
        log_probs = F.log_softmax(step_model.next_logits(prefixes), dim=-1)
        for row, (_, _, state) in enumerate(beams):
            if not state.complete():
                log_probs[row, ids.eos_token_id] = -math.inf
        totals = torch.tensor([s for s, _, _ in beams], device=input_ids.device)[:, None] + log_probs  # (N, V)
        vocab_size = totals.shape[-1]
        proposals = {(int(i) // vocab_size, int(i) % vocab_size) for i in totals.flatten().topk(2 * num_beams).indices}
        for row, (_, _, state) in enumerate(beams):  # every beam keeps a way forward: its best token, the
            proposals.add((row, int(totals[row].argmax())))  # tokens that advance a constraint, and <eos> once done
            proposals |= {(row, t) for t in state.next_tokens(constraints)}
            if state.complete():
                proposals.add((row, ids.eos_token_id))
        candidates = []
        penalty = length_penalty_value(step + 1, length_penalty, form)
        for row, token in sorted(proposals):
            score = float(totals[row, token])
            if score == -math.inf:
                continue
            state = beams[row][2].advance(token, constraints)
            tokens = beams[row][1] + [token]
            if token == ids.eos_token_id or (step == max_new_tokens - 1 and state.complete()):
                finished.add(score / penalty, tokens)
            else:
                candidates.append((score, row, token, state, state.progress(constraints)))
        chosen = _allocate_by_bank(candidates, num_beams)
        best_running = max((c[0] for c in chosen), default=-math.inf)
        if not chosen or step == max_new_tokens - 1 or not _beam_can_improve(finished, best_running, step + 1,
                                                                           length_penalty, form):
            break
        step_model.reorder(torch.tensor([row for _, row, _, _, _ in chosen], device=input_ids.device))
        beams = [(score, beams[row][1] + [token], state) for score, row, token, state, _ in chosen]
    if finished.hypotheses:
        score, tokens = finished.hypotheses[0]
        return tokens, score
    score, tokens, _ = max(beams, key=lambda b: b[0])  # nothing complete: the best running hypothesis
    return tokens, score / length_penalty_value(len(tokens) - len(prefix), length_penalty, form)
