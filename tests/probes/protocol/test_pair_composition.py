"""GD304 — pair composition."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gapdiag
from gapdiag import Items, Severity, Split
from gapdiag.data import make_pairs


def test_very_different_positive_ratios_raise_gd304(healthy_pairs):
    sc = healthy_pairs
    items = Items(sc.val.items.inputs, labels=sc.val.items.labels)
    val = Split("val", items, pairs=make_pairs(items, n_pairs=2000, positive_ratio=0.1, seed=1))
    report = gapdiag.audit(
        sc.model, sc.train, val, probes=["pair_composition", "threshold_transfer"], progress=False
    )
    [gd304] = report.by_code("GD304")
    assert gd304.severity == Severity.WARN
    assert "50% of" in gd304.message and "10% of" in gd304.message and "balanced accuracy" in gd304.message
    ev = gd304.evidence
    assert ev["val"]["positive_ratio"]["value"] == pytest.approx(0.1)
    assert 0 <= ev["val"]["negative_difficulty"]["value"] <= 1
    # balanced accuracy is blind to the composition, so the threshold check stays quiet
    assert "GD303" not in report.codes()
    # the chain names the composition step
    step = next(s for s in report.gap["chain"]["steps"] if s["id"] == "composition")
    assert step["candidates"] == ["GD304"]


def _mostly_similar_training(sc):
    """The scenario's training items with 95% similar pairs (as given by the user)."""
    items = Items(sc.train.items.inputs, labels=sc.train.items.labels)
    return Split("train", items, pairs=make_pairs(items, n_pairs=2000, positive_ratio=0.95, seed=3))


def test_a_training_accuracy_that_is_only_the_pair_mix_raises_gd304(healthy_episodes):
    from gapdiag import SiameseModel
    from gapdiag.digits import SiameseCNN

    torch.manual_seed(5)
    untrained = SiameseModel(SiameseCNN().eval())
    report = gapdiag.audit(
        untrained,
        _mostly_similar_training(healthy_episodes),
        healthy_episodes.val,
        probes=["pair_composition"],
        progress=False,
    )
    [gd304] = report.by_code("GD304")
    assert gd304.severity == Severity.WARN
    assert "95% of your 2000 training pairs are similar pairs" in gd304.message
    lift = gd304.evidence["training_lift_over_majority"]
    assert lift["majority_share"] == pytest.approx(0.95) and lift["low"] <= 0
    # the drop to 10-way is measured from a training number at chance: the mix, not the protocol, explains it
    steps = {s["id"]: s for s in report.gap["chain"]["steps"]}
    candidates = steps["protocol"]["candidates"]
    assert candidates.index("GD304") < candidates.index("GD301")
    assert steps["protocol"]["significant"] and steps["protocol"]["owner"] == "GD304"
    assert report.gap["chain"]["most_likely_cause"] == "GD304"


def test_a_model_that_learned_its_imbalanced_training_pairs_stays_clean(healthy_episodes):
    report = gapdiag.audit(
        healthy_episodes.model,
        _mostly_similar_training(healthy_episodes),
        healthy_episodes.val,
        probes=["pair_composition"],
        progress=False,
    )
    assert "GD304" not in report.codes()
    train = report.result("pair_composition").metrics["train"]
    assert train["accuracy"].low > 0.95


def _hard_validation_pairs(sc, *, labels: bool) -> Split:
    """The scenario's validation items in pairs whose dissimilar side is mined: for each anchor, the other-digit
    item nearest in pixels (what a hard-negative miner builds), next to as many random similar pairs."""
    x, y = sc.val.items.inputs, np.asarray(sc.val.items.labels)
    rng = np.random.default_rng(0)
    anchors = rng.choice(len(y), 600, replace=False)
    flat = x.reshape(len(x), -1)
    dist = torch.cdist(flat[anchors], flat).numpy()
    dist[y[anchors][:, None] == y[None, :]] = np.inf
    hard = dist.argmin(axis=1)
    same = np.array([rng.choice(np.flatnonzero((y == y[a]) & (np.arange(len(y)) != a))) for a in anchors])
    items = Items(x, labels=y if labels else None)
    left, right = np.r_[anchors, anchors], np.r_[same, hard]
    label = np.r_[np.ones(anchors.size, int), np.zeros(anchors.size, int)]
    return Split("val", items, pairs=gapdiag.Pairs(items, left, right, label))


