"""GD206 — degenerate scores: hand-made encoders that see only a corner marker the validation items lack."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import gapdiag
from gapdiag import Items, Pairs, Severity, SiameseModel, Split
from gapdiag.digits import load_digits_images, split_by_items
from gapdiag.probes.embedding.degenerate_scores import sd_draws


class MarkerEncoder(nn.Module):
    """Embeds the top-left pixel (inside the marker; always 0 on clean digits) plus ``content`` x a fixed
    projection of the image."""

    def __init__(self, content: float):
        super().__init__()
        self.content = content
        g = torch.Generator().manual_seed(0)
        self.register_buffer("w", torch.randn(256, 8, generator=g) / 16)

    def encode(self, x):
        marker = x[:, :1, 0, 0] * torch.ones(1, 8)
        return marker + self.content * (x.flatten(1) @ self.w)


def _splits():
    """Every training item carries a marker of random strength, the same on both items of a positive pair and
    independent on a negative pair's; validation items are clean."""
    images, labels = load_digits_images(size=16)
    part = split_by_items(labels, seed=0)
    rng = np.random.default_rng(0)
    tr = Items(images[part.train].clone(), labels=labels[part.train])
    p = gapdiag.data.make_pairs(tr, n_pairs=1000, seed=0)
    x1, x2 = images[part.train][p.left].clone(), images[part.train][p.right].clone()
    s1 = rng.uniform(0.3, 1.0, p.label.size).astype(np.float32)
    s2 = np.where(p.label == 1, s1, rng.uniform(0.3, 1.0, p.label.size)).astype(np.float32)
    x1[:, :, :4, :4] = torch.from_numpy(s1)[:, None, None, None]
    x2[:, :, :4, :4] = torch.from_numpy(s2)[:, None, None, None]
    items = Items(torch.cat([x1, x2]))
    n = len(p.label)
    train = Split("train", items, pairs=Pairs(items, np.arange(n), n + np.arange(n), p.label))
    val_items = Items(images[part.val], labels=labels[part.val])
    val = Split("val", val_items, pairs=gapdiag.data.make_pairs(val_items, n_pairs=1000, seed=1))
    return train, val


def _audit(content: float):
    train, val = _splits()
    return gapdiag.audit(
        SiameseModel(MarkerEncoder(content)), train, val, probes=["degenerate_scores"], progress=False
    )


def test_model_that_sees_only_the_marker_gives_every_clean_pair_one_score():
    report = _audit(0.0)
    f = next(f for f in report.findings if f.code == "GD206")
    assert f.severity == Severity.FAIL and f.cause == "scores:degenerate"
    m = report.result("degenerate_scores").metrics
    assert m["sd"]["val"]["value"] == 0 and m["val_share_at_median_score"] == 1.0
    assert "Validation scores barely vary" in f.message and "0 = one score for all" in f.message


@pytest.mark.parametrize("content,severity", [(0.002, Severity.FAIL), (0.1, Severity.WARN), (2.0, None)])
def test_severity_follows_the_ratio_of_spreads(content, severity):
    report = _audit(content)
    m = report.result("degenerate_scores").metrics
    ratio = m["sd_ratio"]
    found = [f for f in report.findings if f.code == "GD206"]
    if severity is None:
        assert not found and ratio["ci_high"] > 0.1
    else:
        assert [f.severity for f in found] == [severity]
        assert ratio["ci_high"] < (0.01 if severity == Severity.FAIL else 0.1)


def test_healthy_model_keeps_the_training_spread(healthy_episodes):
    s = healthy_episodes
    report = gapdiag.audit(s.model, s.train, s.val, probes=["degenerate_scores"], progress=False)
    assert not report.findings
    ratio = report.result("degenerate_scores").metrics["sd_ratio"]
    assert 0.5 < ratio["ci_low"] <= ratio["value"] <= ratio["ci_high"] < 2.0
    assert "val_episodes_top_tied" in report.result("degenerate_scores").metrics


def test_sd_bootstrap_matches_resampling_the_units():
    x = np.random.default_rng(0).normal(1000.0, 0.01, size=400)  # a large mean must not eat the spread
    draws = sd_draws(x, np.random.default_rng(1), 2000)
    idx = np.random.default_rng(2).integers(0, x.size, (2000, x.size))
    ref = x[idx].std(axis=1)
    assert draws.mean() == pytest.approx(ref.mean(), rel=0.01)
    assert np.quantile(draws, 0.975) == pytest.approx(np.quantile(ref, 0.975), rel=0.02)
