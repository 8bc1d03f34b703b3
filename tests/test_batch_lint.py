"""`utils.experiments.batch_lint` (`python -m utils.lint_batch`): correct T5- and Marian-style batches from
DataCollatorForSeq2Seq pass; each classic bug, made from a correct batch, is found with its notebook."""

import os
import subprocess
import sys

import pytest
import torch
from transformers import DataCollatorForSeq2Seq

from utils.experiments.batch_lint import BatchLintError, lint_batch, load_batch, main
from utils.handwritten.teacher_forcing import IGNORE_INDEX, shift_right
from utils.harness.paths import REPO_ROOT
from utils.workbench.models import build_model, build_tokenizer

PAIRS = [("one two three", "eins zwei drei"), ("four", "vier fuenf sechs sieben"), ("five six", "fuenf")]


@pytest.fixture(scope="module", params=["t5", "marian"])
def collated(request):
    """(batch, ids) as DataCollatorForSeq2Seq(tokenizer, model=model) builds it (with decoder_input_ids)."""
    tokenizer = build_tokenizer(request.param)
    model = build_model(request.param, "tiny", tokenizer=tokenizer)
    features = [dict(tokenizer(source, text_target=target)) for source, target in PAIRS]
    batch = dict(DataCollatorForSeq2Seq(tokenizer, model=model, return_tensors="pt")(features))
    ids = {"pad_id": tokenizer.pad_token_id, "start_id": model.config.decoder_start_token_id,
           "eos_id": tokenizer.eos_token_id}
    return batch, ids


def codes(findings) -> list[str]:
    return [finding.code for finding in findings]


def test_correct_collator_batches_are_clean(collated):
    batch, ids = collated
    assert {"input_ids", "attention_mask", "labels", "decoder_input_ids"} <= set(batch)
    assert lint_batch(batch, **ids) == []
    assert lint_batch({k: v for k, v in batch.items() if k != "decoder_input_ids"}, **ids) == []


def test_each_classic_bug_is_found_with_its_notebook(collated):
    batch, ids = collated
    labels, pad = batch["labels"], ids["pad_id"]
    real = labels != IGNORE_INDEX
    cases = {
        "pad_in_labels": {"labels": labels.masked_fill(~real, pad)},
        "decoder_inputs_are_labels": {"decoder_input_ids": labels.masked_fill(~real, pad)},
        "not_shifted": {"decoder_input_ids": shift_right(shift_right(labels, ids["start_id"], pad), ids["start_id"],
                                                         pad)},
        "minus100_in_decoder_inputs": {"decoder_input_ids": torch.cat([torch.full_like(labels[:, :1], ids["start_id"]),
                                                                       labels[:, :-1]], dim=1)},
        "decoder_mask_hides_start": {"decoder_attention_mask": (batch["decoder_input_ids"] != pad).long()},
        "decoder_mask_off_by_one": {"decoder_attention_mask": real.long()},
        "no_eos": {"labels": labels.masked_fill(labels == ids["eos_id"], IGNORE_INDEX)},
        "source_target_swapped": {"input_ids": labels, "attention_mask": real.long(),
                                  "labels": batch["input_ids"].masked_fill(batch["attention_mask"] == 0,
                                                                           IGNORE_INDEX)},
    }
    notebooks = {"pad_in_labels": "03_loss_masking", "decoder_mask_off_by_one": "02_causal_mask",
                 "decoder_mask_hides_start": "02_causal_mask",
                 "no_eos": "05_decoding", "source_target_swapped": "07_translation_recipe"}
    for code, change in cases.items():
        broken = {**batch, **change}
        if code in ("pad_in_labels", "no_eos", "source_target_swapped"):
            broken.pop("decoder_input_ids")  # the labels changed: the model would build new decoder inputs
        findings = lint_batch(broken, **ids)
        assert code in codes(findings), (code, [str(f) for f in findings])
        finding = findings[codes(findings).index(code)]
        assert finding.notebook == notebooks.get(code, "01_shift_right") and finding.rows
        assert f"notebooks/{finding.notebook}.ipynb" in str(finding)


def test_a_doubled_start_token_when_start_is_not_pad():
    pad, start, eos = 0, 2, 1  # a BOS-started target (start != pad)
    labels = torch.tensor([[start, 5, 6, eos], [start, 7, eos, IGNORE_INDEX]])
    batch = {"input_ids": torch.tensor([[5, 6, eos], [8, eos, pad]]), "labels": labels,
             "decoder_input_ids": shift_right(labels, start, pad)}
    assert codes(lint_batch(batch, pad, start, eos)) == ["doubled_start"]
    fixed = labels[:, 1:]
    clean = {**batch, "labels": fixed, "decoder_input_ids": shift_right(fixed, start, pad)}
    assert lint_batch(clean, pad, start, eos) == []


def test_a_pad_after_eos_in_the_decoder_inputs_is_not_a_finding(collated):
    """Issue 26 (a): only positions whose label is not -100 are compared (Joey NMT feeds <pad> after </s>)."""
    batch, ids = collated
    decoder_input_ids = batch["decoder_input_ids"].masked_fill(batch["decoder_input_ids"] == ids["eos_id"],
                                                               ids["pad_id"])
    assert lint_batch({**batch, "decoder_input_ids": decoder_input_ids}, **ids) == []


def test_unlintable_batches_raise_with_the_reason(tmp_path):
    with pytest.raises(BatchLintError, match="has no labels"):
        lint_batch({"input_ids": torch.ones(2, 3, dtype=torch.long)}, 0, 0)
    with pytest.raises(BatchLintError, match="2-D integer tensor"):
        lint_batch({"input_ids": torch.ones(2, 3), "labels": torch.ones(2, 3, dtype=torch.long)}, 0, 0)
    with pytest.raises(BatchLintError, match="batch size"):
        lint_batch({"input_ids": torch.ones(2, 3, dtype=torch.long), "labels": torch.ones(3, 3, dtype=torch.long)},
                   0, 0)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a torch file")
    with pytest.raises(BatchLintError, match="cannot read .*broken.pt"):
        load_batch(broken)


def test_command_exit_codes(collated, tmp_path, capsys):
    batch, ids = collated
    flags = ["--pad-id", str(ids["pad_id"]), "--start-id", str(ids["start_id"]), "--eos-id", str(ids["eos_id"])]
    clean, buggy, broken = tmp_path / "clean.pt", tmp_path / "buggy.pt", tmp_path / "broken.pt"
    torch.save(batch, clean)
    torch.save({**batch, "labels": batch["labels"].masked_fill(batch["labels"] == IGNORE_INDEX, ids["pad_id"])},
               buggy)
    broken.write_text("{}")
    assert main([str(clean), *flags]) == 0 and "clean" in capsys.readouterr().out
    assert main([str(buggy), *flags]) == 1 and "pad_in_labels" in capsys.readouterr().out
    assert main([str(broken), *flags]) == 2 and "broken.pt" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.pt"), *flags]) == 2 and "missing.pt" in capsys.readouterr().err
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "utils.lint_batch", str(buggy), *flags], cwd=REPO_ROOT,
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1 and "03_loss_masking" in done.stdout, done.stderr
