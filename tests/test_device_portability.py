"""A CPU-only machine catches what a GPU run hits first (issue 21): the simulated accelerator
(utils/workbench/simulated_accelerator.py) refuses `.numpy()` on a device tensor and a CPU/device mix, as CUDA does,
while computing the CPU's values; notebooks run under it with `TINFER_SIMULATE_CUDA=1` and device "auto"."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from utils.workbench.models import build_model
from utils.workbench.simulated_accelerator import OnAccelerator

ROOT = Path(__file__).resolve().parents[1]


def test_it_refuses_what_cuda_refuses(simulated_cuda):
    on_device = torch.arange(6.0).to(simulated_cuda)
    assert on_device.device == torch.device("cuda", 0) and isinstance(on_device * 2, OnAccelerator)
    with pytest.raises(TypeError, match="can't convert cuda:0 device type tensor to numpy"):
        on_device.numpy()
    with pytest.raises(TypeError, match="to numpy"):
        np.asarray(on_device)
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device"):
        on_device + torch.ones(6)
    assert (on_device + torch.tensor(1.0)).device.type == "cuda"  # a 0-d CPU tensor mixes, as on CUDA
    assert torch.zeros(2, device="cuda").device.type == "cuda" and torch.zeros(2).device.type == "cpu"
    host = on_device.cpu()
    assert type(host) is torch.Tensor and host.numpy().tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def test_an_hf_model_runs_there_with_the_cpus_values(simulated_cuda):
    batch = {"input_ids": torch.randint(5, 50, (2, 6)), "labels": torch.randint(5, 50, (2, 4))}
    reference = build_model("t5").eval()(**batch).logits.detach()
    model = build_model("t5").eval().to(simulated_cuda)
    assert all(p.device.type == "cuda" for p in model.parameters())
    outputs = model(**{k: v.to(simulated_cuda) for k, v in batch.items()})
    assert torch.equal(outputs.logits.detach().cpu(), reference)
    with pytest.raises(RuntimeError, match="same device"):
        model(**batch)  # inputs left on the CPU: the mistake a GPU run reports
    generated = model.generate(batch["input_ids"].to(simulated_cuda), max_new_tokens=3, do_sample=False)
    assert generated.device.type == "cuda"
    outputs.loss.backward()
    assert model.lm_head.weight.grad is not None and model.lm_head.weight.grad.device.type == "cuda"


def test_moving_a_model_keeps_its_tied_weights_and_trains_them(simulated_cuda):
    model = build_model("marian")  # lm_head tied to the shared embeddings, as on CUDA after .to()
    n_parameters = sum(p.numel() for p in model.parameters())
    model = model.to(simulated_cuda)
    assert model.lm_head.weight is model.model.shared.weight
    assert sum(p.numel() for p in model.parameters()) == n_parameters
    ids = torch.randint(5, 50, (2, 6)).to(simulated_cuda)
    model(input_ids=ids, labels=ids).loss.backward()
    assert all(p.grad is not None and p.grad.device.type == "cuda" for p in model.parameters() if p.requires_grad)


def test_an_rnn_moves_and_loads_its_weights_there(simulated_cuda):
    gru = torch.nn.GRU(4, 8, batch_first=True)  # its flat-weight cache refuses a tensor swap
    state = {k: v.clone() for k, v in gru.state_dict().items()}
    gru = gru.to(simulated_cuda)
    gru.load_state_dict(state)
    outputs, _ = gru(torch.ones(2, 3, 4).to(simulated_cuda))
    assert outputs.device.type == "cuda" and all(p.device.type == "cuda" for p in gru.parameters())


def test_resolve_device_simulates_cuda_only_when_asked():
    script = ("from utils.workbench.device import resolve_device; import torch; d = resolve_device('auto'); "
              "print(d, torch.ones(2).to(d).device)")
    real = "cuda cuda:0" if torch.cuda.is_available() else "cpu cpu"
    for flag, expected in (("1", "cuda cuda:0"), ("0", real)):
        env = {**os.environ, "TINFER_SIMULATE_CUDA": flag}
        done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
        assert done.stdout.strip() == expected, done.stderr[-2000:]
