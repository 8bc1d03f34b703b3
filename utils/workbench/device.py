"""Resolve `device="auto"` to the best device present.

With `TINFER_SIMULATE_CUDA=1` in the environment a CUDA device is simulated on the CPU
(`utils.workbench.simulated_accelerator`): "auto" and "cuda" resolve to it, so a CPU-only machine runs the
notebooks the way a GPU machine does and fails where a GPU run would (tests/test_device_portability.py).
"""

import os

import torch

__all__ = ["resolve_device", "to_device"]

ALLOWED_DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" picks CUDA, then Apple MPS, then CPU; an explicit device must exist."""
    if device not in ALLOWED_DEVICES and not str(device).startswith("cuda:"):
        raise ValueError(f"parameter 'device' must be one of {ALLOWED_DEVICES} or 'cuda:N', got {device!r}")
    if os.environ.get("TINFER_SIMULATE_CUDA") == "1" and (device == "auto" or str(device).startswith("cuda")):
        from utils.workbench.simulated_accelerator import activate

        activate()
        return torch.device("cuda")
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"parameter 'device' is {device!r} but no CUDA device is available; use 'auto' or 'cpu'")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ValueError("parameter 'device' is 'mps' but MPS is not available; use 'auto' or 'cpu'")
    return torch.device(device)


def to_device(batch: dict[str, torch.Tensor], device: str | torch.device) -> dict[str, torch.Tensor]:
    """Every tensor of a batch dict on `device` (a new dict; the names stay)."""
    return {name: tensor.to(device) for name, tensor in batch.items()}
