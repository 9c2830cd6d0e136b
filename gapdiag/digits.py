"""Bundled real data and a small Siamese network: scikit-learn's handwritten digits.

Used by ``gapdiag demo``, the examples and the tests to train real models in seconds, with faults planted
the way they happen in practice. Nothing is downloaded: the digits ship with scikit-learn (1797 images of
8x8 pixels, 10 classes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

if TYPE_CHECKING:
    from .data import Split
    from .model import SiameseModel

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
        width: int = 16,
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


@dataclass
class Scenario:
    """A trained model and its splits, as a user would hand them to ``audit``."""

    model: SiameseModel
    train: Split
    val: Split
    net: nn.Module
    train_x1: torch.Tensor
    train_x2: torch.Tensor
    train_label: np.ndarray


def build_scenario(
    *,
    channels: int = 1,
    size: int = 8,
    partition: str = "items",
    val_classes: tuple[int, ...] = (7, 8, 9),
    n_train_items: int | None = None,
    n_pairs: int = 2000,
    train_positive_ratio: float = 0.5,
    epochs: int = 6,
    lr: float = 2e-3,
    weight_decay: float = 0.0,
    positive_pair_transform=None,
    val_transform=None,
    val_protocol: str = "episodes",
    val_positive_ratio: float = 0.5,
    n_val_pairs: int = 2000,
    n_way: int = 10,
    n_val_episodes: int = 600,
    model_kwargs: dict | None = None,
    kind: str | None = None,
    seed: int = 0,
) -> Scenario:
    """Train a :class:`SiameseCNN` on digit pairs with an optional planted fault, return it with its splits.

    Parameters
    ----------
    partition : "items" (closed set, all digits in both splits) or "classes" (``val_classes`` unseen).
    positive_pair_transform : callable ``(x1 (B, C, H, W), x2 (B, C, H, W), rng) -> (x1, x2)``, optional
        Applied to both images of every positive training pair before training: the leakage artifact.
    val_transform : callable ``(images (N, C, H, W)) -> images``, optional
        Applied to validation inputs only (e.g. a loader that skips normalisation).
    val_protocol : "episodes" (n-way identification) or "pairs" (verification, like training).
    kind : how the user's evaluation reads ``distance``; default "similarity" for a cosine model, else "distance".

    The training split is built with ``Pairs.from_loader`` over the exact pairs trained on (artifact
    included), as a user would; items carry identity labels (``(x1, x2, label, y1, y2)`` batches).
    """
    from .data import Items, Pairs, Split, make_pairs
    from .model import SiameseModel

    images, labels = load_digits_images(channels=channels, size=size)
    part = (
        split_by_items(labels, seed=seed) if partition == "items" else split_by_classes(labels, val_classes)
    )
    tr = np.sort(
        part.train
        if n_train_items is None
        else np.random.default_rng(seed).permutation(part.train)[:n_train_items]
    )
    rng = np.random.default_rng(seed)
    pool = Items(images[tr], labels=labels[tr])
    p = make_pairs(pool, n_pairs=n_pairs, positive_ratio=train_positive_ratio, seed=seed)
    x1, x2 = images[tr][p.left].clone(), images[tr][p.right].clone()
    if positive_pair_transform is not None:
        pos = p.label == 1
        x1[pos], x2[pos] = positive_pair_transform(x1[pos], x2[pos], rng)
    model_kwargs = dict(model_kwargs or {})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = SiameseCNN(in_channels=channels, **model_kwargs)
    train_on_pairs(net, x1, x2, p.label, epochs=epochs, lr=lr, weight_decay=weight_decay, seed=seed)
    train_pairs = Pairs.from_loader(_pair_batches(x1, x2, p.label, labels[tr][p.left], labels[tr][p.right]))
    val_images = images[part.val]
    if val_transform is not None:
        val_images = val_transform(val_images.clone())
    sizes = {"n_way": n_way, "n_val_episodes": n_val_episodes, "n_val_pairs": n_val_pairs}
    val = _val_split(
        val_images, labels[part.val], val_protocol, **sizes, val_positive_ratio=val_positive_ratio, seed=seed
    )
    kind = kind or ("similarity" if model_kwargs.get("similarity") else "distance")
    train = Split("train", train_pairs.items, pairs=train_pairs)
    return Scenario(SiameseModel(net, kind=kind), train, val, net, x1, x2, p.label)


def _pair_batches(x1: torch.Tensor, x2: torch.Tensor, label: np.ndarray, y1: np.ndarray, y2: np.ndarray):
    """The training pairs as a user's loader yields them: ``(x1, x2, label, y1, y2)`` batches of 256."""
    for s in range(0, len(label), 256):
        sl = slice(s, s + 256)
        yield x1[sl], x2[sl], torch.from_numpy(label[sl]), torch.from_numpy(y1[sl]), torch.from_numpy(y2[sl])


def _val_split(
    images: torch.Tensor,
    labels: np.ndarray,
    protocol: str,
    *,
    n_way: int,
    n_val_episodes: int,
    n_val_pairs: int,
    val_positive_ratio: float,
    seed: int,
) -> Split:
    """The validation split, with episodes (n-way) or pairs drawn from its own seeded stream."""
    from .data import Items, Split, make_episodes, make_pairs

    items = Items(images, labels=labels)
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[1])
    if protocol == "episodes":
        n_way = min(n_way, np.unique(labels).size)
        return Split(
            "val", items, episodes=make_episodes(items, n_way=n_way, n_episodes=n_val_episodes, seed=rng)
        )
    pairs = make_pairs(items, n_pairs=n_val_pairs, positive_ratio=val_positive_ratio, seed=rng)
    return Split("val", items, pairs=pairs)
