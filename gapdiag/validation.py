"""``check_*`` helpers: each validates one argument and returns it in canonical form.

Messages follow one pattern: what is wrong, what was seen, what to do, naming the user's argument.
"""

from __future__ import annotations

import math
import numbers
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, InputError, ModelError, OutputError

__all__ = [
    "as_numpy",
    "check_index_array",
    "check_binary_labels",
    "check_same_length",
    "check_finite",
    "check_embeddings",
    "check_labels",
    "check_choice",
    "check_positive_int",
    "check_input_dtype",
    "check_device",
    "check_output_dir",
    "check_options",
    "OPTION_RULES",
]


def as_numpy(values: Any, *, name: str) -> np.ndarray:
    """``values`` (a tensor on any real device, an array, a nested sequence) as a numpy array.

    A tensor on the ``meta`` device holds no data, and a ragged nested list has no array shape: both raise
    ``InputError`` naming ``name``.
    """
    if hasattr(values, "detach") and hasattr(values, "device"):
        if getattr(values.device, "type", "") == "meta":
            raise InputError(
                f"{name} is a tensor on the 'meta' device, which holds no values; materialize it "
                "(e.g. load the data) before auditing."
            )
        values = values.detach().cpu()
    try:
        return np.asarray(values)
    except (ValueError, TypeError) as exc:
        raise InputError(
            f"{name} cannot be read as an array ({exc}). Every row must have the same length; pass a "
            "rectangular array or tensor."
        ) from None


def check_index_array(values: Any, *, name: str, n_items: int, ndim: int = 1) -> np.ndarray:
    """Return ``values`` as an int64 array of ``ndim`` dimensions whose entries index ``n_items`` items."""
    arr = as_numpy(values, name=name)
    if not np.issubdtype(arr.dtype, np.integer):  # empty arrays too: an empty complex array is no index
        if np.issubdtype(arr.dtype, np.floating) and np.isfinite(arr).all() and np.all(np.mod(arr, 1) == 0):
            # in float64, where n_items fits (a float16 array cannot hold 70,000); out-of-range values stay so
            arr = np.clip(arr.astype(np.float64), -1, n_items).astype(np.int64)
        else:
            raise InputError(
                f"{name} must hold integer item indices; got dtype {arr.dtype}. Pass positions into the items."
            )
    if arr.size and arr.dtype == np.uint64 and arr.max() > np.iinfo(np.int64).max:
        raise InputError(f"{name} holds index {int(arr.max())}, outside the {n_items} items.")
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


def check_real(arr: np.ndarray, *, name: str, shape: str) -> np.ndarray:
    """``arr`` unchanged when it holds real numbers (bool included); otherwise an InputError naming ``shape``.

    Complex values would be cast to real silently by NumPy (dropping the imaginary part), so they are
    refused like strings and objects.
    """
    numeric = arr.dtype == bool or np.issubdtype(arr.dtype, np.number)
    if arr.dtype == object or not numeric or np.issubdtype(arr.dtype, np.complexfloating):
        raise InputError(
            f"{name} must be a real-valued {shape} array; got dtype {arr.dtype}. "
            + ("Pass the real part or the magnitude explicitly." if numeric else "Convert it to numbers.")
        )
    return arr


def check_binary_labels(values: Any, *, name: str = "label") -> np.ndarray:
    """Return pair labels as an int8 array of 0 (dissimilar) and 1 (similar)."""
    arr = as_numpy(values, name=name).reshape(-1)
    if arr.dtype == bool:
        return arr.astype(np.int8)
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise InputError(f"{name} must be numeric 0/1; got dtype {arr.dtype}. Map your labels to 0/1.")
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


def check_embeddings(values: Any, *, name: str, n: int | None = None) -> np.ndarray:
    """Precomputed embeddings as a finite float32 array (N, d) with d >= 1 (and N == ``n`` when given)."""
    arr = as_numpy(values, name=name)
    if arr.dtype.kind not in "biuf":
        raise InputError(
            f"{name} has dtype {arr.dtype}; embeddings must be real numbers. Convert them to float32 first."
        )
    if arr.ndim != 2 or arr.shape[1] == 0 or (n is not None and arr.shape[0] != n):
        rows = "N" if n is None else str(n)
        raise InputError(
            f"{name} must have shape ({rows}, d) with d >= 1, one row per item; got {tuple(arr.shape)}."
        )
    with np.errstate(over="ignore"):
        # a value beyond float32's range becomes inf, refused below; float32 input is used as it is (a
        # memory-mapped split of millions of rows is never copied: gapdiag only reads embeddings)
        arr = arr.astype(np.float32, copy=False)
    return check_finite(arr, name=name, hint="Repair those embeddings (or drop their items) before auditing.")


