"""``gapdiag compare OLD.json NEW.json``: what got better or worse between two audits."""

from __future__ import annotations

from typing import Any

from .errors import InputError

__all__ = ["compare_reports", "check_report"]

_RANK = {"pass": 0, "info": 1, "warn": 2, "fail": 3}


def check_report(report: Any, which: str) -> None:
    """The fields compare reads, with the types it reads them as; ``InputError`` naming the first that is not."""
    if not isinstance(report, dict) or report.get("tool") != "gapdiag" or "findings" not in report:
        raise InputError(
            f"The {which} file is not a gapdiag JSON report (no 'tool': 'gapdiag' or no findings)."
        )
    problem = None
    if report.get("verdict") not in ("pass", "warn", "fail"):
        problem = f"verdict is {report.get('verdict')!r}, not pass, warn or fail"
    elif not isinstance(report["findings"], list):
        problem = "findings is not a list"
    elif not isinstance(report.get("gap") or {}, dict):
        problem = "gap is not an object"
    else:
        for i, f in enumerate(report["findings"]):
            if not isinstance(f, dict) or not isinstance(f.get("code"), str):
                problem = f"findings[{i}] has no code"
            elif f.get("severity") not in ("info", "warn", "fail"):
                problem = f"findings[{i}] has severity {f.get('severity')!r}"
            if problem:
                break
    if problem:
        raise InputError(f"The {which} file is not a gapdiag JSON report of a known shape: {problem}.")


def _worst_by_code(report: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for f in report["findings"]:
        if f.get("ignored"):
            continue
        if _RANK[f["severity"]] > _RANK.get(out.get(f["code"], "pass"), 0):
            out[f["code"]] = f["severity"]
    return out


def compare_reports(old: dict[str, Any], new: dict[str, Any]) -> tuple[str, bool]:
    """Compare two report dicts; returns (human-readable text, whether anything got worse)."""
    check_report(old, "old")
    check_report(new, "new")
    lines = [f"verdict: {old['verdict']} -> {new['verdict']}"]
    worse = _RANK[new["verdict"]] > _RANK[old["verdict"]]
    a, b = _worst_by_code(old), _worst_by_code(new)
    for code in sorted(set(a) | set(b)):
        sa, sb = a.get(code, "pass"), b.get(code, "pass")
        if sa == sb:
            continue
        direction = "worse" if _RANK[sb] > _RANK[sa] else "better"
        worse |= direction == "worse"
        label = "new" if code not in a else ("resolved" if code not in b else direction)
        lines.append(f"  {code}: {sa} -> {sb} ({label})")
    for key in ("observed_gap", "protocol_part", "generalization_part"):
        va, vb = (old.get("gap") or {}).get(key), (new.get("gap") or {}).get(key)
        if (
            isinstance(va, dict)
            and isinstance(vb, dict)
            and isinstance(va.get("value"), (int, float))
            and isinstance(vb.get("value"), (int, float))
        ):
            lines.append(
                f"  {key.replace('_', ' ')}: {va['value']:.3f} -> {vb['value']:.3f} ({vb['value'] - va['value']:+.3f})"
            )
    if len(lines) == 1:
        lines.append("  no finding changed")
    return "\n".join(lines), worse
