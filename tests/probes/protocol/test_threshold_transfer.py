"""GD303 — threshold transfer."""

from __future__ import annotations

import gapdiag
from gapdiag import Items, Pairs, Severity, Split


def _rescaled_val(sc, scale):
    v, p = sc.val.items, sc.val.pairs
    items = Items(v.inputs * scale, labels=v.labels)
    return Split("val", items, pairs=Pairs(items, p.left, p.right, p.label))


def test_a_train_tuned_threshold_that_fails_on_val_raises_gd303(healthy_pairs):
    # validation images from a lower-contrast capture: the ranking survives, distances shrink
    sc = healthy_pairs
    report = gapdiag.audit(
        sc.model, sc.train, _rescaled_val(sc, 0.6), probes=["threshold_transfer"], progress=False
    )
    [gd303] = report.by_code("GD303")
    assert gd303.severity == Severity.WARN and "tuned on training pairs" in gd303.message
    assert gd303.evidence["loss"]["ci_low"] > 0.05


def test_a_user_threshold_that_misses_val_raises_gd303(healthy_pairs):
    sc = healthy_pairs
    report = gapdiag.audit(
        sc.model, sc.train, sc.val, probes=["threshold_transfer"], config={"threshold": 0.15}, progress=False
    )
    [gd303] = report.by_code("GD303")
    assert "given by the user" in gd303.message and "0.15" in gd303.message


def test_a_healthy_model_keeps_its_threshold(healthy_pairs):
    sc = healthy_pairs
    report = gapdiag.audit(sc.model, sc.train, sc.val, probes=["threshold_transfer"], progress=False)
    assert not report.codes(min_severity=Severity.WARN)