def _label_kind(value: Any) -> str | None:
    """'str', 'int', 'float', 'bool' or None (missing) for one label; anything else is 'other'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (str, np.str_)):
        return "str"
    if isinstance(value, numbers.Integral):
        return "int"
    if isinstance(value, numbers.Real):
        return "float"
    return "other"


def _object_labels(arr: np.ndarray, name: str) -> np.ndarray:
    """Labels given as Python objects: one kind (all strings or all numbers), none missing."""
    kinds = [_label_kind(v) for v in arr]
    if None in kinds:
        i = kinds.index(None)
        raise InputError(
            f"{name}[{i}] is missing ({arr[i]!r}); every item needs an identity label. Label it, drop the "
            "item, or pass labels=None."
        )
    found = set(kinds)
    if "other" in found:
        i = kinds.index("other")
        raise InputError(
            f"{name}[{i}] is a {type(arr[i]).__name__}; labels must be strings or integers (one per item)."
        )
    if "str" in found and len(found) > 1:
        other = next(k for k in kinds if k != "str")
        i = kinds.index(other)
        raise InputError(
            f"{name} mixes strings and numbers (e.g. {arr[kinds.index('str')]!r} and {arr[i]!r} at {i}); "
            "'1' and 1 would silently become the same identity. Use one type for every label."
        )
    if found == {"str"}:
        return arr.astype(str)
    return arr.astype(np.float64 if "float" in found else np.int64)


def check_labels(values: Any, *, name: str, n: int) -> np.ndarray:
    """Identity labels: a 1-D array of length ``n`` of one kind (strings or numbers); none missing."""
    if isinstance(values, (list, tuple)):
        arr = np.empty(len(values), dtype=object)
        for i, v in enumerate(values):  # keep 1 and "1" apart: numpy would turn both into "1"
            arr[i] = v
    else:
        arr = as_numpy(values, name=name).reshape(-1)
    if arr.shape[0] != n:
        raise InputError(
            f"{name} has {arr.shape[0]} entries but there are {n} items; give one label per item."
        )
    if arr.dtype == object:
        arr = _object_labels(arr, name)
    elif not (np.issubdtype(arr.dtype, np.number) or arr.dtype.kind in "bUS"):
        raise InputError(f"{name} has dtype {arr.dtype}; labels must be strings or integers.")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise InputError(f"{name} holds complex numbers; labels must be strings or integers.")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            i = int(np.flatnonzero(~np.isfinite(arr))[0])
            raise InputError(
                f"{name}[{i}] is NaN or inf; every item needs an identity label (or pass labels=None)."
            )
        # whole numbers become integers where float64 holds them exactly (1e300 stays a float label); the
        # bound is compared in float64, which a float16 array could not hold
        wide = arr.astype(np.float64)
        if np.all(np.mod(wide, 1) == 0) and np.all(np.abs(wide) <= 2.0**53):
            arr = wide.astype(np.int64)
    return arr


def check_choice(value: Any, *, name: str, choices: tuple) -> Any:
    """``value`` must be one of ``choices``."""
    try:
        ok = value in choices
    except TypeError:  # an unhashable or incomparable value
        ok = False
    if not ok:
        raise InputError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}.")
    return value


def check_positive_int(value: Any, *, name: str, minimum: int = 1) -> int:
    """An integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def check_input_dtype(dtype: Any, *, where: str) -> None:
    """Inputs must be numbers (bool, integer or float): object, string and complex inputs cannot be embedded."""
    text = str(dtype).replace("torch.", "")
    kind = np.dtype(dtype).kind if isinstance(dtype, np.dtype) else None
    if kind in ("O", "U", "S", "V", "c", "M", "m") or text.startswith("complex"):
        raise InputError(
            f"{where}: dtype {text} cannot be embedded; gapdiag embeds numeric inputs (bool, integer or float). "
            "Convert them (tokenize text, decode images) into one numeric array first."
        )


