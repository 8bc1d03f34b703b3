"""`make bench`: hand-written decoding and training against Hugging Face, same model, same inputs, one process.

    python -m utils.bench [--repeats N] [--train-repeats N] [--new-tokens N] [--sentences N] [--out FILE]

1. Greedy decoding: `utils.handwritten.decoding.greedy_decode` (with the model's KV cache) vs `model.generate()` on one
   tiny HF T5, a fixed number of new tokens (no early <eos>), best of `repeats` -> tokens/s and ratio.
2. One training step (forward, backward, AdamW step) of the hand-written `TinferModel` vs HF T5 and Marian
   of the same size on the same batch, best of `train_repeats`.

Prints a table and writes `reports/bench.json`. Wall-clock numbers: they vary between machines and runs.
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from utils.handwritten.decoding import greedy_decode
from utils.handwritten.seq2seq import special_token_ids, supports_kv_cache
from utils.harness.paths import reports_dir
from utils.workbench.batching import batch_pairs
from utils.workbench.data import load_pairs
from utils.workbench.models import build_model, build_tokenizer, count_parameters

__all__ = ["benchmark", "best_of", "main", "time_greedy"]

TRAINING_FAMILIES = ("tinfer", "t5", "marian")


def best_of(fn, repeats: int) -> float:
    """Smallest wall time of `repeats` calls of `fn()` (after one untimed warm-up call)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _greedy_methods(model) -> dict:
    """name -> fn(input_ids, attention_mask, n_new) producing exactly `n_new` tokens per row, greedily."""
    def hand(use_cache):
        return lambda ids, mask, n: greedy_decode(model, ids, mask, max_new_tokens=n, use_cache=use_cache,
                                                  stop_at_eos=False)

    def hf(use_cache):
        return lambda ids, mask, n: model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n,
                                                   min_new_tokens=n, do_sample=False, num_beams=1,
                                                   use_cache=use_cache, pad_token_id=pad_token_id)

    pad_token_id = special_token_ids(model).pad_token_id
    methods = {"hand-written, no cache": hand(False)}
    if supports_kv_cache(model):  # HF model: the hand-written loop can use its cache; generate() exists
        methods = {"hand-written, cache": hand(True), **methods, "generate, cache": hf(True),
                   "generate, no cache": hf(False)}
    return methods


@torch.no_grad()
def time_greedy(model, input_ids, attention_mask, lengths: list[int], repeats: int) -> list[dict]:
    """Rows {method, new_tokens, seconds, ms_per_token, tokens_per_s} for every method and length."""
    rows = []
    for name, decode in _greedy_methods(model).items():
        for n in lengths:
            seconds = best_of(lambda decode=decode, n=n: decode(input_ids, attention_mask, n), repeats)
            tokens = input_ids.shape[0] * n
            rows.append({"method": name, "new_tokens": n, "seconds": seconds,
                         "ms_per_token": 1000 * seconds / tokens, "tokens_per_s": tokens / seconds})
    return rows


def _training_step_seconds(model, batch: dict[str, torch.Tensor], repeats: int, lr: float = 1e-3) -> float:
    """Best wall time of one forward + backward + AdamW step on `batch`."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()

    def step():
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    seconds = best_of(step, repeats)
    model.eval()
    return seconds


def benchmark(repeats: int = 5, train_repeats: int = 5, n_sentences: int = 16, new_tokens: int = 32,
              size: str = "tiny", seed: int = 0) -> dict:
    """Run both comparisons and return the JSON-ready report."""
    pairs = load_pairs("validation", limit=n_sentences)
    tokenizer = build_tokenizer("t5")
    batch = batch_pairs(tokenizer, pairs)
    model = build_model("t5", size=size, tokenizer=tokenizer, seed=seed, dropout=0.0).eval()
    methods = _greedy_methods(model)
    same = torch.equal(methods["hand-written, cache"](batch["input_ids"], batch["attention_mask"], new_tokens),
                       methods["generate, cache"](batch["input_ids"], batch["attention_mask"], new_tokens))
    rows = {row["method"]: row for row in time_greedy(model, batch["input_ids"], batch["attention_mask"],
                                                       [new_tokens], repeats)}
    hand, hf = rows["hand-written, cache"]["tokens_per_s"], rows["generate, cache"]["tokens_per_s"]
    greedy = {"model": f"t5-{size} (random init)", "batch_size": len(pairs), "new_tokens": new_tokens,
              "outputs_identical": same, "hand_tokens_per_s": hand, "hf_tokens_per_s": hf,
              "hand_over_hf": hand / hf, "all_methods_tokens_per_s": {m: r["tokens_per_s"] for m, r in rows.items()}}

    training = {}
    for family in TRAINING_FAMILIES:
        family_tokenizer = build_tokenizer(family)
        family_model = build_model(family, size=size, tokenizer=family_tokenizer, seed=seed, dropout=0.1)
        family_batch = batch_pairs(family_tokenizer, pairs)
        training[family] = {"seconds_per_step": _training_step_seconds(family_model, family_batch, train_repeats),
                            "parameters": count_parameters(family_model)}
    for family in ("t5", "marian"):
        training[f"tinfer_over_{family}"] = (training["tinfer"]["seconds_per_step"]
                                             / training[family]["seconds_per_step"])
    return {"greedy": greedy, "training_step": training,
            "settings": {"repeats": repeats, "train_repeats": train_repeats, "size": size, "seed": seed},
            "environment": {"torch": torch.__version__, "threads": torch.get_num_threads(),
                            "cpu_count": os.cpu_count(), "machine": platform.machine(),
                            "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}}


def _format_report(report: dict) -> str:
    greedy, training = report["greedy"], report["training_step"]
    lines = [f"greedy decoding, {greedy['model']}, batch {greedy['batch_size']}, {greedy['new_tokens']} new tokens "
             f"(outputs identical: {greedy['outputs_identical']})"]
    lines += [f"  {method:<24} {tps:10.0f} tokens/s" for method, tps in greedy["all_methods_tokens_per_s"].items()]
    lines.append(f"  hand-written (cache) / generate (cache) = {greedy['hand_over_hf']:.2f}")
    lines.append("training step (forward + backward + AdamW), same batch")
    lines += [f"  {family:<8} {training[family]['seconds_per_step'] * 1000:8.1f} ms  "
              f"({training[family]['parameters']:,} parameters)" for family in TRAINING_FAMILIES]
    lines.append(f"  tinfer / t5 = {training['tinfer_over_t5']:.2f}, "
                 f"tinfer / marian = {training['tinfer_over_marian']:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats of each decoding (best is kept)")
    parser.add_argument("--train-repeats", type=int, default=5, help="timed training steps per model (best kept)")
    parser.add_argument("--new-tokens", type=int, default=32, help="new tokens generated per sentence")
    parser.add_argument("--sentences", type=int, default=16, help="validation sentences in the batch")
    parser.add_argument("--out", type=Path, default=None, help="output JSON (default reports/bench.json)")
    args = parser.parse_args(argv)
    report = benchmark(repeats=args.repeats, train_repeats=args.train_repeats, n_sentences=args.sentences,
                       new_tokens=args.new_tokens)
    out = args.out or reports_dir() / "bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(_format_report(report))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
