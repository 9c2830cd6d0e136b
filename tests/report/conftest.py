"""Fixtures of the report tests: hand-made gap chains in the shape ``gapdiag.gap`` produces (states, steps that
add up, total, owners), reports built around them, and the demo's report (once per session, in one worker)."""

from __future__ import annotations

from typing import Any

import pytest


def state(id_, label, value, lo, hi, n, unit="pairs", protocol="pairwise", chance=0.5, basis="yours"):
    return {
        "id": id_, "label": label, "value": value, "ci_low": lo, "ci_high": hi, "n": n, "unit": unit,
        "protocol": protocol, "chance": chance, "basis": basis, "detail": f"how {label} was measured",
    }  # fmt: skip


def step(id_, label, a, b, value, lo, hi, owner=None, candidates=(), status=None):
    significant = lo > 0 or hi < 0
    if status is None:
        status = "owned" if owner else ("unexplained" if significant and value > 0 else "not significant")
        if significant and value < 0 and not owner:
            status = "gain"
    return {
        "id": id_, "label": label, "from": a, "to": b, "value": value, "ci_low": lo, "ci_high": hi,
        "significant": significant, "owner": owner, "candidates": list(candidates), "status": status,
    }  # fmt: skip


def demo_like_chain() -> dict[str, Any]:
    """Four states, three steps: pair-specific (GD101), a gain from train to val items, the protocol (GD301)."""
    states = [
        state("train_given", "training pairs as given", 0.998, 0.9957, 1.0, 1500),
        state("train_fresh", "fresh pairs of the training items", 0.495, 0.469, 0.519, 1500, basis="derived"),
        state("val_train_protocol", "validation under the training protocol", 0.80, 0.78, 0.82, 4000),
        state(
            "val_user", "validation as you measure it", 0.553, 0.520, 0.584, 1000, "episodes", "10-way", 0.1
        ),
    ]
    steps = [
        step("pair_specific", "specific to the given training pairs", "train_given", "train_fresh",
             0.503, 0.478, 0.529, "GD101", ("GD101", "GD201")),
        step("generalization", "from training items to validation items", "train_fresh", "val_train_protocol",
             -0.305, -0.34, -0.27, None, ("GD305", "GD306", "GD202")),
        step("protocol", "change of protocol", "val_train_protocol", "val_user", 0.247, 0.21, 0.28, "GD301",
             ("GD301",)),
    ]  # fmt: skip
    total = {"value": 0.445, "ci_low": 0.415, "ci_high": 0.477, "n": 1000, "level": 0.95}
    return {"states": states, "steps": steps, "total": total, "most_likely_cause": "GD101"}


def demo_like_grid() -> dict[str, Any]:
    def cell(v, lo, hi, chance, user=False, n=1500, unit="pairs"):
        lift = (v - chance) / (1 - chance)
        return {"text": f"{v:.2f}", "value": v, "ci_low": lo, "ci_high": hi, "chance": chance, "lift": lift,
                "user_protocol": user, "n": n, "unit": unit}  # fmt: skip

    return {
        "columns": ["pairwise accuracy", "pairwise balanced accuracy", "ROC-AUC", "10-way top-1"],
        "rows": [
            {"split": "train", "cells": [cell(0.998, 0.996, 1.0, 0.5, True), cell(0.998, 0.995, 1.0, 0.5),
                                         cell(1.0, 1.0, 1.0, 0.5), cell(0.166, 0.148, 0.186, 0.1, n=1650)]},
            {"split": "val", "cells": [cell(0.913, 0.907, 0.919, 0.9, n=10000), cell(0.67, 0.656, 0.684, 0.5),
                                       cell(0.858, 0.845, 0.871, 0.5),
                                       cell(0.553, 0.52, 0.584, 0.1, True, 1000, "episodes")]},
        ],
        "legend": "lift = (accuracy - chance) / (1 - chance)",
    }  # fmt: skip


@pytest.fixture
def chain() -> dict[str, Any]:
    return demo_like_chain()


@pytest.fixture
def grid() -> dict[str, Any]:
    return demo_like_grid()


@pytest.fixture
def chain_parts():
    """The builders, for tests that make their own chain: (state, step)."""
    return state, step


# -- the demo, once per session: tests that use it carry ``pytest.mark.xdist_group("demo")`` so that
# `make test` (``--dist loadgroup``) runs them in one worker


def _tools_docs():
    """``tools/docs.py``: the generators of the README's demo block and of docs/report-schema.md."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "tools" / "docs.py"
    spec = importlib.util.spec_from_file_location("gapdiag_tools_docs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def docs_tools():
    return _tools_docs()


@pytest.fixture(scope="session")
def demo(tmp_path_factory, docs_tools):
    """The demo as ``gapdiag demo`` runs it: (report, console text, output folder)."""
    out = tmp_path_factory.mktemp("demo")
    report, console = docs_tools.run_demo_captured(out)
    return report, console, out


@pytest.fixture(scope="session")
def planted_report():
    """A second audit with other planted faults: unseen validation identities (open set), a validation loader
    that skips normalisation, validation by pairs; PCA instead of UMAP to stay quick."""
    import gapdiag
    from gapdiag.digits import build_scenario

    s = build_scenario(channels=3, partition="classes", n_pairs=400, epochs=1, val_protocol="pairs",
                       val_transform=lambda x: x * 4.0 - 1.0, seed=1)  # fmt: skip
    config = {"probes": {"class_gap": {"umap": False}}}
    return gapdiag.audit(s.model, s.train, s.val, progress=False, config=config)
