"""Reports and their renderers (JSON, HTML, Markdown, JUnit XML, console text)."""

from .formatting import FORMATS
from .html import render_html
from .renderers import render_json, render_junit, render_markdown, render_text
from .report import SCHEMA_VERSION, Report

__all__ = [
    "Report",
    "SCHEMA_VERSION",
    "FORMATS",
    "render_json",
    "render_html",
    "render_markdown",
    "render_junit",
    "render_text",
]
