"""GD103 (probe ``duplicates``): validation items that are exact or noisy copies of training items."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gapdiag import Severity, audit
from gapdiag.data import Items, Split, make_episodes, make_pairs
from gapdiag.digits import load_digits_images, split_by_items
from gapdiag.metrics import nway_accuracy
from gapdiag.model import SiameseModel
from gapdiag.probes.leakage.duplicates import input_vectors, near_threshold
from gapdiag.stats import roc_auc

N_NOISY, N_EXACT = 30, 5


class Projection(nn.Module):
    """A fixed random linear encoder, for input shapes no trained test model takes."""

    def __init__(self, d_in: int):
        super().__init__()
        self.register_buffer(
            "w", torch.randn(d_in, 16, generator=torch.Generator().manual_seed(0)) / d_in**0.5
        )

    def encode(self, x):
        return x.flatten(1) @ self.w


def with_copies(train_items, val_images, val_labels, *, noise=0.01, protocol="episodes", seed=0):
    """Validation split where N_NOISY items are noisy copies and N_EXACT exact copies of training items."""
    rng = np.random.default_rng(seed)
    n_val = val_images.shape[0]
    slots = rng.choice(n_val, N_NOISY + N_EXACT, replace=False)
    sources = rng.choice(len(train_items), N_NOISY + N_EXACT, replace=False)
    x = val_images.clone()
    y = np.asarray(val_labels).copy()
    copies = train_items.get_batch(sources)
    g = torch.Generator().manual_seed(seed)
    copies[:N_NOISY] += noise * torch.randn(copies[:N_NOISY].shape, generator=g)
    x[torch.from_numpy(slots)] = copies
    y[slots] = train_items.labels[sources]
    items = Items(x, labels=y)
    if protocol == "episodes":
        return Split(
            "val", items, episodes=make_episodes(items, n_way=10, n_episodes=600, seed=seed + 1)
        ), slots
    return Split("val", items, pairs=make_pairs(items, n_pairs=2000, seed=seed + 1)), slots


def run(model, train, val):
    report = audit(model, train, val, probes=["duplicates"], progress=False)
    result = report.result("duplicates")
    assert result.status == "ok", result.reason
    return [f for f in report.findings if f.code == "GD103"], result


@pytest.mark.parametrize("fixture,protocol", [("healthy_episodes", "episodes"), ("healthy_pairs", "pairs")])
def test_noisy_and_exact_copies_are_counted_exactly(request, fixture, protocol):
    s = request.getfixturevalue(fixture)
    val, slots = with_copies(s.train.items, s.val.items.inputs, s.val.items.labels, protocol=protocol)
    found, result = run(s.model, s.train, val)
    mt = result.metrics
    assert mt["n_exact"] == N_EXACT
    assert mt["n_duplicates"] == N_NOISY + N_EXACT
    assert sorted(d["val_item"] for d in result.evidence["duplicates"]) == sorted(slots.tolist())
    assert mt["input_space"]["expected_by_chance"] < 1
    assert len(found) == 1 and found[0].severity == Severity.WARN  # 35 / 719 = 4.9% >= 1%
    assert f"{N_NOISY + N_EXACT} of {len(val.items)} validation items" in found[0].message
    assert {"duplicates_curve", "duplicates_pairs"} <= {f.id for f in result.figures}


@pytest.mark.parametrize("channels,size", [(3, 16), (3, 32)])
def test_copies_are_found_in_other_shapes(channels, size):
    """3 x 32 x 32 = 3072 values are average-pooled for the input-space search; copies survive it."""
    images, labels = load_digits_images(channels=channels, size=size)
    part = split_by_items(labels, seed=0)
    train_items = Items(images[part.train], labels=labels[part.train])
    train = Split("train", train_items, pairs=make_pairs(train_items, n_pairs=1000, seed=0))
    val, _ = with_copies(train_items, images[part.val], labels[part.val], noise=0.02)
    found, result = run(SiameseModel(Projection(channels * size * size)), train, val)
    assert result.metrics["n_exact"] == N_EXACT
    assert result.metrics["n_duplicates"] == N_NOISY + N_EXACT
    assert found and found[0].severity >= Severity.WARN


@pytest.mark.parametrize("fixture", ["healthy_pairs", "healthy_episodes"])
def test_clean_splits_get_no_finding(request, fixture):
    s = request.getfixturevalue(fixture)
    found, result = run(s.model, s.train, s.val)
    assert not found, [f.message for f in found]
    assert result.metrics["n_duplicates"] == 0


def test_metric_without_duplicates_matches_a_direct_computation(healthy_episodes):
    s = healthy_episodes
    val, _ = with_copies(s.train.items, s.val.items.inputs, s.val.items.labels)
    _, result = run(s.model, s.train, val)
    eff = result.metrics["effect"]
    dup = np.zeros(len(val.items), bool)
    dup[[d["val_item"] for d in result.evidence["duplicates"]]] = True
    emb = s.model.embed(val.items.get_batch(np.arange(len(val.items))))
    e = val.episodes
    scores = -np.linalg.norm(emb[e.anchor][:, None, :] - emb[e.candidates], axis=2)
    credit = nway_accuracy(scores, e.correct)
    clean = ~(dup[e.anchor] | dup[e.candidates].any(axis=1))
    assert eff["n_clean"] == int(clean.sum()) and eff["n_all"] == len(e)
    assert eff["all"]["value"] == pytest.approx(credit.mean(), abs=1e-6)
    assert eff["clean"]["value"] == pytest.approx(credit[clean].mean(), abs=1e-6)
    assert eff["change"]["value"] == pytest.approx(credit.mean() - credit[clean].mean(), abs=1e-6)


def test_pair_auc_without_duplicates_matches_a_direct_computation(healthy_pairs):
    s = healthy_pairs
    val, _ = with_copies(s.train.items, s.val.items.inputs, s.val.items.labels, protocol="pairs")
    _, result = run(s.model, s.train, val)
    eff = result.metrics["effect"]
    dup = np.zeros(len(val.items), bool)
    dup[[d["val_item"] for d in result.evidence["duplicates"]]] = True
    emb = s.model.embed(val.items.get_batch(np.arange(len(val.items))))
    p = val.pairs
    score = -np.linalg.norm(emb[p.left] - emb[p.right], axis=1)
    clean = ~(dup[p.left] | dup[p.right])
    assert eff["all"]["value"] == pytest.approx(roc_auc(score, p.label), abs=1e-6)
    assert eff["clean"]["value"] == pytest.approx(roc_auc(score[clean], p.label[clean]), abs=1e-6)


def test_embeddings_only_audit_uses_embedding_space(healthy_pairs):
    s = healthy_pairs
    et = s.model.embed(s.train.items.get_batch(np.arange(len(s.train.items))))
    ev = s.model.embed(s.val.items.get_batch(np.arange(len(s.val.items)))).copy()
    rng = np.random.default_rng(0)
    slots = rng.choice(len(ev), 20, replace=False)
    ev[slots] = et[rng.choice(len(et), 20, replace=False)] + 1e-4 * rng.normal(size=(20, et.shape[1]))
    p = s.train.pairs
    train = Split.from_embeddings(et, s.train.items.labels, name="train", pairs=(p.left, p.right, p.label))
    vp = s.val.pairs
    val = Split.from_embeddings(ev, s.val.items.labels, pairs=(vp.left, vp.right, vp.label))
    found, result = run(None, train, val)
    assert result.metrics["primary_space"] == "embedding"
    assert result.metrics["n_duplicates"] == 20
    assert any("No raw inputs" in n for n in result.notes)


def test_input_vectors_pool_images_and_project_other_inputs():
    imgs = Items(torch.rand(10, 3, 64, 64))
    v = input_vectors(imgs, max_dim=1024, seed=0)
    assert v.shape == (10, 3 * 18 * 18)
    ref = F.adaptive_avg_pool2d(imgs.get_batch(np.arange(10)), (18, 18)).reshape(10, -1).numpy()
    np.testing.assert_allclose(v, ref, rtol=1e-6)
    vecs = Items(torch.rand(10, 5000))
    assert input_vectors(vecs, max_dim=256, seed=0).shape == (10, 256)
    small = Items(torch.rand(10, 1, 8, 8))
    np.testing.assert_array_equal(
        input_vectors(small, max_dim=1024, seed=0), small.get_batch(np.arange(10)).reshape(10, -1).numpy()
    )


def test_near_threshold_ignores_exact_within_train_copies():
    within = np.r_[np.zeros(50), np.linspace(1.0, 2.0, 101)]
    assert near_threshold(within, quantile=0.01, fraction=0.5) == pytest.approx(
        0.5 * np.quantile(within[50:], 0.01)
    )
    assert near_threshold(np.zeros(5), quantile=0.01, fraction=0.5) == 0.0


def test_past_the_input_search_budget_a_sample_of_validation_items_is_checked():
    """The exact input-space search is O(N_val x N_train): past ``max_input_search`` a seeded sample of
    validation items is searched (every exact copy is still found by hash), and the share is an estimate."""
    rng = np.random.default_rng(0)
    xt = torch.from_numpy(rng.normal(size=(3000, 12)).astype(np.float32))
    xv = torch.from_numpy(rng.normal(size=(2500, 12)).astype(np.float32))
    exact, noisy = np.arange(0, 250), np.arange(250, 500)
    xv[exact] = xt[exact]
    xv[noisy] = xt[noisy + 250] + 1e-3 * torch.randn(250, 12, generator=torch.Generator().manual_seed(1))
    train = Split.from_items("train", Items(xt, labels=np.arange(3000) % 300))
    val = Split.from_items("val", Items(xv, labels=np.arange(2500) % 250 + 1000), seed=1)
    model = SiameseModel(Projection(12))

    def measure(budget):
        config = {"probes": {"duplicates": {"max_input_search": budget}}}
        report = audit(model, train, val, probes=["duplicates"], config=config, progress=False)
        return report.result("duplicates").metrics, report.result("duplicates").notes

    full, _ = measure(1e11)  # 2,500 x 3,000 x 12 values: searched exactly
    assert not full["estimated"] and full["n_duplicates"] == 500 and full["effect"] is not None
    sampled, notes = measure(1.0)
    assert sampled["estimated"] and sampled["n_val_items_checked"] == 2000 and sampled["effect"] is None
    assert sampled["n_exact"] == 250  # by content hash, in every item
    share = sampled["duplicate_share"]
    assert share["ci_low"] <= 0.2 <= share["ci_high"]  # 500 of 2,500, estimated from the 2,000 checked
    assert any("input space for a seeded sample of 2000" in n for n in notes)
