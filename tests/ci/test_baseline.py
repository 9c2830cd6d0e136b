"""Baselines: a run with the same findings passes, a new or worse one fails and says what changed."""

import json
import xml.etree.ElementTree as ET
from importlib.resources import files

import jsonschema
import pytest

from gapdiag import InputError
from gapdiag.baseline import apply_baseline, baseline_from_report, load_baseline, write_baseline
from gapdiag.gates import evaluate_gates


def _status(report):
    return {(f.code, f.cause): (f.baseline or {}).get("status") for f in report.findings}


def _findings(make_finding):
    return [
        make_finding("GD101", "fail", cause="artifact:tint"),
        make_finding("GD204", "warn", cause="mechanism:hubness"),
        make_finding("GD104", "info", cause="split:identity_overlap"),
    ]


def test_the_same_findings_pass_against_their_baseline(make_finding, make_report, make_chain):
    chain = make_chain()
    old = make_report(_findings(make_finding), chain=chain)
    assert old.exit_code == 1
    base = baseline_from_report(old.to_dict())
    new = apply_baseline(
        make_report(_findings(make_finding), chain=make_chain(seed=1)), base, source="b.json"
    )
    assert new.exit_code == 0 and new.verdict == "pass"
    assert _status(new)[("GD101", "artifact:tint")] == "accepted"
    assert _status(new)[("GD104", "split:identity_overlap")] is None  # info never gates: not compared
    assert new.baseline["accepted"] == 2 and new.baseline["new"] == [] and new.baseline["worse"] == []
    text = new.summary()
    assert "Baseline b.json: 2 known finding(s) accepted" in text and "Nothing new or worse" in text
    assert "GD101 title of GD101 (baseline: accepted)" in text


def test_a_new_finding_fails_and_is_named(make_finding, make_report):
    base = baseline_from_report(make_report(_findings(make_finding)).to_dict())
    findings = [*_findings(make_finding), make_finding("GD205", "warn", cause="split:shift")]
    new = apply_baseline(make_report(findings, fail_on="warn"), base, source="b.json")
    assert new.exit_code == 1 and new.verdict == "warn"
    assert [f.code for f in new.gating()] == ["GD205"]
    assert "New since the baseline: GD205 split:shift (warn)." in new.summary()
    assert "(new since the baseline)" in new.summary()
    # the same code about another artifact is new too
    other = apply_baseline(make_report([make_finding("GD101", "fail", cause="artifact:border")]), base)
    assert [f.cause for f in other.gating()] == ["artifact:border"]


def test_a_higher_severity_is_worse(make_finding, make_report):
    base = baseline_from_report(
        make_report([make_finding("GD204", "warn", cause="mechanism:hubness")]).to_dict()
    )
    new = apply_baseline(make_report([make_finding("GD204", "fail", cause="mechanism:hubness")]), base)
    assert new.exit_code == 1 and new.findings[0].baseline == {
        "status": "worse",
        "change": "severity warn -> fail",
    }
    assert "Worse than the baseline: GD204 mechanism:hubness (fail: severity warn -> fail)." in new.summary()
    lower = apply_baseline(make_report([make_finding("GD204", "info", cause="mechanism:hubness")]), base)
    assert lower.exit_code == 0 and lower.baseline["resolved"][0]["code"] == "GD204"


def test_an_owned_step_whose_ci_moved_past_the_baseline_is_worse(make_finding, make_report, make_chain):
    f = [make_finding("GD201", "warn", cause="mechanism:memorization")]
    base = baseline_from_report(make_report(f, chain=make_chain()).to_dict())  # pair_specific 0.05
    same = apply_baseline(make_report(f, chain=make_chain(seed=3)), base, margin=0.02)
    assert same.exit_code == 0
    grown = make_chain(values=(0.95, 0.80, 0.70, 0.55))  # pair_specific 0.15, the total unchanged
    worse = apply_baseline(make_report(f, chain=grown, fail_on="warn"), base, margin=0.02)
    assert worse.exit_code == 1
    change = worse.findings[0].baseline["change"]
    assert "the drop it owns (pair_specific) grew from 0.050" in change and "0.150" in change
    # within the margin: a step that grew by less than the margin past the old CI is accepted
    lenient = apply_baseline(make_report(f, chain=grown, fail_on="warn"), base, margin=0.2)
    assert lenient.exit_code == 0
    # a finding that is new stays new (the step grew with it)
    no_findings = baseline_from_report(make_report([], chain=make_chain()).to_dict())
    fresh = apply_baseline(make_report(f, chain=grown), no_findings)
    assert fresh.findings[0].baseline == {"status": "new", "change": "not in the baseline"}


