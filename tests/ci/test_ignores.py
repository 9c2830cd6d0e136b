"""Ignores carry a reason: required in configuration files, printed wherever the finding is shown."""

import xml.etree.ElementTree as ET

import pytest

from gapdiag import Config, ConfigError, load_config
from gapdiag.ignores import COMMAND_LINE_REASON, command_line_ignores


def test_a_config_file_ignore_carries_its_reason(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text('ignore = [{code = "gd204", reason = "expected for 512-d embeddings"}]\n')
    assert load_config(path).ignore == {"GD204": "expected for 512-d embeddings"}


def test_a_bare_code_in_a_config_file_says_what_to_write(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text('[tool.gapdiag]\nignore = ["GD204"]\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err:
        load_config()
    assert 'ignore = [{code = "GD204", reason = "why it is acceptable"}]' in str(err.value)
    assert "without a reason" in str(err.value)


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ({"code": "GD204"}, "needs a non-empty reason"),
        ({"code": "GD204", "reason": "  "}, "needs a non-empty reason"),
        ({"code": "GD204", "reason": "x", "why": "y"}, "an ignore entry has keys code, reason"),
        (3, "ignore must be a list of finding codes with reasons"),
        ({"code": "GD999", "reason": "x"}, "Unknown finding code"),
    ],
)
def test_bad_ignore_entries(entry, needle):
    with pytest.raises(ConfigError, match=needle):
        Config.from_mapping({"ignore": [entry]})


def test_a_code_ignored_twice_is_an_error():
    with pytest.raises(ConfigError, match="GD204 twice"):
        Config.from_mapping({"ignore": [{"code": "GD204", "reason": "a"}, {"code": "gd204", "reason": "b"}]})


def test_python_and_command_line_ignores_keep_working_without_a_written_reason():
    assert Config.from_mapping({"ignore": ["GD204"]}).ignore == {"GD204": ""}
    assert command_line_ignores("gd204, GD205") == {
        "GD204": COMMAND_LINE_REASON,
        "GD205": COMMAND_LINE_REASON,
    }
    assert command_line_ignores(None) is None


def test_the_reason_is_printed_in_every_format(make_finding, make_report):
    report = make_report(
        [make_finding("GD204", "fail", ignored=True, reason="expected for 512-d embeddings")], fail_on="warn"
    )
    assert report.exit_code == 0
    assert "(ignored: expected for 512-d embeddings)" in report.summary()
    assert "(ignored: expected for 512-d embeddings)" in report.render("markdown")
    case = ET.fromstring(report.render("junit")).find("testsuite/testcase")
    assert (
        case.find("failure") is None
        and "ignored: expected for 512-d embeddings" in case.find("system-out").text
    )
    assert '"ignore_reason": "expected for 512-d embeddings"' in report.render("json")
    unexplained = make_report([make_finding("GD204", "warn", ignored=True)])
    assert "(ignored: no reason given)" in unexplained.summary()
