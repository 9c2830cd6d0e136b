"""Per-item nuisance attributes, their registry, and the interventions that transplant them.

Attributes
----------
An *attribute* is a property of a single item that has nothing to do with its identity: how bright
it is, how red, how sharp, where its mass sits. Each registered attribute is a function of one batch,
``fn(batch) -> ndarray (B,)`` or ``fn(batch) -> {column: ndarray (B,)}``; :func:`compute_attributes`
evaluates every applicable attribute once per item, batch by batch, into one table with a row per
item. Users add their own with :func:`register_attribute` and their own known columns (scanner id,
camera...) with :func:`merge_attributes`.

Which columns are categorical
    A column is *categorical* when its dtype is ``category``, ``bool``, ``object`` or a string dtype,
    or when it holds integers with at most ``CATEGORICAL_MAX_INTEGER_LEVELS`` (20) distinct values
    (scanner 0..3 is a category, not a quantity). Float columns are always numeric, and so are
    integer columns with more distinct values. :func:`merge_attributes` can force either kind, and
    stores the result with an unambiguous dtype (``category`` or ``float64``).

Pair features
    :func:`pair_features` turns the per-item table into per-pair features. For a numeric attribute
    ``a``: ``a:level`` = the mean of the two items (is the pair, as a whole, red?) and
    ``a:agreement`` = ``-|a_left - a_right|`` (0 for identical items, more negative for less alike
    ones, so *higher = more alike*). For a categorical attribute: ``a:same`` = 1.0 when both items
    have the same value, else 0.0; a "level" of a category has no meaning and is not produced.
    Missing values give NaN features.

Interventions
-------------
An *intervention* moves attributes of an input on purpose: add a colour cast, shift the image by two
pixels, blur it. GD102 uses them as counterfactuals: "positive training pairs are redder; transplant
that redness onto validation pairs and see whether the model's decisions flip". So every built-in
intervention has parameters that can be *estimated from the data*:
:func:`fit_intervention` compares a ``source`` batch that shows the artifact (the items of positive
training pairs) with a ``reference`` batch that lacks it (validation items) and returns the
parameters that move the reference's attribute to the source's level; :func:`apply_intervention`
applies them. ``strength`` scales the effect: 0 is the identity, 1 the estimated (or default)
amount, 2 twice that. Interventions always return a new tensor and never modify their input, and
they do not clip values to the input's range (so the attribute moves by exactly the fitted amount).

=================  ========================================================================
intervention       attributes it moves (:func:`intervention_for_attribute` reads this)
=================  ========================================================================
``tint``           redness, greenness, blueness, saturation, red, green, blue, channel_0..3
``channel_shift``  redness, greenness, blueness, saturation, red, green, blue, channel_0..3
``brightness``     brightness, border, mean, min, max
``contrast``       contrast, std
``translation``    center_of_mass_x, center_of_mass_y
``blur``           sharpness
``scale``          l2_norm
=================  ========================================================================
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from gapdiag.errors import ConfigError, GapdiagError, InputError

__all__ = [
    "AttributeSpec",
    "InterventionSpec",
    "CATEGORICAL_MAX_INTEGER_LEVELS",
    "FEATURE_PARTS",
    "register_attribute",
    "unregister_attribute",
    "get_attribute",
    "list_attributes",
    "is_image_like",
    "compute_attributes",
    "compute_attributes_from_tensor",
    "merge_attributes",
    "column_kind",
    "attribute_kind",
    "describe_attribute",
    "pair_features",
    "split_feature_name",
    "register_intervention",
    "unregister_intervention",
    "get_intervention",
    "list_interventions",
    "describe_intervention",
    "fit_intervention",
    "apply_intervention",
    "intervention_for_attribute",
]

#: Integer columns with at most this many distinct values are read as categories.
CATEGORICAL_MAX_INTEGER_LEVELS = 20

#: The suffixes :func:`pair_features` appends to an attribute name, and what each one means.
FEATURE_PARTS: Mapping[str, str] = {
    "level": "level = the mean of the two items' values",
    "agreement": (
        "agreement = minus the absolute difference between the two items "
        "(0 = identical, more negative = less alike)"
    ),
    "same": "same = 1 when both items have the same value, else 0",
}

_ATTRIBUTE_KINDS = ("numeric", "categorical")
_IMAGE_SHAPE_TEXT = "(B,C,H,W) with C in 1..4 and H,W >= 4, or (B,H,W) with H,W >= 4"


# --------------------------------------------------------------------------------------------------
# Input kinds
# --------------------------------------------------------------------------------------------------


def is_image_like(x: torch.Tensor) -> bool:
    """Whether a batch is treated as images.

    Parameters
    ----------
    x : torch.Tensor, shape (B, C, H, W) or (B, H, W) or any (B, ...)
        A batch of items.

    Returns
    -------
    bool
        True for shape (B, C, H, W) with C in 1..4 and H, W >= 4, or (B, H, W) with H, W >= 4 (read
        as one channel). Any real dtype counts; attributes convert to floating point.
    """
    if x.ndim == 3:
        return x.shape[1] >= 4 and x.shape[2] >= 4
    if x.ndim == 4:
        return 1 <= x.shape[1] <= 4 and x.shape[2] >= 4 and x.shape[3] >= 4
    return False


def _channels(x: torch.Tensor) -> int:
    return 1 if x.ndim == 3 else int(x.shape[1])


_INPUT_KINDS: dict[str, tuple[Callable[[torch.Tensor], bool], str]] = {
    "any": (lambda x: True, "any input"),
    "image": (is_image_like, f"image-like inputs {_IMAGE_SHAPE_TEXT}"),
    "rgb": (lambda x: is_image_like(x) and _channels(x) == 3, "RGB images (B,3,H,W) with H,W >= 4"),
    "multichannel": (
        lambda x: is_image_like(x) and _channels(x) >= 2,
        "images with 2 to 4 channels (B,C,H,W)",
    ),
    "non_image": (lambda x: not is_image_like(x), f"inputs that are not image-like {_IMAGE_SHAPE_TEXT}"),
}


def _resolve_applies_to(applies_to: str | Callable[[torch.Tensor], bool], what: str):
    if isinstance(applies_to, str):
        if applies_to not in _INPUT_KINDS:
            raise ConfigError(
                f"{what}: applies_to={applies_to!r} is not a known input kind; use one of "
                f"{sorted(_INPUT_KINDS)} or a callable batch -> bool."
            )
        return _INPUT_KINDS[applies_to]
    if not callable(applies_to):
        raise ConfigError(
            f"{what}: applies_to must be an input kind {sorted(_INPUT_KINDS)} or a callable "
            f"batch -> bool; got {type(applies_to).__name__}."
        )
    return applies_to, "inputs accepted by its applies_to function"


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{what} name must be a non-empty string; got {name!r}.")
    if ":" in name:
        raise ConfigError(
            f"{what} name {name!r} contains ':', which separates an attribute from its pair-feature "
            "part (e.g. 'redness:level'); choose a name without ':'."
        )
    return name


def _as_bchw(x: torch.Tensor) -> torch.Tensor:
    return x.unsqueeze(1) if x.ndim == 3 else x


def _as_float_batch(x: Any, what: str) -> torch.Tensor:
    """Convert a user batch to a detached floating tensor (B, ...), checking that it is finite."""
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError, RuntimeError) as exc:
            raise InputError(
                f"{what} must be a torch.Tensor or an array of shape (B, ...); got {type(x).__name__} "
                f"that cannot be converted ({exc}). Return a tensor from your loader."
            ) from exc
    x = x.detach()
    if x.is_complex():
        raise InputError(f"{what} has complex dtype {x.dtype}; attributes need real values.")
    if x.ndim == 0:
        raise InputError(f"{what} is a scalar; a batch needs a leading batch dimension (B, ...).")
    if not x.is_floating_point():
        x = x.float()
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise InputError(
            f"{what} contains NaN or inf values; attributes are only defined on finite inputs. "
            "Check the loader or the preprocessing of these items."
        )
    return x


# --------------------------------------------------------------------------------------------------
# Attribute registry
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttributeSpec:
    """A registered attribute.

    Attributes
    ----------
    name : str
        The registered name (also the column name when ``fn`` returns one array).
    fn : callable
        ``fn(batch: Tensor (B, ...)) -> ndarray (B,)`` or ``-> {column: ndarray (B,)}``. Image
        attributes receive (B, C, H, W) (a (B, H, W) batch arrives as (B, 1, H, W)).
    applies_to : callable
        ``applies_to(batch) -> bool``: whether the attribute is defined for these inputs.
    applies_to_text : str
        The same in words, for messages.
    description : str
        Plain words used in messages, e.g. "redness (mean of the red channel minus ...)".
    kind : {"numeric", "categorical"}
    columns : Mapping[str, str]
        For several-column attributes: each column it may produce and its description.
    """

    name: str
    fn: Callable[[torch.Tensor], Any]
    applies_to: Callable[[torch.Tensor], bool]
    applies_to_text: str
    description: str
    kind: str = "numeric"
    columns: Mapping[str, str] = field(default_factory=dict)


_ATTRIBUTES: dict[str, AttributeSpec] = {}


def _column_owner(column: str) -> str | None:
    if column in _ATTRIBUTES and not _ATTRIBUTES[column].columns:
        return column
    for spec in _ATTRIBUTES.values():
        if column in spec.columns:
            return spec.name
    return None


def register_attribute(
    name: str,
    *,
    description: str,
    applies_to: str | Callable[[torch.Tensor], bool] = "any",
    kind: str = "numeric",
    columns: Mapping[str, str] | None = None,
    replace: bool = False,
) -> Callable:
    """Register a per-item attribute function (decorator).

    Parameters
    ----------
    name : str
        Unique name, without ':'. With ``columns=None`` it is also the column name.
    description : str
        Plain words used in findings, e.g. "redness (mean of the red channel minus the mean of the
        other channels)".
    applies_to : {"any", "image", "rgb", "multichannel", "non_image"} or callable, default "any"
        Which batches the attribute is defined for; a callable gets the first batch (B, ...) and
        returns a bool. Image attributes receive batches as (B, C, H, W).
    kind : {"numeric", "categorical"}, default "numeric"
        Numeric values are stored as float64, categorical ones as a pandas ``category`` column.
    columns : Mapping[str, str], optional
        When ``fn`` returns a dict: every column it may return, with its description.
    replace : bool, default False
        Replace an existing registration of the same name (re-running a notebook cell).

    Returns
    -------
    callable
        A decorator that registers ``fn(batch) -> ndarray (B,) | dict[str, ndarray (B,)]`` and
        returns it unchanged.

    Raises
    ------
    ConfigError
        On a duplicate name or column, an empty description, or an unknown kind.
    """
    _check_name(name, "attribute")
    if not isinstance(description, str) or not description.strip():
        raise ConfigError(f"attribute {name!r}: description must be a non-empty string of plain words.")
    if kind not in _ATTRIBUTE_KINDS:
        raise ConfigError(f"attribute {name!r}: kind={kind!r} is not one of {list(_ATTRIBUTE_KINDS)}.")
    check, text = _resolve_applies_to(applies_to, f"attribute {name!r}")
    cols = dict(columns or {})
    for col in cols:
        _check_name(col, f"attribute {name!r} column")
    for new in [name, *cols]:
        owner = _column_owner(new)
        if owner is None and new in _ATTRIBUTES:
            owner = new
        if owner is not None and not (replace and owner == name):
            raise ConfigError(
                f"attribute {new!r} is already registered (by {owner!r}); choose another name, or pass "
                "replace=True to replace that registration."
            )

    def decorator(fn: Callable) -> Callable:
        if not callable(fn):
            raise ConfigError(f"attribute {name!r}: register_attribute decorates a function; got {fn!r}.")
        _ATTRIBUTES[name] = AttributeSpec(name, fn, check, text, description, kind, cols)
        return fn

    return decorator


def unregister_attribute(name: str) -> None:
    """Remove a registered attribute.

    Parameters
    ----------
    name : str
        A registered attribute name.

    Raises
    ------
    ConfigError
        When no attribute of that name is registered.
    """
    if name not in _ATTRIBUTES:
        raise ConfigError(f"no attribute {name!r} is registered; registered: {list(_ATTRIBUTES)}.")
    del _ATTRIBUTES[name]


def get_attribute(name: str) -> AttributeSpec:
    """The registration of an attribute, by registered name or by one of its column names.

    Parameters
    ----------
    name : str
        Registered name (e.g. "color_cast") or column (e.g. "redness").

    Returns
    -------
    AttributeSpec
    """
    owner = name if name in _ATTRIBUTES else _column_owner(name)
    if owner is None:
        raise InputError(
            f"unknown attribute {name!r}; registered attributes: {list(_ATTRIBUTES)}, columns: "
            f"{_all_columns()}. Register it with register_attribute or check the spelling."
        )
    return _ATTRIBUTES[owner]


def list_attributes() -> list[str]:
    """Registered attribute names, in registration order.

    Returns
    -------
    list of str
    """
    return list(_ATTRIBUTES)


def _all_columns() -> list[str]:
    out: list[str] = []
    for spec in _ATTRIBUTES.values():
        out.extend(spec.columns or [spec.name])
    return out


# --------------------------------------------------------------------------------------------------
# Built-in attributes
# --------------------------------------------------------------------------------------------------


def _grey(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H, W): the mean over channels."""
    return x.mean(dim=1)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


