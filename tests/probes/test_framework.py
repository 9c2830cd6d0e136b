"""The Probe contract: a crashing probe becomes GD900 and the audit goes on; the registry validates."""

import pytest

import gapdiag
from gapdiag import Measurement, Probe, ProbeDefinitionError, Severity, register_probe
from gapdiag.findings.policy import EXIT_PROBE_ERROR
from gapdiag.probes.registry import unregister_probe


@pytest.fixture
def temporary_probes():
    names = []

    def add(cls):
        register_probe(cls)
        names.append(cls.name)
        return cls

    yield add
    for n in names:
        unregister_probe(n)


def _exploding(name="exploding", code="XG001"):
    class Exploding(Probe):
        family = "custom"
        codes = (code,)

        def _measure(self, ctx):
            raise ZeroDivisionError("division by zero in a probe")

        def _judge(self, m):
            return []

    Exploding.name = name
    return Exploding


def _healthy_probe(name="tiny", code="XG002", emit=None):
    class Tiny(Probe):
        family = "custom"
        codes = (code,)
        defaults = {"limit": 0.5}

        def _measure(self, ctx):
            return Measurement(metrics={"n_val": len(ctx.val.items)})

        def _judge(self, m):
            if emit:
                return [self.finding(emit, Severity.WARN, "emitted")]
            return []

    Tiny.name = name
    return Tiny


def test_a_raising_probe_becomes_gd900_and_the_audit_goes_on(healthy_pairs, temporary_probes):
    temporary_probes(_exploding())
    temporary_probes(_healthy_probe())
    s = healthy_pairs
    report = gapdiag.audit(s.model, s.train, s.val, probes=["exploding", "tiny"], progress=False)
    err = report.by_code("GD900")
    assert len(err) == 1 and "ZeroDivisionError" in err[0].message and err[0].probe == "exploding"
    assert report.result("exploding").status == "error"
    assert report.result("tiny").status == "ok" and report.result("tiny").metrics["n_val"] == len(s.val.items)
    assert report.exit_code == EXIT_PROBE_ERROR
    assert report.verdict == "pass"  # a probe error is not a finding about the model
    junit = report.render("junit")
    assert 'errors="1"' in junit and 'failures="0"' in junit


def test_an_undeclared_code_is_caught(healthy_pairs, temporary_probes):
    temporary_probes(_healthy_probe(name="liar", code="XG003", emit="GD101"))
    s = healthy_pairs
    report = gapdiag.audit(s.model, s.train, s.val, probes=["liar"], progress=False)
    assert report.by_code("GD900") and "does not declare" in report.by_code("GD900")[0].message


def test_registry_rejects_bad_probes(temporary_probes):
    temporary_probes(_healthy_probe(name="dup", code="XG004"))
    with pytest.raises(ProbeDefinitionError, match="already registered"):
        register_probe(_healthy_probe(name="dup", code="XG005"))
    with pytest.raises(ProbeDefinitionError, match="not in the catalogue"):
        register_probe(_healthy_probe(name="other", code="GD999"))
    with pytest.raises(ProbeDefinitionError, match="does not implement _judge"):

        class Half(Probe):
            name = "half"
            family = "custom"
            codes = ("XG006",)

            def _measure(self, ctx):
                return Measurement()

        register_probe(Half)
    with pytest.raises(ProbeDefinitionError, match="overrides Probe.run"):

        class Sneaky(Probe):
            def run(self, ctx):
                return None


def test_unknown_probe_options_are_refused():
    with pytest.raises(gapdiag.ConfigError, match="Valid options: limit"):
        _healthy_probe()(limt=0.3)


def test_entry_point_probes_are_loaded(monkeypatch):
    """A third-party package exposes probes through the ``gapdiag.probes`` entry-point group."""
    import importlib.metadata

    from gapdiag.probes import registry

    plugin = _healthy_probe(name="from_plugin", code="XG010")

    class EntryPoint:
        def load(self):
            return plugin

    def fake_entry_points(group=None, **kw):
        return [EntryPoint()] if group == "gapdiag.probes" else []

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    monkeypatch.setattr(registry, "_loaded", False)
    try:
        assert "from_plugin" in registry.registered_probes()
    finally:
        unregister_probe("from_plugin")


def test_the_documented_third_party_probe_emits_its_own_code(tiny, temporary_probes):
    """docs/writing-a-probe.md's ScoreSpread, run as written: its XS001 finding must not crash."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "writing-a-probe.md").read_text(encoding="utf-8")
    source = re.search(r"```python\n(.*?)```", doc, flags=re.S).group(1)
    namespace: dict = {}
    try:
        exec(
            compile(source.replace('min_ratio": 0.5', 'min_ratio": 10.0'), "writing-a-probe.md", "exec"),
            namespace,
        )
        train, val = tiny.splits()
        report = gapdiag.audit(tiny.Net(), train, val, probes=["score_spread"], progress=False)
    finally:
        unregister_probe("score_spread")
    assert not report.errored, [f.message for f in report.errored]
    (finding,) = report.by_code("XS001")
    assert finding.title == "Validation scores collapse" and finding.remediation == ["Check normalisation."]
    assert "XS001" in report.render("markdown") and "XS001" in report.render("junit")


def test_a_third_party_code_without_title_takes_the_code_as_title(tiny, temporary_probes):
    temporary_probes(_healthy_probe(name="bare", code="XG004", emit="XG004"))
    train, val = tiny.splits()
    report = gapdiag.audit(tiny.Net(), train, val, probes=["bare"], progress=False)
    (finding,) = report.by_code("XG004")
    assert finding.title == "XG004" and finding.remediation == []
    ignored = gapdiag.audit(
        tiny.Net(), train, val, probes=["bare"], config={"ignore": ["XG004"]}, progress=False
    )
    assert ignored.by_code("XG004")[0].ignored and ignored.exit_code == 0


def test_a_typo_in_requires_is_refused_at_registration(temporary_probes):
    typo = _healthy_probe(name="typo", code="XG005")
    typo.requires = frozenset({"val_pair"})  # meant val_pairs
    with pytest.raises(ProbeDefinitionError, match="'val_pair'.*val_pairs"):
        temporary_probes(typo)


def test_a_requirement_broken_after_registration_fails_that_probe_only(tiny, temporary_probes):
    typo = temporary_probes(_healthy_probe(name="typo", code="XG005"))
    typo.requires = frozenset({"val_pair"})  # a plugin that mutates its class after registering it
    temporary_probes(_healthy_probe(name="fine", code="XG006"))
    train, val = tiny.splits()
    report = gapdiag.audit(tiny.Net(), train, val, probes=["typo", "fine"], progress=False)
    assert (
        report.result("typo").status == "error"
        and "Unknown probe requirement 'val_pair'" in report.result("typo").reason
    )
    assert report.result("fine").status == "ok"
