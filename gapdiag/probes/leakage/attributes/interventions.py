"""The intervention registry: counterfactual edits that move an attribute, fitted from data."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ....errors import ConfigError, InputError
from ....modality import is_image_like
from .registry import FEATURE_PARTS, as_bchw, as_float_batch, as_tensor_batch, check_name, resolve_applies_to

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
        ``fit(source, reference, **bound) -> dict`` estimating the parameters from data (``bound``: the
        parameters fixed by the place of the attribute moved, e.g. the pixel boxes of a region).
    applies_to, applies_to_text
        As for attributes.
    per_side : bool
        GD102 fits it to each item of a source pair separately and applies each side's parameters to the
        same side of the target pair (a region moved from the left item onto the left item), instead of one
        fit to both items applied to both.
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
    per_side: bool = False

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
    per_side: bool = False,
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
    applies_to : {"image", "any", "rgb", "multichannel", "non_image", "values", "sequence", "signal", \
"tabular"} or callable, default "image"
        Checked on the batch in the user's dtype (token ids are still integers).
    per_side : bool, default False
        Fit to each item of a source pair and apply to the same side of a target pair (see
        :class:`InterventionSpec`).
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
    check_name(name, "intervention")
    if name in _INTERVENTIONS and not replace:
        raise ConfigError(
            f"intervention {name!r} is already registered; choose another name, or pass replace=True."
        )
    if not isinstance(description, str) or not description.strip():
        raise ConfigError(f"intervention {name!r}: description must be a non-empty string of plain words.")
    if isinstance(attributes, str):
        attributes = (attributes,)
    moves = tuple(str(a) for a in attributes)
    check, text = resolve_applies_to(applies_to, f"intervention {name!r}")
    if fit is not None and not callable(fit):
        raise ConfigError(f"intervention {name!r}: fit must be a callable (source, reference) -> dict.")

    def decorator(fn: Callable) -> Callable:
        defaults, required = _signature_params(name, fn)
        _INTERVENTIONS[name] = InterventionSpec(
            name, fn, moves, description, defaults, required, fit, check, text, bool(per_side)
        )
        return fn

    return decorator


def _signature_params(name: str, fn: Callable) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The extra parameters of an intervention function ``fn(x, strength, rng, **params)``: defaults, required."""
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
    return defaults, required


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
    raw = as_tensor_batch(x, what)
    t = as_float_batch(raw, what)
    if t.shape[0] == 0:
        raise InputError(f"{what} is empty; it needs at least one item, shape (B, ...).")
    if not spec.applies_to(raw):
        raise InputError(
            f"intervention {spec.name!r} is defined for {spec.applies_to_text}; {what} has shape "
            f"{tuple(t.shape)}."
        )
    return as_bchw(t) if is_image_like(t) else t


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


def _accepted(fn: Callable, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments ``fn`` takes (all of them when it has ``**kwargs``)."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return kwargs
    names = {p.name for p in params}
    return {k: v for k, v in kwargs.items() if k in names}


def fit_intervention(
    name: str, source: torch.Tensor, reference: torch.Tensor, *, bound: Mapping[str, Any] | None = None
) -> dict[str, Any]:
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
    bound : Mapping[str, Any], optional
        Parameters fixed by the place of the attribute (the boxes of a region, the index of a feature),
        passed to the estimator as keywords (those its signature takes) and returned with its result.

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
        - scale: ``factor`` = mean L2 norm of source / that of reference;
        - the catalogue-free interventions (region_transplant, band_transplant,
          sequence_length, feature_value) take the source item's content at the bound place.

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
    bound = dict(bound or {})
    unknown_bound = sorted(set(bound) - set(spec.parameters))
    if unknown_bound:
        raise InputError(
            f"intervention {name!r} has no parameters {unknown_bound}; its parameters are {spec.parameters}."
        )
    with torch.no_grad():
        params = {**bound, **dict(spec.fit(src, ref, **_accepted(spec.fit, bound)))}
    unknown = sorted(set(params) - set(spec.parameters))
    if unknown:
        raise ConfigError(
            f"intervention {name!r}: its fit returned parameters {unknown} that the function does not "
            f"take ({spec.parameters})."
        )
    return params
