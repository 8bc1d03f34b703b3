"""Independent training jobs (one variant, one seed) side by side: worker processes on CPUs, in-process on a GPU.

On the CPU, tiny models train fastest on one thread each, so `n_workers` spawned processes (one torch thread each)
run the jobs of a 2-core machine two at a time. On a GPU the jobs run one after another in this process: one CUDA
context instead of one per worker (each costs seconds and memory), and a tiny model's step is bound by kernel
launches that one process already issues back to back. A job's result depends only on its arguments (its seed and
settings), never on the worker that ran it.
"""

import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import torch

__all__ = ["run_jobs", "workers_for"]


def workers_for(device: str | torch.device, n_workers: int) -> int:
    """Worker processes for jobs on `device`: `n_workers` on the CPU, 1 (this process) on an accelerator."""
    if n_workers < 1:
        raise ValueError(f"n_workers must be >= 1, got {n_workers}")
    return n_workers if torch.device(device).type == "cpu" else 1


def _worker_init() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def _call(task):
    function, arguments = task
    return function(*arguments)


def run_jobs(tasks: list[tuple], n_workers: int = 2) -> list:
    """[(function, args), ...] -> their results, in order; in `n_workers` spawned processes (1: in this process).

    Each worker runs one job at a time with one torch thread; a job's result depends on its arguments only."""
    if n_workers < 1:
        raise ValueError(f"n_workers must be >= 1, got {n_workers}")
    if n_workers == 1:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return [_call(task) for task in tasks]
        finally:
            torch.set_num_threads(threads)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # the children read it when they import torch
    with ProcessPoolExecutor(n_workers, mp_context=get_context("spawn"), initializer=_worker_init) as pool:
        return list(pool.map(_call, tasks))
