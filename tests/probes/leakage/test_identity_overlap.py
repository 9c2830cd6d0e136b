"""GD104 (probe ``identity_overlap``): closed set vs open set, by label and by embedding centroids."""

from __future__ import annotations

import numpy as np
import pytest

from gapdiag import Severity, audit
from gapdiag.data import Items, Pairs, Split, make_episodes, make_pairs
from gapdiag.probes.leakage.identity_overlap import identity_centroids


def run(model, train, val):
    report = audit(model, train, val, probes=["identity_overlap"], progress=False)
    result = report.result("identity_overlap")
    assert result.status == "ok", result.reason
    found = [f for f in report.findings if f.code == "GD104"]
    assert all(f.severity == Severity.INFO for f in found)
    return found, result


def subset_split(split, keep_classes, name, *, labels=None, n_way=None):
    """Items of ``split`` whose label is in ``keep_classes``, with generated pairs or episodes."""
    keep = np.flatnonzero(np.isin(split.items.labels, keep_classes))
    y = split.items.labels[keep] if labels is None else labels(split.items.labels[keep])
    items = Items(split.items.get_batch(keep), labels=y)
    if name == "train":
        return Split("train", items, pairs=make_pairs(items, n_pairs=800, seed=0))
    return Split(
        "val", items, episodes=make_episodes(items, n_way=n_way or len(keep_classes), n_episodes=300, seed=1)
    )


def test_val_identities_equal_to_train_identities_is_a_closed_set(healthy_episodes):
    s = healthy_episodes
    found, result = run(s.model, s.train, s.val)
    assert len(found) == 1
    f = found[0]
    assert f.evidence["set"] == "closed" and f.message.startswith("Closed set: all 10 validation identities")
    bl = result.metrics["by_label"]
    assert (
        bl["n_seen"] == 10 and bl["item_share"]["value"] == 1.0 and bl["item_share"]["n"] == len(s.val.items)
    )
    # the embedding agrees that the labels name the same digits in both splits
    assert result.metrics["by_embedding"]["same_label_nearest"]["value"] >= 0.9


def test_disjoint_identities_are_an_open_set(healthy_pairs):
    s = healthy_pairs
    train = subset_split(s.train, list(range(7)), "train")
    val = subset_split(s.val, [7, 8, 9], "val")
    found, result = run(s.model, train, val)
    assert found[0].evidence["set"] == "open" and found[0].message.startswith("Open set")
    assert result.metrics["by_label"]["n_seen"] == 0


def test_partial_overlap_reports_the_share_of_items(healthy_pairs):
    s = healthy_pairs
    train = subset_split(s.train, list(range(7)), "train")
    val = subset_split(s.val, [5, 6, 7, 8, 9], "val")
    found, result = run(s.model, train, val)
    bl = result.metrics["by_label"]
    assert found[0].evidence["set"] == "partly closed" and bl["n_seen"] == 2
    ref = np.isin(val.items.labels, [5, 6]).mean()
    assert bl["item_share"]["value"] == pytest.approx(ref)
    assert "2 of 5 validation identities" in found[0].message


def test_unlabelled_training_pairs_skip_identity_overlap(healthy_episodes):
    """Groups inferred from positive pairs are not identities: GD104 needs labels and says how to pass them."""
    s = healthy_episodes
    items = Items(s.train.items.inputs)  # the same pairs, no labels
    train = Split(
        "train", items, pairs=Pairs(items, s.train.pairs.left, s.train.pairs.right, s.train.pairs.label)
    )
    report = audit(s.model, train, s.val, probes=["identity_overlap"], progress=False)
    result = report.result("identity_overlap")
    assert result.status == "skipped" and not report.findings
    assert "identity labels on the training items" in result.reason


@pytest.mark.parametrize("classes,expected", [([7, 8, 9], "open"), (list(range(10)), "closed")])
def test_labels_of_different_kinds_fall_back_to_embedding(healthy_pairs, classes, expected):
    s = healthy_pairs
    train = subset_split(s.train, list(range(7)) if expected == "open" else list(range(10)), "train")
    val = subset_split(s.val, classes, "val", labels=lambda y: np.array([f"digit-{d}" for d in y]), n_way=3)
    found, result = run(s.model, train, val)
    assert result.metrics["method"] == "embedding"
    assert found[0].evidence["set"] == expected, found[0].message
    assert "different kinds" in found[0].message


def test_centroids_match_a_direct_computation():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(50, 4)).astype(np.float32)
    ids = rng.integers(0, 6, 50)
    ids[0] = 9  # a singleton: no centroid with min_items=2
    uniq, cents = identity_centroids(emb, ids, min_items=2)
    assert 9 not in uniq
    for u, c in zip(uniq, cents):
        np.testing.assert_allclose(c, emb[ids == u].mean(axis=0), rtol=1e-5)
