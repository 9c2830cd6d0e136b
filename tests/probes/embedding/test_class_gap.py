"""GD202 — class-level generalization gap, and the embedding-space figures."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import gapdiag
from gapdiag import Severity, Split
from gapdiag.digits import build_scenario
from gapdiag.probes.registry import owner_of
from gapdiag.report.figures import to_png

NO_UMAP = {"probes": {"class_gap": {"umap": False}}}


@pytest.fixture(scope="module")
def open_set():
    """Trained on digits 0-6, validated on the unseen digits 7-9 (clean data, no planted artifact)."""
    return build_scenario(partition="classes", n_pairs=1500, epochs=5)


def test_unseen_validation_identities_raise_gd202_and_nothing_else(open_set):
    s = open_set
    # the leakage and memorization checks that exist in this tree must stay quiet on this clean model
    others = sorted({cls.name for code in ("GD101", "GD102", "GD201") if (cls := owner_of(code))})
    report = gapdiag.audit(
        s.model, s.train, s.val, probes=["class_gap", *others], config=NO_UMAP, progress=False
    )
    codes = report.codes(min_severity=Severity.WARN)
    assert "GD202" in codes
    assert not codes & {"GD101", "GD102", "GD201"}, [f.message for f in report.findings]
    finding = next(f for f in report.findings if f.code == "GD202")
    assert "open set" in finding.message
    assert "class_gap_worst_classes" in finding.figures
    m = report.result("class_gap").metrics
    assert m["identity_overlap"]["setting"] == "open"
    assert m["ratio"].value < 0.6 and m["lift_difference"].low > 0


def test_lift_over_chance_matches_a_plain_computation(open_set):
    """R-precision is read above its chance level: (rp - c) / (1 - c), c = mean (n_class - 1) / (n - 1)."""
    s = open_set
    report = gapdiag.audit(s.model, s.train, s.val, probes=["class_gap"], config=NO_UMAP, progress=False)
    m = report.result("class_gap").metrics
    for split, labels in (("train", s.train.items.labels), ("val", s.val.items.labels)):
        _, counts = np.unique(labels, return_counts=True)
        n = labels.size
        chance = float(np.sum(counts * (counts - 1)) / (n * (n - 1)))  # every item queries once
        assert m[split]["chance_r_precision"] == pytest.approx(chance, abs=1e-6)
        rp = m[split]["r_precision"]["value"]
        assert m[f"lift_{split}"].value == pytest.approx((rp - chance) / (1 - chance), abs=1e-5)
    assert m["ratio"].value == pytest.approx(m["lift_val"].value / m["lift_train"].value)
    assert m["train"]["n_identities"] == 7 and m["val"]["n_identities"] == 3
    assert m["metric"] == "euclidean"  # the user's score is a euclidean distance


def test_worst_classes_figure(open_set):
    s = open_set
    report = gapdiag.audit(s.model, s.train, s.val, probes=["class_gap"], config=NO_UMAP, progress=False)
    fig = next(f for f in report.result("class_gap").figures if f.id == "class_gap_worst_classes")
    assert fig.kind == "bars" and fig.data["horizontal"]
    assert len(fig.data["groups"]) == 3  # only three validation identities
    values = fig.data["series"]["val"]["value"]
    assert values == sorted(values)  # worst first
    assert to_png(fig)[:4] == b"\x89PNG"


def test_umap_figure_is_seeded_and_bounded(healthy_episodes):
    s = healthy_episodes
    config = {"probes": {"class_gap": {"umap_max_points": 200}}}
    result = gapdiag.audit(s.model, s.train, s.val, probes=["class_gap"], config=config, progress=False)
    fig = next(f for f in result.result("class_gap").figures if f.id == "class_gap_embedding_map")
    assert fig.kind == "scatter" and fig.title.startswith("UMAP")
    by_split, by_class = fig.data["panels"]
    assert len(by_split["x"]) == len(by_class["groups"]) == 200
    assert set(by_split["groups"]) == {"train", "val"}
    assert set(by_class["groups"]) == {str(d) for d in range(10)}
    assert to_png(fig)[:4] == b"\x89PNG"


def test_embedding_map_falls_back_to_pca_without_umap(healthy_episodes, monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # import umap now raises ImportError
    s = healthy_episodes
    config = {"probes": {"class_gap": {"umap_max_points": 300}}}
    result = gapdiag.audit(s.model, s.train, s.val, probes=["class_gap"], config=config, progress=False)
    r = result.result("class_gap")
    fig = next(f for f in r.figures if f.id == "class_gap_embedding_map")
    assert fig.title.startswith("PCA")
    assert any("UMAP unavailable" in n for n in r.notes)


def test_healthy_three_channel_16px_cosine_model_is_clean():
    """A healthy cosine-similarity model on 3-channel 16x16 digits, validated on pairs: none of the
    embedding-space probes warns or fails."""
    s = build_scenario(
        channels=3, size=16, n_pairs=1000, epochs=4, val_protocol="pairs", model_kwargs={"similarity": True}
    )
    report = gapdiag.audit(
        s.model,
        s.train,
        s.val,
        probes=["class_gap", "geometry", "memorization", "split_shift"],
        config=NO_UMAP,
        progress=False,
    )
    assert all(r.status == "ok" for r in report.results), [r.reason for r in report.results]
    assert not [f.message for f in report.findings if f.severity >= Severity.WARN]
    m = report.result("class_gap").metrics
    assert m["identity_overlap"]["setting"] == "closed" and m["ratio"].value > 0.8
    assert m["metric"] == "cosine"  # neighbours ranked like the user's cosine similarity


def test_val_without_identity_labels_is_skipped_with_how_to_pass_them(healthy_pairs):
    """Validation without labels: identity-level numbers are never computed on inferred groups."""
    s = healthy_pairs
    emb = gapdiag.SiameseModel(s.model.module).embed(s.val.items.get_batch(np.arange(len(s.val.items))))
    neg = s.val.pairs.label == 0
    val = Split.from_embeddings(
        emb, None, name="val", pairs=(s.val.pairs.left[neg], s.val.pairs.right[neg], s.val.pairs.label[neg])
    )
    train_emb = gapdiag.SiameseModel(s.model.module).embed(
        s.train.items.get_batch(np.arange(len(s.train.items)))
    )
    train = Split.from_embeddings(
        train_emb,
        s.train.items.labels,
        name="train",
        pairs=(s.train.pairs.left, s.train.pairs.right, s.train.pairs.label),
    )
    report = gapdiag.audit(None, train, val, probes=["class_gap"], config=NO_UMAP, progress=False)
    r = report.result("class_gap")
    assert r.status == "skipped" and not r.findings
    assert "identity labels on the validation items" in r.reason and "labels=" in r.reason
