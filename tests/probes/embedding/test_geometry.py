"""GD203 — dimensional collapse and GD204 — hubness, on embeddings of a small real model."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import skew

import gapdiag
from gapdiag import Severity, SiameseModel, Split
from gapdiag.probes.embedding.geometry import alignment, effective_rank, uniformity


def _embed(model, split):
    return SiameseModel(model.module).embed(split.items.get_batch(np.arange(len(split.items))))


@pytest.fixture(scope="module")
def healthy(healthy_episodes):
    """Embeddings (train, val) of the session's healthy model, with labels."""
    s = healthy_episodes
    return _embed(s.model, s.train), s.train.items.labels, _embed(s.model, s.val), s.val.items.labels


def _geometry(train_emb, train_labels, val_emb, val_labels):
    train = Split.from_embeddings(train_emb, train_labels, name="train")
    val = Split.from_embeddings(val_emb, val_labels, name="val")
    return gapdiag.audit(None, train, val, probes=["geometry"], progress=False)


def test_effective_rank_matches_its_definition():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 12)) * np.linspace(0.1, 3.0, 12)
    xc = x - x.mean(axis=0)
    s = np.linalg.svd(xc, compute_uv=False)
    p = s / s.sum()
    assert effective_rank(x) == pytest.approx(np.exp(-np.sum(p * np.log(p))))
    # r orthogonal directions with equal singular values give exactly r
    q = np.linalg.qr(rng.normal(size=(12, 12)))[0]
    signs = np.array(
        [[1, 1, 1], [-1, 1, 1], [1, -1, 1], [1, 1, -1], [-1, -1, 1], [-1, 1, -1], [1, -1, -1], [-1, -1, -1]]
    )
    assert effective_rank(signs @ q[:3]) == pytest.approx(3.0)
    assert effective_rank(np.outer(rng.normal(size=50), rng.normal(size=12))) == pytest.approx(1.0)


def test_alignment_and_uniformity_match_their_definitions():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(40, 5)), rng.normal(size=(40, 5))
    ua = a / np.linalg.norm(a, axis=1, keepdims=True)
    ub = b / np.linalg.norm(b, axis=1, keepdims=True)
    d2 = np.array([np.sum((ua[i] - ub[i]) ** 2) for i in range(40)])
    assert np.allclose(alignment(a, b), d2)
    assert np.allclose(uniformity(a, b), np.exp(-2 * d2))


def _rank_two(emb, reference):
    """``emb`` projected onto the two main directions of ``reference``: 32 dimensions, rank 2."""
    mean = reference.mean(axis=0)
    _, _, vt = np.linalg.svd(reference - mean, full_matrices=False)
    return (emb - mean) @ (vt[:2].T @ vt[:2]) + mean


def test_a_collapse_both_splits_share_is_info_gd203(healthy):
    """Both splits projected onto rank 2: collapsed alike, which limits both instead of explaining a gap."""
    train_emb, train_labels, val_emb, val_labels = healthy
    report = _geometry(
        _rank_two(train_emb, train_emb), train_labels, _rank_two(val_emb, train_emb), val_labels
    )
    [finding] = report.by_code("GD203")
    assert finding.severity == Severity.INFO and "limits both splits alike" in finding.message
    assert "GD204" not in report.codes(min_severity=Severity.WARN)
    m = report.result("geometry").metrics
    for split in ("train", "val"):
        assert m[split]["effective_rank"].value <= 2.01  # float32 round-off adds a trace of other directions
        assert m[split]["rank_needed"] == 9  # ten digit classes need nine directions
        assert m[split]["collapse_ratio"].high < 0.25
    assert "train:" in finding.message and "val:" in finding.message


def test_a_validation_collapse_raises_gd203(healthy):
    """Only the validation embeddings projected onto rank 2: the validation identities are squeezed."""
    train_emb, train_labels, val_emb, val_labels = healthy
    report = _geometry(train_emb, train_labels, _rank_two(val_emb, train_emb), val_labels)
    [finding] = report.by_code("GD203")
    assert finding.severity == Severity.WARN and "Only validation is collapsed" in finding.message
    assert "val:" in finding.message and "train:" not in finding.message


