"""Bundled real data and a small Siamese network: scikit-learn's handwritten digits.

Used by ``gapdiag demo``, the examples and the tests to train real models in seconds, with faults planted
the way they happen in practice. Nothing is downloaded: the digits ship with scikit-learn (1797 images of
8x8 pixels, 10 classes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "load_digits_images",
    "SiameseCNN",
    "train_on_pairs",
    "split_by_items",
    "split_by_classes",
    "DigitsSplit",
]


def load_digits_images(*, channels: int = 1, size: int = 8) -> tuple[torch.Tensor, np.ndarray]:
    """The digits as images in [0, 1].

    Returns
    -------
    images : torch.Tensor (1797, channels, size, size) float32
        Grey values repeated over ``channels`` (so a colour artifact can be planted on 3 channels).
    labels : numpy.ndarray (1797,) int64, the digit 0..9
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0).unsqueeze(1)
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    return x.repeat(1, channels, 1, 1).contiguous(), d.target.astype(np.int64)


@dataclass
class DigitsSplit:
    """Indices of a train/val partition of the digits."""

    train: np.ndarray
    val: np.ndarray


def split_by_items(labels: np.ndarray, *, val_fraction: float = 0.4, seed: int = 0) -> DigitsSplit:
    """Random item-level partition: both splits hold all classes (closed set)."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(labels.size)
    n_val = int(round(val_fraction * labels.size))
    return DigitsSplit(np.sort(perm[n_val:]), np.sort(perm[:n_val]))


def split_by_classes(labels: np.ndarray, val_classes: tuple[int, ...] = (7, 8, 9)) -> DigitsSplit:
    """Class-level partition: validation identities are unseen in training (open set)."""
    is_val = np.isin(labels, val_classes)
    return DigitsSplit(np.flatnonzero(~is_val), np.flatnonzero(is_val))


class SiameseCNN(nn.Module):
    """A small shared encoder with ``encode`` and ``distance``.

    ``distance`` returns the euclidean distance of the embeddings, or their cosine *similarity* when
    ``similarity=True`` (higher = more similar), the case where ``min()`` in the evaluation is a bug.
    """

    def __init__(
        self,
        in_channels: int = 1,
        embed_dim: int = 32,
        width: int = 32,
        *,
        batchnorm: bool = False,
        dropout: float = 0.0,
        similarity: bool = False,
    ):
        super().__init__()
        norm = (lambda c: nn.BatchNorm2d(c)) if batchnorm else (lambda c: nn.Identity())
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            norm(width),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            norm(2 * width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(8 * width, embed_dim)
        self.similarity = similarity

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> embeddings (B, embed_dim)."""
        return self.head(self.dropout(self.features(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Embeddings (B, d), (B, d) -> (B,): euclidean distance, or cosine similarity if ``similarity``."""
        if self.similarity:
            return F.cosine_similarity(a, b, dim=1)
        return torch.linalg.vector_norm(a - b, dim=1)


def _as_distance(model: nn.Module, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if getattr(model, "similarity", False):
        return 1.0 - F.cosine_similarity(a, b, dim=1)
    return torch.linalg.vector_norm(a - b, dim=1)


def train_on_pairs(
    model: nn.Module,
    x1: torch.Tensor,
    x2: torch.Tensor,
    label: np.ndarray | torch.Tensor,
    *,
    epochs: int = 10,
    lr: float = 2e-3,
    weight_decay: float = 0.0,
    batch_size: int = 128,
    margin: float = 1.0,
    seed: int = 0,
) -> nn.Module:
    """Train ``model`` with a contrastive loss on fixed pairs ``x1`` (P, ...), ``x2`` (P, ...), ``label`` (P,).

    The loop of the seed write-up: encode both sides with the shared encoder, distance, contrastive loss.
    Seeded and deterministic on the CPU. Leaves the model in eval mode.
    """
    y = torch.as_tensor(np.asarray(label), dtype=torch.float32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        gen = torch.Generator().manual_seed(seed)
        model.train()
        for _ in range(epochs):
            perm = torch.randperm(len(y), generator=gen)
            for s in range(0, len(y), batch_size):
                idx = perm[s : s + batch_size]
                d = _as_distance(model, model.encode(x1[idx]), model.encode(x2[idx]))
                loss = (y[idx] * d.pow(2) + (1 - y[idx]) * F.relu(margin - d).pow(2)).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
    model.eval()
    return model
