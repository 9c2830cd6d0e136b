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
