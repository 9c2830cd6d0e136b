"""Thread limits: small probe operations in one thread, large shared computations on every core."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["single_threaded", "all_threads"]

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
