"""The gate in words, shared by the text, Markdown and JUnit renderers: why a finding does not gate (ignored
with its reason, accepted in the baseline), what is new or worse than the baseline, and each numeric gate.

Pure functions of a report's data; nothing here measures or decides (the decision is
:mod:`gapdiag.findings.policy`'s).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..findings.finding import Finding
    from ..gates import GateResult

__all__ = ["finding_flag", "gate_parts", "gate_text", "baseline_lines", "gating_lines"]

_BOUND = {
    ("strict", "min"): "its CI low",
    ("strict", "max"): "its CI high",
    ("lenient", "min"): "its CI high",
    ("lenient", "max"): "its CI low",
}


def finding_flag(f: Finding) -> str:
    """`` (ignored: reason)``, `` (baseline: accepted)``, `` (new since the baseline)``, `` (worse than the
    baseline: what changed)`` or ``""``."""
    if f.ignored:
        return f" (ignored: {f.ignore_reason or 'no reason given'})"
    status = (f.baseline or {}).get("status")
    if status == "accepted":
        return " (baseline: accepted)"
    if status == "new":
        return " (new since the baseline)"
    if status == "worse":
        return f" (worse than the baseline: {f.baseline.get('change', '')})"
    return ""


def gate_parts(g: GateResult) -> tuple[str, str]:
    """``(measured, rule)``: the number with its CI, and the comparison that decided the gate
    (``"its CI low 0.404 >= 0.300 (strict)"``); both empty when nothing was measured."""
    if g.value is None:
        return "", ""
    measured = f"{g.value:.3f}"
    if g.ci_low is not None and g.ci_high is not None:
        measured += f" [{g.ci_low:.3f}, {g.ci_high:.3f}]"
    bound = _BOUND.get((g.use, g.direction), "its value")
    if bound != "its value" and (g.ci_low is None or g.ci_high is None):
        bound = "its value"
    op = (">=" if g.passed else "<") if g.direction == "min" else ("<=" if g.passed else ">")
    return measured, f"{bound} {g.compared:.3f} {op} {g.threshold:.3f} ({g.use})"


def gate_text(g: GateResult) -> str:
    """One gate in one sentence: outcome, what it measures, the number with its CI, what was compared."""
    if g.status == "unmeasured":
        return f"gate {g.name} not measured: {g.detail or 'its numbers were not measured'}"
    measured, rule = gate_parts(g)
    tail = f" ({g.detail})" if g.detail else ""
    if not measured:  # passed without a number: e.g. no significant drop to share
        return f"gate {g.name} {g.status}: {g.label}{tail}"
    return f"gate {g.name} {g.status}: {g.label} {measured}; {rule}{tail}"


def _entry(e: dict[str, Any]) -> str:
    cause = f" {e['cause']}" if e.get("cause") else ""
    change = f": {e['change']}" if e.get("change") else ""
    return f"{e['code']}{cause} ({e['severity']}{change})"


def baseline_lines(baseline: dict[str, Any] | None) -> list[str]:
    """What the comparison with the baseline found, in a few lines (none without a baseline)."""
    if not baseline:
        return []
    out = [f"Baseline {baseline['source']}: {baseline['accepted']} known finding(s) accepted, never gating."]
    for key, words in (("new", "New since the baseline"), ("worse", "Worse than the baseline")):
        if baseline.get(key):
            out.append(f"{words}: " + "; ".join(_entry(e) for e in baseline[key]) + ".")
    if not baseline.get("new") and not baseline.get("worse"):
        out.append("Nothing new or worse than the baseline.")
    if baseline.get("resolved"):
        out.append(
            "Resolved since the baseline: "
            + "; ".join(_entry(e) for e in baseline["resolved"])
            + " (write the baseline again to lock it in)."
        )
    return out


def gating_lines(baseline: dict[str, Any] | None, gates: list[GateResult]) -> list[str]:
    """The baseline's lines, then one line per numeric gate."""
    return baseline_lines(baseline) + [gate_text(g) for g in gates]
