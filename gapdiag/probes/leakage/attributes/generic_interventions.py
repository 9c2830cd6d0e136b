"""Interventions for the catalogue-free detectors (registered on import), one per detector.

Each moves the content at a *place* bound by the column GD101 found (see
:class:`~gapdiag.probes.leakage.attributes.generic.GenericColumn`), and is fitted to one source item
(``per_side``): GD102 takes the left item of a training pair as the source of the left item of a
validation pair, the right of the right, so "both images of a positive pair carry the stamp" is
transplanted as it is, and a control from a negative training pair transplants "they do not".

- ``region_transplant``: move the level of the source item's values in image boxes (or position ranges of
  1-D signals) onto the target: its mean difference from the mean reference item there, added as an overlay
  such as a stamp, a watermark or a click acts (or point by point, or pasted);
- ``band_transplant``: give a signal the source item's power in a frequency band (phases kept);
- ``sequence_length``: cut or extend a token sequence to the source item's length (extension draws
  tokens from the sequence itself, so the content stays the item's own);
- ``token_count``: give a token sequence the source item's number of occurrences of one token (a marker);
- ``feature_value``: set features of a feature row to the source item's values.

``strength`` blends from the original (0) to the full transplant (1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ....errors import InputError
from ....modality import input_kind, is_image_like
from .interventions import register_intervention

__all__: list[str] = []

Box = tuple[int, int, int, int]


def _one_item(source: torch.Tensor, what: str) -> None:
    if source.shape[0] != 1:
        raise InputError(f"{what} is fitted to one source item at a time; got {source.shape[0]} items.")


def _as_patch(patch: Any, x: torch.Tensor, what: str) -> torch.Tensor:
    p = torch.as_tensor(patch, dtype=x.dtype, device=x.device)
    if tuple(p.shape) != tuple(x.shape[1:]):
        raise InputError(
            f"{what}: the source item has shape {tuple(p.shape)} but the items have {tuple(x.shape[1:])}; "
            "a place can only be transplanted between items of one shape."
        )
    return p


def _as_mask(mask: Any, shape: tuple[int, ...], device, what: str) -> torch.Tensor:
    m = torch.as_tensor(np.asarray(mask), device=device).bool()
    if tuple(m.shape) != shape:
        raise InputError(f"{what}: the mask has shape {tuple(m.shape)}; the items need {shape}.")
    return m


def _blend(x: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, strength: float) -> torch.Tensor:
    """x moved by ``strength`` towards ``target`` where ``mask`` holds (everything broadcast to x)."""
    return x + strength * mask.to(x.dtype) * (target - x)


_MODES = ("mean", "add", "paste")


def _fit_place(source: torch.Tensor, reference: torch.Tensor, what: str) -> dict[str, Any]:
    _one_item(source, what)
    if tuple(source.shape[1:]) != tuple(reference.shape[1:]):
        raise InputError(
            f"{what}: source items {tuple(source.shape[1:])} and reference items {tuple(reference.shape[1:])} "
            "differ in shape; a place is a set of pixels (positions) of one item size."
        )
    return {"patch": source[0].clone(), "base": reference.mean(dim=0)}


def _transplant_place(x, strength, where, patch, base, value, mode, what) -> torch.Tensor:
    """x (B, C, ...) with the source's content moved in where ``where`` (the trailing shape, broadcast) holds.

    'mean': the mean over the place of the source's difference from the reference mean, per channel, added
    to every pixel of the place (the place's level transplanted: a stamp's or a watermark's brightness,
    without the source item's own content there); 'add': that difference pixel by pixel; 'paste': the
    source's pixels replace x's. Without a source, the constant ``value`` is pasted.
    """
    if mode not in _MODES:
        raise InputError(f"{what} mode must be one of {list(_MODES)}; got {mode!r}.")
    if patch is None:
        return _blend(x, torch.full_like(x, float(value)), where, strength)
    p = _as_patch(patch, x, what).unsqueeze(0)
    if mode == "paste":
        return _blend(x, p, where, strength)
    delta = p - (0.0 if base is None else _as_patch(base, x, what).unsqueeze(0))
    w = where.to(x.dtype).expand_as(delta)
    if mode == "mean":  # per channel (axis 1), over the place's pixels
        dims = tuple(range(2, delta.ndim))
        level = (delta * w).sum(dim=dims, keepdim=True) / w.sum(dim=dims, keepdim=True).clamp(min=1)
        delta = level.expand_as(delta)
    return x + strength * w * delta


def _fit_region(source: torch.Tensor, reference: torch.Tensor) -> dict[str, Any]:
    return _fit_place(source, reference, "region_transplant")


@register_intervention(
    "region_transplant",
    fit=_fit_region,
    applies_to=lambda x: is_image_like(x) or (x.ndim in (2, 3) and input_kind(x) == "signal"),
    per_side=True,
    description=(
        "region transplant (at the boxes, end-exclusive: (row0, row1, col0, col1) pixels of images, (start, stop) "
        "positions of 1-D signals, within the optional boolean mask of the same (H, W) or (L,) shape: adds the "
        "source item's mean difference from the mean reference item there, per channel ('mean', the level of an "
        "overlay such as a stamp, a watermark or a click, without the source's own content), that difference "
        "point by point ('add'), or pastes the source's values ('paste'); without a source, pastes the constant "
        "value)"
    ),
)
def _region_transplant(
    x: torch.Tensor,
    strength: float,
    rng: np.random.Generator,
    boxes: Sequence[tuple[int, ...]] = ((0, 2, 0, 2),),
    patch: Any = None,
    base: Any = None,
    value: float = 1.0,
    mask: Any = None,
    mode: str = "mean",
) -> torch.Tensor:
    shape = tuple(x.shape[2:]) if is_image_like(x) else tuple(x.shape[-1:])
    where = torch.zeros(shape, dtype=torch.bool, device=x.device)
    for box in boxes:
        where[tuple(slice(max(0, int(a)), min(n, int(b))) for a, b, n in zip(box[::2], box[1::2], shape))] = (
            True
        )
    if mask is not None:
        where &= _as_mask(mask, shape, x.device, "region_transplant")
    return _transplant_place(x, strength, where, patch, base, value, mode, "region_transplant")


def _band_power(x: torch.Tensor, band: tuple[int, int]) -> torch.Tensor:
    spec = torch.fft.rfft(x, dim=-1)
    return spec[..., int(band[0]) : int(band[1])].abs()


def _fit_band(
    source: torch.Tensor, reference: torch.Tensor, band: tuple[int, int] = (1, 2)
) -> dict[str, Any]:
    _one_item(source, "band_transplant")
    return {"magnitude": _band_power(source[0].to(torch.float64), band).to(source.dtype)}


@register_intervention(
    "band_transplant",
    fit=_fit_band,
    applies_to="signal",
    per_side=True,
    description=(
        "band transplant (the magnitudes of the real-FFT bins [f0, f1) of a 1-D signal set to the source "
        "item's, phases kept; without a source, multiplied by gain)"
    ),
)
def _band_transplant(
    x: torch.Tensor,
    strength: float,
    rng: np.random.Generator,
    band: tuple[int, int] = (1, 2),
    magnitude: Any = None,
    gain: float = 2.0,
) -> torch.Tensor:
    n = x.shape[-1]
    spec = torch.fft.rfft(x.to(torch.float64), dim=-1)
    f0, f1 = max(0, int(band[0])), min(spec.shape[-1], int(band[1]))
    part = spec[..., f0:f1]
    mag = part.abs()
    if magnitude is None:
        new = mag * float(gain)
    else:
        new = (
            torch.as_tensor(magnitude, dtype=torch.float64).reshape(mag.shape[1:]).unsqueeze(0).expand_as(mag)
        )
    new = mag + strength * (new - mag)
    phase = torch.where(mag > 0, part / mag.clamp(min=1e-300), torch.ones_like(part))
    spec = spec.clone()
    spec[..., f0:f1] = phase * new
    return torch.fft.irfft(spec, n=n, dim=-1).to(x.dtype)


def _fit_length(source: torch.Tensor, reference: torch.Tensor, pad_id: int = 0) -> dict[str, Any]:
    _one_item(source, "sequence_length")
    return {"length": int((source[0] != float(pad_id)).sum())}


@register_intervention(
    "sequence_length",
    fit=_fit_length,
    applies_to="sequence",
    per_side=True,
    description=(
        "sequence length (each token sequence cut to its first tokens or extended with tokens drawn from "
        "itself, to the given number of tokens other than pad_id; right padding, or left padding where the "
        "sequence starts with the pad id)"
    ),
)
def _sequence_length(
    x: torch.Tensor, strength: float, rng: np.random.Generator, length: int = 4, pad_id: int = 0
) -> torch.Tensor:
    out = torch.full_like(x, float(pad_id))
    n = x.shape[1]
    for i in range(x.shape[0]):
        row = x[i]
        tokens = row[row != float(pad_id)]
        cur = int(tokens.numel())
        want = int(np.clip(round(cur + strength * (int(length) - cur)), 0, n))
        if want == cur:  # nothing to change: the row as it was, pads where they were
            out[i] = row
            continue
        if want < cur:
            new = tokens[:want]
        else:
            extra = torch.as_tensor(rng.integers(0, max(cur, 1), want - cur)) if cur else None
            new = torch.cat([tokens, tokens[extra]]) if extra is not None else tokens
        left_padded = cur < n and bool(row[0] == float(pad_id)) and bool(row[-1] != float(pad_id))
        if left_padded:
            out[i, n - new.numel() :] = new
        else:
            out[i, : new.numel()] = new
    return out


def _fit_token(
    source: torch.Tensor, reference: torch.Tensor, token: int = 1, pad_id: int = 0
) -> dict[str, Any]:
    _one_item(source, "token_count")
    return {"count": int((source[0] == float(token)).sum())}


@register_intervention(
    "token_count",
    fit=_fit_token,
    applies_to="sequence",
    per_side=True,
    description=(
        "token count (each token sequence given the number of occurrences of one token: added at random "
        "positions that hold neither it nor pad_id, or removed by putting tokens drawn from the sequence itself "
        "in its place)"
    ),
)
def _token_count(
    x: torch.Tensor,
    strength: float,
    rng: np.random.Generator,
    count: int = 1,
    token: int = 1,
    pad_id: int = 0,
) -> torch.Tensor:
    out = x.clone()
    for i in range(x.shape[0]):
        row = out[i]
        holds = np.flatnonzero((row == float(token)).numpy())
        others = np.flatnonzero(((row != float(token)) & (row != float(pad_id))).numpy())
        want = int(round(holds.size + strength * (int(count) - holds.size)))
        if want > holds.size and others.size:
            put = rng.choice(others, min(want - holds.size, others.size), replace=False)
            row[torch.as_tensor(put)] = float(token)
        elif want < holds.size:
            drop = rng.choice(holds, holds.size - want, replace=False)
            fill = row[torch.as_tensor(rng.choice(others, drop.size))] if others.size else float(pad_id)
            row[torch.as_tensor(drop)] = fill
    return out


def _fit_feature(
    source: torch.Tensor, reference: torch.Tensor, indices: Sequence[int] = (0,)
) -> dict[str, Any]:
    _one_item(source, "feature_value")
    return {"values": tuple(float(source[0, int(j)]) for j in indices)}


@register_intervention(
    "feature_value",
    fit=_fit_feature,
    applies_to="tabular",
    per_side=True,
    description="feature value (the features at the given column indices of a feature row set to the given values)",
)
def _feature_value(
    x: torch.Tensor,
    strength: float,
    rng: np.random.Generator,
    indices: Sequence[int] = (0,),
    values: Sequence[float] = (1.0,),
) -> torch.Tensor:
    if len(values) != len(indices):
        raise InputError(f"feature_value needs one value per index; got {len(values)} for {len(indices)}.")
    out = x.clone()
    for j, v in zip(indices, values, strict=True):
        # exactly the value at full strength: a category code must stay equal to itself
        out[:, int(j)] = float(v) if strength == 1 else x[:, int(j)] + strength * (float(v) - x[:, int(j)])
    return out
