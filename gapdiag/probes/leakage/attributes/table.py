"""Computing the per-item attribute table, column kinds, user columns and descriptions."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ....errors import ConfigError, GapdiagError, InputError
from ....modality import is_image_like
from .registry import (
    ATTRIBUTE_SPECS,
    CATEGORICAL_MAX_INTEGER_LEVELS,
    FEATURE_PARTS,
    AttributeSpec,
    as_bchw,
    as_float_batch,
    as_tensor_batch,
    column_owner,
    get_attribute,
)

# --------------------------------------------------------------------------------------------------
# Computing attributes
# --------------------------------------------------------------------------------------------------


def _select_attributes(names: Sequence[str] | None, x: torch.Tensor) -> list[tuple[AttributeSpec, set]]:
    """Resolve ``names`` against the registry for batch ``x``: (spec, wanted columns or empty=all)."""
    if names is None:
        return [(spec, set()) for spec in ATTRIBUTE_SPECS.values() if _applies(spec, x)]
    if isinstance(names, str):
        names = [names]
    wanted: dict[str, set] = {}
    for name in names:
        spec = get_attribute(name)
        if not _applies(spec, x):
            raise InputError(
                f"attribute {name!r} is defined for {spec.applies_to_text}; the inputs have shape "
                f"{tuple(x.shape)}. Drop it from names."
            )
        cols = wanted.setdefault(spec.name, set())
        if name != spec.name:
            cols.add(name)
        else:
            cols.add("*")
    ordered = [n for n in ATTRIBUTE_SPECS if n in wanted]
    return [(ATTRIBUTE_SPECS[n], set() if "*" in wanted[n] else wanted[n]) for n in ordered]


def _applies(spec: AttributeSpec, x: torch.Tensor) -> bool:
    try:
        return bool(spec.applies_to(x))
    except Exception as exc:  # a user's predicate: report it as a registration problem
        raise ConfigError(f"attribute {spec.name!r}: its applies_to function raised {exc!r}.") from exc


def _evaluate(spec: AttributeSpec, x: torch.Tensor, start: int, stop: int) -> dict[str, np.ndarray]:
    b = x.shape[0]
    batch = as_bchw(x) if is_image_like(x) else x
    try:
        with torch.no_grad():
            raw = spec.fn(batch)
    except GapdiagError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"attribute {spec.name!r} raised on items {start}..{stop - 1} (input shape "
            f"{tuple(x.shape)}): {exc!r}. Fix the attribute function or drop it from names."
        ) from exc
    values = raw if isinstance(raw, Mapping) else {spec.name: raw}
    out = {}
    for col, v in values.items():
        arr = v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
        if arr.shape != (b,):
            raise ConfigError(
                f"attribute {spec.name!r} returned shape {arr.shape} for column {col!r} on a batch of {b} "
                f"items; it must return one value per item, shape ({b},)."
            )
        if spec.kind == "numeric":
            try:
                arr = arr.astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise ConfigError(
                    f"attribute {spec.name!r} is numeric but column {col!r} holds {arr.dtype} values "
                    "that are not numbers; return floats or register it with kind='categorical'."
                ) from exc
            if np.isinf(arr).any():
                raise ConfigError(
                    f"attribute {spec.name!r} returned inf for column {col!r} on items "
                    f"{start}..{stop - 1}; return finite values (NaN marks a missing value)."
                )
        out[str(col)] = arr
    return out


def compute_attributes(
    get_batch: Callable[[np.ndarray], torch.Tensor],
    n_items: int,
    *,
    batch_size: int = 256,
    names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Compute every applicable attribute once per item, batch by batch.

    Parameters
    ----------
    get_batch : callable
        ``get_batch(indices: ndarray (b,) of int64) -> Tensor (b, ...)``: the items at those
        positions, stacked. Image-like batches are (b, C, H, W) with C in 1..4 or (b, H, W), with
        H, W >= 4; anything else gets the generic attributes. Integer dtypes are converted to float.
    n_items : int
        Number of items; ``get_batch`` is called on consecutive slices of ``range(n_items)``.
    batch_size : int, default 256
        Items per call of ``get_batch``.
    names : sequence of str, optional
        Registered attribute names or column names to compute. Default: every registered attribute
        that applies to these inputs (decided on the first batch).

    Returns
    -------
    pandas.DataFrame, shape (n_items, n_columns)
        One row per item (RangeIndex), one float64 column per numeric attribute value and one
        ``category`` column per categorical one. Deterministic for the same inputs and batch size.

    Raises
    ------
    InputError
        For a bad ``n_items``/``batch_size``, a batch of the wrong length or shape, non-finite
        values, or a requested attribute that does not apply to these inputs.
    """
    n_items = _check_positive_int(n_items, "n_items")
    batch_size = _check_positive_int(batch_size, "batch_size")
    selected: list[tuple[AttributeSpec, set]] | None = None
    trailing: tuple[int, ...] | None = None
    parts: dict[str, list[np.ndarray]] = {}
    kinds: dict[str, str] = {}
    for start in range(0, n_items, batch_size):  # a loop over batches; each attribute is vectorized
        stop = min(start + batch_size, n_items)
        idx = np.arange(start, stop, dtype=np.int64)
        raw = as_tensor_batch(get_batch(idx), f"the batch of items {start}..{stop - 1}")
        x = as_float_batch(raw, f"the batch of items {start}..{stop - 1}")
        if x.shape[0] != stop - start:
            raise InputError(
                f"get_batch returned {x.shape[0]} items for the {stop - start} indices {start}..{stop - 1}; "
                "it must return exactly one item per index, in order."
            )
        if trailing is None:
            trailing = tuple(x.shape[1:])
            selected = _select_attributes(names, raw)  # on the user's dtype: token ids are integers
        elif tuple(x.shape[1:]) != trailing:
            raise InputError(
                f"items {start}..{stop - 1} have shape {tuple(x.shape[1:])} but earlier items have "
                f"{trailing}; all items of a split must have the same shape. Resize them in the loader."
            )
        assert selected is not None
        for spec, wanted in selected:
            for col, arr in _evaluate(spec, x, start, stop).items():
                if wanted and col not in wanted:
                    continue
                if kinds.get(col, spec.name) != spec.name:
                    raise ConfigError(
                        f"attribute {spec.name!r} returns column {col!r}, which attribute {kinds[col]!r} "
                        "also returns; give the columns distinct names."
                    )
                kinds[col] = spec.name
                parts.setdefault(col, []).append(arr)
    columns = {}
    for col, chunks in parts.items():
        values = np.concatenate(chunks)
        if ATTRIBUTE_SPECS[kinds[col]].kind == "categorical":
            columns[col] = pd.Series(pd.Categorical(values))
        else:
            columns[col] = pd.Series(values, dtype=np.float64)
    return pd.DataFrame(columns, index=pd.RangeIndex(n_items))


