"""GD102 (probe ``reliance``), with GD101: small real models trained in-test on digit pairs whose positive
pairs carry an artifact on both images; the audit must find the artifact in the data (GD101) and show,
by a counterfactual, that the model's decisions follow it (GD102). Healthy models stay clean.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from gapdiag import Severity, audit
from gapdiag.digits import build_scenario
from gapdiag.errors import ConfigError
from gapdiag.probes.leakage.attributes import (
    apply_intervention,
    register_intervention,
    unregister_intervention,
)
from gapdiag.probes.leakage.reliance import spearman_with_ci, transplant

COLOUR = {"red", "green", "blue", "redness", "greenness", "blueness", "saturation"}
INTENSITY = {"brightness", "border"}


def colour_cast(x1, x2, rng):
    """The same random, red-leaning cast on both images of each positive pair (an intensity cast on 1 channel)."""
    c = x1.shape[1]
    off = rng.uniform([0.15, 0.0, 0.0][:c], [0.35, 0.1, 0.1][:c], size=(x1.shape[0], c))
    off = torch.from_numpy(off.astype(np.float32))[:, :, None, None]
    return x1 + off, x2 + off


def shift_right(x1, x2, rng):
    params = {"dx": 2.0, "dy": 0.0}
    return apply_intervention("translation", x1, params), apply_intervention("translation", x2, params)


SCENARIOS = {
    "colour_rgb_8": dict(channels=3, size=8, positive_pair_transform=colour_cast),
    "intensity_grey_16": dict(channels=1, size=16, positive_pair_transform=colour_cast, val_protocol="pairs"),
    "position_grey_16": dict(channels=1, size=16, positive_pair_transform=shift_right),
}


@functools.cache
def trained(name: str):
    """Train once per test session; then audit with both leakage probes."""
    sc = build_scenario(n_pairs=1200, epochs=5, seed=0, **SCENARIOS[name])
    report = audit(sc.model, sc.train, sc.val, probes=["shortcut", "reliance"], progress=False)
    return sc, report


def codes(report, code):
    return [f for f in report.findings if f.code == code and f.severity >= Severity.WARN]


@pytest.mark.parametrize(
    "name,attrs,interventions",
    [
        ("colour_rgb_8", COLOUR, {"tint", "channel_shift"}),
        ("intensity_grey_16", INTENSITY, {"brightness"}),
        ("position_grey_16", {"center_of_mass_x"}, {"translation"}),
    ],
)
def test_model_trained_with_artifact_gets_gd101_and_gd102_naming_it(name, attrs, interventions):
    _, report = trained(name)
    gd101 = codes(report, "GD101")
    assert any(f.evidence["attribute"] in attrs for f in gd101), [f.message for f in report.findings]
    gd102 = codes(report, "GD102")
    hit = [f for f in gd102 if f.evidence["intervention"] in interventions]
    assert hit, [f.message for f in report.findings]
    f = hit[0]
    assert {a.rpartition(":")[0] for a in f.evidence["attributes"]} & attrs
    excess = f.evidence["flip_excess_adjusted"]
    assert excess["value"] >= 0.1 and excess["ci_low"] > 0.02
    # the shortcut says "same artifact = same identity": transplanted negatives get accepted
    fa = f.evidence["false_accept_rate_negative"]
    assert fa["transplant"]["value"] > fa["control"]["value"]
    assert "flips" in f.message and "control transplant" in f.message


def test_counterfactual_embeds_only_a_bounded_sample():
    sc, report = trained("colour_rgb_8")
    r = report.result("reliance")
    n_tested = len(r.metrics["interventions_tested"])
    assert 1 <= n_tested <= 4
    # 300 validation pairs x 2 images x (transplant + control) per intervention
    assert report.meta["embedding"]["probe_sample_items_embedded"] <= n_tested * 300 * 4
    figs = {f.id: f for f in r.figures}
    assert figs["reliance_scores"].kind == "hist"
    assert len(figs["reliance_pairs"].data["rows"]) <= 5


@pytest.mark.parametrize("fixture", ["healthy_pairs", "healthy_episodes"])
def test_healthy_model_gets_no_gd101_or_gd102(request, fixture):
    s = request.getfixturevalue(fixture)
    report = audit(s.model, s.train, s.val, probes=["shortcut", "reliance"], progress=False)
    assert report.result("reliance").status == "ok"
    assert not [f for f in report.findings if f.severity >= Severity.WARN], [
        f.message for f in report.findings
    ]
    assert report.result("reliance").metrics["candidates"] == []


def test_forced_counterfactuals_on_a_healthy_model_show_no_reliance(healthy_episodes):
    """The control transplant absorbs generic sensitivity: moving attributes that carry no shortcut flips nothing extra."""
    s = healthy_episodes
    forced = {"brightness": "brightness", "center_of_mass_x": "translation", "contrast": "contrast"}
    report = audit(
        s.model,
        s.train,
        s.val,
        probes=["reliance"],
        progress=False,
        config={"probes": {"reliance": {"interventions": forced}}},
    )
    r = report.result("reliance")
    assert sorted(r.metrics["interventions_tested"]) == sorted(set(forced.values()))
    assert not [f for f in report.findings if f.severity >= Severity.WARN], [
        f.message for f in report.findings
    ]
    for t in r.evidence["tests"]:
        assert abs(t["flip_excess_adjusted"]["value"]) < 0.1


def test_user_intervention_plugs_in(healthy_pairs):
    s = healthy_pairs

    def fit(source, reference):
        return {"amount": float(source.mean() - reference.mean())}

    @register_intervention("test_lift", attributes=(), fit=fit, description="adds a constant (test)")
    def lift(x, strength, rng, amount=0.1):
        return x + amount * strength

    try:
        report = audit(
            s.model,
            s.train,
            s.val,
            probes=["reliance"],
            progress=False,
            config={"probes": {"reliance": {"interventions": {"brightness": "test_lift"}}}},
        )
    finally:
        unregister_intervention("test_lift")
    r = report.result("reliance")
    assert r.metrics["interventions_tested"] == ["test_lift"]
    assert r.evidence["tests"][0]["attributes"][0].startswith("brightness:")


def test_unknown_user_intervention_is_refused_before_the_audit_embeds(healthy_pairs):
    s = healthy_pairs
    with pytest.raises(ConfigError, match="unknown intervention 'no_such_thing'"):
        audit(
            s.model,
            s.train,
            s.val,
            probes=["reliance"],
            progress=False,
            config={"probes": {"reliance": {"interventions": {"brightness": "no_such_thing"}}}},
        )


# ---------------------------------------------------------------------------------------------------
# Reference computations
# ---------------------------------------------------------------------------------------------------


def test_transplant_moves_targets_to_the_source_pair_level():
    g = torch.Generator().manual_seed(0)
    targets = (torch.rand(6, 3, 8, 8, generator=g), torch.rand(6, 3, 8, 8, generator=g))
    sources = (torch.rand(2, 3, 8, 8, generator=g) + 0.3, torch.rand(2, 3, 8, 8, generator=g) + 0.3)
    reference = torch.rand(10, 3, 8, 8, generator=g)
    assign = np.array([0, 1, 0, 1, 0, 1])
    left, right, ok = transplant("tint", targets, sources, reference, assign, rng=np.random.default_rng(0))
    assert ok.all()
    for j, k in enumerate(assign):
        src = torch.stack([sources[0][k], sources[1][k]])
        offset = src.mean(dim=(0, 2, 3)) - reference.mean(dim=(0, 2, 3))
        torch.testing.assert_close(left[j], targets[0][j] + offset[:, None, None])
        torch.testing.assert_close(right[j], targets[1][j] + offset[:, None, None])
    assert not torch.equal(left, targets[0])  # new tensors; inputs untouched
    torch.testing.assert_close(targets[0], torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(0)))


def test_spearman_matches_scipy_with_a_fieller_interval():
    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    y = 0.4 * x + rng.normal(size=300)
    est = spearman_with_ci(x, y, z=1.96, level=0.95)
    assert est.value == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    se = np.sqrt(1.06 / 297)
    assert est.low == pytest.approx(np.tanh(np.arctanh(est.value) - 1.96 * se))
    assert spearman_with_ci(np.ones(50), y[:50], z=1.96, level=0.95) is None
