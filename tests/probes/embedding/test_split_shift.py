"""GD205 — split shift: a cross-validated classifier telling train embeddings from val embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gapdiag
from gapdiag import Severity, SiameseModel, Split
from gapdiag.data import make_episodes
from gapdiag.digits import build_scenario
from gapdiag.probes.embedding.split_shift import _matched_sample


def _audit(model, train, val):
    return gapdiag.audit(model, train, val, probes=["split_shift"], progress=False)


@pytest.fixture(scope="module")
def shifted():
    """Validation images dimmed and lifted (x * 0.5 + 0.3): a loader that skips the training normalisation."""
    return build_scenario(n_pairs=1500, epochs=4, val_transform=lambda x: x * 0.5 + 0.3)


def test_shifted_validation_inputs_raise_gd205(shifted):
    report = _audit(shifted.model, shifted.train, shifted.val)
    assert "GD205" in report.codes(min_severity=Severity.WARN)
    m = report.result("split_shift").metrics
    assert m["auc"].low > 0.9
    assert m["sampling"].startswith("per shared identity")
    # with nothing more specific run, the warned shift is what the drop to validation items is
    step = next(s for s in report.gap["chain"]["steps"] if s["id"] == "generalization")
    assert step["significant"] and step["owner"] == "GD205"
    assert report.gap["chain"]["most_likely_cause"] == "GD205"
    finding = next(f for f in report.findings if f.code == "GD205")
    assert "GD305" in finding.message and "0.5 = same distribution" in finding.message


def test_healthy_closed_set_split_is_indistinguishable(healthy_episodes):
    s = healthy_episodes
    report = _audit(s.model, s.train, s.val)
    assert not report.findings
    auc = report.result("split_shift").metrics["auc"]
    assert abs(auc.value - 0.5) < 0.1  # chance: the splits come from one distribution


def _open_set(scenario):
    """The healthy model's embeddings of every item (N, d), their digits (N,), and digits 7-9 as validation."""
    model = SiameseModel(scenario.model.module)
    splits = (scenario.train, scenario.val)
    emb = np.concatenate([model.embed(sp.items.get_batch(np.arange(len(sp.items)))) for sp in splits])
    labels = np.concatenate([sp.items.labels for sp in splits])
    return emb, labels, labels >= 7


def test_open_set_separability_is_only_info(healthy_episodes):
    """Train on digits 0-6, validate on 7-9 (same healthy embeddings): different identities separate the
    splits by construction, which is not a distribution shift of the inputs."""
    emb, labels, is_val = _open_set(healthy_episodes)
    train = Split.from_embeddings(emb[~is_val], labels[~is_val], name="train")
    val = Split.from_embeddings(emb[is_val], labels[is_val], name="val")
    report = _audit(None, train, val)
    assert "GD205" in report.codes()
    assert "GD205" not in report.codes(min_severity=Severity.WARN)
    finding = next(f for f in report.findings if f.code == "GD205")
    assert finding.severity == Severity.INFO and "open set" in finding.message


def test_matched_sample_balances_each_shared_identity():
    rng = np.random.default_rng(0)
    train_labels = np.repeat([0, 1, 2, 3], [50, 30, 20, 10])
    val_labels = np.repeat([0, 1, 2, 9], [10, 40, 5, 30])  # 3 never occurs in val, 9 never in train
    tr, va, how = _matched_sample(train_labels, val_labels, 110, 85, 1000, rng)
    for lab, k in ((0, 10), (1, 30), (2, 5)):
        assert np.sum(train_labels[tr] == lab) == np.sum(val_labels[va] == lab) == k
    assert not np.isin(train_labels[tr], [3]).any() and not np.isin(val_labels[va], [9]).any()
    assert how.startswith("per shared identity")
    tr, va, _ = _matched_sample(train_labels, val_labels, 110, 85, 20, rng)
    assert tr.size == va.size == 20
    tr, va, how = _matched_sample(None, val_labels, 110, 85, 1000, rng)
    assert tr.size == va.size == 85 and how.startswith("at random")


def test_without_labels_the_warning_says_an_open_set_cannot_be_ruled_out(healthy_episodes):
    """The same open set without identity labels: a warning, since nothing shows the identities are new, and
    the message says what labels would tell."""
    emb, labels, is_val = _open_set(healthy_episodes)
    train = Split.from_embeddings(emb[~is_val], labels[~is_val], name="train")
    e = make_episodes(gapdiag.Items(None, labels=labels[is_val], n=int(is_val.sum())), n_way=3, seed=1)
    val = Split.from_embeddings(emb[is_val], None, name="val", episodes=(e.anchor, e.candidates, e.correct))
    [finding] = [f for f in _audit(None, train, val).findings if f.code == "GD205"]
    assert finding.severity == Severity.WARN
    assert "cannot tell whether validation holds identities that training never had" in finding.message


class _TokenBag(torch.nn.Module):
    """Mean of (untrained, seeded) token embeddings, pad 0 left out: (B, L) ids -> (B, 16)."""

    def __init__(self, vocab: int = 200):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.emb = torch.nn.EmbeddingBag(vocab, 16, mode="mean", padding_idx=0)

    def encode(self, x):
        return self.emb(x)


def _token_split(name, n, rng, unknown_share=0.0):
    """``n`` right-padded sequences of 10-30 ids drawn from one Zipf-like vocabulary (ids 2..199); a share of the
    tokens replaced by the unknown-token id 1, as a vocabulary that lacks their words gives."""
    from gapdiag import Items

    p = 1 / np.arange(1, 199)
    x = np.zeros((n, 30), dtype=np.int64)
    for i in range(n):
        k = rng.integers(10, 31)
        ids = rng.choice(np.arange(2, 200), k, p=p / p.sum())
        ids[rng.random(k) < unknown_share] = 1
        x[i, :k] = ids
    return Split.from_items(name, Items(torch.from_numpy(x), labels=np.arange(n) % 40), seed=1)


def test_token_ids_flooded_by_one_id_are_named_in_gd205():
    rng = np.random.default_rng(0)
    train, val = _token_split("train", 1200, rng), _token_split("val", 400, rng, unknown_share=0.3)
    report = _audit(SiameseModel(_TokenBag()), train, val)
    [gd205] = report.by_code("GD205")
    assert (
        "id 1 is" in gd205.message and "of validation tokens against 0.0% of training tokens" in gd205.message
    )
    top = gd205.evidence["token_shift"][0]
    assert top["token"] == 1 and top["val_share"] == pytest.approx(0.3, abs=0.03)
    assert top["difference"]["ci_low"] > 0.25
    report.to_dict()  # the token evidence serialises with the rest


def test_token_ids_of_one_vocabulary_show_no_moved_id():
    rng = np.random.default_rng(1)
    train, val = _token_split("train", 1200, rng), _token_split("val", 400, rng)
    m = _audit(SiameseModel(_TokenBag()), train, val).result("split_shift").metrics
    for entry in m["token_shift"]:  # measured, and nothing moved by a percentage point beyond sampling
        assert not (abs(entry["difference"].value) >= 0.01 and entry["difference"].excludes(0))