_RGB = ("red", "green", "blue")


@register_attribute(
    "brightness",
    applies_to="image",
    description="brightness (mean intensity over all channels and pixels)",
)
def _brightness(x: torch.Tensor) -> np.ndarray:
    return _np(x.mean(dim=(1, 2, 3)))


@register_attribute(
    "channel_means",
    applies_to="multichannel",
    description="per-channel means (red/green/blue for 3-channel images, channel_0.. otherwise)",
    columns={
        **{c: f"{c} (mean of the {c} channel)" for c in _RGB},
        **{f"channel_{k}": f"channel {k} (mean of channel {k})" for k in range(4)},
    },
)
def _channel_means(x: torch.Tensor) -> dict[str, np.ndarray]:
    means = _np(x.mean(dim=(2, 3)))
    names = _RGB if x.shape[1] == 3 else [f"channel_{k}" for k in range(x.shape[1])]
    return {n: means[:, k] for k, n in enumerate(names)}


@register_attribute(
    "color_cast",
    applies_to="rgb",
    description="colour cast of RGB images (how much one channel dominates the others)",
    columns={
        **{
            f"{c}ness": f"{c}ness (mean of the {c} channel minus the mean of the other two channels)"
            for c in _RGB
        },
        "saturation": (
            "saturation (mean over pixels of the largest minus the smallest channel value; 0 for grey images)"
        ),
    },
)
def _color_cast(x: torch.Tensor) -> dict[str, np.ndarray]:
    m = x.mean(dim=(2, 3))
    out = {}
    for k, c in enumerate(_RGB):
        others = [j for j in range(3) if j != k]
        out[f"{c}ness"] = _np(m[:, k] - m[:, others].mean(dim=1))
    out["saturation"] = _np((x.amax(dim=1) - x.amin(dim=1)).mean(dim=(1, 2)))
    return out