def compute_attributes_from_tensor(
    x: torch.Tensor | np.ndarray,
    *,
    batch_size: int = 256,
    names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """:func:`compute_attributes` for inputs already in memory.

    Parameters
    ----------
    x : torch.Tensor or ndarray, shape (N, ...)
        All items, e.g. (N, C, H, W) images or (N, D) vectors.
    batch_size : int, default 256
    names : sequence of str, optional
        As in :func:`compute_attributes`.

    Returns
    -------
    pandas.DataFrame, shape (N, n_columns)
    """
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x))
    if x.ndim == 0 or x.shape[0] == 0:
        raise InputError(f"x must hold at least one item, shape (N, ...); got shape {tuple(x.shape)}.")
    return compute_attributes(
        lambda idx: x[torch.from_numpy(idx)], int(x.shape[0]), batch_size=batch_size, names=names
    )


def _check_positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise InputError(f"{what} must be a positive integer; got {value!r}.")
    return int(value)


# --------------------------------------------------------------------------------------------------
# Column kinds, user columns, descriptions
# --------------------------------------------------------------------------------------------------


def column_kind(values: pd.Series, *, max_integer_levels: int = CATEGORICAL_MAX_INTEGER_LEVELS) -> str:
    """Whether an attribute column is numeric or categorical.

    Parameters
    ----------
    values : pandas.Series, shape (n_items,)
    max_integer_levels : int, default CATEGORICAL_MAX_INTEGER_LEVELS
        Integer columns with at most this many distinct values are categorical.

    Returns
    -------
    {"numeric", "categorical"}
        Categorical for ``category``, ``bool``, ``object`` and string dtypes and for integers with
        few levels; numeric for floats and for integers with more levels.

    Raises
    ------
    InputError
        For dtypes that are neither (datetimes, complex numbers...).
    """
    dt = values.dtype
    api = pd.api.types
    if (
        isinstance(dt, pd.CategoricalDtype)
        or api.is_bool_dtype(dt)
        or api.is_object_dtype(dt)
        or api.is_string_dtype(dt)
    ):
        return "categorical"
    if api.is_integer_dtype(dt):
        return "categorical" if values.nunique(dropna=True) <= max_integer_levels else "numeric"
    if api.is_float_dtype(dt):
        return "numeric"
    raise InputError(
        f"attribute column {values.name!r} has dtype {dt}, which is neither numeric nor categorical; "
        "convert it to float (a quantity) or to strings/category (a label)."
    )


