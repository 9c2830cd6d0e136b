"""``gapdiag demo``: the embedded default, the problem of the seed write-up reproduced on real data.

A small Siamese CNN is trained on scikit-learn's handwritten digits the way the problem happens in
practice: in the training loop, both images of each *positive* pair get the same random colour and
brightness distortion (negatives stay clean), and validation is 10-way identification (anchor + 10
candidates, ``min()`` of the distance) on held-out clean digits. gapdiag then audits the model.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data import Split
from .digits import build_scenario
from .model import SiameseModel

__all__ = ["DemoScenario", "build_demo", "run_demo", "describe_demo", "colour_distortion"]


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


def build_demo(
    *,
    seed: int = 0,
    n_train_items: int = 150,
    n_pairs: int = 1500,
    epochs: int = 25,
    n_way: int = 10,
    artifact_strength: float = 1.0,
) -> DemoScenario:
    """Train the demo model and build its splits (a few seconds on 2 CPU cores).

    The training set is small (``n_train_items`` digits in ``n_pairs`` fixed pairs, trained for
    ``epochs`` without regularisation), as in many first Siamese projects; the colour/brightness
    distortion is shared by both images of each positive pair. Validation: ``n_way``-way episodes on
    the held-out 40% of the digits, clean.
    """
    t0 = time.perf_counter()

    def distort(x1: torch.Tensor, x2: torch.Tensor, rng: np.random.Generator):
        return colour_distortion(torch.stack([x1, x2]), rng, strength=artifact_strength)

    sc = build_scenario(
        channels=3,
        n_train_items=n_train_items,
        n_pairs=n_pairs,
        epochs=epochs,
        positive_pair_transform=distort,
        val_protocol="episodes",
        n_way=n_way,
        n_val_episodes=1000,
        seed=seed,
    )
    # the symptom, measured the way the user's own code does it: best threshold on the training
    # pairs, and min() of the distance over each validation episode's candidates
    with torch.no_grad():
        d_train = sc.net.distance(sc.net.encode(sc.train_x1), sc.net.encode(sc.train_x2)).numpy()
        emb = sc.net.encode(sc.val.items.get_batch(np.arange(len(sc.val.items)))).numpy()
    order = np.argsort(d_train)
    pos = sc.train_label[order] == 1
    # accuracy when the k closest pairs are called similar, for every k
    correct = np.concatenate([[0], np.cumsum(pos)]) + np.concatenate([np.cumsum((~pos)[::-1])[::-1], [0]])
    train_acc = float(correct.max() / len(pos))
    ep = sc.val.episodes
    dist = np.linalg.norm(emb[ep.anchor][:, None, :] - emb[ep.candidates], axis=2)
    val_acc = float((dist.argmin(axis=1) == ep.correct).mean())
    return DemoScenario(sc.model, sc.train, sc.val, train_acc, val_acc, ep.n_way, time.perf_counter() - t0)


@contextlib.contextmanager
def _one_thread():
    """One torch and BLAS thread: float sums depend on the thread count, and the demo's numbers (which the
    README quotes) must be the same on every machine."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)


def describe_demo() -> str:
    return (
        "gapdiag demo: training a small Siamese CNN on scikit-learn's handwritten digits.\n"
        "  Both images of each positive training pair share a colour/brightness distortion (negatives stay clean);\n"
        "  validation is 10-way identification (min() of the distance) on clean held-out digits."
    )


def run_demo(
    out: str | Path = "gapdiag-report",
    *,
    config=None,
    formats: tuple[str, ...] = ("html", "json"),
    progress: bool = True,
    echo=print,
):
    """Train the demo model, print the symptom, audit it, and write the report files to ``out``.

    Returns ``(report, paths)``.
    """
    from .audit import audit
    from .config import Config

    config = config if isinstance(config, Config) else Config.from_mapping(config)
    echo(describe_demo())
    with _one_thread():
        scenario = build_demo(seed=config.seed)
        echo(f"  trained in {scenario.seconds:.1f} s")
        echo(
            f"Symptom reproduced: training pairwise accuracy {scenario.train_pair_accuracy:.2f} vs validation "
            f"{scenario.n_way}-way accuracy {scenario.val_nway_accuracy:.2f} (chance {1 / scenario.n_way:.2f})."
        )
        report = audit(scenario.model, scenario.train, scenario.val, config=config, progress=progress)
    from .report.formatting import FORMATS

    paths = [report.save(Path(out) / FORMATS[f].filename, format=f) for f in formats]
    echo("")
    echo(report.summary().rstrip())
    echo("")
    echo("Report written to " + ", ".join(str(p) for p in paths))
    return report, paths
