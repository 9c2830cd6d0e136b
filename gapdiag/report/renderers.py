"""One pure renderer per format: each takes a ``Report`` and returns text. None of them computes metrics."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

from ..findings.codes import CATALOGUE
from ..findings.policy import gates
from ..probes.base import Status
from .chain import chain_of, text_waterfall
from .formatting import headline, jsonable, labels_hint, symptom_text
from .gating import finding_flag, gate_parts, gate_text, gating_lines

if TYPE_CHECKING:
    from .report import Report

__all__ = [
    "render_json",
    "render_text",
    "render_markdown",
    "render_junit",
    "terminal_safe",
]

# Meta keys that change from run to run (wall-clock); kept out of the JSON so it is byte-stable per seed.
_VOLATILE = ("timings", "cache")


def render_json(report: Report) -> str:
    data = report.to_dict()
    data["meta"] = {k: v for k, v in data["meta"].items() if k not in _VOLATILE}
    return json.dumps(jsonable(data), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _gap_lines(report: Report) -> list[str]:
    """The symptom, then the gap chain as text bars (or why the chain was not measured)."""
    chain = chain_of(report.gap)
    return [line for line in [symptom_text(report.gap or {})] if line] + (
        [] if chain is None else text_waterfall(chain)
    )


def render_text(report: Report) -> str:
    out = [
        f"gapdiag verdict: {report.verdict.upper()} (gating at {report.fail_on}; exit code {report.exit_code})"
    ]
    if report.errored:
        out.append(
            f"  Probe error (GD900) in {', '.join(f.probe for f in report.errored)}: those checks did not run."
        )
    out += ["  " + line for line in gating_lines(report.baseline, report.gates)]
    out += ["  " + line for line in _gap_lines(report)]
    cause = report.primary_cause
    if cause is not None:
        out.append(f"  Most likely cause: {cause.code} {cause.title}")
    hint = labels_hint(report.results)
    if hint:
        out.append(f"  {hint}")
    if report.findings:
        out.append("")
        out.append("Findings:")
    for f in report.findings:
        out.append(f"  {str(f.severity).upper():4} {f.code} {f.title}{finding_flag(f)}")
        out.append(f"       {headline(f.message)}")
    skipped = [r for r in report.results if r.status == Status.SKIPPED]
    if skipped:
        out.append("")
        out.append("Skipped probes:")
        out += [f"  {r.probe}: {r.reason}" for r in skipped]
    if not report.findings:
        out.append("No findings: every probe that ran came out clean.")
    else:
        out.append("")
        out.append("Each finding's full message, evidence and remedies are in the HTML and JSON reports.")
    return terminal_safe("\n".join(out) + "\n")


def render_markdown(report: Report) -> str:
    icon = {"pass": "✅", "warn": "⚠️", "fail": "❌"}[report.verdict]
    out = [f"## gapdiag: {icon} {report.verdict.upper()}", ""]
    if report.errored:
        names = ", ".join(_md_code(f.probe) for f in report.errored)
        out += [
            f"**Probe error (GD900)** in {names}: those checks did not run (exit code {report.exit_code}).",
            "",
        ]
    out += _gating_markdown(report)
    lines = _gap_lines(report)
    out += [f"> {_md(line)}" for line in lines[:1]]
    if lines[1:]:
        out += ["", "```text", *lines[1:], "```"]
    hint = labels_hint(report.results)
    if hint:
        out += ["", f"*{_md(hint)}*"]
    if report.findings:
        out += ["", "| severity | code | finding |", "|---|---|---|"]
        for f in report.findings:
            flag = finding_flag(f).strip()[
                1:-1
            ]  # "(ignored: reason)": the parentheses are ours, the rest escaped
            ign = f" *({_md(flag)})*" if flag else ""
            out.append(f"| {f.severity} | {_md_code(f.code)} | **{_md(f.title)}**{ign}<br>{_md(f.message)} |")
    else:
        out += ["", "No findings."]
    skipped = [r for r in report.results if r.status == Status.SKIPPED]
    if skipped:
        out += ["", "<details><summary>Skipped probes</summary>", ""]
        out += [f"- {_md_code(r.probe)}: {_md(r.reason)}" for r in skipped]
        out += ["", "</details>"]
    return "\n".join(out) + "\n"


# -- making any string safe for its format ----------------------------------------------------------------

# C0 controls but tab and newline, DEL, C1 controls (0x9b is a one-byte CSI on some terminals), and the
# bidirectional overrides and isolates that reorder what a terminal or a diff shows
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]")


def _visible(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: str) -> str:
    """``text`` with every control character, escape sequence introducer and bidi override shown as
    ``\\x1b``-style text: nothing a user supplied can move the cursor, recolour or rewrite the terminal.

    The same set covers every character XML 1.0 forbids, so JUnit XML goes through it too."""
    return _UNSAFE.sub(_visible, str(text))


# Markdown: every character that can open inline syntax (emphasis, code, links, images, raw HTML, tables,
# entities) is escaped; a bare URL, www. address or @mention is broken with an entity or a word joiner, so
# neither GitHub's autolinker nor its mentions see it; newlines become spaces (user text stays inline).
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#!|~<>])")
_MD_BLOCK_START = re.compile(r"^(\s*)([-+=]|\d+[.)])")


def _md(text: str) -> str:
    """A user-supplied string as literal Markdown text (inline, in a table cell, list item or quote)."""
    text = terminal_safe(str(text)).replace("\r", " ").replace("\n", " ").replace("\t", " ")
    text = text.replace("&", "&amp;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    text = text.replace("://", "&#58;//").replace("www.", "www&#46;")
    text = re.sub(r"@(?=\w)", "@\u2060", text)
    return _MD_BLOCK_START.sub(r"\1\\\2", text)


def _md_code(text: str) -> str:
    """A short identifier (a probe name, a code) as a Markdown code span that nothing can close early."""
    text = terminal_safe(str(text)).replace("`", "'").replace("|", "\\|").replace("\n", " ")
    return f"`{text}`"


def render_junit(report: Report) -> str:
    """One test case per (probe, code). A gating finding is a <failure>, a probe crash an <error>, a skipped
    probe <skipped>; a finding below the gate passes with its message in <system-out>, as the exit code does."""
    cases = []
    n_fail = n_err = n_skip = 0
    for r in report.results:
        codes = r.codes or tuple(sorted({f.code for f in r.findings}))
        for code in codes:
            name = f"{code} {CATALOGUE[code].title}" if code in CATALOGUE else code
            attrs = f'classname={quoteattr("gapdiag." + r.probe)} name={quoteattr(name)} time="{r.duration_s / max(len(codes), 1):.3f}"'
            body = ""
            if r.status == Status.ERROR:
                n_err += 1
                body = f'<error message={quoteattr(r.reason)} type="GD900">{xml_escape(r.reason)}</error>'
            elif r.status == Status.SKIPPED:
                n_skip += 1
                body = f"<skipped message={quoteattr(r.reason)}/>"
            else:
                mine = [f for f in r.findings if f.code == code]
                failing = [f for f in mine if gates(f, report.fail_on)]
                if failing:
                    n_fail += 1
                    msg = "; ".join(f"{f.message}{finding_flag(f)}" for f in failing)
                    body = f"<failure message={quoteattr(failing[0].title)} type={quoteattr(str(failing[0].severity))}>{xml_escape(msg)}</failure>"
                elif mine:
                    text = "\n".join(f"{str(f.severity).upper()}{finding_flag(f)}: {f.message}" for f in mine)
                    body = f"<system-out>{xml_escape(text)}</system-out>"
            cases.append(f"    <testcase {attrs}>{body}</testcase>" if body else f"    <testcase {attrs}/>")
    gate_cases, gate_fail, gate_err = _junit_gates(report)
    cases += gate_cases
    n_fail, n_err = n_fail + gate_fail, n_err + gate_err
    header = f'<testsuite name="gapdiag" tests="{len(cases)}" failures="{n_fail}" errors="{n_err}" skipped="{n_skip}">'
    props = f'    <properties><property name="verdict" value="{report.verdict}"/><property name="exit_code" value="{report.exit_code}"/></properties>'
    return terminal_safe(  # XML 1.0 forbids most control characters, even escaped
        "\n".join(
            [
                '<?xml version="1.0" encoding="UTF-8"?>',
                "<testsuites>",
                "  " + header,
                props,
                *cases,
                "  </testsuite>",
                "</testsuites>",
            ]
        )
        + "\n"
    )


def _gating_markdown(report: Report) -> list[str]:
    """The baseline comparison as a quote and the numeric gates as a table (nothing when neither applies)."""
    out = [f"> {_md(line)}" for line in gating_lines(report.baseline, [])]
    if report.gates:
        out += ([""] if out else []) + ["| gate | result | measured | rule |", "|---|---|---|---|"]
        for g in report.gates:
            icon = {"passed": "✅", "failed": "❌"}.get(g.status, "⚠️")
            measured, rule = gate_parts(g)
            what = _md(g.label + (f" ({g.detail})" if g.detail else ""))
            out.append(
                f"| {_md_code(g.name)} | {icon} {g.status} | {what}: {measured or 'n/a'} | {_md(rule) or 'n/a'} |"
            )
    return out + ([""] if out else [])


def _junit_gates(report: Report) -> tuple[list[str], int, int]:
    """One test case per numeric gate: a failed gate is a <failure>, an unmeasured one an <error>."""
    cases, n_fail, n_err = [], 0, 0
    for g in report.gates:
        attrs = f'classname="gapdiag.gates" name={quoteattr(g.name)} time="0.000"'
        text = gate_text(g)
        if g.status == "failed":
            n_fail += 1
            body = f'<failure message={quoteattr(text)} type="gate">{xml_escape(text)}</failure>'
        elif g.status == "unmeasured":
            n_err += 1
            body = f'<error message={quoteattr(text)} type="gate">{xml_escape(text)}</error>'
        else:
            body = f"<system-out>{xml_escape(text)}</system-out>"
        cases.append(f"    <testcase {attrs}>{body}</testcase>")
    return cases, n_fail, n_err