def test_the_validation_metric_is_gated_against_the_baseline(make_report, make_chain):
    base = baseline_from_report(make_report([], chain=make_chain()).to_dict())  # val 0.55
    same = apply_baseline(make_report([], chain=make_chain(seed=2)), base)
    assert [g.status for g in same.gates] == ["passed"] and same.exit_code == 0
    dropped = apply_baseline(make_report([], chain=make_chain(values=(0.95, 0.90, 0.70, 0.45))), base)
    gate = dropped.gates[0]
    assert gate.name == "baseline.val_metric" and gate.status == "failed" and dropped.exit_code == 1
    assert "baseline 0.550" in gate.detail


def test_baselined_findings_stay_visible_in_junit_as_passing_cases(make_finding, make_report):
    base = baseline_from_report(make_report(_findings(make_finding)).to_dict())
    new = apply_baseline(make_report(_findings(make_finding), fail_on="warn"), base, source="b.json")
    data = json.loads(new.render("json"))
    suite = ET.fromstring(new.render("junit")).find("testsuite")
    assert data["exit_code"] == new.exit_code == 0 and suite.get("failures") == "0"
    case = suite.find("testcase[@classname='gapdiag.probe_gd101']")
    assert case.find("failure") is None and "(baseline: accepted)" in case.find("system-out").text
    assert {f["code"]: f["baseline"]["status"] for f in data["findings"] if f["baseline"]} == {
        "GD101": "accepted",
        "GD204": "accepted",
    }
    assert data["baseline"]["source"] == "b.json" and "(baseline: accepted)" in new.render("markdown")


def test_applying_a_baseline_leaves_the_report_unchanged(make_finding, make_report):
    report = make_report(_findings(make_finding))
    apply_baseline(report, {"findings": []})
    assert all(f.baseline is None for f in report.findings) and report.baseline is None
    assert all(f.baseline is None for r in report.results for f in r.findings)


def test_the_baseline_file_is_small_sorted_and_stable(tmp_path, make_finding, make_report, make_chain):
    report = make_report(list(reversed(_findings(make_finding))), chain=make_chain())
    report.save(tmp_path / "report.json")
    path = write_baseline(tmp_path / "report.json", tmp_path / "base.json")
    text = path.read_text()
    data = json.loads(text)
    assert data["kind"] == "gapdiag-baseline" and [f["code"] for f in data["findings"]] == ["GD101", "GD204"]
    assert set(data["findings"][0]) == {"code", "cause", "severity", "title"}
    step = data["chain"]["steps"]["generalization"]
    assert step["owner"] is None and step["value"] == 0.2
    assert all(round(step[k], 3) == step[k] for k in ("value", "ci_low", "ci_high"))  # 3 places: small diffs
    assert write_baseline(tmp_path / "report.json", tmp_path / "again.json").read_text() == text
    assert load_baseline(path) == data
    assert load_baseline(tmp_path / "report.json") == data  # a whole report reads as its baseline


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "does not exist"),
        ("{", "is not a gapdiag baseline: Expecting"),
        ('{"kind": "gapdiag-baseline", "version": 99, "findings": []}', "another version"),
        ('{"hello": 1}', "neither a gapdiag baseline nor a JSON report"),
        ('{"kind": "gapdiag-baseline", "version": 1, "findings": [{"code": 3}]}', "a finding has no code"),
        (
            '{"kind": "gapdiag-baseline", "version": 1, "findings": [], "chain": {"steps": {"a": {"value": "x"}}}}',
            "chain is not an object",
        ),
        (
            '{"tool": "gapdiag", "verdict": "pass", "findings": {}}',
            "not a gapdiag JSON report of a known shape",
        ),
    ],
)
def test_a_bad_baseline_says_how_to_write_one(tmp_path, content, needle):
    path = tmp_path / "b.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=needle):
        load_baseline(path)


def test_a_report_with_a_baseline_and_gates_validates_against_the_shipped_schema(
    make_finding, make_report, make_chain
):
    schema = json.loads(
        files("gapdiag.report").joinpath("schema/report.schema.json").read_text(encoding="utf-8")
    )
    chain = make_chain()
    findings = [*_findings(make_finding), make_finding("GD205", "warn", ignored=True, reason="known shift")]
    gates = evaluate_gates({"val_metric_min": 0.5, "step_share_max": {"protocol": 0.5}}, chain)
    base = baseline_from_report(make_report(_findings(make_finding), chain=chain).to_dict())
    report = apply_baseline(make_report(findings, chain=chain, gates=gates), base)
    data = json.loads(report.render("json"))
    data["gap"] = {}  # the hand-built chain has no grid; the chain's schema is checked with real audits
    jsonschema.validate(data, schema, cls=jsonschema.Draft202012Validator)
    assert {g["name"] for g in data["gates"]} == {
        "val_metric_min",
        "step_share_max.protocol",
        "baseline.val_metric",
    }
