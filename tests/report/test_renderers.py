import json
import xml.etree.ElementTree as ET

import numpy as np

import gapdiag
from gapdiag import Finding, Severity
from gapdiag.findings.policy import exit_code_of
from gapdiag.probes.base import ProbeResult
from gapdiag.report import Report


def _report(fail_on="fail", ignore=()):
    findings = [
        Finding("GD204", Severity.WARN, "Hubness", "skew 3.1", probe="geometry"),
        Finding(
            "GD101",
            Severity.FAIL,
            "Shortcut",
            "redness <b>AUC</b> 0.97 & 'scanner' \"x\"",
            probe="shortcut",
            evidence={"auc": np.float64(0.97)},
        ),
        Finding(
            "GD104", Severity.INFO, "Closed set", "all val identities in train", probe="identity_overlap"
        ),
    ]
    for f in findings:
        f.ignored = f.code in ignore
    results = [
        ProbeResult("shortcut", "leakage", "ok", findings=[findings[1]]),
        ProbeResult("geometry", "embedding", "ok", findings=[findings[0]]),
        ProbeResult("identity_overlap", "leakage", "ok", findings=[findings[2]]),
        ProbeResult("mode", "protocol", "skipped", reason="needs a model"),
    ]
    return Report(
        findings,
        results,
        gap={"sentence": "Of the 0.40 drop, 0.30 is protocol."},
        meta={"seed": 0, "timings": {"total": 1.234}},
        fail_on=fail_on,
    )


def test_findings_are_ranked_most_likely_cause_first():
    r = _report()
    assert [f.code for f in r.findings] == ["GD101", "GD204", "GD104"]
    assert r.primary_cause.code == "GD101" and r.verdict == "fail"


def test_json_junit_and_exit_code_agree_on_the_verdict():
    for fail_on, ignore, expected in [
        ("fail", (), 1),
        ("warn", (), 1),
        ("fail", ("GD101",), 0),
        ("warn", ("GD101",), 1),
    ]:
        r = _report(fail_on, ignore)
        data = json.loads(r.render("json"))
        suite = ET.fromstring(r.render("junit")).find("testsuite")
        failures = int(suite.get("failures"))
        assert data["exit_code"] == r.exit_code == exit_code_of(r.findings, fail_on) == expected
        assert bool(r.gating()) == (expected == 1)
        assert (failures > 0) == (expected == 1)
        assert data["verdict"] == r.verdict
        props = {p.get("name"): p.get("value") for p in suite.iter("property")}
        assert props["verdict"] == r.verdict and int(props["exit_code"]) == r.exit_code


def test_findings_frame_for_notebooks():
    frame = _report().findings_frame()
    assert list(frame["code"]) == ["GD101", "GD204", "GD104"] and list(frame["severity"]) == [
        "fail",
        "warn",
        "info",
    ]


def test_json_drops_wall_clock_timings_and_is_sorted():
    text = _report().render("json")
    assert "timings" not in json.loads(text)["meta"]
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_html_escapes_user_strings_and_is_self_contained():
    html = _report().render("html")
    assert "<b>AUC</b>" not in html and "&lt;b&gt;AUC&lt;/b&gt;" in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "<script" not in html
    assert 'id="verdict"' in html


def test_markdown_and_text_name_every_finding():
    r = _report()
    md, text = r.render("markdown"), r.render("text")
    for code in ("GD101", "GD204", "GD104"):
        assert code in md and code in text
    assert "needs a model" in md and "needs a model" in text


def test_save_picks_format_by_suffix_and_writes_atomically(tmp_path):
    r = _report()
    for name in ("r.json", "r.html", "r.md", "r.xml", "r.txt"):
        path = r.save(tmp_path / "sub" / name)
        assert path.read_text(encoding="utf-8")
    assert not [p for p in (tmp_path / "sub").iterdir() if p.name.endswith(".tmp")]
    try:
        r.save(tmp_path / "r.pdf")
    except gapdiag.ConfigError as exc:
        assert "suffix" in str(exc)
    else:
        raise AssertionError("an unknown suffix must raise")


def test_real_audit_json_is_byte_identical_for_the_same_seed(healthy_episodes):
    s = healthy_episodes
    a = gapdiag.audit(s.model, s.train, s.val, seed=3, progress=False).render("json")
    b = gapdiag.audit(s.model, s.train, s.val, seed=3, progress=False).render("json")
    assert a == b


def test_json_is_byte_identical_across_processes_and_hash_seeds(tmp_path):
    """Set and dict orders must not leak into the report: two interpreters, two hash seeds, same bytes."""
    import os
    import subprocess
    import sys

    script = (
        "import sys, torch, gapdiag\n"
        "torch.set_num_threads(1)\n"
        "from gapdiag.digits import build_scenario\n"
        "s = build_scenario(channels=3, n_pairs=600, epochs=2, seed=3)\n"
        "r = gapdiag.audit(s.model, s.train, s.val, progress=False, config={'probes': {'class_gap': {'umap': False}}})\n"
        "open(sys.argv[1], 'w').write(r.render('json'))\n"
    )
    outs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"r{hash_seed}.json"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run(
            [sys.executable, "-c", script, str(out)], check=True, env=env, timeout=300, capture_output=True
        )
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
