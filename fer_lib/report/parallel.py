"""Executing the report's notebooks two at a time.

Most of a page's time is one core's work (starting a kernel, imports, plotting, rendering), so on a
2-core machine two pages at once, each kernel given half the cores, finish sooner than one after the
other (measured in docs/report.md). A page that times code runs alone, after the others, with every
core (``plan.TIMED_NOTEBOOKS``).
"""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Callable, Iterator, Sequence

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")  # what torch and numpy's BLAS read at start


def default_jobs() -> int:
    """Notebooks at once by default: 2 where there are at least 2 cores, else 1."""
    return 2 if (os.cpu_count() or 1) >= 2 else 1


@contextlib.contextmanager
def kernel_threads(threads: int) -> Iterator[None]:
    """Kernels started inside this block use ``threads`` CPU threads (they inherit the environment)."""
    saved = {k: os.environ.get(k) for k in THREAD_ENV}
    os.environ.update({k: str(threads) for k in THREAD_ENV})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_all(stems: Sequence[str], run_one: Callable[[str], None], jobs: int) -> None:
    """``run_one(stem)`` for every stem, ``jobs`` at a time, in order of ``stems``.

    After the first failure no new stem starts; those running finish, then the first failure is raised.
    """
    if jobs <= 1 or len(stems) <= 1:
        for stem in stems:
            run_one(stem)
        return
    queue = list(stems)
    failure: BaseException | None = None
    with kernel_threads(max(1, (os.cpu_count() or 1) // jobs)), ThreadPoolExecutor(jobs) as pool:
        running: set[Future] = {pool.submit(run_one, queue.pop(0)) for _ in range(min(jobs, len(queue)))}
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                if failure is None and future.exception() is not None:
                    failure = future.exception()
            while failure is None and queue and len(running) < jobs:
                running.add(pool.submit(run_one, queue.pop(0)))
    if failure is not None:
        raise failure
