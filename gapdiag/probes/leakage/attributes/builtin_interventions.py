"""Built-in interventions (registered on import): tint, channel shift, brightness, contrast, translation, blur, scale."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ....errors import InputError
from ....modality import is_image_like
from .builtin import RGB, center_of_mass_maps, flat, grey_level, sharpness_map
from .interventions import register_intervention

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
    *RGB,
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
        return grey_level(x).flatten(1).std(dim=1, correction=0)
    return flat(x).std(dim=1, correction=0)


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
        m = flat(x).mean(dim=1).view(-1, *([1] * (x.ndim - 1)))
    return m + r * (x - m)


def _fit_translation(source: torch.Tensor, reference: torch.Tensor) -> dict[str, Any]:
    sx, sy = center_of_mass_maps(source)
    rx, ry = center_of_mass_maps(reference)
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
    target = float(sharpness_map(source).double().mean())
    # A bounded, evenly spaced sample of the reference keeps the search cheap and deterministic. Blur is
    # linear and the same on every channel, so blurring the grey image gives the grey image of the blur.
    step = max(1, reference.shape[0] // _BLUR_FIT_ITEMS)
    grey = grey_level(reference[::step][:_BLUR_FIT_ITEMS]).unsqueeze(1)

    def sharpness_after(sigma: float) -> float:
        return float(sharpness_map(_gaussian_blur(grey, sigma) if sigma > 0 else grey).double().mean())

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
    ref = float(flat(reference).norm(dim=1).double().mean())
    if ref <= 1e-12:
        raise InputError("the reference items are all zero, so no scale factor can be estimated.")
    return {"factor": float(flat(source).norm(dim=1).double().mean()) / ref}


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
