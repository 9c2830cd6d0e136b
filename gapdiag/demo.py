"""``gapdiag demo``: the embedded default, the problem of the seed write-up reproduced on real data.

A small Siamese CNN is trained on scikit-learn's handwritten digits the way the problem happens in
practice: in the training loop, both images of each *positive* pair get the same random colour and
brightness distortion (negatives stay clean), and validation is 10-way identification (anchor + 10
candidates, ``min()`` of the distance) on held-out clean digits. gapdiag then audits the model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data import Items, Pairs, Split, make_episodes, make_pairs
from .digits import SiameseCNN, load_digits_images, split_by_items, train_on_pairs
from .model import SiameseModel

__all__ = ["DemoScenario", "build_demo", "run_demo", "colour_distortion"]


def colour_distortion(
    x: torch.Tensor, rng: np.random.Generator, *, strength: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """The seed's ``augment_image``, applied identically to both images of a positive pair.

    ``x`` is a pair of batches stacked as (2, B, 3, H, W); each pair b gets one random colour gain and
    brightness offset, the same for its two images. Returns new tensors, inputs untouched.
    """
    b = x.shape[1]
    gain = torch.from_numpy(rng.uniform(1 - strength, 1 + strength, size=(b, 3)).astype(np.float32))
    gain[:, 0] += strength  # a red-leaning cast, as with a warm light
    offset = torch.from_numpy(rng.uniform(0, strength / 2, size=(b, 1)).astype(np.float32))
    out = x * gain[None, :, :, None, None] + offset[None, :, :, None, None]
    return out[0].clamp(0, 1), out[1].clamp(0, 1)


@dataclass
class DemoScenario:
    model: SiameseModel
    train: Split
    val: Split
    train_pair_accuracy: float
    val_nway_accuracy: float
    n_way: int
    seconds: float


def _loader(x1: torch.Tensor, x2: torch.Tensor, label: np.ndarray, batch_size: int = 256):
    for s in range(0, len(label), batch_size):
        yield x1[s : s + batch_size], x2[s : s + batch_size], torch.from_numpy(label[s : s + batch_size])


def build_demo(
    *, seed: int = 0, n_pairs: int = 4000, epochs: int = 12, n_way: int = 10, artifact_strength: float = 0.5
) -> DemoScenario:
    """Train the demo model and build its splits (about 10-30 s on 2 CPU cores)."""
    t0 = time.perf_counter()
    images, labels = load_digits_images(channels=3)
    part = split_by_items(labels, seed=seed)
    rng = np.random.default_rng(seed)

    # training pairs as a Siamese training loop sees them: fixed pairs, artifact on positives
    pool = Items(images[part.train], labels=labels[part.train])
    p = make_pairs(pool, n_pairs=n_pairs, seed=seed)
    x1, x2 = images[part.train][p.left].clone(), images[part.train][p.right].clone()
    pos = p.label == 1
    x1[pos], x2[pos] = colour_distortion(torch.stack([x1[pos], x2[pos]]), rng, strength=artifact_strength)
    torch.manual_seed(seed)
    net = train_on_pairs(SiameseCNN(in_channels=3), x1, x2, p.label, epochs=epochs, seed=seed)

    train_pairs = Pairs.from_loader(_loader(x1, x2, p.label))
    val_items = Items(images[part.val], labels=labels[part.val])
    val_episodes = make_episodes(val_items, n_way=n_way, n_episodes=1000, seed=seed + 1)
    model = SiameseModel(net, kind="distance")

    # the symptom, measured the way the user's own code does it
    with torch.no_grad():
        d_train = net.distance(net.encode(x1), net.encode(x2)).numpy()
        thr_candidates = np.sort(d_train)
        acc = [((d_train <= t) == pos).mean() for t in thr_candidates[:: max(1, len(thr_candidates) // 400)]]
        train_acc = float(max(acc))
        emb = net.encode(images[part.val]).numpy()
    a = emb[val_episodes.anchor][:, None, :]
    c = emb[val_episodes.candidates]
    picked = np.linalg.norm(a - c, axis=2).argmin(axis=1)
    val_acc = float((picked == val_episodes.correct).mean())
    return DemoScenario(
        model,
        Split("train", train_pairs.items, pairs=train_pairs),
        Split("val", val_items, episodes=val_episodes),
        train_acc,
        val_acc,
        n_way,
        time.perf_counter() - t0,
    )


def run_demo(out: str | Path = "gapdiag-report", *, seed: int = 0, progress: bool = True, echo=print):
    """Train the demo model, print the symptom, audit it, write report.html and report.json to ``out``."""
    from .audit import audit

    echo("gapdiag demo: training a small Siamese CNN on scikit-learn's handwritten digits")
    echo(
        "  (both images of each positive training pair share a colour/brightness distortion; validation is 10-way identification on clean held-out digits)"
    )
    scenario = build_demo(seed=seed)
    echo(f"  trained in {scenario.seconds:.1f} s")
    echo(
        f"Symptom reproduced: training pairwise accuracy {scenario.train_pair_accuracy:.2f} "
        f"vs validation {scenario.n_way}-way accuracy {scenario.val_nway_accuracy:.2f} (chance {1 / scenario.n_way:.2f})."
    )
    report = audit(scenario.model, scenario.train, scenario.val, seed=seed, progress=progress)
    out = Path(out)
    html = report.save(out / "report.html")
    js = report.save(out / "report.json")
    echo("")
    echo(report.summary().rstrip())
    echo("")
    echo(f"Report written to {html} and {js}")
    return report