@register_attribute(
    "contrast",
    applies_to="image",
    description="contrast (standard deviation over pixels of the grey-level image, the mean of the channels)",
)
def _contrast(x: torch.Tensor) -> np.ndarray:
    return _np(_grey(x).flatten(1).std(dim=1, correction=0))


_LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))


def _sharpness_t(x: torch.Tensor) -> torch.Tensor:
    kernel = torch.tensor(_LAPLACIAN, dtype=x.dtype, device=x.device).view(1, 1, 3, 3)
    # 'valid' convolution: the border pixels have no full neighbourhood, so they do not count.
    lap = F.conv2d(_grey(x).unsqueeze(1), kernel)
    return lap.abs().mean(dim=(1, 2, 3))


@register_attribute(
    "sharpness",
    applies_to="image",
    description=(
        "sharpness (mean absolute Laplacian of the grey-level image; lower = blurrier; it also grows "
        "with contrast)"
    ),
)
def _sharpness(x: torch.Tensor) -> np.ndarray:
    return _np(_sharpness_t(x))


def _center_of_mass_t(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    grey = _grey(x)
    _, h, w = grey.shape
    # Mass is intensity above the image's darkest pixel, so normalized (negative) images work too.
    mass = grey - grey.amin(dim=(1, 2), keepdim=True)
    total = mass.sum(dim=(1, 2))
    xs = torch.linspace(0.0, 1.0, w, dtype=x.dtype, device=x.device)
    ys = torch.linspace(0.0, 1.0, h, dtype=x.dtype, device=x.device)
    flat = total <= 0
    safe = torch.where(flat, torch.ones_like(total), total)
    cx = (mass.sum(dim=1) * xs).sum(dim=1) / safe
    cy = (mass.sum(dim=2) * ys).sum(dim=1) / safe
    half = torch.full_like(cx, 0.5)  # a flat image has its mass everywhere: the centre
    return torch.where(flat, half, cx), torch.where(flat, half, cy)


@register_attribute(
    "center_of_mass",
    applies_to="image",
    description="centre of mass of the intensity (measured above the image's darkest pixel)",
    columns={
        "center_of_mass_x": (
            "horizontal centre of mass (intensity-weighted mean column, 0 = left edge, 1 = right edge; "
            "intensity measured above the image's darkest pixel)"
        ),
        "center_of_mass_y": (
            "vertical centre of mass (intensity-weighted mean row, 0 = top edge, 1 = bottom edge; "
            "intensity measured above the image's darkest pixel)"
        ),
    },
)
def _center_of_mass(x: torch.Tensor) -> dict[str, np.ndarray]:
    cx, cy = _center_of_mass_t(x)
    return {"center_of_mass_x": _np(cx), "center_of_mass_y": _np(cy)}


@register_attribute(
    "border",
    applies_to="image",
    description="border level (mean grey level of the outermost ring of pixels: the background level)",
)
def _border(x: torch.Tensor) -> np.ndarray:
    g = _grey(x)
    ring = torch.cat([g[:, 0, :], g[:, -1, :], g[:, 1:-1, 0], g[:, 1:-1, -1]], dim=1)
    return _np(ring.mean(dim=1))


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


@register_attribute("mean", applies_to="non_image", description="mean (mean of all values of the item)")
def _mean(x: torch.Tensor) -> np.ndarray:
    return _np(_flat(x).mean(dim=1))


@register_attribute(
    "std", applies_to="non_image", description="spread (standard deviation of all values of the item)"
)
def _std(x: torch.Tensor) -> np.ndarray:
    return _np(_flat(x).std(dim=1, correction=0))


@register_attribute("min", applies_to="non_image", description="minimum (smallest value of the item)")
def _min(x: torch.Tensor) -> np.ndarray:
    return _np(_flat(x).amin(dim=1))


@register_attribute("max", applies_to="non_image", description="maximum (largest value of the item)")
def _max(x: torch.Tensor) -> np.ndarray:
    return _np(_flat(x).amax(dim=1))


@register_attribute(
    "l2_norm", applies_to="non_image", description="L2 norm (Euclidean length of the flattened item)"
)
def _l2_norm(x: torch.Tensor) -> np.ndarray:
    return _np(_flat(x).norm(dim=1))


# --------------------------------------------------------------------------------------------------
# Computing attributes
# --------------------------------------------------------------------------------------------------


def _select_attributes(names: Sequence[str] | None, x: torch.Tensor) -> list[tuple[AttributeSpec, set]]:
    """Resolve ``names`` against the registry for batch ``x``: (spec, wanted columns or empty=all)."""
    if names is None:
        return [(spec, set()) for spec in _ATTRIBUTES.values() if _applies(spec, x)]
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
    ordered = [n for n in _ATTRIBUTES if n in wanted]
    return [(_ATTRIBUTES[n], set() if "*" in wanted[n] else wanted[n]) for n in ordered]


def _applies(spec: AttributeSpec, x: torch.Tensor) -> bool:
    try:
        return bool(spec.applies_to(x))
    except Exception as exc:  # a user's predicate: report it as a registration problem
        raise ConfigError(f"attribute {spec.name!r}: its applies_to function raised {exc!r}.") from exc


def _evaluate(spec: AttributeSpec, x: torch.Tensor, start: int, stop: int) -> dict[str, np.ndarray]:
    b = x.shape[0]
    batch = _as_bchw(x) if is_image_like(x) else x
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
        x = _as_float_batch(get_batch(idx), f"the batch of items {start}..{stop - 1}")
        if x.shape[0] != stop - start:
            raise InputError(
                f"get_batch returned {x.shape[0]} items for the {stop - start} indices {start}..{stop - 1}; "
                "it must return exactly one item per index, in order."
            )
        if trailing is None:
            trailing = tuple(x.shape[1:])
            selected = _select_attributes(names, x)
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
        if _ATTRIBUTES[kinds[col]].kind == "categorical":
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
    forced_cat, forced_num = set(categorical), set(numeric)
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
    unknown_descriptions = sorted(set(descriptions or {}) - set(user.columns))
    if unknown_descriptions:
        raise InputError(
            f"descriptions name columns {unknown_descriptions} that are not in the user's attribute "
            f"table, which has {list(user.columns)}."
        )
    existing = set(computed.columns) if computed is not None else set()
    clash = sorted(set(user.columns) & existing)
    if clash:
        raise InputError(
            f"user attribute columns {clash} have the names of computed attributes; rename them "
            "(e.g. 'user_brightness')."
        )
    out = {}
    for col in user.columns:
        s = user[col]
        kind = "categorical" if col in forced_cat else "numeric" if col in forced_num else column_kind(s)
        if kind == "categorical":
            try:
                out[col] = s.astype("category")
            except TypeError as exc:
                raise InputError(
                    f"user attribute column {col!r} holds values that cannot be categories ({exc}); "
                    "use strings or numbers."
                ) from exc
        else:
            try:
                num = pd.to_numeric(s, errors="raise").astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise InputError(
                    f"user attribute column {col!r} is to be numeric but holds {s.dtype} values that are "
                    f"not numbers ({exc}); pass it in categorical=... or convert it."
                ) from exc
            if np.isinf(num.to_numpy()).any():
                raise InputError(f"user attribute column {col!r} holds inf; use NaN for a missing value.")
            out[col] = num
    user_frame = pd.DataFrame(out, index=pd.RangeIndex(len(user)))
    merged = (
        user_frame if computed is None else pd.concat([computed.reset_index(drop=True), user_frame], axis=1)
    )
    merged.attrs["descriptions"] = {str(k): str(v) for k, v in (descriptions or {}).items()}
    return merged


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
    kind = attribute_kind(name, table=table)
    user_text = (table.attrs.get("descriptions", {}) if table is not None else {}).get(name)
    if user_text:
        return f"{user_text}; {kind}"
    if table is None or name not in table.columns or _column_owner(name) is not None:
        spec = get_attribute(name)
        return f"{spec.columns.get(name, spec.description)}; {kind}"
    levels = table[name].nunique(dropna=True)
    extra = f", {levels} levels" if kind == "categorical" else ""
    return f"user-supplied column {name!r}; {kind}{extra}"


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


# --------------------------------------------------------------------------------------------------
# Intervention registry
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InterventionSpec:
    """A registered intervention.

    Attributes
    ----------
    name : str
    fn : callable
        ``fn(x: Tensor, strength: float, rng: np.random.Generator, **params) -> Tensor`` of the same
        shape. Image interventions receive (B, C, H, W).
    attributes : tuple of str
        The attribute columns it moves.
    description : str
    defaults : Mapping[str, Any]
        Parameters with their default values (read from ``fn``'s signature).
    required : tuple of str
        Parameters without a default.
    fit : callable or None
        ``fit(source, reference) -> dict`` estimating the parameters from data.
    applies_to, applies_to_text
        As for attributes.
    """

    name: str
    fn: Callable[..., torch.Tensor]
    attributes: tuple[str, ...]
    description: str
    defaults: Mapping[str, Any]
    required: tuple[str, ...]
    fit: Callable[[torch.Tensor, torch.Tensor], dict] | None
    applies_to: Callable[[torch.Tensor], bool]
    applies_to_text: str

    @property
    def parameters(self) -> list[str]:
        """All parameter names, required first."""
        return [*self.required, *self.defaults]


_INTERVENTIONS: dict[str, InterventionSpec] = {}


def register_intervention(
    name: str,
    *,
    description: str,
    attributes: Sequence[str] = (),
    fit: Callable[[torch.Tensor, torch.Tensor], Mapping[str, Any]] | None = None,
    applies_to: str | Callable[[torch.Tensor], bool] = "image",
    replace: bool = False,
) -> Callable:
    """Register an intervention (decorator).

    Parameters
    ----------
    name : str
        Unique name.
    description : str
        Plain words for messages.
    attributes : sequence of str
        Attribute columns the intervention moves; :func:`intervention_for_attribute` reads them.
    fit : callable, optional
        ``fit(source: Tensor, reference: Tensor) -> dict`` returning parameters that move the
        reference's attributes to the source's level. Image interventions get (B, C, H, W).
    applies_to : {"image", "any", "rgb", "multichannel", "non_image"} or callable, default "image"
    replace : bool, default False
        Replace an existing registration of the same name.

    Returns
    -------
    callable
        A decorator for ``fn(x: Tensor, strength: float, rng: np.random.Generator, **params) ->
        Tensor`` (same shape as ``x``, a NEW tensor: ``x`` must not be modified). Extra parameters
        are declared as keyword parameters of ``fn``; their defaults are the defaults. ``strength``
        scales the effect, 0 being the identity.

    Raises
    ------
    ConfigError
        On a duplicate name, an empty description, or a function that does not take
        ``(x, strength, rng)`` or takes ``**kwargs``.
    """
    _check_name(name, "intervention")
    if name in _INTERVENTIONS and not replace:
        raise ConfigError(
            f"intervention {name!r} is already registered; choose another name, or pass replace=True."
        )
    if not isinstance(description, str) or not description.strip():
        raise ConfigError(f"intervention {name!r}: description must be a non-empty string of plain words.")
    if isinstance(attributes, str):
        attributes = (attributes,)
    moves = tuple(str(a) for a in attributes)
    check, text = _resolve_applies_to(applies_to, f"intervention {name!r}")
    if fit is not None and not callable(fit):
        raise ConfigError(f"intervention {name!r}: fit must be a callable (source, reference) -> dict.")

    def decorator(fn: Callable) -> Callable:
        try:
            params = list(inspect.signature(fn).parameters.values())
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"intervention {name!r}: cannot read the signature of {fn!r}.") from exc
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        if len(params) < 3 or any(p.kind not in positional for p in params[:3]):
            raise ConfigError(
                f"intervention {name!r}: the function must take (x, strength, rng, **params) with x, "
                f"strength and rng positional; got {inspect.signature(fn)}."
            )
        extra = params[3:]
        if any(p.kind in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL) for p in extra):
            raise ConfigError(
                f"intervention {name!r}: declare each parameter by name instead of *args/**kwargs, so a "
                "misspelt parameter is caught."
            )
        defaults = {p.name: p.default for p in extra if p.default is not inspect.Parameter.empty}
        required = tuple(p.name for p in extra if p.default is inspect.Parameter.empty)
        _INTERVENTIONS[name] = InterventionSpec(
            name, fn, moves, description, defaults, required, fit, check, text
        )
        return fn

    return decorator


