"""The attribute registry: per-item properties, the input kinds they apply to, and their specs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ....errors import ConfigError, InputError
from ....modality import input_kind, is_image_like

CATEGORICAL_MAX_INTEGER_LEVELS = 20

#: The suffixes :func:`pair_features` appends to an attribute name, and what each one means.
FEATURE_PARTS: Mapping[str, str] = {
    "level": "level = the mean of the two items' values",
    "agreement": (
        "agreement = minus the absolute difference between the two items "
        "(0 = identical, more negative = less alike)"
    ),
    "same": "same = 1 when both items have the same value, else 0",
    "pair": "pair = a value of the pair as a whole, computed from both items (e.g. their token overlap)",
}

_ATTRIBUTE_KINDS = ("numeric", "categorical")
_IMAGE_SHAPE_TEXT = "(B,C,H,W) with C in 1..4 and H,W >= 4, or (B,H,W) with H,W >= 4"


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
    # numbers whose size means something: 1-D signals, feature rows, other arrays (not images, not token ids)
    "values": (
        lambda x: input_kind(x) in ("signal", "tabular", "other"),
        "inputs whose values are quantities (1-D signals, feature rows; not images, not token ids)",
    ),
    "sequence": (lambda x: x.ndim == 2, "token-id sequences (B, L)"),
    "signal": (lambda x: x.ndim in (2, 3) and not is_image_like(x), "1-D signals (B, L) or (B, C, L)"),
    "tabular": (lambda x: x.ndim == 2, "feature rows (B, D)"),
}


def resolve_applies_to(applies_to: str | Callable[[torch.Tensor], bool], what: str):
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


def check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{what} name must be a non-empty string; got {name!r}.")
    if ":" in name:
        raise ConfigError(
            f"{what} name {name!r} contains ':', which separates an attribute from its pair-feature "
            "part (e.g. 'redness:level'); choose a name without ':'."
        )
    return name


def as_bchw(x: torch.Tensor) -> torch.Tensor:
    return x.unsqueeze(1) if x.ndim == 3 else x


def as_tensor_batch(x: Any, what: str) -> torch.Tensor:
    """A user batch as a detached tensor (B, ...) in its own dtype (token ids stay integers)."""
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
    return x


def as_float_batch(x: Any, what: str) -> torch.Tensor:
    """Convert a user batch to a detached floating tensor (B, ...), checking that it is finite."""
    x = as_tensor_batch(x, what)
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


ATTRIBUTE_SPECS: dict[str, AttributeSpec] = {}


def column_owner(column: str) -> str | None:
    if column in ATTRIBUTE_SPECS and not ATTRIBUTE_SPECS[column].columns:
        return column
    for spec in ATTRIBUTE_SPECS.values():
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
    applies_to : {"any", "image", "rgb", "multichannel", "non_image", "values", "sequence", "signal", "tabular"} \
or callable, default "any"
        Which batches the attribute is defined for; a callable gets the first batch (B, ...) in the
        user's dtype (token ids are still integers) and returns a bool. ``values`` means inputs whose
        values are quantities (1-D signals, feature rows; not images, not token ids), see
        :func:`gapdiag.modality.input_kind`. Image attributes receive batches as (B, C, H, W), every
        attribute receives floating point.
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
    check_name(name, "attribute")
    if not isinstance(description, str) or not description.strip():
        raise ConfigError(f"attribute {name!r}: description must be a non-empty string of plain words.")
    if kind not in _ATTRIBUTE_KINDS:
        raise ConfigError(f"attribute {name!r}: kind={kind!r} is not one of {list(_ATTRIBUTE_KINDS)}.")
    check, text = resolve_applies_to(applies_to, f"attribute {name!r}")
    cols = dict(columns or {})
    for col in cols:
        check_name(col, f"attribute {name!r} column")
    for new in [name, *cols]:
        owner = column_owner(new)
        if owner is None and new in ATTRIBUTE_SPECS:
            owner = new
        if owner is not None and not (replace and owner == name):
            raise ConfigError(
                f"attribute {new!r} is already registered (by {owner!r}); choose another name, or pass "
                "replace=True to replace that registration."
            )

    def decorator(fn: Callable) -> Callable:
        if not callable(fn):
            raise ConfigError(f"attribute {name!r}: register_attribute decorates a function; got {fn!r}.")
        ATTRIBUTE_SPECS[name] = AttributeSpec(name, fn, check, text, description, kind, cols)
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
    if name not in ATTRIBUTE_SPECS:
        raise ConfigError(f"no attribute {name!r} is registered; registered: {list(ATTRIBUTE_SPECS)}.")
    del ATTRIBUTE_SPECS[name]


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
    owner = name if name in ATTRIBUTE_SPECS else column_owner(name)
    if owner is None:
        raise InputError(
            f"unknown attribute {name!r}; registered attributes: {list(ATTRIBUTE_SPECS)}, columns: "
            f"{_all_columns()}. Register it with register_attribute or check the spelling."
        )
    return ATTRIBUTE_SPECS[owner]


def list_attributes() -> list[str]:
    """Registered attribute names, in registration order.

    Returns
    -------
    list of str
    """
    return list(ATTRIBUTE_SPECS)


def _all_columns() -> list[str]:
    out: list[str] = []
    for spec in ATTRIBUTE_SPECS.values():
        out.extend(spec.columns or [spec.name])
    return out
