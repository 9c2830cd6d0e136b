"""Image orientation per split, for the preprocessing probe (GD305).

A validation loader that swaps height and width, flips, turns or crops images differently, or reads BGR as
RGB leaves every per-channel statistic in place; what moves is where things are. The mean item of each
split, as small average-pooled pictures, shows it: a slip is the undo that lines the two mean items up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...stats import bootstrap_chunk, bootstrap_multiplicities, estimate_from_draws
from ..base import FigureSpec

__all__ = ["orientations", "orientation", "explained_by_a_slip", "orientation_figure", "undo_explains"]


def orientations(square: bool, channels: int) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Transforms of (..., C, h, w) arrays that would undo a slip in a validation loader, by what the slip did
    to validation items: flips and a half turn; on square images also quarter turns and transpositions
    (height and width swapped, as when an (H, W, C) array is read as (W, H, C)); zooms in and out about the
    centre (a crop of another size); with 3 channels each of these with the channel order reversed too (BGR
    read as RGB)."""
    turned: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "identity": lambda x: x,
        "flipped left-right": lambda x: x[..., ::-1],
        "flipped upside down": lambda x: x[..., ::-1, :],
        "rotated by 180 degrees": lambda x: x[..., ::-1, ::-1],
    }
    if square:
        turned.update(
            {
                "transposed (height and width swapped)": lambda x: x.swapaxes(-1, -2),
                "transposed along the other diagonal": lambda x: x[..., ::-1, ::-1].swapaxes(-1, -2),
                # np.rot90 turns counter-clockwise: it undoes a clockwise turn
                "rotated by 90 degrees clockwise": lambda x: np.rot90(x, 1, axes=(-2, -1)),
                "rotated by 90 degrees counter-clockwise": lambda x: np.rot90(x, 3, axes=(-2, -1)),
            }
        )
    for factor in _ZOOMS:  # a crop of another size, resized to the same shape
        words = (
            "a tighter crop, or a resize without training's centre crop"
            if factor > 1
            else "a looser crop or padding"
        )
        turned[
            f"zoomed {'in' if factor > 1 else 'out'} by a factor of {max(factor, 1 / factor):.2f} ({words})"
        ] = lambda x, factor=factor: _zoom(x, factor)
    if channels != 3:
        return turned
    out = dict(turned)
    for name, f in turned.items():
        key = "in reversed channel order (BGR for RGB)" + ("" if name == "identity" else f" and {name}")
        out[key] = lambda x, f=f: f(x)[..., ::-1, :, :]
    return out


# zoom factors tried: > 1 undoes validation items zoomed in (viewed wider), < 1 zoomed out
_ZOOMS = (1 / 0.7, 1.25, 1.12, 0.9, 0.8, 0.7)