def unregister_intervention(name: str) -> None:
    """Remove a registered intervention.

    Parameters
    ----------
    name : str
    """
    if name not in _INTERVENTIONS:
        raise ConfigError(f"no intervention {name!r} is registered; registered: {list(_INTERVENTIONS)}.")
    del _INTERVENTIONS[name]


def get_intervention(name: str) -> InterventionSpec:
    """The registration of an intervention.

    Parameters
    ----------
    name : str

    Returns
    -------
    InterventionSpec
    """
    if name not in _INTERVENTIONS:
        raise InputError(
            f"unknown intervention {name!r}; registered interventions: {list(_INTERVENTIONS)}. Register it "
            "with register_intervention or check the spelling."
        )
    return _INTERVENTIONS[name]


def list_interventions() -> list[str]:
    """Registered intervention names, in registration order.

    Returns
    -------
    list of str
    """
    return list(_INTERVENTIONS)


def describe_intervention(name: str) -> str:
    """Plain-words description of an intervention with its parameters and defaults.

    Parameters
    ----------
    name : str

    Returns
    -------
    str
    """
    spec = get_intervention(name)
    params = ", ".join([*spec.required, *(f"{k}={v!r}" for k, v in spec.defaults.items())])
    return f"{spec.description} [parameters: {params or 'none'}]"


