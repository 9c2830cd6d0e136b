"""Well-formed outputs for any string: control characters, Markdown syntax, HTML and terminal escapes in
split names, attribute names, probe names, messages and reasons."""

import json
import re
import xml.etree.ElementTree as ET

import pytest

from gapdiag import Finding, Severity
from gapdiag.probes.base import ProbeResult
from gapdiag.report import Report

HOSTILE = [
    "\x1b[2J\x1b[31mred\x1b[0m",  # clear screen, colour
    "\x1b]8;;https://evil.example\x07click\x1b]8;;\x07",  # OSC 8 hyperlink
    "\x9b31m",  # one-byte CSI
    "bell\x07 null\x00 backspace\x08 vt\x0b ff\x0c cr\r",
    "bidi \u202eevil\u202c \u2066iso\u2069",
    "lone \udcff surrogate",
    "![pixel](https://evil.example/p.png)",
    "[click](https://evil.example) <https://evil.example> https://evil.example www.evil.example",
    '<img src=x onerror="alert(1)"> <script>alert(1)</script> <!-- c -->',
    "**bold** _em_ `code` ~~s~~ | pipe | # heading",
    "- list\n> quote\n1. item",
    "&lt;b&gt; &amp; &#60;",
    "@someone please look",
]


def _hostile_report(text):
    finding = Finding(
        "GD101",
        Severity.FAIL,
        f"Shortcut on {text}",
        f"attribute {text!s} AUC 0.97 on split {text}",
        probe="shortcut",
        evidence={"attribute": text},
        remediation=[f"augment {text}"],
    )
    results = [
        ProbeResult("shortcut", "leakage", "ok", findings=[finding], codes=("GD101",)),
        ProbeResult("mode", "protocol", "skipped", reason=f"needs {text}", codes=("GD306",)),
        ProbeResult("geometry", "embedding", "error", reason=f"crashed on {text}", codes=("GD203",)),
    ]
    gap = {"symptom": f"Symptom on {text}", "sentence": f"Of the drop on {text}"}
    return Report([finding], results, gap=gap, meta={"split": text})


@pytest.mark.parametrize("text", HOSTILE)
def test_junit_parses_whatever_the_strings(text):
    xml = _hostile_report(text).render("junit")
    root = ET.fromstring(xml.encode("utf-8"))  # raises on a character XML 1.0 forbids
    assert root.find("testsuite") is not None
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f]", xml)


@pytest.mark.parametrize("text", HOSTILE)
def test_console_never_passes_a_terminal_escape(text):
    out = _hostile_report(text).render("text")
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", out)
    if "\x1b" in text:
        assert "\\x1b" in out  # shown, not executed


@pytest.mark.parametrize("text", HOSTILE)
def test_markdown_renders_user_strings_as_text(text):
    md = _hostile_report(text).render("markdown")
    # no syntax from the user survives unescaped: images, links, autolinks, raw HTML, emphasis, code
    for syntax in ("![", "](", "<img", "<script", "<https", "<!--", "**bold**", "_em_", "`code`", "~~s~~"):
        assert not re.search(r"(?<!\\)" + re.escape(syntax), md), syntax
    assert "://" not in md and "www.evil" not in md
    assert "@someone" not in md  # a mention is broken with a word joiner
    assert "&lt;b&gt;" not in md.replace("&amp;lt;b&amp;gt;", "")  # entities shown as typed
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", md)
    # every table row keeps its three cells: a user pipe cannot add a column
    for row in (line for line in md.splitlines() if line.startswith("| fail")):
        assert len(re.findall(r"(?<!\\)\|", row)) == 4
    # user text stays inline: no line of the body starts a heading, list or quote of the user's
    for line in md.splitlines()[1:]:
        assert not re.match(r"\s*(#|-\s+list|1\.\s+item|>\s+quote)", line), line


@pytest.mark.parametrize("text", HOSTILE)
def test_json_and_to_dict_round_trip(text):
    report = _hostile_report(text)
    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert (
        json.loads(report.render("json"))["findings"][0]["evidence"]["attribute"]
        == data["findings"][0]["evidence"]["attribute"]
    )


@pytest.mark.parametrize("text", HOSTILE)
def test_html_escapes_every_user_string(text):
    html = _hostile_report(text).render("html")
    assert "<script>alert" not in html and "<img src=x" not in html and "<!-- c -->" not in html
    assert 'href="https://evil' not in html and 'src="https://evil' not in html
    if "<img" in text:
        assert "&lt;img src=x" in html


def test_report_save_writes_every_format_with_hostile_strings(tmp_path):
    report = _hostile_report("".join(HOSTILE))
    for suffix in (".json", ".html", ".md", ".xml", ".txt"):
        path = report.save(tmp_path / f"r{suffix}")
        assert path.read_bytes().decode("utf-8")
    ET.parse(tmp_path / "r.xml")
    json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
