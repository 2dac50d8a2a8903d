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


def cores() -> int:
    """CPU cores this process may use (a container's limit, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_jobs() -> int:
    """Notebooks at once by default: 2 where there are at least 2 cores, else 1."""
    return 2 if cores() >= 2 else 1


@contextlib.contextmanager
def kernel_threads(threads: int) -> Iterator[None]:
    """Kernels started inside this block use ``threads`` CPU threads (they inherit the environment), or
    fewer where the environment already asks for fewer (a build kept light beside a training run)."""
    saved = {k: os.environ.get(k) for k in THREAD_ENV}
    asked = [int(v) for v in saved.values() if v and v.isdigit() and int(v) > 0]
    os.environ.update({k: str(min([threads, *asked])) for k in THREAD_ENV})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def concurrent(stems: Sequence[str], jobs: int) -> bool:
    """Whether :func:`run_all` runs ``stems`` several at a time (else one after the other, each alone)."""
    return jobs > 1 and len(stems) > 1


def run_all(stems: Sequence[str], run_one: Callable[[str], None], jobs: int) -> None:
    """``run_one(stem)`` for every stem, ``jobs`` at a time, started in the order of ``stems``.

    After a failure (or Ctrl-C) no new stem starts and those running finish; then the failure of the
    earliest stem in ``stems`` is raised.
    """
    if not concurrent(stems, jobs):
        for stem in stems:
            run_one(stem)
        return
    queue = list(stems)
    failures: dict[str, BaseException] = {}
    with kernel_threads(max(1, cores() // jobs)), ThreadPoolExecutor(jobs) as pool:
        running: dict[Future, str] = {}
        while queue or running:
            while not failures and queue and len(running) < jobs:
                stem = queue.pop(0)
                running[pool.submit(run_one, stem)] = stem
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                stem = running.pop(future)
                if future.exception() is not None:
                    failures[stem] = future.exception()
    if failures:
        raise failures[min(failures, key=list(stems).index)]
