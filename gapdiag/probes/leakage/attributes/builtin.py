"""Built-in attributes of image-like and other inputs (registered on import)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .registry import register_attribute

# --------------------------------------------------------------------------------------------------
# Built-in attributes
# --------------------------------------------------------------------------------------------------


def grey_level(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H, W): the mean over channels."""
    return x.mean(dim=1)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


RGB = ("red", "green", "blue")


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
        **{c: f"{c} (mean of the {c} channel)" for c in RGB},
        **{f"channel_{k}": f"channel {k} (mean of channel {k})" for k in range(4)},
    },
)
def _channel_means(x: torch.Tensor) -> dict[str, np.ndarray]:
    means = _np(x.mean(dim=(2, 3)))
    names = RGB if x.shape[1] == 3 else [f"channel_{k}" for k in range(x.shape[1])]
    return {n: means[:, k] for k, n in enumerate(names)}


@register_attribute(
    "color_cast",
    applies_to="rgb",
    description="colour cast of RGB images (how much one channel dominates the others)",
    columns={
        **{
            f"{c}ness": f"{c}ness (mean of the {c} channel minus the mean of the other two channels)"
            for c in RGB
        },
        "saturation": (
            "saturation (mean over pixels of the largest minus the smallest channel value; 0 for grey images)"
        ),
    },
)
def _color_cast(x: torch.Tensor) -> dict[str, np.ndarray]:
    m = x.mean(dim=(2, 3))
    out = {}
    for k, c in enumerate(RGB):
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
    return _np(grey_level(x).flatten(1).std(dim=1, correction=0))


_LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))


def sharpness_map(x: torch.Tensor) -> torch.Tensor:
    kernel = torch.tensor(_LAPLACIAN, dtype=x.dtype, device=x.device).view(1, 1, 3, 3)
    # 'valid' convolution: the border pixels have no full neighbourhood, so they do not count.
    lap = F.conv2d(grey_level(x).unsqueeze(1), kernel)
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
    return _np(sharpness_map(x))


def center_of_mass_maps(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    grey = grey_level(x)
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
    cx, cy = center_of_mass_maps(x)
    return {"center_of_mass_x": _np(cx), "center_of_mass_y": _np(cy)}


@register_attribute(
    "border",
    applies_to="image",
    description="border level (mean grey level of the outermost ring of pixels: the background level)",
)
def _border(x: torch.Tensor) -> np.ndarray:
    g = grey_level(x)
    ring = torch.cat([g[:, 0, :], g[:, -1, :], g[:, 1:-1, 0], g[:, 1:-1, -1]], dim=1)
    return _np(ring.mean(dim=1))


def flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


@register_attribute("mean", applies_to="values", description="mean (mean of all values of the item)")
def _mean(x: torch.Tensor) -> np.ndarray:
    return _np(flat(x).mean(dim=1))


@register_attribute(
    "std", applies_to="values", description="spread (standard deviation of all values of the item)"
)
def _std(x: torch.Tensor) -> np.ndarray:
    return _np(flat(x).std(dim=1, correction=0))


@register_attribute("min", applies_to="values", description="minimum (smallest value of the item)")
def _min(x: torch.Tensor) -> np.ndarray:
    return _np(flat(x).amin(dim=1))


@register_attribute("max", applies_to="values", description="maximum (largest value of the item)")
def _max(x: torch.Tensor) -> np.ndarray:
    return _np(flat(x).amax(dim=1))


@register_attribute(
    "l2_norm", applies_to="values", description="L2 norm (Euclidean length of the flattened item)"
)
def _l2_norm(x: torch.Tensor) -> np.ndarray:
    return _np(flat(x).norm(dim=1))
