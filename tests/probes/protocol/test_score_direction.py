"""GD302 — score direction."""

from __future__ import annotations

import pytest

import gapdiag
from gapdiag import Severity, SiameseModel
from gapdiag.digits import build_scenario


@pytest.fixture(scope="module")
def inverted():
    """A cosine-similarity model whose evaluation reads the score as a distance (min())."""
    return build_scenario(model_kwargs={"similarity": True}, kind="distance", n_pairs=1500, epochs=4, seed=0)


def test_cosine_similarity_read_with_min_raises_gd302(inverted):
    report = gapdiag.audit(
        inverted.model, inverted.train, inverted.val, probes=["score_direction"], progress=False
    )
    [gd302] = report.by_code("GD302")
    assert gd302.severity == Severity.FAIL
    assert "read as a distance (lower = more similar)" in gd302.message.lower()
    assert "ranks dissimilar training pairs above similar ones" in gd302.message
    assert "max()" in gd302.message and "kind='similarity'" in gd302.message
    assert (
        gd302.evidence["train_auc"]["ci_high"] < 0.4 and gd302.evidence["train_auc_reversed"]["ci_low"] > 0.6
    )
    assert {f.id for f in report.result("score_direction").figures} == {"score_hist", "score_roc"}


def test_correctly_declared_similarity_does_not_raise_gd302(inverted):
    model = SiameseModel(inverted.net, kind="similarity")
    report = gapdiag.audit(model, inverted.train, inverted.val, probes=["score_direction"], progress=False)
    assert "GD302" not in report.codes()
    assert report.result("score_direction").metrics["declared_auc"].value > 0.9
