"""Shared fixtures: small real models trained on scikit-learn's digits, once per test session (per worker)."""

from __future__ import annotations

import functools

import pytest
import torch
from threadpoolctl import threadpool_limits

# Two xdist workers on two cores: one thread each avoids oversubscription (torch and BLAS alike;
# small LAPACK calls were 30x slower with two BLAS threads competing on a busy machine).
torch.set_num_threads(1)
threadpool_limits(1)


@functools.cache
def _healthy(val_protocol: str):
    from gapdiag.digits import build_scenario

    return build_scenario(n_pairs=1500, epochs=4, val_protocol=val_protocol, seed=0)


@pytest.fixture(scope="session")
def healthy_pairs():
    """A healthy pairwise-trained model validated under the same protocol (val pairs)."""
    return _healthy("pairs")


@pytest.fixture(scope="session")
def healthy_episodes():
    """A healthy pairwise-trained model validated with 10-way episodes."""
    return _healthy("episodes")


class _Tiny:
    """A tiny model and tiny splits for the reliability tests: fast to build, no training.

    ``Net(seed)`` maps inputs (B, 1, 4, 4) to 4-dim embeddings; ``splits()`` gives train with 96 pairs and
    val with 30 3-way episodes over 48 items of 6 classes each; ``FAST`` keeps a whole audit to seconds.
    """

    FAST = {"n_boot": 50, "probes": {"class_gap": {"umap": False}}}

    class Net(torch.nn.Module):
        def __init__(self, seed: int = 0):
            super().__init__()
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self.lin = torch.nn.Linear(16, 4)

        def encode(self, x):
            return self.lin(x.flatten(1).float())

    @staticmethod
    def splits(n: int = 48, classes: int = 6, seed: int = 0):
        import numpy as np

        from gapdiag import Items, Split
        from gapdiag.data import make_episodes, make_pairs

        g = torch.Generator().manual_seed(seed)
        train = Items(torch.rand(n, 1, 4, 4, generator=g), labels=np.arange(n) % classes)
        val = Items(torch.rand(n, 1, 4, 4, generator=g), labels=np.arange(n) % classes)
        return (
            Split("train", train, pairs=make_pairs(train, n_pairs=96, seed=seed)),
            Split("val", val, episodes=make_episodes(val, n_way=3, n_episodes=30, seed=seed)),
        )


@pytest.fixture
def tiny():
    """The tiny model and splits of :class:`_Tiny`."""
    return _Tiny
