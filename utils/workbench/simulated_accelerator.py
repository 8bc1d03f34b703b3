"""A CPU stand-in for a CUDA device, so that a machine without a GPU can catch the mistakes a GPU run hits first.

Inside `SimulatedAccelerator()` (a `TorchFunctionMode`), `tensor.to("cuda")`, `module.to("cuda")`, `.cuda()` and a
factory call with `device="cuda"` give tensors that compute on the CPU but report `device == cuda:0` and refuse what
a CUDA tensor refuses:

- `.numpy()` / `np.asarray(t)` (and so pandas and matplotlib on a tensor): "can't convert cuda:0 device type tensor
  to numpy", as on a GPU;
- an operation that mixes one with a CPU tensor of one or more dimensions: "Expected all tensors to be on the same
  device", as on a GPU (a 0-dimensional CPU tensor and CPU indices are allowed, as on a GPU);
- `.cpu()` and `.to("cpu")` give ordinary CPU tensors back.

Values are the CPU's, so claims computed on it equal the CPU run's. With the environment variable
`TINFER_SIMULATE_CUDA=1`, `utils.workbench.device.resolve_device` switches it on for the whole process and resolves
"auto" to "cuda": `tests/test_device_portability.py` runs notebooks that way.
"""

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map

__all__ = ["OnAccelerator", "SimulatedAccelerator", "activate"]

ACCELERATOR = torch.device("cuda", 0)
_HOST_ONLY = ("numpy", "__array__")
_MIXING_ALLOWED = {"__getitem__", "__setitem__", "copy_", "__get__", "__set__"}  # CPU indices / copies across devices


class OnAccelerator(torch.Tensor):
    """A CPU tensor that reports device cuda:0."""

    @property
    def device(self) -> torch.device:
        return ACCELERATOR

    @property
    def is_cuda(self) -> bool:
        return True


def _is_accelerator(device) -> bool:
    if isinstance(device, torch.Tensor):
        return isinstance(device, OnAccelerator)
    return isinstance(device, str | torch.device) and torch.device(device).type == "cuda"


def _on_accelerator(value):
    if isinstance(value, torch.Tensor) and not isinstance(value, OnAccelerator):
        return value.as_subclass(OnAccelerator)
    return value


def _on_host(value):
    return value.as_subclass(torch.Tensor) if isinstance(value, OnAccelerator) else value


def _host_device(value):
    """A device argument as the CPU sees it: "cuda" -> "cpu"."""
    return "cpu" if isinstance(value, str | torch.device) and _is_accelerator(value) else value


def _move_target(name: str, args: tuple, kwargs: dict) -> bool | None:
    """For Tensor.to / .cuda / .cpu: True (to the accelerator), False (to the host) or None (no device given)."""
    if name == "cuda":
        return True
    if name == "cpu":
        return False
    candidates = [a for a in args[1:] if isinstance(a, str | torch.device | torch.Tensor)]
    if "device" in kwargs:
        candidates.append(kwargs["device"])
    devices = [c for c in candidates if not isinstance(c, torch.dtype)]
    return _is_accelerator(devices[0]) if devices else None


def _tensors_in(args: tuple, kwargs: dict) -> list[torch.Tensor]:
    """The tensors among a call's arguments (pytree's walk only where an argument is a container: every op of a
    model passes through here, so the flat case is kept cheap)."""
    tensors = []
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            tensors.append(value)
        elif isinstance(value, list | tuple | dict):
            tensors += [t for t in tree_flatten(value)[0] if isinstance(t, torch.Tensor)]
    return tensors


_MODULE_APPLY = torch.nn.Module._apply


def _apply_keeping_ties(module: torch.nn.Module, fn, recurse: bool = True):
    """`Module._apply` (behind `.to()`, `.cuda()`, `.float()`) that gives parameters their new type in place, as
    CUDA's `.to()` keeps them: a weight tied between two modules stays one Parameter. Swapping tensors is refused for
    an RNN's parameters (its flat-weight cache holds weak references), so those get new Parameters instead."""
    swap = not isinstance(module, torch.nn.RNNBase)
    before = (torch.__future__.get_swap_module_params_on_conversion(),
              torch.__future__.get_overwrite_module_params_on_conversion())
    torch.__future__.set_swap_module_params_on_conversion(swap)
    torch.__future__.set_overwrite_module_params_on_conversion(not swap)
    try:
        return _MODULE_APPLY(module, fn, recurse)
    finally:
        torch.__future__.set_swap_module_params_on_conversion(before[0])
        torch.__future__.set_overwrite_module_params_on_conversion(before[1])


class SimulatedAccelerator(TorchFunctionMode):
    """See the module docstring. While it is on, modules move with `_apply_keeping_ties`."""

    def __enter__(self):
        torch.nn.Module._apply = _apply_keeping_ties
        return super().__enter__()

    def __exit__(self, *exc):
        torch.nn.Module._apply = _MODULE_APPLY
        return super().__exit__(*exc)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        tensors = _tensors_in(args, kwargs)
        resident = [isinstance(t, OnAccelerator) for t in tensors]
        if name in _HOST_ONLY and any(resident):
            raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor to "
                            "host memory first.")
        if name in ("to", "cuda", "cpu") and getattr(func, "__qualname__", "").startswith("Tensor"):
            target = _move_target(name, args, kwargs)
            call_args = (args[0],) if name in ("cuda", "cpu") else tuple(_host_device(a) for a in args)
            call_kwargs = {} if name in ("cuda", "cpu") else {k: _host_device(v) for k, v in kwargs.items()}
            if name != "to" or isinstance(call_kwargs.get("device"), torch.Tensor):
                call_kwargs.pop("device", None)
            with torch._C.DisableTorchFunctionSubclass():
                moved = func(*call_args, **call_kwargs) if name == "to" else args[0]
            stays = any(resident) if target is None else target
            return _on_accelerator(moved) if stays else _on_host(moved)
        creates_on_accelerator = _is_accelerator(kwargs.get("device"))
        if creates_on_accelerator:
            kwargs = {**kwargs, "device": "cpu"}
        mixed = any(resident) and any(not r and t.dim() > 0 for t, r in zip(tensors, resident, strict=True))
        if mixed and not name.startswith("_") and name not in _MIXING_ALLOWED:
            raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two devices, "
                               f"cuda:0 and cpu! (in {name}, simulated accelerator)")
        with torch._C.DisableTorchFunctionSubclass():
            result = func(*args, **kwargs)
        if not (any(resident) or creates_on_accelerator):
            return result
        if isinstance(result, torch.Tensor):  # the common case, without pytree's walk
            return _on_accelerator(result)
        return tree_map(_on_accelerator, result)


_ACTIVE: list[SimulatedAccelerator] = []


def activate() -> None:
    """Switch the simulated accelerator on for the rest of the process (once)."""
    if not _ACTIVE:
        mode = SimulatedAccelerator()
        mode.__enter__()
        _ACTIVE.append(mode)