def merge_attributes(
    computed: pd.DataFrame | None,
    user: pd.DataFrame,
    *,
    categorical: Iterable[str] = (),
    numeric: Iterable[str] = (),
    descriptions: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Add the user's known per-item columns (scanner, camera, lighting...) to computed attributes.

    Parameters
    ----------
    computed : pandas.DataFrame, shape (n_items, k) or None
        Output of :func:`compute_attributes` (or None for user columns only).
    user : pandas.DataFrame, shape (n_items, m)
        One row per item, **matched by position** (row i describes item i; the index is ignored).
    categorical, numeric : iterable of str
        Columns of ``user`` to force to one kind; the others follow :func:`column_kind`.
    descriptions : Mapping[str, str], optional
        Plain-words descriptions of user columns for :func:`describe_attribute`.

    Returns
    -------
    pandas.DataFrame, shape (n_items, k + m)
        Computed columns first, then the user's; categorical user columns as ``category`` dtype,
        numeric ones as float64, so :func:`pair_features` reads their kinds unambiguously.
        Descriptions are kept in ``.attrs["descriptions"]``.

    Raises
    ------
    InputError
        On a length mismatch, a name clash with a computed column, a forced column that does not
        exist, a numeric column that is not numbers or holds inf, or unhashable category values.
    """
    user = _checked_user_table(computed, user, set(categorical), set(numeric), descriptions or {})
    forced_cat, forced_num = set(categorical), set(numeric)
    out = {}
    for col in user.columns:
        s = user[col]
        kind = "categorical" if col in forced_cat else "numeric" if col in forced_num else column_kind(s)
        out[col] = _typed_column(col, s, kind)
    user_frame = pd.DataFrame(out, index=pd.RangeIndex(len(user)))
    merged = (
        user_frame if computed is None else pd.concat([computed.reset_index(drop=True), user_frame], axis=1)
    )
    merged.attrs["descriptions"] = {str(k): str(v) for k, v in (descriptions or {}).items()}
    return merged


def _checked_user_table(
    computed: pd.DataFrame | None,
    user: pd.DataFrame,
    forced_cat: set[str],
    forced_num: set[str],
    descriptions: Mapping[str, str],
) -> pd.DataFrame:
    """The user's table with string column names and a fresh index, after every check of :func:`merge_attributes`."""
    if not isinstance(user, pd.DataFrame):
        raise InputError(
            f"user attributes must be a pandas DataFrame with one row per item; got {type(user).__name__}."
        )
    if computed is not None and not isinstance(computed, pd.DataFrame):
        raise InputError(f"computed attributes must be a pandas DataFrame; got {type(computed).__name__}.")
    if computed is not None and len(computed) != len(user):
        raise InputError(
            f"the user's attribute table has {len(user)} rows but there are {len(computed)} items; it "
            "needs exactly one row per item, in item order."
        )
    user = user.reset_index(drop=True).copy()
    user.columns = [str(c) for c in user.columns]
    if user.columns.duplicated().any():
        raise InputError(f"the user's attribute table has duplicate columns: {list(user.columns)}.")
    for forced in (forced_cat, forced_num):
        missing = sorted(forced - set(user.columns))
        if missing:
            raise InputError(
                f"columns {missing} were named in categorical/numeric but are not in the user's "
                f"attribute table, which has {list(user.columns)}."
            )
    both = sorted(forced_cat & forced_num)
    if both:
        raise InputError(f"columns {both} are named both categorical and numeric; choose one.")
    unknown_descriptions = sorted(set(descriptions) - set(user.columns))
    if unknown_descriptions:
        raise InputError(
            f"descriptions name columns {unknown_descriptions} that are not in the user's attribute "
            f"table, which has {list(user.columns)}."
        )
    clash = sorted(set(user.columns) & (set(computed.columns) if computed is not None else set()))
    if clash:
        raise InputError(
            f"user attribute columns {clash} have the names of computed attributes; rename them "
            "(e.g. 'user_brightness')."
        )
    return user


def _typed_column(col: str, s: pd.Series, kind: str) -> pd.Series:
    """A user column as ``category`` or float64 (numeric, finite or NaN)."""
    if kind == "categorical":
        try:
            return s.astype("category")
        except TypeError as exc:
            raise InputError(
                f"user attribute column {col!r} holds values that cannot be categories ({exc}); "
                "use strings or numbers."
            ) from exc
    try:
        num = pd.to_numeric(s, errors="raise").astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"user attribute column {col!r} is to be numeric but holds {s.dtype} values that are "
            f"not numbers ({exc}); pass it in categorical=... or convert it."
        ) from exc
    if np.isinf(num.to_numpy()).any():
        raise InputError(f"user attribute column {col!r} holds inf; use NaN for a missing value.")
    return num


