"""The ready pipelines in examples/ci parse, and every gapdiag command they run exists with those flags."""

import re
import shlex
from pathlib import Path

import pytest
import yaml

from gapdiag.cli import build_parser
from gapdiag.report.formatting import FORMATS

CI = Path(__file__).resolve().parents[2] / "examples" / "ci"
PIPELINES = sorted(CI.glob("*.yml"))
_SCRIPT_KEYS = {"run", "script", "before_script", "after_script"}
_SEPARATORS = {";", "&&", "||", "|", "(", ")", "&"}
_KEYWORDS = {"then", "do", "else", "if", "!", "elif"}


def _scripts(node, key=None):
    """Every shell script in a workflow: the values of run / script / before_script / after_script."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _scripts(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from _scripts(v, key)
    elif isinstance(node, str) and key in _SCRIPT_KEYS:
        yield node


def _commands(script: str):
    """Token lists of the simple commands in a shell script: continuation lines joined, then every line split
    at ; && || | (shell keywords such as ``then`` dropped from the front)."""
    for line in script.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        command: list[str] = []
        for token in [*lexer, ";"]:
            if token in _SEPARATORS:
                while command and command[0] in _KEYWORDS:
                    command = command[1:]
                if command:
                    yield command
                command = []
            else:
                command.append(token)


def _variables(doc) -> dict[str, str]:
    return {str(k): str(v) for k, v in {**(doc.get("env") or {}), **(doc.get("variables") or {})}.items()}


def _gapdiag_commands(path: Path):
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return doc, [c for s in _scripts(doc) for c in _commands(s) if c[0] == "gapdiag"]


@pytest.mark.parametrize("path", PIPELINES, ids=[p.name for p in PIPELINES])
def test_every_gapdiag_command_exists_with_its_flags(path):
    _, commands = _gapdiag_commands(path)
    assert commands, f"{path.name} runs no gapdiag command"
    parser = build_parser()
    for command in commands:
        try:
            parser.parse_args(command[1:])
        except SystemExit as exc:  # argparse: unknown command or flag, or a bad value
            pytest.fail(
                f"{path.name}: `{shlex.join(command)}` is not a valid gapdiag command (exit {exc.code})"
            )


@pytest.mark.parametrize("path", PIPELINES, ids=[p.name for p in PIPELINES])
def test_the_gate_publishes_html_junit_and_markdown_and_uses_the_baseline(path):
    doc, commands = _gapdiag_commands(path)
    parser = build_parser()
    gate = [parser.parse_args(c[1:]) for c in commands if c[1] == "audit"]
    gate = [a for a in gate if a.baseline]
    assert len(gate) == 1, "one audit gates on the committed baseline"
    args = gate[0]
    assert {"html", "junit", "markdown"} <= set(args.format.split(",")) and args.fail_on
    text = path.read_text(encoding="utf-8")
    for name, value in _variables(doc).items():
        text = text.replace(f"${{{name}}}", value).replace(f"${name}", value)
    out = re.sub(r"\$\{?(\w+)\}?", lambda m: _variables(doc).get(m.group(1), m.group(0)), args.out)
    for fmt in ("junit", "markdown"):
        assert f"{out}/{FORMATS[fmt].filename}" in text, (
            f"{path.name} never reads {out}/{FORMATS[fmt].filename}"
        )
    assert f"{out}/" in text  # the folder (with the HTML report) is uploaded as an artifact
    assert ".gapdiag-baseline.json" in {
        c[c.index("--out") + 1] for c in commands if c[1:3] == ["baseline", "write"]
    }


def test_github_writes_the_step_summary_and_fails_on_the_gate():
    text = (CI / "github-actions.yml").read_text(encoding="utf-8")
    assert '>> "$GITHUB_STEP_SUMMARY"' in text and "exit ${{ steps.audit.outputs.exit_code }}" in text


def test_the_command_parser_rejects_what_does_not_exist():
    bad = list(_commands("set +e; gapdiag audit x:y --baselne b.json && echo done"))
    assert bad[1][:2] == ["gapdiag", "audit"] and bad[2] == ["echo", "done"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(bad[1][1:])