def intervention_for_attribute(attr_name: str) -> list[str]:
    """The interventions that move an attribute, preferred first.

    Parameters
    ----------
    attr_name : str
        An attribute column ("redness") or a pair feature ("redness:level"; the part is ignored).

    Returns
    -------
    list of str
        Registered interventions declaring that attribute, in registration order; empty for
        attributes no intervention moves (e.g. a user's 'scanner' column).
    """
    attr, sep, part = str(attr_name).rpartition(":")
    name = attr if sep and part in FEATURE_PARTS else str(attr_name)
    return [spec.name for spec in _INTERVENTIONS.values() if name in spec.attributes]


def _prepare_intervention_input(spec: InterventionSpec, x: Any, what: str) -> torch.Tensor:
    t = _as_float_batch(x, what)
    if t.shape[0] == 0:
        raise InputError(f"{what} is empty; it needs at least one item, shape (B, ...).")
    if not spec.applies_to(t):
        raise InputError(
            f"intervention {spec.name!r} is defined for {spec.applies_to_text}; {what} has shape "
            f"{tuple(t.shape)}."
        )
    return _as_bchw(t) if is_image_like(t) else t


def _make_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    if rng is None:
        return np.random.default_rng(0)
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, int | np.integer) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise InputError(f"rng must be a numpy Generator, an integer seed or None; got {type(rng).__name__}.")


