"""Hand-built chains and reports for the CI gate's tests: no model, no audit, milliseconds each."""

from __future__ import annotations

import numpy as np
import pytest

from gapdiag import Finding, Severity
from gapdiag.gap import STEP_OWNERS, Chain, ChainState, ChainStep
from gapdiag.probes.base import ProbeResult
from gapdiag.protocols import Cell, Protocols, difference
from gapdiag.report import Report
from gapdiag.stats import estimate_from_draws

_STATES = ("train_given", "train_fresh", "val_train_protocol", "val_user")
_STEPS = ("pair_specific", "generalization", "protocol")


def build_chain(values=(0.95, 0.90, 0.70, 0.55), owners=("GD201", None, "GD301"), sd=0.01, seed=0) -> Chain:
    """A four-state chain whose states have bootstrap draws (normal, ``sd``) and whose steps are attributed:
    a significant step with no owner is unexplained, as ``gapdiag.gap.attribute`` does it."""
    rng = np.random.default_rng(seed)
    states = []
    for sid, value in zip(_STATES, values):
        draws = value + rng.normal(0.0, sd, 400)
        cell = Cell(estimate_from_draws(value, draws, 500, 0.95), draws, 0.5, "pairs")
        states.append(ChainState(sid, sid.replace("_", " "), cell, "pairwise", "yours", ""))
    steps = []
    for a, b, kind, owner in zip(states, states[1:], _STEPS, owners):
        step = ChainStep(kind, kind, a.id, b.id, difference(a.cell, b.cell, 0.95), STEP_OWNERS[kind], owner)
        if not step.significant:
            step.status = "not significant"
        else:
            step.status = "owned" if owner else ("unexplained" if step.estimate.value > 0 else "gain")
        steps.append(step)
    total = difference(states[0].cell, states[-1].cell, 0.95)
    return Chain(states, steps, total, False, Protocols("pairwise", "pairwise", {"train": True, "val": True}))


def finding(code, severity="warn", cause="", probe=None, ignored=False, reason=""):
    return Finding(
        code,
        Severity.parse(severity),
        f"title of {code}",
        f"{code} says what it measured.",
        probe=probe or f"probe_{code.lower()}",
        cause=cause,
        ignored=ignored,
        ignore_reason=reason,
    )


def build_report(findings, chain=None, gates=(), fail_on="fail", margin=None) -> Report:
    by_probe: dict[str, list] = {}
    for f in findings:
        by_probe.setdefault(f.probe, []).append(f)
    results = [
        ProbeResult(p, "embedding", "ok", findings=fs, codes=tuple(sorted({f.code for f in fs})))
        for p, fs in by_probe.items()
    ]
    meta = {"seed": 0}
    if margin is not None:
        meta["config"] = {"options": {"gates": {"baseline_margin": margin}}}
    gap = {"chain": chain.to_dict()} if chain is not None else {}
    return Report(list(findings), results, gap=gap, meta=meta, fail_on=fail_on, gates=list(gates))


@pytest.fixture
def make_chain():
    return build_chain


@pytest.fixture
def make_finding():
    return finding


@pytest.fixture
def make_report():
    return build_report
