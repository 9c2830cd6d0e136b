"""Numeric gates: thresholds on the chain's numbers, judged with their CIs, in JSON, JUnit and the exit code."""

import json
import xml.etree.ElementTree as ET

import pytest

from gapdiag import Config, ConfigError
from gapdiag.gates import evaluate_gates, parse_gates
from gapdiag.probes.registry import check_config


def _by_name(gates):
    return {g.name: g for g in gates}


def test_val_metric_gate_fails_and_passes_as_configured(make_chain):
    chain = make_chain()  # val_user 0.55, CI about [0.53, 0.57]
    assert _by_name(evaluate_gates({"val_metric_min": 0.5}, chain))["val_metric_min"].status == "passed"
    failed = _by_name(evaluate_gates({"val_metric_min": 0.6}, chain))["val_metric_min"]
    assert (
        failed.status == "failed" and failed.compared == failed.ci_low and failed.value == pytest.approx(0.55)
    )


def test_strict_compares_the_pessimistic_bound_value_the_point_lenient_the_optimistic(make_chain):
    chain = make_chain()
    val = chain.states[-1].cell.estimate  # 0.55 with a CI of about +-0.02
    threshold = (val.value + val.high) / 2  # above the point, inside the CI
    outcome = {
        use: _by_name(evaluate_gates({"use": use, "val_metric_min": threshold}, chain))["val_metric_min"]
        for use in ("strict", "value", "lenient")
    }
    assert [outcome[u].status for u in ("strict", "value", "lenient")] == ["failed", "failed", "passed"]
    assert outcome["strict"].compared == pytest.approx(val.low)
    assert outcome["lenient"].compared == pytest.approx(val.high)
    threshold = (val.low + val.value) / 2  # below the point, inside the CI
    outcome = {
        use: _by_name(evaluate_gates({"use": use, "val_metric_min": threshold}, chain))[
            "val_metric_min"
        ].status
        for use in ("strict", "value", "lenient")
    }
    assert outcome == {"strict": "failed", "value": "passed", "lenient": "passed"}


def test_gap_gate_reads_the_chain_total(make_chain):
    chain = make_chain()  # 0.95 - 0.55 = 0.40
    gate = _by_name(evaluate_gates({"gap_max": 0.3}, chain))["gap_max"]
    assert gate.status == "failed" and gate.value == pytest.approx(0.40) and gate.compared == gate.ci_high
    assert _by_name(evaluate_gates({"gap_max": 0.5}, chain))["gap_max"].status == "passed"


def test_unexplained_share_gate_uses_the_ratio_of_draws(make_chain):
    chain = make_chain()  # generalization (0.20 of 0.40) has no owner: half the drop is unexplained
    gate = _by_name(evaluate_gates({"unexplained_share_max": 0.10}, chain))["unexplained_share_max"]
    assert gate.status == "failed" and gate.value == pytest.approx(0.5)
    assert gate.ci_low < 0.5 < gate.ci_high < 0.7 and "generalization" in gate.detail
    owned = make_chain(owners=("GD201", "GD102", "GD301"))
    gate = _by_name(evaluate_gates({"unexplained_share_max": 0.10}, owned))["unexplained_share_max"]
    assert gate.status == "passed" and gate.value == 0.0


def test_step_share_gate_per_step_id(make_chain):
    gates = _by_name(
        evaluate_gates({"step_share_max": {"protocol": 0.5, "pair_specific": 0.05}}, make_chain())
    )
    assert gates["step_share_max.protocol"].status == "passed"  # 0.15 of 0.40
    assert gates["step_share_max.pair_specific"].status == "failed"  # 0.05 of 0.40 = 0.125
    absent = _by_name(evaluate_gates({"step_share_max": {"direction": 0.1}}, make_chain()))
    assert (
        absent["step_share_max.direction"].status == "passed"
        and "no direction step" in absent["step_share_max.direction"].detail
    )


def test_share_gates_pass_when_there_is_no_significant_drop(make_chain):
    flat = make_chain(values=(0.80, 0.80, 0.79, 0.80), owners=(None, None, None))
    gate = evaluate_gates({"unexplained_share_max": 0.0}, flat)[0]
    assert gate.status == "passed" and gate.value is None and "No significant drop" in gate.detail


def test_a_gate_on_an_unmeasured_chain_is_an_error_not_a_pass(make_report):
    gates = evaluate_gates({"val_metric_min": 0.5}, None)
    assert gates[0].status == "unmeasured" and gates[0].passed is None
    report = make_report([], gates=gates)
    assert report.exit_code == 3 and report.verdict == "pass"
    suite = ET.fromstring(report.render("junit")).find("testsuite")
    assert suite.get("errors") == "1" and suite.find("testcase[@classname='gapdiag.gates']/error") is not None


def test_gates_enter_json_junit_and_the_exit_code_together(make_chain, make_report):
    chain = make_chain()
    gates = evaluate_gates({"val_metric_min": 0.6, "gap_max": 0.5}, chain)
    report = make_report([], chain=chain, gates=gates, fail_on="fail")
    data = json.loads(report.render("json"))
    assert report.exit_code == data["exit_code"] == 1 and data["verdict"] == "fail"
    entries = {g["name"]: g for g in data["gates"]}
    assert entries["val_metric_min"]["passed"] is False and entries["gap_max"]["passed"] is True
    assert {"name", "threshold", "value", "ci_low", "ci_high", "passed", "use", "compared"} <= set(
        entries["gap_max"]
    )
    suite = ET.fromstring(report.render("junit")).find("testsuite")
    cases = {c.get("name"): c for c in suite.findall("testcase[@classname='gapdiag.gates']")}
    assert cases["val_metric_min"].find("failure") is not None and cases["gap_max"].find("failure") is None
    assert suite.get("failures") == "1"
    text = report.summary()
    assert "gate val_metric_min failed" in text and "its CI low" in text and "(strict)" in text
    assert "`val_metric_min` | ❌ failed" in report.render("markdown")


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ({"val_metrc_min": 0.5}, "unknown gate val_metrc_min"),
        ({"use": "pessimistic"}, "gates.use must be one of strict, value, lenient"),
        ({"gap_max": "high"}, "gates.gap_max must be a number"),
        ({"step_share_max": {"protocl": 0.5}}, "unknown step protocl. Steps: pair_specific"),
        ({"baseline_margin": -1}, "baseline_margin must be >= 0"),
        (3, "gates must be a table"),
    ],
)
def test_bad_gates_are_config_errors_that_name_the_fix(table, needle):
    with pytest.raises(ConfigError, match=needle):
        parse_gates(table)
    with pytest.raises(ConfigError, match=needle):
        check_config(Config.from_mapping({"gates": table}))
