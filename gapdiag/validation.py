"""``check_*`` helpers: each validates one argument and returns it in canonical form.

Messages follow one pattern: what is wrong, what was seen, what to do, naming the user's argument.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InputError

__all__ = [
    "check_index_array",
    "check_binary_labels",
    "check_same_length",
    "check_finite",
    "check_labels",
    "check_choice",
    "check_positive_int",
]


def check_index_array(values: Any, *, name: str, n_items: int, ndim: int = 1) -> np.ndarray:
    """Return ``values`` as an int64 array of ``ndim`` dimensions whose entries index ``n_items`` items."""
    arr = np.asarray(values.cpu() if hasattr(values, "cpu") else values)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.mod(arr, 1) == 0):
            arr = arr.astype(np.int64)
        else:
            raise InputError(
                f"{name} must hold integer item indices; got dtype {arr.dtype}. Pass positions into the items."
            )
    arr = arr.astype(np.int64, copy=False).reshape(arr.shape if arr.ndim else (1,))
    if arr.ndim != ndim:
        raise InputError(f"{name} must have {ndim} dimension(s); got shape {tuple(arr.shape)}.")
    if arr.size and (arr.min() < 0 or arr.max() >= n_items):
        bad = int(arr[(arr < 0) | (arr >= n_items)].ravel()[0])
        raise InputError(
            f"{name} holds index {bad}, outside the {n_items} items (valid: 0..{n_items - 1}). "
            "Indices must point into the split's items."
        )
    return arr


def check_binary_labels(values: Any, *, name: str = "label") -> np.ndarray:
    """Return pair labels as an int8 array of 0 (dissimilar) and 1 (similar)."""
    arr = np.asarray(values.cpu() if hasattr(values, "cpu") else values).reshape(-1)
    if arr.dtype == bool:
        return arr.astype(np.int8)
    if not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"{name} must be numeric 0/1; got dtype {arr.dtype}.")
    uniq = np.unique(arr)
    if not np.all(np.isin(uniq, [0, 1])):
        shown = ", ".join(str(u) for u in uniq[:6])
        raise InputError(
            f"{name} must be 0 (dissimilar) or 1 (similar); found values {shown}. "
            "If your labels are -1/1 or distances, map them to 0/1 first."
        )
    return arr.astype(np.int8)


def check_same_length(**arrays: Any) -> int:
    """Check that all keyword arrays have the same first dimension and return it."""
    lengths = {k: len(v) for k, v in arrays.items() if v is not None}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{k}={n}" for k, n in lengths.items())
        raise InputError(f"Mismatched lengths: {shown}. These arrays describe the same rows and must match.")
    return next(iter(lengths.values()), 0)


def check_finite(arr: np.ndarray, *, name: str, hint: str = "") -> np.ndarray:
    """Raise if ``arr`` holds NaN or inf, naming the first offending row."""
    if arr.size and not np.all(np.isfinite(arr)):
        bad_rows = np.flatnonzero(~np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1))
        raise InputError(
            f"{name} contains NaN or inf in {bad_rows.size} row(s), first at row {int(bad_rows[0])}. "
            + (hint or "Remove or repair those rows before auditing.")
        )
    return arr


def check_labels(values: Any, *, name: str, n: int) -> np.ndarray:
    """Identity labels: a 1-D array of length ``n`` (any hashable dtype); NaN-free."""
    arr = np.asarray(values.cpu() if hasattr(values, "cpu") else values).reshape(-1)
    if arr.shape[0] != n:
        raise InputError(
            f"{name} has {arr.shape[0]} entries but there are {n} items; give one label per item."
        )
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise InputError(
                f"{name} contains NaN or inf; every item needs an identity label (or pass labels=None)."
            )
        if np.all(np.mod(arr, 1) == 0):
            arr = arr.astype(np.int64)
    return arr


def check_choice(value: Any, *, name: str, choices: tuple) -> Any:
    """``value`` must be one of ``choices``."""
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}.")
    return value


def check_positive_int(value: Any, *, name: str, minimum: int = 1) -> int:
    """An integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)