def check_device(device: Any) -> str:
    """``"auto"`` or a device torch knows and this host has; returns it unchanged."""
    import torch

    if device == "auto":
        return device
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ModelError(
            f"device={device!r} is not a device torch knows ({exc}); use 'auto', 'cpu' or 'cuda'."
        ) from None
    if dev.type == "meta":
        raise ModelError("device='meta' holds no weights and cannot embed; use 'auto', 'cpu' or 'cuda'.")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelError(
                f"device={device!r}, but this host has no usable CUDA device; use device='cpu' or 'auto' "
                "(the module's own device)."
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ModelError(
                f"device={device!r}, but this host has {torch.cuda.device_count()} CUDA device(s); pick one of them."
            )
    elif dev.type == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise ModelError(f"device={device!r}, but MPS is not available here; use device='cpu' or 'auto'.")
    return device


def check_output_dir(path: str | os.PathLike, *, name: str = "--out") -> Path:
    """A folder the report can be written to: an existing folder, or one that can be created.

    Nothing is created: the nearest existing ancestor must be a writable folder (proven by creating and
    removing a temporary file there, which also holds for root and read-only file systems).
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(f"{name} {str(p)!r} is a file; the reports go into a folder. Pick a folder path.")
    probe = p
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(
            f"{name} {str(p)!r} cannot be created: {str(probe)!r} is a file, not a folder. Pick another path."
        )
    try:
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".gapdiag-write-check-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise OutputError(
            f"{name} {str(p)!r} is not writable ({exc.strerror or exc} in {str(probe)!r}); pick a folder you "
            "can write to."
        ) from None
    return p


# -- global options ---------------------------------------------------------------------------------------


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _int_in(low: int, high: int, why: str = "") -> Any:
    def rule(v: Any) -> str | None:
        if not _is_int(v) or not low <= v <= high:
            return f"must be an integer in [{low}, {high}]{why}"
        return None

    return rule


def _optional(rule: Any) -> Any:
    return lambda v: None if v is None else rule(v)


def _ci_level(v: Any) -> str | None:
    return None if _is_number(v) and 0.5 < float(v) < 1.0 else "must be a number in (0.5, 1), e.g. 0.95"


def _threshold(v: Any) -> str | None:
    if v is None or (_is_number(v) and math.isfinite(float(v))):
        return None
    return "must be a finite number on your score's raw scale (or unset, to tune it on the training pairs)"


def _cache_dir(v: Any) -> str | None:
    if v is None:
        return None
    if not isinstance(v, (str, os.PathLike)) or not str(v):
        return "must be a folder path (a string)"
    if Path(v).exists() and not Path(v).is_dir():
        return "is a file; the embedding cache needs a folder"
    return None


def _names(v: Any) -> str | None:
    if v is None or isinstance(v, str):
        return None
    if isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v):
        return None
    return "must be a list of names (or one comma-separated string)"


def _ignores(v: Any) -> str | None:
    """The shape only; :func:`gapdiag.ignores.normalize_ignores` checks each entry and its reason."""
    if isinstance(v, (str, dict)):
        return None
    if isinstance(v, (list, tuple)) and all(isinstance(x, (str, dict)) for x in v):
        return None
    return 'must be a list of finding codes with reasons, e.g. [{code = "GD204", reason = "why"}]'


#: How each global option of :data:`gapdiag.config.GLOBAL_DEFAULTS` is checked: ``rule(value) -> problem or None``.
OPTION_RULES: dict[str, Any] = {
    "seed": _int_in(0, 2**63 - 1),
    "n_boot": _int_in(50, 20_000, " (memory grows as n_boot x sample size)"),
    "ci_level": _ci_level,
    "batch_size": _optional(_int_in(1, 2**31 - 1)),
    "n_way": _optional(_int_in(2, 10_000)),
    "threshold": _threshold,
    "cache_dir": _cache_dir,
    "probes": _names,
    "ignore": _ignores,
    "gates": lambda v: (
        None if isinstance(v, dict) else "must be a table such as [gates] val_metric_min = 0.6"
    ),
    "fail_on": lambda v: None if v in ("warn", "fail") else "must be 'warn' or 'fail'",
    "max_pairs_per_split": _int_in(20, 2**40, " (the protocol grid needs a usable sample)"),
    "train_protocol": lambda v: (
        None if v in ("auto", "pairwise", "n-way") else "must be 'auto', 'pairwise' or 'n-way'"
    ),
    "val_protocol": lambda v: (
        None if v in ("auto", "pairwise", "n-way") else "must be 'auto', 'pairwise' or 'n-way'"
    ),
    "direction_margin": lambda v: (
        None
        if isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v < 0.5
        else "must be a number in [0, 0.5)"
    ),
    "similar_label": lambda v: (
        None
        if v in (0, 1) and not isinstance(v, bool)
        else "must be 1 (label 1 = similar) or 0 (label 1 = dissimilar, the contrastive-loss convention)"
    ),
    "fresh_per_pair": _int_in(1, 100),
    "workers": _optional(_int_in(1, 256)),
    "neighbour_budget": lambda v: (
        None
        if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < float("inf")
        else "must be a positive number of multiply-adds, e.g. 2.5e11"
    ),
}


def check_options(options: dict[str, Any], *, source: str) -> dict[str, Any]:
    """Check every global option's type and range; raises ``ConfigError`` naming ``source`` and the option."""
    for key, value in options.items():
        rule = OPTION_RULES.get(key)
        problem = rule(value) if rule is not None else None
        if problem:
            raise ConfigError(f"{source}: {key} {problem}; got {value!r} ({type(value).__name__}).")
    return options
