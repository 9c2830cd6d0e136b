"""pytest support: assert that an audit passes the gate, and fixtures that audit once per test session.

The assertion works anywhere::

    from gapdiag.testing import assert_audit_passes

    report = gapdiag.audit(model, train, val)
    assert_audit_passes(report, fail_on="warn", baseline=".gapdiag-baseline.json")

A failing gate raises ``AssertionError`` whose message is the report's console summary: the verdict, what is
new or worse than the baseline, every numeric gate, the gap chain and the findings.

The fixtures are a pytest plugin you opt into with one line in your top-level ``conftest.py`` (nothing is
registered or imported in projects that do not ask for it)::

    pytest_plugins = ["gapdiag.testing"]

    @pytest.fixture(scope="session")
    def gapdiag_target():
        model, train, val = load_my_model_and_splits()
        return model, train, val            # or {"model": ..., "train": ..., "val": ...}

    # tests/test_model_quality.py
    def test_model_passes_the_gate(gapdiag_report):
        assert_audit_passes(gapdiag_report, fail_on="warn", baseline=".gapdiag-baseline.json")

``gapdiag_report`` audits ``gapdiag_target`` once per session (every test that asks for it shares the report);
its configuration is the ``gapdiag_config`` fixture, by default ``[tool.gapdiag]`` of ``./pyproject.toml``
(override the fixture to pass another). See ``examples/test_model_quality.py`` and ``docs/ci.md``.

PYTEST_DONT_REWRITE: the module raises its ``AssertionError`` itself, so pytest need not rewrite it (and does not
warn when a test module imported it before ``pytest_plugins`` loads it).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from .baseline import apply_baseline, baseline_from_report, load_baseline
from .config import Config, load_config
from .findings.finding import Severity
from .report.report import Report

__all__ = ["assert_audit_passes", "gate", "gapdiag_target", "gapdiag_config", "gapdiag_report"]


def _as_baseline(baseline: Any) -> tuple[dict[str, Any], str]:
    """A baseline dict and where it came from, from a path, a Report, a report dict or a baseline dict."""
    if isinstance(baseline, (str, Path)):
        return load_baseline(baseline), str(baseline)
    if isinstance(baseline, Report):
        return baseline_from_report(baseline.to_dict()), "a previous report"
    if isinstance(baseline, dict) and baseline.get("kind") == "gapdiag-baseline":
        return baseline, "the given baseline"
    return baseline_from_report(baseline), "a previous report"


def gate(report: Report, fail_on: str = "warn", baseline: Any = None) -> Report:
    """A copy of ``report`` gated at ``fail_on`` and, if given, compared with ``baseline`` (a path to a baseline
    file or JSON report, a ``Report``, or their dicts). ``report`` is not changed."""
    checked = dataclasses.replace(report, fail_on=str(Severity.parse(fail_on)))
    if baseline is None:
        return checked
    data, source = _as_baseline(baseline)
    return apply_baseline(checked, data, source=source)


def assert_audit_passes(report: Report, fail_on: str = "warn", baseline: Any = None) -> Report:
    """Raise ``AssertionError`` unless ``report`` passes the gate: no counted finding at or above ``fail_on``
    (new or worse than ``baseline`` when one is given), no failed numeric gate, no probe error or unmeasured gate
    (a check that did not run is not a pass). The message is the console summary. Returns the gated report."""
    checked = gate(report, fail_on, baseline)
    if checked.exit_code != 0:
        raise AssertionError("gapdiag: the audit does not pass its gate.\n" + checked.summary().rstrip())
    return checked


# -- the opt-in plugin: `pytest_plugins = ["gapdiag.testing"]` in the top-level conftest.py -------------------
@pytest.fixture(scope="session")
def gapdiag_target() -> Any:
    """What to audit: override in your conftest.py to return ``(model, train, val)`` or a dict with those keys."""
    pytest.fail(
        "gapdiag: define a session-scoped fixture `gapdiag_target` in your conftest.py that returns "
        "(model, train, val); see gapdiag.testing.",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def gapdiag_config() -> Config | dict:
    """The audit's configuration: ``[tool.gapdiag]`` of ./pyproject.toml when present, else the defaults."""
    return load_config()


@pytest.fixture(scope="session")
def gapdiag_report(gapdiag_target: Any, gapdiag_config: Config | dict) -> Report:
    """The audit of ``gapdiag_target``, run once per test session and shared by every test that asks for it."""
    from .audit import audit, audit_inputs

    model, train, val = audit_inputs(gapdiag_target, "the gapdiag_target fixture")
    return audit(model, train, val, config=gapdiag_config, progress=False)
