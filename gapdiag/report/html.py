"""The self-contained HTML report: inline CSS and PNG figures, no network, no required JavaScript.

Jinja2 autoescaping escapes every string a user supplies (split names, attribute columns, messages).
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from ..findings.codes import CATALOGUE
from ..findings.finding import Severity
from ..probes.base import FigureSpec, Status
from .formatting import chain_text, fmt, headline, jsonable, symptom_text

if TYPE_CHECKING:
    from .report import Report

__all__ = ["render_html", "flatten"]


def flatten(obj: Any, prefix: str = "", limit: int = 60) -> list[tuple[str, str]]:
    """Nested metrics/evidence as (dotted key, formatted value) rows for a table; long lists are cut."""
    rows: list[tuple[str, str]] = []
    obj = jsonable(obj)

    def walk(value: Any, key: str) -> None:
        if len(rows) >= limit:
            return
        if isinstance(value, dict) and not ({"value", "ci_low", "ci_high"} <= set(value)):
            for k, v in value.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(value, list) and value and isinstance(value[0], (dict, list)):
            rows.append((key, f"{len(value)} entries"))
        elif isinstance(value, list):
            shown = ", ".join(fmt(v) for v in value[:8])
            rows.append((key, f"[{shown}{', ...' if len(value) > 8 else ''}]"))
        else:
            rows.append((key, fmt(value)))

    walk(obj, prefix)
    return rows


def _figure_uri(spec: FigureSpec) -> str:
    from .figures import to_png

    return "data:image/png;base64," + base64.b64encode(to_png(spec)).decode("ascii")


def _index_of(findings: list) -> Any:
    positions = {id(f): i for i, f in enumerate(findings)}
    return lambda f: positions.get(id(f))


def render_html(report: Report) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gapdiag.report", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    figures: dict[tuple[str, str], dict[str, str]] = {}
    for r in report.results:
        for spec in r.figures:
            try:
                uri = _figure_uri(spec)
                err = ""
            except Exception as exc:  # a figure that cannot be drawn must not lose the report
                uri, err = "", f"figure could not be drawn: {type(exc).__name__}: {exc}"
            figures[(r.probe, spec.id)] = {
                "uri": uri,
                "title": spec.title,
                "caption": spec.caption,
                "error": err,
            }
    # each figure is embedded once: at the first finding that shows it, else in its probe's details;
    # later findings link to it
    first_shown: dict[tuple[str, str], int] = {}
    for i, f in enumerate(report.findings):
        for fid in f.figures:
            if (f.probe, fid) in figures:
                first_shown.setdefault((f.probe, fid), i)
    shown_in_findings = set(first_shown)
    sections = {
        sev: [f for f in report.findings if f.severity == sev and f.code != "GD900"]
        for sev in (Severity.FAIL, Severity.WARN, Severity.INFO)
    }
    template = env.get_template("report.html")
    return template.render(
        report=report,
        verdict=report.verdict,
        cause=report.primary_cause,
        gap={**jsonable(report.gap), "symptom": symptom_text(report.gap), "sentence": chain_text(report.gap)},
        sections=sections,
        errors=report.errored,
        catalogue=CATALOGUE,
        figures=figures,
        shown_in_findings=shown_in_findings,
        first_shown=first_shown,
        finding_index=_index_of(report.findings),
        results=report.results,
        Status=Status,
        flatten=flatten,
        fmt=fmt,
        headline=headline,
        meta=jsonable(report.meta),
    )
