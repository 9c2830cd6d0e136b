"""GD301 — protocol mismatch, read from the gap chain."""

from __future__ import annotations

import pytest

import gapdiag
from gapdiag import Severity
from gapdiag.digits import build_scenario
from gapdiag.probes.registry import registered_probes


@pytest.fixture(scope="module")
def rgb16():
    """A healthy pairwise-trained model on 3-channel 16x16 digits, validated with 10-way episodes."""
    return build_scenario(channels=3, size=16, n_pairs=1500, epochs=4, seed=2)


@pytest.mark.parametrize("which", ["healthy_episodes", "rgb16"])
def test_10way_validation_of_a_healthy_pairwise_model_raises_gd301(which, request):
    sc = request.getfixturevalue(which)
    # the probes that own the leakage and memorization codes run too, so their silence is meaningful
    owners = [n for n, cls in registered_probes().items() if set(cls.codes) & {"GD101", "GD102", "GD201"}]
    report = gapdiag.audit(sc.model, sc.train, sc.val, probes=["protocol_mismatch", *owners], progress=False)
    [gd301] = report.by_code("GD301")
    assert gd301.severity == Severity.INFO and gd301.figures == ["protocol_grid"]
    assert "Part of your gap is how it is measured" in gd301.message
    assert report.primary_cause.code == "GD301" and report.verdict == "pass"
    assert "pairwise verification" in gd301.message and "10-way identification" in gd301.message
    assert not (report.codes(min_severity=Severity.WARN) & {"GD101", "GD102", "GD201"})
    step = next(s for s in report.gap["chain"]["steps"] if s["id"] == "protocol")
    assert step["owner"] == "GD301" and step["ci_low"] > 0
    grid = report.result("protocol_mismatch").figures[0].data
    assert "chance 0.10" in grid["annotations"][1][3] and "(yours)" in grid["annotations"][1][3]


def test_same_protocol_raises_nothing(healthy_pairs):
    sc = healthy_pairs
    report = gapdiag.audit(sc.model, sc.train, sc.val, probes=["protocol_mismatch"], progress=False)
    assert report.result("protocol_mismatch").status == "ok" and not report.findings
