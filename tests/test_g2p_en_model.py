"""utils/experiments/g2p_en_model.py: the torch port of g2p-en against the package's own numpy decoding."""

import ast
import warnings

import numpy as np
import pytest
import torch

from utils.experiments import g2p_en_model
from utils.experiments.g2p_en_model import (
    GRAPHEMES,
    PHONEMES,
    G2pEnError,
    G2pEnModel,
    decode_ids,
    encode_pronunciations,
    encode_words,
    package_predictor,
)
from utils.handwritten.decoding import beam_search, greedy_decode

WORDS = ["activationist", "zyxomma", "hello", "a", "antidisestablishmentarianism", "quixotically", "ok"]


@pytest.fixture(scope="module")
def model():
    return G2pEnModel.from_checkpoint()


def test_vocabularies_are_the_installed_ones():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (SyntaxWarning, DeprecationWarning))  # g2p.py: a regex in a plain string
        tree = ast.parse((g2p_en_model._package_dir() / "g2p.py").read_text(encoding="utf-8"))
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Attribute) and \
                node.targets[0].attr in ("graphemes", "phonemes"):
            found[node.targets[0].attr] = tuple(eval(compile(ast.Expression(node.value), "g2p.py", "eval"),
                                                     {"list": list}))
    assert found == {"graphemes": GRAPHEMES, "phonemes": PHONEMES}


def test_torch_port_equals_the_package_numpy_decoding(model):
    predictor = package_predictor()
    batch = encode_words(WORDS)
    torch_outputs = decode_ids(greedy_decode(model, batch["input_ids"], batch["attention_mask"], max_new_tokens=20))
    assert torch_outputs == [predictor.predict(word) for word in WORDS]
    assert all(torch_outputs) and len(set(map(tuple, torch_outputs))) == len(WORDS)


def test_padding_cache_and_beam(model):
    batch = encode_words(WORDS)
    alone = encode_words(["ok"])
    with torch.no_grad():
        padded = model(**batch, labels=encode_pronunciations([("OW1", "K", "EY1")] * len(WORDS))).logits[-1]
        single = model(**alone, labels=encode_pronunciations([("OW1", "K", "EY1")])).logits[0]
    torch.testing.assert_close(padded, single, atol=1e-5, rtol=0)  # right padding of the letters changes nothing
    cached = greedy_decode(model, batch["input_ids"], batch["attention_mask"], max_new_tokens=20, use_cache=True)
    recomputed = greedy_decode(model, batch["input_ids"], batch["attention_mask"], max_new_tokens=20, use_cache=False)
    assert torch.equal(cached, recomputed)  # the GRU state as cache = re-running the whole prefix
    beams = beam_search(model, batch["input_ids"], batch["attention_mask"], num_beams=1, max_new_tokens=20)
    assert decode_ids(beams.sequences) == decode_ids(cached)  # one beam is greedy


def test_loss_is_the_token_mean_over_real_labels(model):
    batch = encode_words(["hello", "ok"])
    labels = encode_pronunciations([("HH", "AH0", "L", "OW1"), ("OW1", "K", "EY1")])
    with torch.no_grad():
        output = model(**batch, labels=labels)
    real = labels != -100
    expected = torch.nn.functional.cross_entropy(output.logits[real], labels[real])
    torch.testing.assert_close(output.loss, expected)


def test_missing_or_damaged_checkpoint(tmp_path, monkeypatch):
    np.savez(tmp_path / "other.npz", something=np.zeros(3))
    with pytest.raises(G2pEnError, match="lacks the arrays"):
        g2p_en_model.load_checkpoint(tmp_path / "other.npz")
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(G2pEnError, match="cannot read"):
        g2p_en_model.load_checkpoint(tmp_path / "broken.npz")
    monkeypatch.setattr(g2p_en_model.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(G2pEnError, match=r"pip install g2p-en==2\.1\.0"):
        g2p_en_model._checkpoint_path()


def test_a_recurrent_model_passes_the_audit_of_notebook_09(model):
    from utils.experiments.audit_your_model import run_audit
    from utils.experiments.auditable_models import as_auditable

    adapter = as_auditable(model)
    assert (adapter.source_vocab_size, adapter.source_eos_token_id) == (len(GRAPHEMES), GRAPHEMES.index("</s>"))
    audit = run_audit(adapter, "g2p-en", target_length=6, source_length=5, n_trials=1, max_new_tokens=6)
    assert audit.exit_code == 0, {name: check.detail for name, check in audit.checks.items()}
    assert audit.checks["future_leakage"].number == 0.0
