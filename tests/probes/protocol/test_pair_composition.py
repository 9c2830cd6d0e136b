"""GD304 — pair composition."""

from __future__ import annotations

import pytest

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
