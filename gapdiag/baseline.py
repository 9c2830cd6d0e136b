"""Baselines: the accepted state of an audit, so that CI fails only on what is new or worse.

``gapdiag baseline write report.json`` stores a small file (``.gapdiag-baseline.json``, meant to be committed
and reviewed) and ``gapdiag audit ... --baseline .gapdiag-baseline.json`` compares the new audit with it.
``--baseline`` also takes a whole JSON report (``old/report.json``).

What the file holds: every warn and fail finding (probe errors and info findings never gate, so they are left
out) as ``{code, cause, severity, title}``, and the gap chain's numbers: the validation metric (the chain's last
state) and every step with its owner and CI, rounded to 3 places so the file only changes when a number moves
visibly.

How a new audit is compared:

- **A finding is the same** when its ``code`` and ``cause`` (the artifact or mechanism it is about) are the
  same. Several findings with one code and cause are paired strongest first; any beyond the baseline's count
  are new.
- **new**: no baseline finding with that code and cause; **worse**: a higher severity than its baseline
  finding, or its code owns a chain step whose CI moved past the baseline step's CI by more than the margin;
  **accepted**: otherwise (same or lower severity, effect not clearly larger). Accepted findings stay in every
  report, marked as baseline, and never gate; new and worse ones gate as usual (``fail_on``, ``ignore``).
- **The effect of a finding** is the chain step its code owns (``pair_specific`` for GD101/GD201,
  ``generalization`` for GD102/GD305/GD306/GD202, ``protocol`` for GD301, ``direction`` for GD302...): the part
  of your drop it explains, in your metric's units, with a CI. It "moved past" the baseline when the whole new
  CI lies above the whole baseline CI by more than ``gates.baseline_margin`` (default 0.02):
  ``new.ci_low - old.ci_high > margin``. Requiring separated intervals keeps a re-trained model with the same
  problem from failing on noise. A step worsening is charged to the top-ranked finding of its owner code.
  Findings that own no step (GD103, GD104, GD203, GD204, GD205, GD303...) are compared on presence and
  severity: their probes' warn and fail thresholds already grade their size.
- **The validation metric** is checked the same way, as a gate named ``baseline.val_metric``: it fails when
  the whole new CI lies below the whole baseline CI by more than the margin.
- Baseline findings that no longer appear are listed as **resolved** (write the baseline again to keep them
  from coming back unnoticed).
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._io import atomic_write_text, read_json
from .compare import check_report
from .errors import InputError
from .findings.finding import Finding, Severity
from .findings.policy import ERROR_CODE
from .gates import DEFAULT_MARGIN, GateResult, judge
from .stats import Estimate

if TYPE_CHECKING:
    from .report.report import Report

__all__ = [
    "DEFAULT_PATH",
    "baseline_from_report",
    "write_baseline",
    "load_baseline",
    "apply_baseline",
]

DEFAULT_PATH = ".gapdiag-baseline.json"
KIND = "gapdiag-baseline"
VERSION = 1
_PLACES = 3


def _r(x: Any) -> float | None:
    return None if x is None else round(float(x), _PLACES)


def _numbers(d: dict[str, Any]) -> dict[str, float | None]:
    return {k: _r(d.get(k)) for k in ("value", "ci_low", "ci_high")}


def _compared(f: dict[str, Any]) -> bool:
    return f.get("code") != ERROR_CODE and f.get("severity") in ("warn", "fail")


def baseline_from_report(report: dict[str, Any], which: str = "report") -> dict[str, Any]:
    """The baseline of a report dict (``Report.to_dict()`` or a JSON report): small, sorted, rounded.

    ``InputError`` (naming ``which`` file) when the report is not of a known shape."""
    check_report(report, which)
    try:
        numbers = _chain_numbers((report.get("gap") or {}).get("chain"))
    except (KeyError, TypeError, IndexError, ValueError):
        raise InputError(f"The {which} file's gap.chain is not of a known shape; audit again.") from None
    findings = sorted(
        (
            {
                "code": f["code"],
                "cause": f.get("cause", ""),
                "severity": f["severity"],
                "title": f.get("title", ""),
            }
            for f in report["findings"]
            if _compared(f)
        ),
        key=lambda e: (e["code"], e["cause"], -int(Severity.parse(e["severity"])), e["title"]),
    )
    return {"tool": "gapdiag", "kind": KIND, "version": VERSION, "findings": findings, "chain": numbers}


def _chain_numbers(chain: Any) -> dict[str, Any] | None:
    """The validation metric and every step of a report's gap chain, rounded (None without a chain)."""
    if not chain:
        return None
    last = chain["states"][-1]
    return {
        "val_metric": {"state": str(last["id"]), **_numbers(last)},
        "steps": {str(s["id"]): {"owner": s.get("owner"), **_numbers(s)} for s in chain["steps"]},
    }


