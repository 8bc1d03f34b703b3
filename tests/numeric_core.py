"""The numeric core of the collection's verdicts, run in a fresh process so that tests can vary the CPU kernel path and
the thread count (both are fixed when torch is imported): `python tests/numeric_core.py` prints one JSON object,
{check: {"verdict": ..., "numbers": {...}}}.

What it runs: notebook 01's parity of model(labels=...) with decoder_input_ids=shift_right(labels) for HF T5, Marian
and BART (eager and sdpa); notebook 03's HF loss against the hand-written token mean; notebook 09's audit (leakage,
one pass = loop, shift-right, loss, greedy) of a causal hand-written model, of the leaky one and of each HF family;
notebook 10's audit of the pretrained g2p-en GRU.
"""

import json
import sys
from pathlib import Path

import torch

from utils.experiments.audit_your_model import load_model, run_audit
from utils.experiments.auditable_models import as_auditable
from utils.handwritten.teacher_forcing import masked_cross_entropy, shift_right
from utils.workbench.models import build_model
from utils.workbench.tolerance import compare

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FAMILIES = ("t5", "marian", "bart")


def _batch(model, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    config = model.config
    input_ids = torch.randint(5, config.vocab_size, (3, 9), generator=generator)
    labels = torch.randint(5, config.vocab_size, (3, 7), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 6:], labels[1, 5:], labels[2, 3:] = 0, -100, -100  # (B, S), (B, T): padded rows
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def hf_parity(family: str, attn_implementation: str) -> dict:
    model = build_model(family, attn_implementation=attn_implementation).eval()
    batch = _batch(model)
    config = model.config
    decoder_input_ids = shift_right(batch["labels"], config.decoder_start_token_id, config.pad_token_id)
    with torch.no_grad():
        outputs = model(**batch)
        explicit = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         decoder_input_ids=decoder_input_ids, use_cache=False).logits
    logits_parity = compare(outputs.logits, explicit)
    loss_parity = compare(outputs.loss, masked_cross_entropy(outputs.logits, batch["labels"]))
    return {f"01:{family}_{attn_implementation}_labels_forward_is_shift_right":
            {"verdict": logits_parity.same, "numbers": logits_parity.evidence()},
            f"03:{family}_{attn_implementation}_loss_is_token_mean":
            {"verdict": loss_parity.same, "numbers": loss_parity.evidence()}}


def audit_verdicts(label: str, model) -> dict:
    audit = run_audit(model, label).to_dict()
    return {f"audit:{label}:{name}": {"verdict": check["status"], "numbers": check["evidence"]}
            for name, check in audit["checks"].items()}


def main() -> dict:
    torch.manual_seed(0)
    core = {}
    for family in FAMILIES:
        for implementation in ("eager", "sdpa"):
            core.update(hf_parity(family, implementation))
        core.update(audit_verdicts(family, as_auditable(build_model(family).eval())))
    core.update(audit_verdicts("tinfer_causal", load_model(f"{EXAMPLES}/tinfer_causal.py:build")))
    core.update(audit_verdicts("tinfer_no_mask", load_model(f"{EXAMPLES}/tinfer_no_mask.py:build")))
    from utils.experiments.g2p_en_model import G2pEnModel

    core.update(audit_verdicts("g2p_en", as_auditable(G2pEnModel.from_checkpoint().eval())))
    core["environment"] = {"verdict": None, "numbers": {"threads": torch.get_num_threads(),
                                                        "cpu_capability": torch.backends.cpu.get_cpu_capability()}}
    return core


if __name__ == "__main__":
    json.dump(main(), sys.stdout, indent=1, default=str)