def split_feature_name(feature: str) -> tuple[str, str]:
    """Split a pair-feature name into its attribute and part.

    Parameters
    ----------
    feature : str
        E.g. "redness:level".

    Returns
    -------
    (str, str)
        E.g. ("redness", "level"); the part is one of ``FEATURE_PARTS``.
    """
    attr, sep, part = str(feature).rpartition(":")
    if not sep or part not in FEATURE_PARTS:
        raise InputError(
            f"{feature!r} is not a pair-feature name; those read '<attribute>:<part>' with part in "
            f"{list(FEATURE_PARTS)}."
        )
    return attr, part


def attribute_kind(name: str, *, table: pd.DataFrame | None = None) -> str:
    """Whether an attribute (built-in, registered or a column of ``table``) is numeric or categorical.

    Parameters
    ----------
    name : str
        Attribute column name.
    table : pandas.DataFrame, optional
        An attribute table (n_items rows) whose columns are looked up first.

    Returns
    -------
    {"numeric", "categorical"}
    """
    if table is not None and name in table.columns:
        return column_kind(table[name])
    return get_attribute(name).kind


def describe_attribute(name: str, *, table: pd.DataFrame | None = None) -> str:
    """The plain-words description of an attribute column or pair feature, with its kind.

    Parameters
    ----------
    name : str
        An attribute column ("redness", "scanner") or a pair feature ("redness:agreement").
    table : pandas.DataFrame, optional
        An attribute table (as from :func:`merge_attributes`) for user columns and their
        descriptions.

    Returns
    -------
    str
        E.g. "redness (mean of the red channel minus the mean of the other two channels); numeric".
    """
    attr, sep, part = str(name).rpartition(":")
    if sep and part in FEATURE_PARTS:
        return f"{describe_attribute(attr, table=table)}; pair feature {FEATURE_PARTS[part]}"
    user_text = (table.attrs.get("descriptions", {}) if table is not None else {}).get(name)
    if user_text and table is not None and name not in table.columns:
        return f"{user_text}; numeric"  # a pair-level statistic (token overlap): described, not a column
    kind = attribute_kind(name, table=table)
    if user_text:
        return f"{user_text}; {kind}"
    if table is None or name not in table.columns or column_owner(name) is not None:
        spec = get_attribute(name)
        return f"{spec.columns.get(name, spec.description)}; {kind}"
    levels = table[name].nunique(dropna=True)
    extra = f", {levels} levels" if kind == "categorical" else ""
    return f"user-supplied column {name!r}; {kind}{extra}"
