"""Which Jupyter kernel runs the notebooks: the project's `tinfer` kernel if installed, else `python3`."""

from jupyter_client.kernelspec import KernelSpecManager

PROJECT_KERNEL = "tinfer"
FALLBACK_KERNEL = "python3"


def installed_kernels() -> list[str]:
    """Kernel names visible to jupyter_client (what `jupyter kernelspec list` prints), sorted."""
    return sorted(KernelSpecManager().find_kernel_specs())


def default_kernel() -> str:
    return PROJECT_KERNEL if PROJECT_KERNEL in installed_kernels() else FALLBACK_KERNEL


def check_kernel(name: str) -> str:
    """Return `name` if a kernel of that name is installed; raise ValueError listing the installed ones."""
    available = installed_kernels()
    if name not in available:
        raise ValueError(f"no Jupyter kernel named {name!r}; installed: {', '.join(available) or 'none'}")
    return name
