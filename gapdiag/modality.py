"""What kind of input a batch holds (images, token ids, signals, feature rows): one rule for every module."""

from __future__ import annotations

import torch

__all__ = ["is_image_like"]


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