def apply_intervention(
    name: str,
    x: torch.Tensor,
    params: Mapping[str, Any] | None = None,
    *,
    strength: float = 1.0,
    rng: np.random.Generator | int | None = None,
) -> torch.Tensor:
    """Apply a registered intervention to a batch.

    Parameters
    ----------
    name : str
        A registered intervention.
    x : torch.Tensor, shape (B, C, H, W), (B, H, W) or (B, ...) for interventions that apply to any input
        The batch; it is never modified.
    params : Mapping[str, Any], optional
        Parameters (e.g. from :func:`fit_intervention`); missing ones take their defaults, unknown
        ones raise.
    strength : float, default 1.0
        Scales the effect: 0 is the identity, 1 the given amount.
    rng : numpy Generator or int seed, optional
        For random interventions; default ``default_rng(0)`` so results are reproducible.

    Returns
    -------
    torch.Tensor, same shape and device as ``x``
        A new floating tensor (integer inputs come back as float32).
    """
    spec = get_intervention(name)
    merged = dict(spec.defaults)
    unknown = sorted(set(params or {}) - set(spec.parameters))
    if unknown:
        raise InputError(
            f"intervention {name!r} has no parameters {unknown}; its parameters are {spec.parameters}."
        )
    merged.update(params or {})
    missing = [p for p in spec.required if p not in merged]
    if missing:
        raise InputError(f"intervention {name!r} needs parameters {missing}; pass them in params.")
    if isinstance(strength, bool) or not isinstance(strength, int | float) or not math.isfinite(strength):
        raise InputError(f"strength must be a finite number; got {strength!r}.")
    generator = _make_rng(rng)
    original_shape = tuple(x.shape) if hasattr(x, "shape") else None
    batch = _prepare_intervention_input(spec, x, "x")
    version = batch._version
    with torch.no_grad():
        out = spec.fn(batch, float(strength), generator, **merged)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(batch.shape):
        seen = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(
            f"intervention {name!r} returned {seen} for an input of shape {tuple(batch.shape)}; it must "
            "return a tensor of the input's shape."
        )
    if batch._version != version or (out.numel() and out.data_ptr() == batch.data_ptr()):
        raise ConfigError(
            f"intervention {name!r} modified or returned its input; interventions must return a new "
            "tensor (use out = x + ..., not x += ...)."
        )
    return out.reshape(original_shape) if original_shape is not None else out


def fit_intervention(name: str, source: torch.Tensor, reference: torch.Tensor) -> dict[str, Any]:
    """Estimate an intervention's parameters from data.

    Parameters
    ----------
    name : str
        A registered intervention with an estimator.
    source : torch.Tensor, shape (Bs, ...)
        Items that show the artifact, e.g. the items of positive training pairs.
    reference : torch.Tensor, shape (Br, ...)
        Items without it, e.g. validation items; the parameters are expressed in their geometry
        (pixels of the reference images for translation).

    Returns
    -------
    dict
        Parameters for :func:`apply_intervention` (plain floats and tuples) that move the
        reference's attribute to the source's level on average:

        - tint: ``offset`` = per-channel mean of source minus per-channel mean of reference (C,);
        - channel_shift: the same offset minus its mean over channels (brightness removed);
        - brightness: ``delta`` = overall mean of source minus that of reference;
        - contrast: ``ratio`` = mean contrast of source / mean contrast of reference;
        - translation: ``dx``, ``dy`` = centre-of-mass difference in reference pixels;
        - blur: ``sigma`` of the Gaussian that brings the reference's mean sharpness to the
          source's, by bisection on at most 128 reference items (0 when the source is sharper: a
          blur cannot sharpen; at most a quarter of the image size);
        - scale: ``factor`` = mean L2 norm of source / that of reference.

    Raises
    ------
    InputError
        When the intervention has no estimator, the batches are empty, not applicable, or of
        incompatible shapes.
    """
    spec = get_intervention(name)
    if spec.fit is None:
        raise InputError(
            f"intervention {name!r} has no estimator; pass its parameters {spec.parameters} to "
            "apply_intervention directly."
        )
    src = _prepare_intervention_input(spec, source, "source")
    ref = _prepare_intervention_input(spec, reference, "reference")
    if is_image_like(src) != is_image_like(ref) or (is_image_like(src) and src.shape[1] != ref.shape[1]):
        raise InputError(
            f"source items have shape {tuple(source.shape[1:])} and reference items "
            f"{tuple(reference.shape[1:])}; to compare them they need the same number of channels."
        )
    if not is_image_like(src) and src.shape[1:] != ref.shape[1:]:
        raise InputError(
            f"source items have shape {tuple(src.shape[1:])} and reference items {tuple(ref.shape[1:])}; "
            "they must have the same shape."
        )
    with torch.no_grad():
        params = dict(spec.fit(src, ref))
    unknown = sorted(set(params) - set(spec.parameters))
    if unknown:
        raise ConfigError(
            f"intervention {name!r}: its fit returned parameters {unknown} that the function does not "
            f"take ({spec.parameters})."
        )
    return params


