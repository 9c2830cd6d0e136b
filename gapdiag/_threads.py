"""Thread limits: small probe operations in one thread, large shared computations on every core."""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = [
    "single_threaded",
    "all_threads",
    "exclusive",
    "ignoring_warnings",
    "probe_phase_warnings",
    "probe_workers",
    "run_side_by_side",
]

# Held by whoever seeds or forks the process's global random streams or calls the user's module (which
# flips its training flags and forks torch's stream): probes run side by side, these take turns.
_EXCLUSIVE = threading.RLock()

# Warnings that probes trigger in libraries and that say nothing about the user's model, ignored for the
# whole probe phase: installed before any probe thread starts, because a filter set inside one thread is
# undone whenever another thread leaves a catch_warnings block (pandas and scikit-learn enter hundreds).
PROBE_PHASE_IGNORES: tuple[tuple[type[Warning], str], ...] = (
    (UserWarning, "precomputed_knn"),  # umap-learn: no search index for transform(), which is never called
    (UserWarning, "The given NumPy array is not writable"),  # torch on read-only memory maps: nothing writes
)

# Probes side by side beyond this gain little (each is short) and multiply the memory held at once.
MAX_PROBE_WORKERS = 4

# The torch thread count in force before the outermost single_threaded block, restored by all_threads.
_saved: list[int] = []


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch, BLAS and OpenMP work in one thread inside the block; restore the limits after.

    Probes run many small operations (a batch of 256 images, a d x d matrix). Splitting each over threads
    gains little, and on a machine whose cores are shared (CI runners, containers with CPU quotas) every
    operation then waits for a descheduled thread: measured 5-10x slower on a loaded 2-core machine. The
    large operations (the embedding pass, neighbour searches) use :func:`all_threads`.
    """
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    _saved.append(before)
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        _saved.pop()
        torch.set_num_threads(before)


@contextmanager
def all_threads() -> Iterator[None]:
    """Inside a :func:`single_threaded` block, give one large computation the threads it had before."""
    if not _saved:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(_saved[0])
    try:
        with threadpool_limits(limits=_saved[0]):
            yield
    finally:
        torch.set_num_threads(1)


def exclusive() -> threading.RLock:
    """The lock to hold while touching process-wide state that probes side by side share: the global random
    streams (seeded, forked, restored) and the user's module (its training flags, its forward calls).
    Re-entrant, so a probe holding it may call the model."""
    return _EXCLUSIVE


@contextmanager
def ignoring_warnings(category: type[Warning], message: str = "") -> Iterator[None]:
    """Ignore warnings of ``category`` whose text starts with ``message`` inside the block. For calls outside
    an audit: inside one, another thread's ``catch_warnings`` can undo it, so the audit installs the same
    filters for the whole probe phase (:data:`PROBE_PHASE_IGNORES`, :func:`probe_phase_warnings`)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=message, category=category)
        yield


@contextmanager
def probe_phase_warnings() -> Iterator[None]:
    """The probe phase's warning filters: :data:`PROBE_PHASE_IGNORES` on top of the caller's, and the
    caller's own filter list back afterwards, whatever the probes' libraries did to it in their threads."""
    import warnings

    with warnings.catch_warnings():
        for category, message in PROBE_PHASE_IGNORES:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield


def probe_workers(option: int | None) -> int:
    """Threads that run probes: the ``workers`` option, else one more than the cores this process may use
    (at most 4): a probe that waits for a shared result another probe is computing (``ctx.artifact``)
    leaves its core to the spare thread instead of idling it."""
    if option is not None:
        return int(option)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS and Windows have no affinity mask
        cores = os.cpu_count() or 1
    return max(1, min(MAX_PROBE_WORKERS, cores + 1))


def run_side_by_side(
    alone: list[int], beside: list[int], run: Callable[[int], None], *, workers: int
) -> None:
    """Call ``run(i)`` once for every index of ``alone`` and ``beside``, on up to ``workers`` threads.

    ``alone`` runs first, in its order, on the calling thread with nothing beside it: such a task holds the
    process's global state (:func:`exclusive`) for its whole run, and a task beside it that held a shared
    result's lock while waiting for that state could never finish (a deadlock). Having the machine to
    itself, it gets every core (:func:`all_threads`): a core left idle is time lost. ``beside`` then runs
    on ``workers`` threads, the calling thread one of them (with one worker, on the calling thread in index
    order). An exception in any task (or Ctrl-C) stops every thread from starting another task, and is
    raised here once they have finished the ones they were in.
    """
    for i in alone:
        with all_threads():
            run(i)
    if workers <= 1:
        for i in beside:
            run(i)
        return
    queue = deque(beside)
    taking = threading.Lock()

    def take() -> int | None:
        with taking:
            return queue.popleft() if queue else None

    def stop() -> None:  # the other threads finish the task they are in and take no more
        with taking:
            queue.clear()

    def drain() -> None:
        try:
            while (i := take()) is not None:
                run(i)
        except BaseException:
            stop()
            raise

    from concurrent.futures import ThreadPoolExecutor, wait

    with ThreadPoolExecutor(max_workers=workers - 1, thread_name_prefix="gapdiag-probe") as pool:
        helpers = [pool.submit(drain) for _ in range(min(workers - 1, len(beside)))]
        try:
            drain()
        except BaseException:  # Ctrl-C included: no new probe starts, the caller's exception wins
            stop()
            wait(helpers)
            raise
        for helper in helpers:
            helper.result()
