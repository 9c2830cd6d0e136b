"""The self-contained HTML report: inline CSS, PNG and SVG figures, no network, no JavaScript.

Order (DESIGN §5): the verdict, the symptom as a waterfall of the gap chain and the most likely cause with its
strongest evidence picture on the first screen; then one card per cause, the gap in detail, the embedding
map, each probe's details and the appendix. Jinja2 autoescaping escapes every string a user supplies.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..findings.codes import CATALOGUE
from ..findings.finding import Finding, Severity
from ..probes.base import FigureSpec, ProbeResult, Status
from .causes import Cause, group_causes, named_items
from .chain import chain_of, change_text, state_text, waterfall_rows
from .formatting import fmt, headline, jsonable, labels_hint, num, step_text, symptom_text, with_ci
from .svg import embedding_map

if TYPE_CHECKING:
    from .report import Report

__all__ = ["render_html", "flatten"]

_MAP_FIGURE = ("class_gap", "class_gap_embedding_map")


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


@dataclass
class _Figure:
    probe: str
    id: str
    kind: str
    title: str
    caption: str
    uri: str = ""
    error: str = ""
    home: str = ""  # the anchor of the card that embeds it ("" = its probe's details)

    @property
    def anchor(self) -> str:
        return f"fig-{self.probe}-{self.id}"


@dataclass
class _CauseView:
    cause: Cause
    figures: list[_Figure]  # the ones this card embeds, strongest picture first
    linked: list[_Figure]  # shown in an earlier card: linked
    steps: list[dict[str, Any]] = field(default_factory=list)  # chain steps the cause owns
    anchors: list[str] = field(default_factory=list)  # codes whose first card this is (id="code-GD101")


@dataclass
class _ProbeView:
    result: ProbeResult
    label: str  # the worst thing it found: "fail", "warn", "info", "ok", "skipped", "error"
    figures: list[_Figure]
    linked: list[_Figure]


def _draw(spec: FigureSpec, probe: str) -> _Figure:
    from .figures import to_png

    fig = _Figure(probe, spec.id, spec.kind, spec.title, spec.caption)
    try:
        fig.uri = "data:image/png;base64," + base64.b64encode(to_png(spec)).decode("ascii")
    except Exception as exc:  # a figure that cannot be drawn must not lose the report
        fig.error = f"figure could not be drawn: {type(exc).__name__}: {exc}"
    return fig


def _probe_label(r: ProbeResult) -> str:
    if r.status != Status.OK:
        return str(r.status)
    counted = [f for f in r.findings if not f.ignored]
    return str(max(f.severity for f in counted)) if counted else "ok"


def _top_cause(causes: list[Cause], chain: dict[str, Any] | None, primary: Finding | None) -> Cause | None:
    """The card of the most likely cause: the chain's (largest owned share), else the top-ranked finding's."""
    from ..gap import LOOP_CODES

    code = (chain or {}).get("most_likely_cause")
    if primary is not None and primary.code in LOOP_CODES:
        code = primary.code
    for c in causes:
        if (code and code in c.codes) or (not code and any(f is primary for f in c.findings)):
            return c
    return None


def _views(report: Report, causes: list[Cause], chain: dict[str, Any] | None):
    """Each figure drawn once, embedded at the first card that shows it, else in its probe's details."""
    specs = {(r.probe, s.id): s for r in report.results for s in r.figures}
    kinds = {key: s.kind for key, s in specs.items()}
    drawn: dict[tuple[str, str], _Figure] = {}

    def draw(key: tuple[str, str]) -> _Figure:
        if key not in drawn:
            drawn[key] = _draw(specs[key], key[0])
        return drawn[key]

    cards, anchored = [], set()
    for c in causes:
        refs = c.figure_refs(kinds)
        linked = [drawn[r] for r in refs if r in drawn]
        figs = [draw(r) for r in refs if r not in drawn]
        for fig in figs:
            fig.home = c.anchor
        anchors = [code for code in c.codes if code not in anchored]
        anchored.update(anchors)
        # a step is owned by a code; its card is the first (strongest) one of that code
        steps = [s for s in (chain or {}).get("steps", []) if s.get("owner") in anchors]
        cards.append(_CauseView(c, figs, linked, steps, anchors))
    probes = []
    for r in report.results:
        keys = [(r.probe, s.id) for s in r.figures if (r.probe, s.id) != _MAP_FIGURE]
        linked = [drawn[k] for k in keys if k in drawn]
        probes.append(_ProbeView(r, _probe_label(r), [draw(k) for k in keys if k not in drawn], linked))
    return cards, probes


def _map(report: Report):
    result = report.result(_MAP_FIGURE[0])
    spec = next((s for s in (result.figures if result else []) if s.id == _MAP_FIGURE[1]), None)
    if spec is None:
        return None, None
    named = named_items([f for f in report.findings if not f.ignored])
    return embedding_map(spec.data, named) or None, spec


def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gapdiag.report", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        fmt=fmt, flatten=flatten, headline=headline, num=num, with_ci=with_ci, change_text=change_text,
        state_text=state_text, catalogue=CATALOGUE, Status=Status, Severity=Severity,
    )  # fmt: skip
    return env


def _larger_unexplained(chain: dict[str, Any] | None) -> str:
    """The largest unexplained drop of the chain in words, when it is larger than the share the most likely
    cause owns (a reader of the cause card alone would take the cause for the whole story); else ''."""
    if not chain:
        return ""
    owned = sum(
        s["value"]
        for s in chain["steps"]
        if s.get("owner") == chain.get("most_likely_cause") and s.get("significant") and s["value"] > 0
    )
    larger = [s for s in chain["steps"] if s.get("status") == "unexplained" and s["value"] > owned]
    return step_text(max(larger, key=lambda s: s["value"])) if larger else ""


def render_html(report: Report) -> str:
    chain = chain_of(report.gap)
    causes = group_causes(report.findings)
    top = _top_cause(causes, chain, report.primary_cause)
    cards, probes = _views(report, causes, chain)
    top_view = next((v for v in cards if v.cause is top), None)
    rest = [v for v in cards if v is not top_view]
    the_map, map_spec = _map(report)
    gap = jsonable(report.gap)
    return (
        _environment()
        .get_template("report.html")
        .render(
            report=report,
            verdict=report.verdict,
            meta=jsonable(report.meta),
            gap=gap,
            chain=chain,
            symptom=symptom_text(gap),
            labels_hint=labels_hint(report.results),
            rows=waterfall_rows(chain) if chain else [],
            top=top_view,
            unexplained=_larger_unexplained(chain),
            cards=[v for v in rest if v.cause.severity >= Severity.WARN],
            notes=[v for v in rest if v.cause.severity < Severity.WARN],
            errors=report.errored,
            probes=probes,
            the_map=the_map,
            map_spec=map_spec,
        )
    )