# --------------------------------------------------------------------------------------------------
# Built-in interventions
# --------------------------------------------------------------------------------------------------


def _channel_vector(values: Any, x: torch.Tensor, what: str) -> torch.Tensor:
    """A per-channel vector (C,) from C values, one value, or RGB values collapsed to their mean."""
    c = x.shape[1]
    v = torch.as_tensor(np.asarray(values, dtype=np.float64).reshape(-1), dtype=x.dtype, device=x.device)
    if v.numel() == c:
        return v
    if v.numel() == 1:
        return v.expand(c)
    if v.numel() == 3:
        # An RGB cast on a non-RGB image: the only part that still means something is its brightness.
        return v.mean().expand(c)
    raise InputError(
        f"{what} has {v.numel()} values but the images have {c} channels; give one value per channel, "
        "one value, or three RGB values."
    )


def _channel_offset(source: torch.Tensor, reference: torch.Tensor) -> np.ndarray:
    return (source.mean(dim=(0, 2, 3)) - reference.mean(dim=(0, 2, 3))).double().cpu().numpy()


def _fit_tint(source: torch.Tensor, reference: torch.Tensor) -> dict[str, Any]:
    return {"offset": tuple(float(v) for v in _channel_offset(source, reference))}


def _fit_channel_shift(source: torch.Tensor, reference: torch.Tensor) -> dict[str, Any]:
    off = _channel_offset(source, reference)
    return {"offset": tuple(float(v) for v in off - off.mean())}


_COLOR_ATTRIBUTES = (
    "redness",
    "greenness",
    "blueness",
    "saturation",
    *_RGB,
    *(f"channel_{k}" for k in range(4)),
)


@register_intervention(
    "tint",
    attributes=_COLOR_ATTRIBUTES,
    fit=_fit_tint,
    description=(
        "tint (adds a fixed per-channel offset, a colour cast, scaled by strength; with three RGB "
        "values on images that do not have 3 channels it adds their mean, i.e. becomes a brightness "
        "change)"
    ),
)
def _tint(
    x: torch.Tensor, strength: float, rng: np.random.Generator, offset: Sequence[float] = (0.1, 0.0, 0.0)
) -> torch.Tensor:
    off = _channel_vector(offset, x, "tint offset") * strength
    return x + off.view(1, -1, 1, 1)


@register_intervention(
    "channel_shift",
    attributes=_COLOR_ATTRIBUTES,
    fit=_fit_channel_shift,
    description=(
        "channel shift (moves intensity between channels: a per-channel offset with its mean removed, so "
        "the colour changes and the brightness does not; the identity on 1-channel images)"
    ),
)
def _channel_shift(
    x: torch.Tensor, strength: float, rng: np.random.Generator, offset: Sequence[float] = (0.1, 0.0, 0.0)
) -> torch.Tensor:
    off = _channel_vector(offset, x, "channel_shift offset")
    return x + ((off - off.mean()) * strength).view(1, -1, 1, 1)


def _fit_brightness(source: torch.Tensor, reference: torch.Tensor) -> dict[str, Any]:
    return {"delta": float(source.double().mean() - reference.double().mean())}


@register_intervention(
    "brightness",
    attributes=("brightness", "border", "mean", "min", "max"),
    fit=_fit_brightness,
    applies_to="any",
    description="brightness (adds delta x strength to every value)",
)
def _brightness_shift(
    x: torch.Tensor, strength: float, rng: np.random.Generator, delta: float = 0.1
) -> torch.Tensor:
    return x + float(delta) * strength


def _spread(x: torch.Tensor) -> torch.Tensor:
    """Per-item contrast (B,): grey-level std for images, std of all values otherwise."""
    if is_image_like(x):
        return _grey(x).flatten(1).std(dim=1, correction=0)
    return _flat(x).std(dim=1, correction=0)


def _fit_contrast(source: torch.Tensor, reference: torch.Tensor) -> dict[str, Any]:
    ref = float(_spread(reference).double().mean())
    if ref <= 1e-12:
        raise InputError(
            "the reference items have no contrast (every item is constant), so no contrast ratio can be "
            "estimated; choose items with some variation."
        )
    return {"ratio": float(_spread(source).double().mean()) / ref}


@register_intervention(
    "contrast",
    attributes=("contrast", "std"),
    fit=_fit_contrast,
    applies_to="any",
    description=(
        "contrast (scales each value's distance from the item's mean by ratio**strength; per channel for "
        "images, so channel means and brightness stay put)"
    ),
)
def _contrast_scale(
    x: torch.Tensor, strength: float, rng: np.random.Generator, ratio: float = 1.5
) -> torch.Tensor:
    if not float(ratio) > 0:
        raise InputError(f"contrast ratio must be positive; got {ratio!r}.")
    r = float(ratio) ** strength
    if is_image_like(x):
        m = x.mean(dim=(2, 3), keepdim=True)
    else:
        m = _flat(x).mean(dim=1).view(-1, *([1] * (x.ndim - 1)))
    return m + r * (x - m)