def _zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """Pictures (..., C, h, w) resampled about their centre at ``factor`` x the coordinates: a factor above 1
    shows a wider view (undoes a zoom in), edges repeated where the view leaves the picture."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
    flat = t.reshape(-1, *t.shape[-3:])
    theta = torch.tensor([[factor, 0.0, 0.0], [0.0, factor, 0.0]], dtype=t.dtype).expand(flat.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(flat.shape), align_corners=False)
    out = F.grid_sample(flat, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.reshape(t.shape).numpy()


def orientation(
    train: np.ndarray, val: np.ndarray, rng: np.random.Generator, n_boot: int, level: float
) -> dict[str, Any]:
    """Whether validation pictures (n_v, C, h, w) line up with training pictures (n_t, C, h, w) only once a
    flip, turn, transposition, zoom or channel reversal is undone.

    Per candidate ``U`` (:func:`orientations`), the layout difference ``D(U)``: the mean over cells of the
    squared difference of the two splits' mean pictures after ``U`` is applied to validation, in units of the
    training items' average per-cell variance, less what sampling alone gives (the variance of the two mean
    pictures); ``rms = sqrt(D)``. The best non-identity ``U*`` explains the share ``1 - D(U*) / D(identity)``
    of the difference. Items of both splits are resampled (bootstrap) for the CIs.
    """
    n_t, n_v = train.shape[0], val.shape[0]
    shape = train.shape[1:]
    xt, xv = train.reshape(n_t, -1), val.reshape(n_v, -1)
    scale = max(float(xt.var(axis=0).mean()), 1e-12)
    floor = float((xt.var(axis=0) / n_t + xv.var(axis=0) / n_v).mean()) / scale
    chunk = bootstrap_chunk(max(n_t, n_v))
    mt_b, mv_b = [], []
    # the resampled mean pictures, chunk x F at a time, in float32 (the point values stay float64)
    xt32, xv32 = xt.astype(np.float32), xv.astype(np.float32)
    for s in range(0, n_boot, chunk):
        m = min(chunk, n_boot - s)
        mt_b.append(bootstrap_multiplicities(rng, n_t, m) @ xt32 / n_t)
        mv_b.append(bootstrap_multiplicities(rng, n_v, m) @ xv32 / n_v)
    boot_t = np.concatenate(mt_b).astype(np.float64)
    boot_v = np.concatenate(mv_b).astype(np.float64).reshape(-1, *shape)
    mean_t, mean_v = xt.mean(axis=0), xv.mean(axis=0).reshape(shape)

    def gap(mv: np.ndarray, mt: np.ndarray) -> np.ndarray:
        return ((mv.reshape(*mv.shape[: mv.ndim - 3], -1) - mt) ** 2).mean(axis=-1) / scale - floor

    layouts = orientations(shape[-1] == shape[-2], shape[0])
    point = {name: float(gap(f(mean_v), mean_t)) for name, f in layouts.items()}
    best = min((k for k in point if k != "identity"), key=point.__getitem__, default=None)
    d_id = gap(boot_v, boot_t)
    rms = {k: float(np.sqrt(max(v, 0.0))) for k, v in point.items()}
    out: dict[str, Any] = {
        "rms": rms,
        "identity_rms": estimate_from_draws(
            rms["identity"], np.sqrt(np.maximum(d_id, 0.0)), min(n_t, n_v), level
        ),
        "best": best,
        "n_train": int(n_t),
        "n_val": int(n_v),
    }
    if best is not None and point["identity"] > 0:
        d_best = gap(layouts[best](boot_v), boot_t)
        with np.errstate(divide="ignore", invalid="ignore"):
            explained = 1.0 - d_best / d_id
        draws = np.where(d_id > 0, explained, np.nan)
        out["explained"] = estimate_from_draws(
            1.0 - point[best] / point["identity"], draws, min(n_t, n_v), level
        )
    return out


def undo_explains(difference: Any, explained: Any, min_difference: float, min_explained: float) -> bool:
    """A real difference between the splits (``difference`` Estimate at least ``min_difference``, CI above 0)
    that an undo mostly removes (``explained`` at least ``min_explained``, CI above one half)."""
    return (
        difference.value >= min_difference
        and difference.low > 0
        and explained.value >= min_explained
        and explained.low > 0.5
    )


def explained_by_a_slip(orientation: dict[str, Any] | None, params: dict[str, Any]) -> bool:
    """A layout difference that is real and mostly undone by one flip, turn, zoom or channel reversal."""
    if not orientation or "explained" not in orientation:
        return False
    return undo_explains(
        orientation["identity_rms"],
        orientation["explained"],
        params["min_layout_rms"],
        params["min_explained"],
    )


def orientation_figure(train: np.ndarray, val: np.ndarray, best: str | None, name: str) -> FigureSpec:
    """The mean training and validation pictures side by side, and the validation one with ``best`` undone."""
    undo = orientations(train.shape[-1] == train.shape[-2], train.shape[1])
    means = [train.mean(axis=0), val.mean(axis=0)]
    if best is not None:
        means.append(np.ascontiguousarray(undo[best](means[1])))
    lo, hi = float(means[0].min()), float(means[0].max())

    def shown(m: np.ndarray) -> np.ndarray:  # (C, h, w) -> (h, w) or (h, w, 3) in [0, 1], training's range
        img = np.moveaxis(m, 0, -1) if m.shape[0] == 3 else m.mean(axis=0)
        return np.round((img - lo) / (hi - lo if hi > lo else 1.0), 4)

    caption = "mean training item | mean validation item" + (f" | the latter, {best} undone" if best else "")
    return FigureSpec(
        name,
        "images",
        "Mean items per split (16 x 16 averages)",
        {"rows": [{"caption": caption, "images": [shown(m).tolist() for m in means]}]},
        caption="Same preprocessing: the two mean items look alike, and undoing a flip or a turn does not help.",
    )
