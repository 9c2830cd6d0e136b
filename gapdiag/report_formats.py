"""The table of report formats (names, default file names, suffixes): no imports, so the CLI can read it
to parse ``--format`` without loading the renderers (numpy and everything after it)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ReportFormat", "FORMATS", "format_of_path"]


@dataclass(frozen=True)
class ReportFormat:
    """A report format: its name (``--format``), default file name, and the suffixes that select it."""

    name: str
    filename: str
    suffixes: tuple[str, ...]


#: Every format, in the order the CLI lists them.
FORMATS: dict[str, ReportFormat] = {
    f.name: f
    for f in (
        ReportFormat("html", "report.html", (".html", ".htm")),
        ReportFormat("json", "report.json", (".json",)),
        ReportFormat("markdown", "report.md", (".md",)),
        ReportFormat("junit", "report.xml", (".xml",)),
        ReportFormat("text", "report.txt", (".txt",)),
    )
}


def format_of_path(suffix: str) -> str | None:
    """The format a file suffix selects (".json" -> "json"), or None."""
    return next((f.name for f in FORMATS.values() if suffix.lower() in f.suffixes), None)
