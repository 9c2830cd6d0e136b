"""Verdict and exit code: the one place that decides what gates. JSON, JUnit and the CLI all call it.

- verdict: ``fail`` if any non-ignored finding is a fail, else ``warn`` if any is a warn, else ``pass``
  (probe errors, GD900, are not findings about the model and do not enter the verdict);
- exit code: 0 pass, 1 a non-ignored finding at or above ``fail_on``, 3 a probe errored and nothing gated
  (a gating finding outranks a probe error), 2 is reserved for bad usage, config or input.
"""

from __future__ import annotations

from collections.abc import Iterable

from .finding import Finding, Severity

__all__ = ["ERROR_CODE", "verdict_of", "gates", "exit_code_of", "CAUSE_PRIORITY", "rank_key"]

ERROR_CODE = "GD900"
EXIT_PASS, EXIT_GATED, EXIT_USAGE, EXIT_PROBE_ERROR = 0, 1, 2, 3

# When two findings have the same severity, the one earlier here is the more likely root cause: bugs at
# the evaluation boundary invalidate every other number, then shortcuts and contamination, then
# memorization, protocol mismatch and the genuine gap, then descriptive findings.
CAUSE_PRIORITY = (
    "GD302", "GD305", "GD306", "GD101", "GD102", "GD103", "GD201", "GD301",
    "GD202", "GD303", "GD304", "GD203", "GD204", "GD205", "GD104", "GD900",
)  # fmt: skip


def rank_key(f: Finding) -> tuple:
    """Sort key: gating before ignored, severity, likelihood of being the root cause, code.

    Findings of one code keep the order their probe emitted them in (strongest first), since the
    sort is stable.
    """
    prio = CAUSE_PRIORITY.index(f.code) if f.code in CAUSE_PRIORITY else len(CAUSE_PRIORITY)
    return (f.ignored, -int(f.severity), prio, f.code)


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