def write_baseline(report_path: str | Path, out: str | Path = DEFAULT_PATH) -> Path:
    """Read a JSON report and write its baseline to ``out`` (atomically); returns the path."""
    data = baseline_from_report(read_json(report_path, "a gapdiag JSON report"), "report")
    return atomic_write_text(out, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def load_baseline(path: str | Path) -> dict[str, Any]:
    """A baseline file, or a whole JSON report read as its baseline; ``InputError`` says what else it needs."""
    data = read_json(path, "a gapdiag baseline", "write one with `gapdiag baseline write report.json`")
    if isinstance(data, dict) and data.get("kind") == KIND:
        if data.get("version") != VERSION:
            raise InputError(
                f"{path} is a gapdiag baseline of another version ({data.get('version')!r}); write it again with "
                "`gapdiag baseline write report.json`."
            )
        _check_baseline(data, path)
        return data
    if isinstance(data, dict) and data.get("tool") == "gapdiag":
        return baseline_from_report(data, "baseline")
    raise InputError(
        f"{path} is neither a gapdiag baseline nor a JSON report; write one with `gapdiag baseline write "
        "report.json`."
    )


def _numeric(d: Any) -> bool:
    """A dict whose value and CI bounds are numbers or null."""
    return isinstance(d, dict) and all(
        d.get(k) is None or (isinstance(d[k], (int, float)) and not isinstance(d[k], bool))
        for k in ("value", "ci_low", "ci_high")
    )


def _check_baseline(data: dict[str, Any], path: str | Path) -> None:
    """The fields the comparison reads, with their types; ``InputError`` naming the first that is not."""
    problem = None
    findings, chain = data.get("findings"), data.get("chain")
    if not isinstance(findings, list):
        problem = "findings is not a list"
    elif not all(
        isinstance(e, dict)
        and isinstance(e.get("code"), str)
        and e.get("severity") in ("info", "warn", "fail")
        for e in findings
    ):
        problem = "a finding has no code or no severity among info, warn, fail"
    elif chain is not None and not (
        isinstance(chain, dict)
        and isinstance(chain.get("steps", {}), dict)
        and all(_numeric(v) for v in chain.get("steps", {}).values())
        and _numeric(chain.get("val_metric") or {})
    ):
        problem = "chain is not an object of steps and val_metric with numbers"
    if problem:
        raise InputError(
            f"{path} is not a gapdiag baseline of a known shape: {problem}; write it again with "
            "`gapdiag baseline write report.json`."
        )


def _moved_past(new: dict[str, Any], old: dict[str, Any], margin: float) -> bool:
    """Did ``new`` (higher = worse) move past ``old`` by more than ``margin``, interval against interval?"""
    low = new.get("ci_low") if new.get("ci_low") is not None else new.get("value")
    high = old.get("ci_high") if old.get("ci_high") is not None else old.get("value")
    return low is not None and high is not None and low - high > margin


def _interval(d: dict[str, Any]) -> str:
    if d.get("ci_low") is None or d.get("ci_high") is None:
        return f"{d['value']:.3f}"
    return f"{d['value']:.3f} [{d['ci_low']:.3f}, {d['ci_high']:.3f}]"


def _match(findings: list[Finding], entries: list[dict[str, Any]]) -> tuple[dict[int, dict], list[dict]]:
    """Baseline status per compared finding (by position in ``findings``) and the unmatched (resolved) entries."""
    olds: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for e in entries:
        olds[(e["code"], e.get("cause", ""))].append(e)
    for group in olds.values():
        group.sort(key=lambda e: -int(Severity.parse(e["severity"])))
    news: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, f in enumerate(findings):
        if _compared({"code": f.code, "severity": str(f.severity)}):
            news[(f.code, f.cause)].append(i)
    status: dict[int, dict] = {}
    resolved: list[dict] = []
    for key, group in olds.items():
        mine = sorted(news.get(key, []), key=lambda i: -int(findings[i].severity))
        resolved += group[len(mine) :]
        for i, old in zip(mine, group):
            if findings[i].severity > Severity.parse(old["severity"]):
                status[i] = {
                    "status": "worse",
                    "change": f"severity {old['severity']} -> {findings[i].severity}",
                }
            else:
                status[i] = {"status": "accepted", "change": ""}
    for group in news.values():
        for i in group:
            status.setdefault(i, {"status": "new", "change": "not in the baseline"})
    return status, resolved


def _charge_steps(
    findings: list[Finding], status: dict[int, dict], chain: dict[str, Any], old_steps: dict, margin: float
) -> None:
    """Mark the top-ranked finding of each step owner whose step moved past its baseline as worse."""
    for step in chain.get("steps", []):
        old = old_steps.get(step["id"])
        if not step.get("owner") or old is None or not _moved_past(step, old, margin):
            continue
        owners = sorted(  # a new finding stays new: the step grew with it
            i
            for i in status
            if findings[i].code == step["owner"] and not findings[i].ignored and status[i]["status"] != "new"
        )
        if not owners:
            continue
        i = owners[0]  # findings are ranked: the first of the owner code is its strongest
        note = (
            f"the drop it owns ({step['id']}) grew from {_interval(old)} to {_interval(step)}, past the baseline "
            f"CI by more than {margin}"
        )
        previous = status[i]["change"] if status[i]["status"] == "worse" else ""
        status[i] = {"status": "worse", "change": "; ".join(c for c in (previous, note) if c)}


def _val_metric_gate(
    chain: dict[str, Any] | None, old: dict[str, Any] | None, margin: float
) -> GateResult | None:
    if not chain or not old or chain["states"][-1]["id"] != old.get("state") or old.get("value") is None:
        return None
    last = chain["states"][-1]
    floor = (old["ci_low"] if old.get("ci_low") is not None else old["value"]) - margin
    est = Estimate(
        last["value"],
        *(x if x is not None else float("nan") for x in (last["ci_low"], last["ci_high"])),
        n=int(last.get("n") or 0),
    )
    detail = (
        f"baseline {_interval(old)}; fails when the whole CI lies below the baseline's by more than {margin}"
    )
    return judge(
        "baseline.val_metric", "validation metric against the baseline", "min", floor, "lenient", est, detail
    )


def _summary_entry(f: Finding, change: str = "") -> dict[str, Any]:
    out = {"code": f.code, "cause": f.cause, "severity": str(f.severity), "title": f.title}
    return {**out, "change": change} if change else out


def apply_baseline(
    report: Report, baseline: dict[str, Any], *, source: str = "baseline", margin: float | None = None
) -> Report:
    """A copy of ``report`` compared with ``baseline`` (see the module docstring); ``report`` is not changed.

    ``margin`` defaults to the report's configured ``gates.baseline_margin``, else 0.02.
    """
    if margin is None:
        gates_cfg = ((report.meta.get("config") or {}).get("options") or {}).get("gates") or {}
        margin = float(gates_cfg.get("baseline_margin", DEFAULT_MARGIN))
    status, resolved = _match(report.findings, baseline.get("findings", []))
    chain = (report.gap or {}).get("chain")
    numbers = baseline.get("chain") or {}
    if chain:
        _charge_steps(report.findings, status, chain, numbers.get("steps") or {}, margin)
    # copies (the caller's report keeps its findings); info findings and probe errors are not compared
    copies = [dataclasses.replace(f, baseline=status.get(i)) for i, f in enumerate(report.findings)]
    by_id = {id(old): new for old, new in zip(report.findings, copies)}
    results = [
        dataclasses.replace(r, findings=[by_id.get(id(f), f) for f in r.findings]) for r in report.results
    ]
    gates = [g for g in report.gates if not g.name.startswith("baseline.")]
    gate = _val_metric_gate(chain, numbers.get("val_metric"), margin)
    summary = {
        "source": str(source),
        "margin": margin,
        "accepted": sum(1 for f in copies if f.accepted),
        "new": [_summary_entry(f) for f in copies if f.baseline and f.baseline["status"] == "new"],
        "worse": [
            _summary_entry(f, f.baseline["change"])
            for f in copies
            if f.baseline and f.baseline["status"] == "worse"
        ],
        "resolved": [{k: e.get(k, "") for k in ("code", "cause", "severity", "title")} for e in resolved],
    }
    return dataclasses.replace(
        report, findings=copies, results=results, gates=gates + ([gate] if gate else []), baseline=summary
    )
