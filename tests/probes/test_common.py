"""Checks every registered probe must pass (scikit-learn's test_common idea)."""

import json

import numpy as np
import pytest

import gapdiag
from gapdiag import Severity, Split
from gapdiag.probes.registry import registered_probes
from gapdiag.report.formatting import jsonable

PROBES = sorted(registered_probes())


# UMAP is a figure, not a measurement; its compile time would dominate these checks
NO_UMAP = {"probes": {"class_gap": {"umap": False}}}


def _audit(s, name, **kw):
    return gapdiag.audit(s.model, s.train, s.val, probes=[name], config=NO_UMAP, progress=False, **kw)


@pytest.mark.parametrize("name", PROBES)
def test_probe_declares_itself_completely(name):
    cls = registered_probes()[name]
    assert cls.__module__.rsplit(".", 1)[-1] == name, "the module name equals the probe name"
    assert cls.__doc__ and len(cls.__doc__) > 80, "the docstring says what it measures and what it emits"
    for code in cls.codes:
        assert code in cls.__doc__, f"{code} is documented in the probe's docstring"


@pytest.mark.parametrize("name", PROBES)
def test_healthy_model_gets_no_warn_or_fail(healthy_pairs, name):
    report = _audit(healthy_pairs, name)
    result = report.result(name)
    assert result.status == "ok", result.reason
    bad = [f for f in report.findings if f.severity >= Severity.WARN]
    assert not bad, [f"{f.code}: {f.message}" for f in bad]


@pytest.mark.parametrize("name", PROBES)
def test_probe_is_deterministic_and_leaves_inputs_alone(healthy_episodes, name):
    s = healthy_episodes
    hashes = {k: sp.items.content_hashes().copy() for k, sp in (("train", s.train), ("val", s.val))}
    hashes = {k: list(v) for k, v in hashes.items()}
    s.train.items._hashes = s.val.items._hashes = None  # recompute from the tensors themselves
    left = s.train.pairs.left.copy()
    a = _audit(s, name, seed=5).result(name)
    b = _audit(s, name, seed=5).result(name)
    assert json.dumps(jsonable(a.metrics), sort_keys=True) == json.dumps(jsonable(b.metrics), sort_keys=True)
    assert [f.message for f in a.findings] == [f.message for f in b.findings]
    assert list(s.train.items.content_hashes()) == hashes["train"]
    assert list(s.val.items.content_hashes()) == hashes["val"]
    assert np.array_equal(s.train.pairs.left, left)


@pytest.mark.parametrize("name", [n for n in PROBES if registered_probes()[n].concurrent])
def test_a_concurrent_probe_draws_nothing_from_the_global_streams(healthy_pairs, name):
    """A probe that runs beside others (``concurrent = True``) is not seeded or restored: drawing from numpy's,
    Python's or torch's global stream would move the caller's and make the report depend on timing."""
    import random

    import torch

    np.random.seed(11)
    random.seed(11)
    torch.manual_seed(11)
    before = (np.random.get_state()[1].copy(), random.getstate(), torch.random.get_rng_state())
    result = _audit(healthy_pairs, name).result(name)
    assert result.status == "ok", result.reason
    assert np.array_equal(np.random.get_state()[1], before[0])
    assert random.getstate() == before[1]
    assert torch.equal(torch.random.get_rng_state(), before[2])


@pytest.mark.parametrize("name", PROBES)
def test_missing_inputs_skip_with_a_reason(healthy_pairs, name):
    s = healthy_pairs
    train = Split.from_embeddings(
        np.asarray(
            gapdiag.SiameseModel(s.model.module).embed(s.train.items.get_batch(np.arange(len(s.train.items))))
        ),
        s.train.items.labels,
        name="train",
        pairs=(s.train.pairs.left, s.train.pairs.right, s.train.pairs.label),
    )
    val = Split.from_embeddings(
        gapdiag.SiameseModel(s.model.module).embed(s.val.items.get_batch(np.arange(len(s.val.items)))),
        s.val.items.labels,
        name="val",
        pairs=(s.val.pairs.left, s.val.pairs.right, s.val.pairs.label),
    )
    report = gapdiag.audit(None, train, val, probes=[name], config=NO_UMAP, progress=False)
    result = report.result(name)
    cls = registered_probes()[name]
    needs_raw = {"model", "train_inputs", "val_inputs"} & set(cls.requires)
    if needs_raw:
        assert result.status == "skipped" and result.reason.startswith("needs ")
    else:
        assert result.status in ("ok", "skipped")
        assert result.status == "ok" or result.reason
