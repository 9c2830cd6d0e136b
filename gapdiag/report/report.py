"""``Report``: the findings of an audit, ranked, with the verdict, the gap decomposition and metadata.

A report is data; renderers (one pure function per format) turn it into text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._io import atomic_write_text
from ..errors import ConfigError
from ..findings.finding import Finding, Severity
from ..findings.policy import ERROR_CODE, exit_code_of, gates, rank_key, verdict_of
from ..gates import GateResult
from ..probes.base import ProbeResult, Status
from .formatting import FORMATS, format_of_path, jsonable

__all__ = ["Report", "SCHEMA_VERSION"]

SCHEMA_VERSION = "1.0"


@dataclass
class Report:
    """The result of :func:`gapdiag.audit`.

    Attributes
    ----------
    findings : list of Finding, ranked (most likely cause first)
    results : list of ProbeResult, one per probe that was asked for
    gap : dict, the protocol grid and the decomposition of the observed gap (empty if not measured)
    meta : dict, config, versions, sizes, timings
    fail_on : the severity that gates ("warn" or "fail")
    gates : list of GateResult, the numeric gates configured under ``gates`` (:mod:`gapdiag.gates`)
    baseline : dict or None, what changed against the baseline it was compared with (:mod:`gapdiag.baseline`):
        ``{source, margin, accepted, new[], worse[], resolved[]}``
    """

    findings: list[Finding]
    results: list[ProbeResult]
    gap: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    fail_on: str = "fail"
    gates: list[GateResult] = field(default_factory=list)
    baseline: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.findings = sorted(self.findings, key=rank_key)

    # -- reading ----------------------------------------------------------------------------------------
    @property
    def verdict(self) -> str:
        """``fail`` if any non-ignored fail, else ``warn`` if any non-ignored warn, else ``pass``."""
        return verdict_of(self.findings, self.gates)

    @property
    def exit_code(self) -> int:
        return exit_code_of(self.findings, self.fail_on, self.gates)

    @property
    def errored(self) -> list[Finding]:
        return [f for f in self.findings if f.code == ERROR_CODE]

    @property
    def metrics(self) -> dict[str, dict[str, Any]]:
        """Metrics per probe name."""
        return {r.probe: r.metrics for r in self.results if r.status == Status.OK}

    @property
    def primary_cause(self) -> Finding | None:
        """The most likely cause: the finding that owns the largest share of the drop in the gap chain, else
        the top-ranked non-ignored warn/fail finding about the model (not a probe error). A warned finding
        about the training loop (GD105) comes first when only a difference of measurement owns the chain: the
        loop's own training number, which the chain cannot measure, is then what the gap is."""
        from ..gap import LOOP_CODES, MEASUREMENT_CODES

        owner = (self.gap.get("chain") or {}).get("most_likely_cause")
        loop = [
            f for f in self.findings if f.code in LOOP_CODES and not f.ignored and f.severity >= Severity.WARN
        ]
        if loop and (owner is None or owner in MEASUREMENT_CODES):
            return loop[0]  # the training loop's own number, which the chain cannot measure, is the gap
        for f in self.findings:
            if owner is not None and f.code == owner and not f.ignored:
                return f
        for f in self.findings:
            if not f.ignored and f.code != ERROR_CODE and f.severity >= Severity.WARN:
                return f
        return None

    def gating(self) -> list[Finding]:
        """The findings that make the exit code 1 under ``fail_on`` (non-ignored, at or above the gate)."""
        return [f for f in self.findings if gates(f, self.fail_on)]

    def by_code(self, code: str) -> list[Finding]:
        return [f for f in self.findings if f.code == code]

    def codes(self, *, min_severity: Severity = Severity.INFO) -> set[str]:
        """Codes of non-ignored findings at or above ``min_severity``."""
        return {f.code for f in self.findings if not f.ignored and f.severity >= min_severity}

    def result(self, probe: str) -> ProbeResult | None:
        return next((r for r in self.results if r.probe == probe), None)

    def findings_frame(self):
        """The findings as a pandas DataFrame (one row each: code, severity, title, message, probe, ignored)."""
        import pandas as pd

        columns = ["code", "severity", "title", "message", "probe", "ignored"]
        rows = [
            {c: str(f.severity) if c == "severity" else getattr(f, c) for c in columns} for f in self.findings
        ]
        return pd.DataFrame(rows, columns=columns)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with a versioned schema (see docs/report.md): ``json.dumps`` takes it as it is.

        Numbers are plain Python floats (rounded to 6 places; NaN and inf become None), estimates are dicts,
        arrays are lists.
        """
        cause = self.primary_cause
        data = {
            "schema_version": SCHEMA_VERSION,
            "tool": "gapdiag",
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "fail_on": self.fail_on,
            "primary_cause": None
            if cause is None
            else {"code": cause.code, "title": cause.title, "message": cause.message},
            "gap": self.gap,
            "findings": [f.to_dict() for f in self.findings],
            "probes": [r.to_dict() for r in self.results],
            "meta": self.meta,
            "gates": [g.to_dict() for g in self.gates],
            "baseline": self.baseline,
        }
        return jsonable(data)

    # -- writing ----------------------------------------------------------------------------------------
    def render(self, fmt: str) -> str:
        from . import html, renderers

        fns = {
            "json": renderers.render_json,
            "html": html.render_html,
            "markdown": renderers.render_markdown,
            "junit": renderers.render_junit,
            "text": renderers.render_text,
        }
        if fmt not in FORMATS:
            raise ConfigError(f"Unknown report format {fmt!r}; use one of {', '.join(FORMATS)}.")
        return fns[fmt](self)

    def save(self, path: str | Path, format: str | None = None) -> Path:
        """Write the report atomically; the format follows the suffix (.json .html .md .xml .txt) unless given."""
        path = Path(path)
        fmt = format or format_of_path(path.suffix)
        if fmt is None:
            suffixes = ", ".join(s for f in FORMATS.values() for s in f.suffixes)
            raise ConfigError(
                f"Cannot tell the report format from {path.name!r}; use a suffix among {suffixes} or pass format=."
            )
        return atomic_write_text(path, self.render(fmt))

    def summary(self) -> str:
        """The console summary."""
        return self.render("text")

    def __repr__(self) -> str:
        return f"Report(verdict={self.verdict!r}, findings={[f.code for f in self.findings]})"

    def _repr_html_(self) -> str:  # notebooks
        return self.render("html")
