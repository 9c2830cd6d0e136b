"""gapdiag.testing: the assertion fails with the console summary; the example test runs under pytest."""

from pathlib import Path

import pytest

from gapdiag.baseline import baseline_from_report
from gapdiag.testing import assert_audit_passes, gate

pytest_plugins = ["pytester"]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "test_model_quality.py"


def test_the_assertion_fails_with_the_console_summary(make_finding, make_report):
    report = make_report([make_finding("GD205", "warn", cause="split:shift")])
    with pytest.raises(AssertionError) as err:
        assert_audit_passes(report, fail_on="warn")
    message = str(err.value)
    assert "gapdiag verdict: WARN (gating at warn; exit code 1)" in message
    assert "WARN GD205 title of GD205" in message and "GD205 says what it measured." in message
    assert (
        gate(report, fail_on="fail").exit_code == 0 and report.fail_on == "fail"
    )  # the report is not changed
    assert_audit_passes(report, fail_on="fail")


def test_the_assertion_says_what_is_new_against_the_baseline(make_finding, make_report, tmp_path):
    old = make_report([make_finding("GD205", "warn", cause="split:shift")])
    new = make_report([*old.findings, make_finding("GD204", "warn", cause="mechanism:hubness")])
    assert_audit_passes(old, fail_on="warn", baseline=old)  # a report, a path or a dict
    old.save(tmp_path / "old.json")
    for baseline in (
        old,
        tmp_path / "old.json",
        str(tmp_path / "old.json"),
        baseline_from_report(old.to_dict()),
    ):
        with pytest.raises(AssertionError, match="New since the baseline: GD204 mechanism:hubness"):
            assert_audit_passes(new, fail_on="warn", baseline=baseline)


def test_a_probe_error_is_not_a_pass(make_finding, make_report):
    with pytest.raises(AssertionError, match="exit code 3"):
        assert_audit_passes(make_report([make_finding("GD900", "fail")]), fail_on="fail")


def test_the_fixture_needs_a_target(pytester):
    pytester.makepyfile(
        """
        pytest_plugins = ["gapdiag.testing"]

        def test_it(gapdiag_report):
            pass
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*define a session-scoped fixture `gapdiag_target`*"])


def test_the_example_model_quality_test_passes(pytester):
    # in a subprocess: an in-process run would drop the modules it imported (torch's among them) afterwards,
    # and importing a C extension twice in one process can crash it
    pytester.copy_example(str(EXAMPLE))
    result = pytester.runpytest_subprocess("test_model_quality.py", "-p", "no:cacheprovider", timeout=600)
    result.assert_outcomes(passed=2)
