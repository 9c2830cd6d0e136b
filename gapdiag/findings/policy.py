"""Verdict and exit code: the one place that decides what gates. JSON, JUnit and the CLI all call it.

- verdict: ``fail`` if any non-ignored finding is a fail, else ``warn`` if any is a warn, else ``pass``
  (probe errors, GD900, are not findings about the model and do not enter the verdict);
- exit code: 0 pass, 1 a non-ignored finding at or above ``fail_on``, 3 a probe errored and nothing gated
  (a gating finding outranks a probe error), 2 is reserved for bad usage, config or input.
"""

from __future__ import annotations

from collections.abc import Iterable

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


def _counted(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if not f.ignored and f.code != ERROR_CODE]


def verdict_of(findings: Iterable[Finding]) -> str:
    counted = _counted(findings)
    if any(f.severity >= Severity.FAIL for f in counted):
        return "fail"
    if any(f.severity >= Severity.WARN for f in counted):
        return "warn"
    return "pass"


def gates(f: Finding, fail_on: str) -> bool:
    """Does this finding make the exit code 1 under ``fail_on``?"""
    return not f.ignored and f.code != ERROR_CODE and f.severity >= Severity.parse(fail_on)


def exit_code_of(findings: Iterable[Finding], fail_on: str = "fail") -> int:
    findings = list(findings)
    if any(gates(f, fail_on) for f in findings):
        return EXIT_GATED
    if any(f.code == ERROR_CODE for f in findings):
        return EXIT_PROBE_ERROR
    return EXIT_PASS


__all__ += ["EXIT_PASS", "EXIT_GATED", "EXIT_USAGE", "EXIT_PROBE_ERROR"]