@pytest.mark.parametrize("labels", [True, False], ids=["labels", "no-labels"])
def test_mined_validation_negatives_raise_gd304_and_own_the_generalization_step(healthy_pairs, labels):
    sc = healthy_pairs
    report = gapdiag.audit(
        sc.model, sc.train, _hard_validation_pairs(sc, labels=labels), config={"n_boot": 300}, progress=False
    )
    [gd304] = report.by_code("GD304")
    assert gd304.severity == Severity.WARN and gd304.evidence["validation_negatives_harder"]
    val, train = gd304.evidence["val"]["negative_hardness"], gd304.evidence["train"]["negative_hardness"]
    assert val["hardness"]["ci_low"] > 0.65 > train["hardness"]["ci_high"]
    assert val["random_pairs_by_labels"] is labels
    assert val["accuracy_with_random_negatives_gain"]["ci_low"] > 0
    assert "chosen hard" in gd304.message and ("conservative" in gd304.message) is not labels
    step = next(s for s in report.gap["chain"]["steps"] if s["id"] == "generalization")
    assert step["owner"] == "GD304"
    assert report.gap["chain"]["most_likely_cause"] == "GD304"


def test_random_validation_negatives_are_as_hard_as_random_pairs(healthy_episodes):
    """The user's 10-way episodes with random distractors: no hardness, and the swapped-distractor top-1 agrees."""
    sc = healthy_episodes
    report = gapdiag.audit(sc.model, sc.train, sc.val, probes=["pair_composition"], progress=False)
    assert not report.by_code("GD304")
    metrics = report.metrics["pair_composition"]
    assert metrics["val"]["negative_hardness"]["hardness"].high < 0.6
    nway = metrics["val_with_random_distractors"]
    assert nway["gain"].low <= 0 <= nway["gain"].high and nway["n_way"] == 10


@pytest.mark.parametrize("labels", [True, False], ids=["labels", "no-labels"])
def test_easy_training_negatives_raise_gd304(healthy_pairs, labels):
    """A sampler whose dissimilar partner is always the digit five classes away: the model is trained and
    measured on an easier task than validation's random negatives, and GD304 says so (the mirror of mined
    validation negatives); the random pairs it compares with are re-pairings of the dissimilar pairs' items."""
    from gapdiag.digits import SiameseCNN, train_on_pairs

    sc = healthy_pairs
    x, y = sc.train.items.inputs, np.asarray(sc.train.items.labels)
    rng = np.random.default_rng(0)
    left = rng.choice(len(y), 1500)
    similar = rng.random(1500) < 0.5
    by = {c: np.flatnonzero(y == c) for c in range(10)}
    right = np.array([rng.choice(by[y[i] if s else (y[i] + 5) % 10]) for i, s in zip(left, similar)])
    label = similar.astype(np.int64)
    torch.manual_seed(0)
    net = train_on_pairs(SiameseCNN(), x[left], x[right], label, epochs=10, seed=0)
    items = Items(x, labels=y if labels else None)
    train = Split("train", items, pairs=gapdiag.Pairs(items, left, right, label))
    report = gapdiag.audit(
        gapdiag.SiameseModel(net),
        train,
        sc.val,
        probes=["pair_composition"],
        config={"n_boot": 300},
        progress=False,
    )
    [gd304] = report.by_code("GD304")
    assert gd304.severity == Severity.WARN and gd304.evidence["training_negatives_easier"], gd304.message
    assert not gd304.evidence["validation_negatives_harder"]
    train_h = gd304.evidence["train"]["negative_hardness"]
    assert (
        train_h["hardness"]["ci_high"] < 0.35
        and train_h["accuracy_with_random_negatives_gain"]["ci_high"] < 0
    )
    assert "chosen easy" in gd304.message and ("easier than they are" in gd304.message) is not labels
    # the same sampler with random negatives (the scenario as built) raises nothing
    assert not gapdiag.audit(sc.model, sc.train, sc.val, probes=["pair_composition"], progress=False).by_code(
        "GD304"
    )
