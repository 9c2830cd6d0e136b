"""Reports and their renderers (JSON, HTML, Markdown, JUnit XML, console text)."""

from .renderers import render_html, render_json, render_junit, render_markdown, render_text
from .report import FORMATS, SCHEMA_VERSION, Report

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
