"""gapdiag.stats: analytic intervals against the resampling they replace."""

from __future__ import annotations

import numpy as np
import pytest

from gapdiag.stats import (
    auc_bootstrap_draws,
    auc_placements,
    bootstrap_auc,
    delong_auc,
    normal_estimate,
    roc_auc,
)


@pytest.mark.parametrize("tied", [False, True])
def test_placements_average_to_the_auc_ties_counting_half(tied):
    rng = np.random.default_rng(0)
    y = rng.random(301) < 0.4
    s = rng.normal(size=301) + y
    if tied:
        s = np.round(s, 0)
    v10, v01 = auc_placements(s, y)
    assert v10.shape == (y.sum(),) and v01.shape == ((~y).sum(),)
    assert v10.mean() == pytest.approx(roc_auc(s, y), abs=1e-12)
    assert v01.mean() == pytest.approx(roc_auc(s, y), abs=1e-12)


def test_delong_variance_matches_the_stratified_bootstrap():
    rng = np.random.default_rng(1)
    y = rng.random(3000) < 0.5
    s = rng.normal(size=3000) + 0.8 * y
    v10, v01 = auc_placements(s, y)
    delong_sd = np.sqrt(np.var(v10, ddof=1) / v10.size + np.var(v01, ddof=1) / v01.size)
    boot_sd = auc_bootstrap_draws(s, y, np.random.default_rng(2), 4000).std()
    assert delong_sd == pytest.approx(boot_sd, rel=0.08)


def test_normal_estimate_is_cut_to_its_bounds_and_unknown_without_a_variance():
    e = normal_estimate(0.99, 0.01**2, 100, 0.95, bounds=(0.0, 1.0))
    assert e.high == 1.0 and e.low == pytest.approx(0.99 - 1.959964 * 0.01, abs=1e-6)
    assert np.isnan(normal_estimate(0.5, float("nan"), 3, 0.95).low)


@pytest.mark.parametrize("n", [30, 400, 5000])
def test_delong_interval_agrees_with_the_bootstrap_interval(n):
    rng = np.random.default_rng(n)
    y = rng.random(n) < 0.5
    s = rng.normal(size=n) - 0.6 * y  # an inverted score: the AUC is below 0.5
    boot = bootstrap_auc(s, y, rng=np.random.default_rng(3), n_boot=4000)
    ana = delong_auc(s, y)
    assert ana.value == pytest.approx(boot.value)
    width = boot.high - boot.low
    assert ana.low == pytest.approx(boot.low, abs=0.15 * width)
    assert ana.high == pytest.approx(boot.high, abs=0.15 * width)
