"""Small image thumbnails as figure data (the ``images`` kind of FigureSpec), shared by the probes that show
example pairs. Data preparation only: drawing happens in ``gapdiag.report.figures``.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["thumbnails"]


def thumbnails(batch: torch.Tensor, *, lo: float | None = None, hi: float | None = None, max_side: int = 48):
    """Images (B, C, H, W) or (B, H, W) -> list of (H, W) or (H, W, 3) arrays in [0, 1] for ``images`` figures.

    Values already in [0, 1] are kept; other ranges are mapped linearly with ``lo``/``hi`` (default: the
    batch's own range, so a tint stays visible relative to the other images). Larger images are
    average-pooled to at most ``max_side`` pixels a side. Returns None for inputs that are not image-like.
    """
    import torch.nn.functional as F

    from .modality import is_image_like

    x = batch.detach().to(torch.float32).cpu()
    if not is_image_like(x):
        return None
    if x.ndim == 3:
        x = x.unsqueeze(1)
    h, w = x.shape[2], x.shape[3]
    if max(h, w) > max_side:
        scale = max_side / max(h, w)
        x = F.adaptive_avg_pool2d(x, (max(1, int(h * scale)), max(1, int(w * scale))))
    lo = float(x.min()) if lo is None else lo
    hi = float(x.max()) if hi is None else hi
    if not (lo >= 0.0 and hi <= 1.0):
        x = (x - lo) / max(hi - lo, 1e-12)
    x = x.clamp(0, 1)
    out = []
    for img in x:
        if img.shape[0] == 3:
            out.append(np.round(img.permute(1, 2, 0).numpy(), 3))
        else:
            out.append(np.round(img.mean(dim=0).numpy(), 3))
    return out
