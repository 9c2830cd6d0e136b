"""The mode probe (GD306): train() vs eval() embeddings on a deep copy; the user's model and RNG untouched."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import gapdiag
from gapdiag import Severity
from gapdiag.digits import build_scenario
from gapdiag.model import SiameseModel, state_fingerprint


def _audit(model, sc, config=None):
    return gapdiag.audit(model, sc.train, sc.val, probes=["mode"], config=config, progress=False)


@pytest.fixture(scope="module")
def bn_dropout():
    """A BatchNorm + Dropout model, trained on pairs, validated with 10-way episodes."""
    return build_scenario(model_kwargs={"batchnorm": True, "dropout": 0.3}, n_pairs=1500, epochs=4, seed=0)


def test_batchnorm_dropout_model_raises_gd306_without_touching_the_model(bn_dropout):
    sc = bn_dropout
    sc.net.train()  # the user left the model in train mode: the flags must come back as they were
    flags = [m.training for m in sc.net.modules()]
    before = state_fingerprint(sc.net)
    running_mean = sc.net.features[1].running_mean.clone()
    rng_state = torch.get_rng_state()
    try:
        report = _audit(sc.model, sc)
    finally:
        after_flags = [m.training for m in sc.net.modules()]
        sc.net.eval()
    assert state_fingerprint(sc.net) == before
    assert torch.equal(sc.net.features[1].running_mean, running_mean)
    assert after_flags == flags
    assert torch.equal(torch.get_rng_state(), rng_state)  # Dropout drew from a forked generator

    [f] = report.by_code("GD306")
    # the fixture hands the model over in train mode, as after a training loop: the user's evaluation likely
    # ran in it, so the dependence says something about the gap
    assert f.severity == Severity.WARN and "handed over in train mode" in f.message
    assert f.figures == ["mode_change"]
    m = report.result("mode").metrics
    assert m["relative_change"].low > 0.1
    assert m["mode_dependent_layers"] == {"BatchNorm2d": 2, "Dropout": 1}
    assert m["n_items"] <= 512 and m["decision_unit"] == "10-way episodes"
    assert "BatchNorm2d x2" in f.message and "model.eval()" in f.message


def test_results_are_deterministic(bn_dropout):
    a = _audit(bn_dropout.model, bn_dropout).result("mode").metrics
    b = _audit(bn_dropout.model, bn_dropout).result("mode").metrics
    assert a["relative_change"] == b["relative_change"]
    assert a["decision_agreement"] == b["decision_agreement"]


def test_relative_change_matches_a_plain_reference(bn_dropout):
    """With Dropout off, train mode is deterministic: BatchNorm uses the statistics of each batch."""
    net = copy.deepcopy(bn_dropout.net)
    net.dropout.p = 0.0
    model = SiameseModel(net, batch_size=128)
    report = _audit(model, bn_dropout)
    m = report.result("mode").metrics
    idx = np.array(report.result("mode").evidence["sample_items"])
    x = bn_dropout.val.items.get_batch(idx)
    with torch.no_grad():
        e_eval = net.eval().encode(x).numpy()
        reference_net = copy.deepcopy(net).train()
        e_train = np.concatenate(
            [reference_net.encode(x[s : s + 128]).numpy() for s in range(0, len(x), 128)]
        )
    rel = np.linalg.norm(e_train - e_eval, axis=1) / np.linalg.norm(e_eval, axis=1)
    assert m["relative_change"].value == pytest.approx(rel.mean(), rel=1e-4)
    assert m["mode_dependent_layers"] == {"BatchNorm2d": 2}


def test_a_model_without_mode_dependent_layers_gives_exactly_zero(healthy_episodes):
    report = _audit(healthy_episodes.model, healthy_episodes)
    m = report.result("mode").metrics
    assert m["exactly_equal"] and m["relative_change"].value == 0.0
    assert m["decision_agreement"].value == 1.0 and m["mode_dependent_layers"] == {}
    assert not report.by_code("GD306")


def test_without_episodes_nearest_neighbours_are_compared(bn_dropout):
    from gapdiag.data import Items, Pairs, Split

    # unlabeled val items with dissimilar pairs only: no identities, so no episodes can be built
    items = Items(bn_dropout.val.items.inputs)
    rng = np.random.default_rng(0)
    pairs = Pairs(
        items, rng.integers(0, len(items), 200), rng.integers(0, len(items), 200), np.zeros(200, int)
    )
    config = {"probes": {"mode": {"max_items": 128}}}
    report = gapdiag.audit(
        bn_dropout.model,
        bn_dropout.train,
        Split("val", items, pairs=pairs),
        probes=["mode"],
        config=config,
        progress=False,
    )
    m = report.result("mode").metrics
    assert m["decision_unit"] == "nearest-neighbour queries" and m["n_decisions"] == 128
    assert report.by_code("GD306")


def test_a_model_handed_over_in_train_mode_is_named_and_left_in_train_mode():
    s = build_scenario(model_kwargs={"batchnorm": True, "dropout": 0.3}, n_pairs=600, epochs=2, seed=5)
    s.net.train()  # as it is right after a training loop
    report = gapdiag.audit(s.model, s.train, s.val, probes=["mode"], progress=False)
    (finding,) = report.by_code("GD306")
    assert finding.severity == Severity.WARN and "handed over in train mode" in finding.message
    assert report.result("mode").metrics["handed_over_in_train_mode"] is True
    assert s.net.training and all(m.training for m in s.net.modules())


def test_a_model_handed_over_in_eval_mode_gets_info_not_warn():
    s = build_scenario(model_kwargs={"batchnorm": True, "dropout": 0.3}, n_pairs=600, epochs=2, seed=5)
    report = gapdiag.audit(s.model, s.train, s.val, probes=["mode"], progress=False)
    (finding,) = report.by_code("GD306")
    assert finding.severity == Severity.INFO and "handed over in eval mode" in finding.message
    assert report.verdict == "pass"
