"""A zoo of healthy models of the kinds users train, each audited with every probe, with and without identity
labels, validated by pairs and by episodes: none may raise a WARN or a FAIL (a WARN must say something about the
user's gap, and a healthy model has none to explain beyond how it is measured)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import gapdiag
from gapdiag import Episodes, Items, Pairs, Severity, SiameseModel, Split
from gapdiag.data import make_episodes, make_pairs
from gapdiag.digits import SiameseCNN, load_digits_images, split_by_items, train_on_pairs

CONFIG = {"probes": {"class_gap": {"umap": False}}}


class NormalizedCNN(SiameseCNN):
    """Cosine similarity over 128-d L2-normalized embeddings, with BatchNorm and Dropout."""

    def __init__(self):
        super().__init__(embed_dim=128, batchnorm=True, dropout=0.3, similarity=True)

    def encode(self, x):
        return F.normalize(super().encode(x), dim=1)


class PairHeadNet(nn.Module):
    """A learned head over two embeddings; ``forward(x1, x2)`` returns a sigmoid score, as in public code."""

    def __init__(self):
        super().__init__()
        self.encoder = SiameseCNN(embed_dim=32)
        self.head = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1))

    def encode(self, x):
        return self.encoder.encode(x)

    def score(self, a, b):
        """Embeddings (B, d), (B, d) -> (B,) probability of 'same' (symmetric in a and b)."""
        return torch.sigmoid(self.head(torch.cat([(a - b).abs(), a * b], dim=1))).squeeze(1)

    def forward(self, x1, x2):
        return self.score(self.encode(x1), self.encode(x2))


class TokenBag(nn.Module):
    """A non-image encoder over integer token ids (a bag of (position, value) tokens)."""

    def __init__(self, vocab: int = 64 * 17):
        super().__init__()
        self.bag = nn.EmbeddingBag(vocab, 64, mode="mean")
        self.proj = nn.Linear(64, 32)

    def encode(self, ids):
        return self.proj(torch.relu(self.bag(ids)))

    def distance(self, a, b):
        return torch.linalg.vector_norm(a - b, dim=1)


class RowMLP(nn.Module):
    """Feature rows (B, 64) through an MLP with BatchNorm and Dropout, as tabular metric learning is built."""

    def __init__(self, d: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(d, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 32)
        )

    def encode(self, x):
        return self.net(x)


def _as_tokens(images: torch.Tensor) -> torch.Tensor:
    """8x8 digits (N, 1, 8, 8) in [0, 1] -> token ids (N, 64) int64: position * 17 + grey level (0..16)."""
    levels = (images.reshape(images.shape[0], 64) * 16).round().long()
    return torch.arange(64) * 17 + levels


def _train_pair_head(net, x1, x2, label, epochs=6):
    y = torch.as_tensor(label, dtype=torch.float32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        opt = torch.optim.Adam(net.parameters(), lr=2e-3)
        gen = torch.Generator().manual_seed(0)
        net.train()
        for _ in range(epochs):
            perm = torch.randperm(len(y), generator=gen)
            for s in range(0, len(y), 128):
                idx = perm[s : s + 128]
                loss = F.binary_cross_entropy(net(x1[idx], x2[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    net.eval()


@functools.cache
def _zoo(kind: str):
    images, labels = load_digits_images()
    part = split_by_items(labels, seed=0)
    if kind == "tokens":
        images = _as_tokens(images)
    elif kind == "features":
        images = images.reshape(images.shape[0], -1)
    pool = Items(images[part.train], labels=labels[part.train])
    pairs = make_pairs(pool, n_pairs=1500, seed=0)
    x1, x2 = images[part.train][pairs.left], images[part.train][pairs.right]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = {
            "contrastive": SiameseCNN,
            "cosine_bn": NormalizedCNN,
            "pair_head": PairHeadNet,
            "tokens": TokenBag,
            "features": RowMLP,
        }[kind]()
    if kind == "pair_head":
        _train_pair_head(net, x1, x2, pairs.label)
        model = SiameseModel(net, encode="encode", distance=net.score, kind="similarity")
    else:
        train_on_pairs(net, x1, x2, pairs.label, epochs=5, seed=0)
        model = SiameseModel(net, kind="similarity" if kind == "cosine_bn" else "distance")
    y1, y2 = labels[part.train][pairs.left], labels[part.train][pairs.right]
    return model, (x1, x2, pairs.label, y1, y2), images[part.val], labels[part.val]


def _splits(kind: str, val_protocol: str, with_labels: bool):
    model, (x1, x2, label, y1, y2), val_x, val_y = _zoo(kind)
    batches = [
        (x1[s : s + 256], x2[s : s + 256], torch.from_numpy(label[s : s + 256]))
        + ((torch.from_numpy(y1[s : s + 256]), torch.from_numpy(y2[s : s + 256])) if with_labels else ())
        for s in range(0, len(label), 256)
    ]
    train = Pairs.from_loader(batches)
    labelled = Items(val_x, labels=val_y)
    if val_protocol == "pairs":
        p = make_pairs(labelled, n_pairs=1500, seed=1)
        items = labelled if with_labels else Items(val_x)
        return model, train, Split("val", items, pairs=Pairs(items, p.left, p.right, p.label))
    e = make_episodes(labelled, n_way=10, n_episodes=400, seed=1)
    items = labelled if with_labels else Items(val_x)
    return model, train, Split("val", items, episodes=Episodes(items, e.anchor, e.candidates, e.correct))


@pytest.mark.parametrize("with_labels", [True, False], ids=["labels", "no-labels"])
@pytest.mark.parametrize("val_protocol", ["pairs", "episodes"])
@pytest.mark.parametrize("kind", ["contrastive", "cosine_bn", "pair_head", "tokens", "features"])
def test_a_healthy_model_raises_no_warn_and_no_fail(kind, val_protocol, with_labels):
    model, train, val = _splits(kind, val_protocol, with_labels)
    report = gapdiag.audit(model, train, val, config=CONFIG, progress=False)
    loud = [(f.code, f.message) for f in report.findings if f.severity >= Severity.WARN]
    assert not loud, loud
    assert not report.errored, [f.message for f in report.errored]
    # the chain still adds up, and the symptom is measured on the user's own units
    chain = report.gap["chain"]
    assert sum(s["value"] for s in chain["steps"]) == pytest.approx(chain["total"]["value"], abs=1e-5)
    assert chain["states"][0]["basis"] == "yours" and chain["states"][-1]["basis"] == "yours"
    if not with_labels:  # identity-level probes skip with a reason that says how to pass labels
        skipped = {r.probe: r.reason for r in report.results if r.status == "skipped"}
        assert "class_gap" in skipped and "labels" in skipped["class_gap"]
        assert "GD202" not in report.codes() and "GD104" not in report.codes()


def test_the_zoo_models_are_good_models():
    """The zoo is only meaningful if its models learned the task (pairwise training accuracy well above chance)."""
    for kind in ("contrastive", "cosine_bn", "pair_head", "tokens", "features"):
        model, train, val = _splits(kind, "pairs", True)
        report = gapdiag.audit(model, train, val, probes=["pair_composition"], config=CONFIG, progress=False)
        first = report.gap["chain"]["states"][0]
        assert first["value"] > 0.8, (kind, first["value"])
        assert np.isfinite(first["value"])


@functools.cache
def _triplet_model():
    """A SiameseCNN trained with a triplet margin loss on 1500 (anchor, positive, negative) digit triplets."""
    images, labels = load_digits_images()
    part = split_by_items(labels, seed=0)
    x, y = images[part.train], labels[part.train]
    rng = np.random.default_rng(0)
    anchor = rng.integers(0, len(y), 1500)
    positive = np.array([rng.choice(np.flatnonzero((y == y[a]) & (np.arange(len(y)) != a))) for a in anchor])
    negative = np.array([rng.choice(np.flatnonzero(y != y[a])) for a in anchor])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = SiameseCNN()
        opt = torch.optim.Adam(net.parameters(), lr=2e-3)
        loss_fn = nn.TripletMarginLoss(margin=1.0)
        net.train()
        for _ in range(5):
            for s in range(0, len(anchor), 128):
                a, p, n = (net.encode(x[idx[s : s + 128]]) for idx in (anchor, positive, negative))
                loss = loss_fn(a, p, n)
                opt.zero_grad()
                loss.backward()
                opt.step()
    net.eval()
    triplets = (x[anchor], x[positive], x[negative])
    return net, triplets, images[part.val], labels[part.val]


def test_a_healthy_triplet_model_from_its_triplet_loader_raises_no_warn_and_no_fail():
    """Users of a triplet loss have (anchor, positive, negative) loaders and no pair labels at all."""
    net, (a, p, n), val_x, val_y = _triplet_model()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(a, p, n), batch_size=128)
    labelled = Items(val_x, labels=val_y)
    e = make_episodes(labelled, n_way=10, n_episodes=400, seed=1)
    items = Items(val_x)
    val = Split("val", items, episodes=Episodes(items, e.anchor, e.candidates, e.correct))
    report = gapdiag.audit(net, loader, val, config=CONFIG, progress=False)
    assert report.meta["sizes"]["train_pairs"] == 3000  # each triplet: one similar and one dissimilar pair
    loud = [(f.code, f.message) for f in report.findings if f.severity >= Severity.WARN]
    assert not loud, loud