def _fit_translation(source: torch.Tensor, reference: torch.Tensor) -> dict[str, Any]:
    sx, sy = _center_of_mass_t(source)
    rx, ry = _center_of_mass_t(reference)
    h, w = reference.shape[2], reference.shape[3]
    return {
        "dx": float((sx.double().mean() - rx.double().mean()) * (w - 1)),
        "dy": float((sy.double().mean() - ry.double().mean()) * (h - 1)),
    }


def _round_half_away(v: float) -> int:
    return int(math.copysign(math.floor(abs(v) + 0.5), v))


_TRANSLATION_FILLS = ("background", "border", "zero")


def _background(x: torch.Tensor) -> torch.Tensor:
    """Per-image, per-channel background level (B, C, 1, 1): the median of the outer ring of pixels."""
    ring = torch.cat([x[:, :, 0, :], x[:, :, -1, :], x[:, :, 1:-1, 0], x[:, :, 1:-1, -1]], dim=2)
    return ring.median(dim=2).values[:, :, None, None]


@register_intervention(
    "translation",
    attributes=("center_of_mass_x", "center_of_mass_y"),
    fit=_fit_translation,
    description=(
        "translation (shifts the image by round(dx x strength) pixels right and round(dy x strength) "
        "down, without wrap-around; uncovered pixels take the image's background level, the median of its "
        "outer ring per channel ('background'), repeat the edge ('border') or are 0 ('zero'))"
    ),
)
def _translation(
    x: torch.Tensor,
    strength: float,
    rng: np.random.Generator,
    dx: float = 2.0,
    dy: float = 0.0,
    fill: str = "background",
) -> torch.Tensor:
    if fill not in _TRANSLATION_FILLS:
        raise InputError(f"translation fill must be one of {list(_TRANSLATION_FILLS)}; got {fill!r}.")
    h, w = x.shape[2], x.shape[3]
    sx, sy = _round_half_away(float(dx) * strength), _round_half_away(float(dy) * strength)
    cols = torch.arange(w, device=x.device) - sx
    rows = torch.arange(h, device=x.device) - sy
    out = x.index_select(3, cols.clamp(0, w - 1)).index_select(2, rows.clamp(0, h - 1))
    if fill != "border":
        inside = ((rows >= 0) & (rows < h)).view(1, 1, h, 1) & ((cols >= 0) & (cols < w)).view(1, 1, 1, w)
        level = torch.zeros((), dtype=x.dtype, device=x.device) if fill == "zero" else _background(x)
        out = torch.where(inside, out, level)
    return out


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    c, h, w = x.shape[1], x.shape[2], x.shape[3]
    radius = max(1, min(math.ceil(3.0 * sigma), max(h, w) - 1))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    out = F.conv2d(
        F.pad(x, (radius, radius, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c
    )
    out = F.conv2d(
        F.pad(out, (0, 0, radius, radius), mode="replicate"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c
    )
    return out


_BLUR_FIT_ITEMS = 128
_BLUR_FIT_STEPS = 16


def _fit_blur(source: torch.Tensor, reference: torch.Tensor) -> dict[str, Any]:
    target = float(_sharpness_t(source).double().mean())
    # A bounded, evenly spaced sample of the reference keeps the search cheap and deterministic. Blur is
    # linear and the same on every channel, so blurring the grey image gives the grey image of the blur.
    step = max(1, reference.shape[0] // _BLUR_FIT_ITEMS)
    grey = _grey(reference[::step][:_BLUR_FIT_ITEMS]).unsqueeze(1)

    def sharpness_after(sigma: float) -> float:
        return float(_sharpness_t(_gaussian_blur(grey, sigma) if sigma > 0 else grey).double().mean())

    if target >= sharpness_after(0.0):
        return {"sigma": 0.0}
    low, high = 0.0, max(grey.shape[2], grey.shape[3]) / 4.0
    if sharpness_after(high) > target:
        return {"sigma": high}
    for _ in range(_BLUR_FIT_STEPS):  # bisection: more blur, less sharpness
        mid = (low + high) / 2
        low, high = (mid, high) if sharpness_after(mid) > target else (low, mid)
    return {"sigma": round((low + high) / 2, 4)}


@register_intervention(
    "blur",
    attributes=("sharpness",),
    fit=_fit_blur,
    description=(
        "blur (Gaussian blur of standard deviation sigma x strength pixels, per channel, edges repeated; "
        "it lowers sharpness and cannot raise it)"
    ),
)
def _blur(x: torch.Tensor, strength: float, rng: np.random.Generator, sigma: float = 1.0) -> torch.Tensor:
    s = float(sigma) * strength
    if s < 0:
        raise InputError(f"blur needs sigma x strength >= 0 (a blur cannot sharpen); got {s!r}.")
    if s == 0:
        return x.clone()
    return _gaussian_blur(x, s)


def _fit_scale(source: torch.Tensor, reference: torch.Tensor) -> dict[str, Any]:
    ref = float(_flat(reference).norm(dim=1).double().mean())
    if ref <= 1e-12:
        raise InputError("the reference items are all zero, so no scale factor can be estimated.")
    return {"factor": float(_flat(source).norm(dim=1).double().mean()) / ref}


@register_intervention(
    "scale",
    attributes=("l2_norm",),
    fit=_fit_scale,
    applies_to="any",
    description="scale (multiplies every value by factor**strength)",
)
def _scale(x: torch.Tensor, strength: float, rng: np.random.Generator, factor: float = 1.5) -> torch.Tensor:
    if not float(factor) > 0:
        raise InputError(f"scale factor must be positive; got {factor!r}.")
    return x * float(factor) ** strength
