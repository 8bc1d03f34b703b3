"""Which Jupyter kernel runs the notebooks (the project's `tinfer` kernel if installed, else `python3`),
and how the runner talks to it."""

from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager
from traitlets import default

__all__ = ["EncryptedKernelManager", "check_kernel", "default_kernel"]

PROJECT_KERNEL = "tinfer"
FALLBACK_KERNEL = "python3"


def _installed_kernels() -> list[str]:
    """Kernel names visible to jupyter_client (what `jupyter kernelspec list` prints), sorted."""
    return sorted(KernelSpecManager().find_kernel_specs())


def default_kernel() -> str:
    return PROJECT_KERNEL if PROJECT_KERNEL in _installed_kernels() else FALLBACK_KERNEL


def check_kernel(name: str) -> str:
    """Return `name` if a kernel of that name is installed; raise ValueError listing the installed ones."""
    available = _installed_kernels()
    if name not in available:
        raise ValueError(f"no Jupyter kernel named {name!r}; installed: {', '.join(available) or 'none'}")
    return name


class EncryptedKernelManager(AsyncKernelManager):
    """nbclient's kernel manager with CurveZMQ keys provisioned whenever the kernelspec declares support
    (`metadata.supported_encryption`, written by ipykernel >= 7.4): the runner's traffic with its kernel is
    encrypted and ipykernel no longer warns "Kernel is running over TCP without encryption" at every run.
    A kernel without that support still runs, and its warning is then one the user can act on."""

    @default("transport_encryption")
    def _transport_encryption_default(self) -> str:
        return "auto"