def test_healthy_embeddings_are_clean(healthy):
    report = _geometry(*healthy)
    m = report.result("geometry").metrics
    assert m["val"]["effective_rank"].value == pytest.approx(effective_rank(healthy[2]), rel=1e-6)
    assert not [f.message for f in report.findings if f.severity >= Severity.WARN]
    assert m["train"]["collapse_ratio"].value > 0.5
    assert m["train"]["k_occurrence_skewness"].value < 1.5
    assert 0.0 <= m["train"]["alignment"].value <= 4.0
    assert -8.0 <= m["train"]["uniformity"].value <= 0.0
    erank = m["train"]["effective_rank"]
    assert erank.low <= erank.value <= erank.high  # the interval is centred on the estimate


def test_high_dimensional_noise_is_dimensional_hubness_not_a_warning(healthy):
    """96 extra dimensions of isotropic noise at the embedding's own scale: the curse of dimensionality
    makes a few items the neighbours of very many (Radovanovic et al., 2010) — and a Gaussian cloud with
    the same spectrum does it too, so it is info, not a finding about the user's gap."""
    train_emb, train_labels, val_emb, val_labels = healthy
    rng = np.random.default_rng(0)
    sd = float(train_emb.std())

    def noisy(x):
        return np.concatenate([x, rng.normal(scale=sd, size=(len(x), 96)).astype(np.float32)], axis=1)

    report = _geometry(noisy(train_emb), train_labels, noisy(val_emb), val_labels)
    assert "GD204" not in report.codes(min_severity=Severity.WARN)
    m = report.result("geometry").metrics["train"]
    assert m["k_occurrence_skewness"].low > 3.0
    assert m["null_skewness"] > 2.0 and m["excess_skewness"].value < 2.0
    [info] = report.by_code("GD204")
    assert info.severity == Severity.INFO and "dimension" in info.message


def test_items_at_the_centre_of_their_identity_become_hubs_gd204():
    """Each identity's items on a shell around one central item (a generic input mapped to the identity's
    centre): that item is the nearest neighbour of its whole identity. Structural hubness, far beyond a
    Gaussian cloud with the same spectrum."""
    rng = np.random.default_rng(0)

    def shells(n_id=10, per=80, d=16):
        centres = rng.normal(scale=4.0, size=(n_id, d))
        u = rng.normal(size=(n_id, per, d))
        x = centres[:, None, :] + u / np.linalg.norm(u, axis=2, keepdims=True)
        x[:, 0] = centres
        return x.reshape(-1, d).astype(np.float32), np.repeat(np.arange(n_id), per)

    report = _geometry(*shells(), *shells())
    [finding] = report.by_code("GD204")
    assert finding.severity == Severity.WARN and "Gaussian cloud with the same spectrum" in finding.message
    m = report.result("geometry").metrics["train"]
    assert m["excess_skewness"].low > 2.0 and m["top_hub_occurrence"] > 5 * m["hub_k"]


def test_hubness_numbers_match_a_plain_computation(healthy):
    train_emb, train_labels, val_emb, val_labels = healthy
    report = _geometry(train_emb, train_labels, val_emb, val_labels)
    m = report.result("geometry").metrics["val"]
    k = m["hub_k"]
    x = val_emb.astype(np.float64)
    counts = np.zeros(len(x), dtype=int)
    for i in range(len(x)):  # brute force, one row at a time
        d = np.linalg.norm(x - x[i], axis=1)
        d[i] = np.inf
        counts[np.argsort(d, kind="stable")[:k]] += 1
    assert m["k_occurrence_skewness"].value == pytest.approx(skew(counts), abs=1e-6)
    assert m["antihub_share"].value == pytest.approx(np.mean(counts == 0))
    assert m["top_hub_occurrence"] == counts.max()
