"""Helpers shared by the metric modules: seeds and label codes."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..validation import check_labels


def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng(0)
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise InputError(f"rng must be a numpy Generator, an int seed or None; got {type(rng).__name__}.")


def _label_codes(labels: Any, n: int, *, name: str = "labels") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels (n,), code of each item (n,) int64 into the sorted classes, items per class (C,) int64).

    Needs at least 2 classes.
    """
    arr = check_labels(labels, name=name, n=n)
    uniques, codes = np.unique(arr, return_inverse=True)
    if uniques.size < 2:
        raise InputError(
            f"{name} hold a single class ({uniques[0]!r}) for {n} items; these metrics compare classes "
            "and need at least 2. Pass embeddings of items from several identities."
        )
    codes = codes.reshape(-1)
    # int32 codes: gathering (n, k) neighbour labels moves half the bytes of int64
    return arr, codes.astype(np.int32), np.bincount(codes).astype(np.int64)
