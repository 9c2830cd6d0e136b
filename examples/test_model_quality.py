"""Model quality as a pytest test: the audit runs once per session and every test asserts on it.

Run it from the repository root: ``.venv/bin/python -m pytest examples/test_model_quality.py``.

In your project, the plugin line goes in the top-level ``conftest.py`` with your ``gapdiag_target`` fixture
(return your trained model and your splits), and the tests stay as they are here. A failing gate fails the
test with the report's console summary as the message: the verdict, what is new or worse than the baseline,
each numeric gate with its CI, the gap chain and the findings.
"""

from pathlib import Path

import pytest

from gapdiag.testing import assert_audit_passes

pytest_plugins = ["gapdiag.testing"]  # in your project: this line in the top-level conftest.py

# Commit a baseline (`gapdiag baseline write report.json --out examples/.gapdiag-baseline.json`) and the
# first test gates only on what is new or worse than it.
BASELINE = Path(__file__).with_name(".gapdiag-baseline.json")


@pytest.fixture(scope="session")
def gapdiag_target():
    """What to audit. Here: a small healthy Siamese net trained on the bundled digits in a few seconds."""
    from gapdiag.digits import build_scenario

    s = build_scenario(n_pairs=600, epochs=2, val_protocol="pairs", seed=0)
    return s.model, s.train, s.val


@pytest.fixture(scope="session")
def gapdiag_config():
    """Without this fixture, the configuration is [tool.gapdiag] of ./pyproject.toml."""
    return {
        "gates": {"val_metric_min": 0.6, "unexplained_share_max": 0.10},
        "probes": {"class_gap": {"umap": False}},  # no embedding map: a test reads no pictures
    }


def test_no_new_or_worse_finding_and_every_gate_passes(gapdiag_report):
    assert_audit_passes(gapdiag_report, fail_on="warn", baseline=BASELINE if BASELINE.exists() else None)


def test_the_validation_metric_clears_its_bar_with_its_whole_ci(gapdiag_report):
    gate = next(g for g in gapdiag_report.gates if g.name == "val_metric_min")
    assert gate.passed, gate.detail
    assert gate.ci_low >= 0.6
