"""Verdict and exit code: the one place that decides what gates. JSON, JUnit and the CLI all call it.

- verdict: ``fail`` if any counted finding is a fail or a numeric gate failed, else ``warn`` if any counted
  finding is a warn, else ``pass``. Counted: not ignored, not accepted in the baseline the report was compared
  with (``Finding.accepted``), not a probe error (GD900 is not a finding about the model);
- exit code: 0 pass, 1 a counted finding at or above ``fail_on`` or a failed numeric gate (a gate is an
  explicit threshold: it gates whatever ``fail_on`` says), 3 a probe errored or a configured gate could not be
  measured, and nothing gated (a gating finding outranks an error), 2 is reserved for bad usage, config or input.

``gate_results`` are :class:`gapdiag.gates.GateResult` objects (anything with a ``status`` of ``"passed"``,
``"failed"`` or ``"unmeasured"``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .codes import CATALOGUE
from .finding import Finding, Severity

__all__ = ["ERROR_CODE", "verdict_of", "gates", "exit_code_of", "rank_key"]

ERROR_CODE = "GD900"
EXIT_PASS, EXIT_GATED, EXIT_USAGE, EXIT_PROBE_ERROR = 0, 1, 2, 3


def rank_key(f: Finding) -> tuple:
    """Sort key: gating before ignored, severity, likelihood of being the root cause, code.

    Findings of one code keep the order their probe emitted them in (strongest first), since the
    sort is stable.
    """
    info = CATALOGUE.get(f.code)
    return (f.ignored, -int(f.severity), info.cause_rank if info else 999, f.code)


def _counts(f: Finding) -> bool:
    """Does the finding count for the verdict and the gate (not ignored, not accepted, not a probe error)?"""
    return not f.ignored and not f.accepted and f.code != ERROR_CODE


def _statuses(gate_results: Iterable[Any]) -> set[str]:
    return {g.status for g in gate_results}


def verdict_of(findings: Iterable[Finding], gate_results: Iterable[Any] = ()) -> str:
    counted = [f for f in findings if _counts(f)]
    if any(f.severity >= Severity.FAIL for f in counted) or "failed" in _statuses(gate_results):
        return "fail"
    if any(f.severity >= Severity.WARN for f in counted):
        return "warn"
    return "pass"


def gates(f: Finding, fail_on: str) -> bool:
    """Does this finding make the exit code 1 under ``fail_on``?"""
    return _counts(f) and f.severity >= Severity.parse(fail_on)


def exit_code_of(findings: Iterable[Finding], fail_on: str = "fail", gate_results: Iterable[Any] = ()) -> int:
    findings, statuses = list(findings), _statuses(gate_results)
    if any(gates(f, fail_on) for f in findings) or "failed" in statuses:
        return EXIT_GATED
    if any(f.code == ERROR_CODE for f in findings) or "unmeasured" in statuses:
        return EXIT_PROBE_ERROR
    return EXIT_PASS


__all__ += ["EXIT_PASS", "EXIT_GATED", "EXIT_USAGE", "EXIT_PROBE_ERROR"]
