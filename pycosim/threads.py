"""One compute thread per worker process: the thread policy of sweep workers and the ngspice host.

A pool of P processes on P cores already fills the machine; if each process also runs
torch (or OpenMP/BLAS) with P intra-op threads, the threads fight for the cores and spin:
a 32x32 surrogate read measured 1.4 s with two torch threads while another process held a
core, 11 ms with one. So every process pycosim starts for parallel work (the sweep's pool
workers, the ngspice host) uses one thread. The user's own process keeps whatever torch
setting it has: nothing here runs there.

torch is never imported just to set this: `use_one_thread` sets the count of a torch that is
already loaded (a forked worker inherits the parent's) and the environment variables that a
torch or BLAS loaded later reads at start-up.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator, Mapping

THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def one_thread_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of `env` (default `os.environ`) that gives a child process one OpenMP/MKL/BLAS thread."""
    out = dict(os.environ if env is None else env)
    out.update(dict.fromkeys(THREAD_ENV_VARS, "1"))
    return out


def use_one_thread() -> None:
    """In a worker process: one torch thread now if torch is loaded, and for any loaded later."""
    os.environ.update(dict.fromkeys(THREAD_ENV_VARS, "1"))
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """In the caller's own process: one torch thread inside the block, the caller's count after it.
    For trainings whose result is cached: with two threads torch sums in another order and a training
    gives another network (measured on the semantic-memory digits network: 97.5 % static / 96.4 %
    dynamic with two threads, 96.4 % / 96.7 % with one), so a cache key without the thread count
    must not depend on it. One thread is also the fastest for these small batches."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)
