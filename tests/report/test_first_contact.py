"""What a new user meets first: the README tells the truth (its demo block is the demo's real output, its
examples run), the JSON schema ships and its page is generated from it, every CLI argument has help, and
`make demo` installs only what the demo needs."""

import argparse
import json
import math
import re
from importlib.resources import files
from pathlib import Path

import pytest

from gapdiag import Finding, Severity
from gapdiag.probes.base import ProbeResult
from gapdiag.report import Report

ROOT = Path(__file__).resolve().parents[2]


def _schema() -> dict:
    return json.loads(
        files("gapdiag.report").joinpath("schema/report.schema.json").read_text(encoding="utf-8")
    )


def _validate(data: dict) -> None:
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(_schema())
    jsonschema.validate(data, _schema(), cls=jsonschema.Draft202012Validator)


def test_schema_ships_with_the_package():
    assert "report/schema/*.json" in (ROOT / "setup.cfg").read_text(encoding="utf-8")
    assert _schema()["properties"]["schema_version"]["const"] == Report([], []).to_dict()["schema_version"]


def test_schema_page_is_generated_from_the_schema(docs_tools):
    page = (ROOT / "docs" / "report-schema.md").read_text(encoding="utf-8")
    assert page == docs_tools.schema_markdown(_schema()), (
        "docs/report-schema.md is out of date: run make docs"
    )


def test_a_report_with_a_chain_validates(chain, grid):
    f = Finding(
        "GD101", Severity.FAIL, "t", "m", probe="shortcut", evidence={"auc": 0.9}, cause="artifact:tint"
    )
    report = Report(
        [f], [ProbeResult("shortcut", "leakage", "ok", findings=[f])], gap={"chain": chain, "grid": grid}
    )
    _validate(json.loads(report.render("json")))
    broken = json.loads(report.render("json"))
    broken["gap"]["chain"]["steps"][0]["status"] = "mysterious"
    with pytest.raises(Exception, match="mysterious"):
        _validate(broken)


@pytest.mark.xdist_group("demo")
def test_the_demos_json_validates(demo):
    _validate(json.loads((demo[2] / "report.json").read_text(encoding="utf-8")))


_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?%?(?!\w)")  # "GD102" and "3x32" are words


def _same_but_float_rounding(printed: str, written: str) -> bool:
    """The words of both texts are equal and each number agrees within what another CPU's float rounding moves
    (the demo trains its model in-process: a CPU with other vector units sums in another order)."""
    if _NUMBER.split(printed) != _NUMBER.split(written):
        return False

    def value(token: str) -> float:
        return float(token[:-1]) / 100 if token.endswith("%") else float(token)

    return all(
        math.isclose(value(a), value(b), rel_tol=0.05, abs_tol=0.02)
        for a, b in zip(_NUMBER.findall(printed), _NUMBER.findall(written), strict=True)
    )


@pytest.mark.xdist_group("demo")
def test_readme_demo_block_is_the_demos_real_output(demo, docs_tools):
    block = docs_tools.demo_block(demo[1], demo[2])
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start, end = (
        readme.index(docs_tools.DEMO_START),
        readme.index(docs_tools.DEMO_END) + len(docs_tools.DEMO_END),
    )
    written = readme[start:end]
    assert _same_but_float_rounding(block, written), (
        "README's demo block differs from what the demo prints: run make docs"
    )


def test_the_demo_block_comparison_tolerates_rounding_but_not_other_words():
    assert _same_but_float_rounding("drop 0.25 [0.23, 0.27]: GD102", "drop 0.25 [0.24, 0.27]: GD102")
    assert not _same_but_float_rounding("drop 0.25 [0.23, 0.27]: GD102", "drop 0.35 [0.33, 0.37]: GD102")
    assert not _same_but_float_rounding("drop 0.25: GD102", "drop 0.25: GD101")
    assert _same_but_float_rounding("14% [11%, 18%]", "14% [10%, 18%]")
    assert not _same_but_float_rounding("14% [11%, 18%]", "24% [21%, 28%]")


def _readme_examples() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Getting the most out of gapdiag", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_has_a_runnable_example_per_input_that_unlocks_probes():
    setup, *examples = _readme_examples()
    assert len(examples) == 3
    for code in [setup, *examples]:
        compile(code, "README.md", "exec")


@pytest.mark.parametrize("index", [0, 1, 2], ids=["labels", "episodes", "attributes"])
def test_readme_examples_run(index, capsys):
    setup, *examples = _readme_examples()
    namespace: dict = {"__name__": "readme_example"}
    exec(compile(setup, "README.md", "exec"), namespace)
    exec(compile(examples[index], "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert out.strip()
    if index == 2:
        assert "scanner" in out and "GD101" in out


def _actions(parser: argparse.ArgumentParser, path: str = "gapdiag"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield path, action


def test_every_cli_argument_has_help():
    from gapdiag.cli import build_parser

    missing = [f"{path} {a.dest}" for path, a in _actions(build_parser()) if not a.help]
    assert missing == []


def test_make_demo_installs_no_dev_extras():
    make = (ROOT / "Makefile").read_text(encoding="utf-8")
    demo_line = next(line for line in make.splitlines() if line.startswith("demo:"))
    assert "$(CORE)" in demo_line and "$(DEV)" not in demo_line
    core_rule = make.split("$(CORE):", 1)[1].split("\n\n", 1)[0]
    assert "-e ." in core_rule and "[dev]" not in core_rule
    test_line = next(line for line in make.splitlines() if line.startswith("test:"))
    assert "$(DEV)" in test_line and "--dist loadgroup" in make


def test_make_test_installs_chromium_only_where_it_needs_no_password():
    make = (ROOT / "Makefile").read_text(encoding="utf-8")
    browser = make.split("\nbrowser:", 1)[1].split("\n\n", 1)[0]
    assert "sudo -n" in browser and "sudo apt-get install" in browser  # never prompts; says what to run
    commands = re.sub(r'echo "[^"]*"', "", browser)  # what it runs, not what it says
    assert re.findall(r"\bsudo\b(?! -n)", commands) == []
