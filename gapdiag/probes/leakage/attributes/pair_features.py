"""Per-pair features (level, agreement, same) from per-item attributes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ....errors import InputError
from .table import column_kind

# --------------------------------------------------------------------------------------------------
# Pair features
# --------------------------------------------------------------------------------------------------


def _check_index_array(values: Any, what: str, n_items: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InputError(f"{what} must be a 1-D array of item indices, shape (P,); got shape {arr.shape}.")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"{what} must hold integer item indices; got dtype {arr.dtype}.")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < 0 or arr.max() >= n_items):
        raise InputError(
            f"{what} holds indices from {arr.min()} to {arr.max()} but the attribute table has {n_items} "
            f"rows (valid indices 0..{n_items - 1}); pass indices into the same items."
        )
    return arr


def pair_features(attr: pd.DataFrame, left: np.ndarray, right: np.ndarray) -> pd.DataFrame:
    """Per-pair features from per-item attributes.

    Parameters
    ----------
    attr : pandas.DataFrame, shape (n_items, k)
        Per-item attributes, rows in item order (e.g. from :func:`compute_attributes` or
        :func:`merge_attributes`).
    left, right : ndarray of int, shape (P,)
        Item indices of the two sides of each pair.

    Returns
    -------
    pandas.DataFrame, shape (P, n_features), float64
        For each numeric attribute ``a``: ``a:level`` = (a[left] + a[right]) / 2 and
        ``a:agreement`` = -|a[left] - a[right]| (higher = more alike, 0 = identical). For each
        categorical attribute: ``a:same`` = 1.0 if equal else 0.0 (no level: a mean of categories
        has no meaning). A missing value on either side gives NaN. Column kinds follow
        :func:`column_kind`.
    """
    if not isinstance(attr, pd.DataFrame):
        raise InputError(
            f"attr must be a pandas DataFrame of per-item attributes; got {type(attr).__name__}."
        )
    n = len(attr)
    lo = _check_index_array(left, "left", n)
    ro = _check_index_array(right, "right", n)
    if lo.shape != ro.shape:
        raise InputError(
            f"left and right must have the same length (one entry per pair); got {lo.size} and {ro.size}."
        )
    features: dict[str, np.ndarray] = {}
    attr = without_attrs(attr)
    for name in attr.columns:
        s = attr[name]
        if column_kind(s) == "categorical":
            codes, _ = pd.factorize(s, use_na_sentinel=True)  # -1 marks a missing value
            a, b = codes[lo], codes[ro]
            same = (a == b).astype(np.float64)
            same[(a < 0) | (b < 0)] = np.nan
            features[f"{name}:same"] = same
        else:
            v = s.to_numpy(dtype=np.float64, na_value=np.nan)
            a, b = v[lo], v[ro]
            features[f"{name}:level"] = (a + b) / 2.0
            features[f"{name}:agreement"] = -np.abs(a - b)
    return pd.DataFrame(features, index=pd.RangeIndex(lo.size))


def without_attrs(frame: pd.DataFrame) -> pd.DataFrame:
    """A shallow view of ``frame`` without ``attrs``: pandas deep-copies them into every column it hands out,
    and the attribute table's descriptions made that most of the cost of building pair features."""
    view = frame.copy(deep=False)
    view.attrs = {}
    return view
