"""The gap chain and the grid (gapdiag/gap.py) on small real models trained on scikit-learn's digits,
checked against plain loops written the way users write their own evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gapdiag
from gapdiag import Finding, Items, Severity, SiameseModel, Split
from gapdiag.context import named_rng
from gapdiag.data import make_episodes
from gapdiag.digits import build_scenario
from gapdiag.gap import Chain, ChainState, ChainStep, attribute
from gapdiag.protocols import Cell, Protocols
from gapdiag.stats import Estimate

CHAIN_PROBES = ["protocol_mismatch", "score_direction", "memorization", "pair_composition"]


def _audit(model, train, val, *, probes=CHAIN_PROBES, config=None):
    return gapdiag.audit(model, train, val, probes=list(probes), config=config, progress=False)


def _chain(report):
    return report.gap["chain"]


def _steps(report):
    return {s["id"]: s for s in _chain(report)["steps"]}


def _assert_adds_up(chain):
    states = {s["id"]: s["value"] for s in chain["states"]}
    for step in chain["steps"]:
        assert step["value"] == pytest.approx(states[step["from"]] - states[step["to"]], abs=2e-6)
        assert step["ci_low"] <= step["value"] <= step["ci_high"]
    total = sum(s["value"] for s in chain["steps"])
    assert total == pytest.approx(chain["total"]["value"], abs=1e-5)
    assert chain["total"]["value"] == pytest.approx(
        chain["states"][0]["value"] - chain["states"][-1]["value"], abs=2e-6
    )
    for step in chain["steps"]:  # every significant drop is owned or said to be unexplained
        if step["significant"]:
            assert step["status"] in ("owned", "unexplained", "gain")
            assert (step["owner"] is not None) == (step["status"] == "owned")


@pytest.fixture(scope="module")
def inverted():
    """A cosine-similarity model whose evaluation reads the score as a distance (min())."""
    return build_scenario(model_kwargs={"similarity": True}, kind="distance", n_pairs=1500, epochs=4, seed=0)


def _plain_train_accuracy(sc):
    """The user's training accuracy: the best threshold on their own training pairs, in the direction their
    loss trained (the demo's and most training loops' own number)."""
    with torch.no_grad():
        d = sc.net.distance(sc.net.encode(sc.train_x1), sc.net.encode(sc.train_x2)).double().numpy()
    y = sc.train_label == 1
    best = 0.0
    for sign in (1.0, -1.0):
        s = sign * d
        for t in np.unique(s):
            best = max(best, float(np.mean((s <= t) == y)))
    return best


def _plain_nway(sc, pick):
    """The seed's n-way loop: encode anchor and candidates, compare, pick with min() or max()."""
    ep, net = sc.val.episodes, sc.net
    with torch.no_grad():
        emb = net.encode(sc.val.items.get_batch(np.arange(len(sc.val.items))))
        hits = []
        for a, cands, c in zip(ep.anchor, ep.candidates, ep.correct):
            scores = [float(net.distance(emb[a : a + 1], emb[j : j + 1])[0]) for j in cands]
            hits.append(int(pick(scores) == int(c)))
    return float(np.mean(hits))


def test_the_symptom_is_what_the_users_own_code_measures(healthy_episodes):
    sc = healthy_episodes
    chain = _chain(_audit(sc.model, sc.train, sc.val))
    first, last = chain["states"][0], chain["states"][-1]
    assert first["id"] == "train_given" and first["basis"] == "yours" and first["unit"] == "pairs"
    assert last["id"] == "val_user" and last["basis"] == "yours" and last["protocol"] == "10-way"
    assert first["value"] == pytest.approx(_plain_train_accuracy(sc), abs=1.5 / len(sc.train_label))
    assert last["value"] == pytest.approx(_plain_nway(sc, np.argmin), abs=1e-6)
    assert last["chance"] == pytest.approx(0.1) and first["chance"] == pytest.approx(0.5)
    _assert_adds_up(chain)
    assert [s["id"] for s in chain["steps"]] == ["pair_specific", "generalization", "protocol"]


def test_an_inverted_reading_is_a_step_of_its_own_owned_by_gd302(inverted):
    sc = inverted
    report = _audit(sc.model, sc.train, sc.val)
    chain = _chain(report)
    _assert_adds_up(chain)
    assert chain["reading_reversed"]
    states = {s["id"]: s for s in chain["states"]}
    # training as the user measured it (their loss trained the right direction), not 0.5
    assert states["train_given"]["value"] == pytest.approx(
        _plain_train_accuracy(sc), abs=1.5 / len(sc.train_label)
    )
    assert states["train_given"]["value"] > 0.85
    # validation as the user's argmin over a similarity reads it, and the corrected reading
    assert states["val_user"]["value"] == pytest.approx(_plain_nway(sc, np.argmin), abs=1e-6)
    assert states["val_user_corrected"]["value"] == pytest.approx(_plain_nway(sc, np.argmax), abs=1e-6)
    direction = _steps(report)["direction"]
    assert direction["owner"] == "GD302" and direction["significant"] and direction["value"] > 0.3
    assert report.primary_cause.code == "GD302"


def test_the_grid_matches_plain_computations(healthy_episodes):
    sc = healthy_episodes
    report = _audit(sc.model, sc.train, sc.val)
    grid, threshold = report.gap["grid"], -report.gap["decision_threshold"]["raw"]
    net = sc.net
    with torch.no_grad():
        emb_t = net.encode(sc.train.items.get_batch(np.arange(len(sc.train.items))))
        emb_v = net.encode(sc.val.items.get_batch(np.arange(len(sc.val.items))))
    ep = sc.val.episodes
    left, right = np.repeat(ep.anchor, ep.n_way), ep.candidates.reshape(-1)
    y_v = (np.tile(np.arange(ep.n_way), len(ep)) == np.repeat(ep.correct, ep.n_way)).astype(int)
    tp = sc.train.pairs
    te = make_episodes(
        sc.train.items, n_way=10, seed=named_rng(0, "episodes.train"), labels=sc.train.items.labels
    )
    with torch.no_grad():
        s_t = -net.distance(emb_t[tp.left], emb_t[tp.right]).double().numpy()
        s_v = -net.distance(emb_v[left], emb_v[right]).double().numpy()
        top1_t = np.mean(
            [
                np.argmax(-net.distance(emb_t[a].expand(10, -1), emb_t[c]).numpy()) == k
                for a, c, k in zip(te.anchor, te.candidates, te.correct)
            ]
        )
    top1_v = _plain_nway(sc, np.argmin)
    for row, s, y, top1 in (("train", s_t, tp.label, top1_t), ("val", s_v, y_v, top1_v)):
        cells = next(r for r in grid["rows"] if r["split"] == row)["cells"]
        acc = np.mean((s >= threshold) == (y == 1))
        bal = 0.5 * (np.mean(s[y == 1] >= threshold) + np.mean(s[y == 0] < threshold))
        pos, neg = s[y == 1], s[y == 0]
        auc = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
        for cell, want in zip(cells, (acc, bal, auc, top1)):
            assert cell["value"] == pytest.approx(want, abs=2e-3), row
            assert cell["ci_low"] <= cell["value"] <= cell["ci_high"]


def test_train_items_take_the_validation_episodes_n(healthy_episodes):
    """One n-way rule: training given as labelled items next to 5-way validation episodes is 5-way too."""
    sc = healthy_episodes
    val_items = sc.val.items
    val = Split("val", val_items, episodes=make_episodes(val_items, n_way=5, n_episodes=300, seed=3))
    report = _audit(sc.model, Items(sc.train.items.inputs, labels=sc.train.items.labels), val)
    chain = _chain(report)
    assert [s["protocol"] for s in chain["states"]] == ["5-way"] * len(chain["states"])
    assert "pair_specific" not in _steps(report)  # generated training units are fresh already
    assert report.gap["grid"]["columns"][3] == "5-way top-1"
    _assert_adds_up(chain)


def test_same_protocol_has_no_protocol_step_and_stays_clean(healthy_pairs):
    sc = healthy_pairs
    report = _audit(sc.model, sc.train, sc.val)
    steps = _steps(report)
    assert "protocol" not in steps and "composition" in steps
    assert steps["composition"]["owner"] is None
    assert not report.codes(min_severity=Severity.WARN), [f.message for f in report.findings]
    _assert_adds_up(_chain(report))


def test_protocol_override_compares_like_with_like(healthy_episodes):
    sc = healthy_episodes
    report = _audit(sc.model, sc.train, sc.val, config={"train_protocol": "n-way"})
    assert "GD301" not in report.codes()
    assert {s["protocol"] for s in _chain(report)["states"]} == {"10-way"}


def test_precomputed_embeddings_get_a_chain(healthy_episodes):
    sc = healthy_episodes
    tp, ep = sc.train.pairs, sc.val.episodes
    embed = sc.model.embed
    train = Split.from_embeddings(
        embed(sc.train.items.get_batch(np.arange(len(sc.train.items)))),
        sc.train.items.labels,
        name="train",
        pairs=(tp.left, tp.right, tp.label),
    )
    val = Split.from_embeddings(
        embed(sc.val.items.get_batch(np.arange(len(sc.val.items)))),
        sc.val.items.labels,
        name="val",
        episodes=(ep.anchor, ep.candidates, ep.correct),
    )
    report = _audit(None, train, val)
    _assert_adds_up(_chain(report))
    assert "GD301" in report.codes()


# ------------------------------------------------------------------------------------------------------
# Attribution rules, on a chain built by hand


def _cell(v: float) -> Cell:
    return Cell(Estimate(v, v - 0.01, v + 0.01, 100), None, 0.5, "pairs")


def _hand_chain(values: list[float], kinds: list[str], cis: list[tuple[float, float]]) -> Chain:
    ids = ["s0", *(f"s{i + 1}" for i in range(len(kinds)))]
    states = [ChainState(i, i, _cell(v), "pairwise", "yours", "") for i, v in zip(ids, values)]
    steps = [
        ChainStep(k, k, ids[i], ids[i + 1], Estimate(values[i] - values[i + 1], lo, hi, 100), owners)
        for i, (k, (lo, hi), owners) in enumerate(zip(kinds, cis, [_OWNERS[k] for k in kinds]))
    ]
    return Chain(
        states, steps, Estimate(values[0] - values[-1], 0, 1, 100), False, Protocols("pairwise", "n-way", {})
    )


_OWNERS = {"pair_specific": ("GD101", "GD201"), "generalization": ("GD102", "GD202"), "protocol": ("GD301",)}


def _finding(code: str, severity: Severity = Severity.WARN) -> Finding:
    return Finding(code, severity, code, f"{code} message.")


def test_attribution_owners_unexplained_gains_and_the_most_likely_cause():
    chain = _hand_chain(
        [0.95, 0.80, 0.60, 0.65],
        ["pair_specific", "generalization", "protocol"],
        [(0.1, 0.2), (0.15, 0.25), (-0.08, -0.02)],
    )
    findings = [_finding("GD201"), _finding("GD301", Severity.INFO), _finding("GD202", Severity.INFO)]
    attribute(chain, findings)
    by_id = {s.id: s for s in chain.steps}
    assert by_id["pair_specific"].owner == "GD201" and by_id["pair_specific"].status == "owned"
    assert by_id["generalization"].owner is None and by_id["generalization"].status == "unexplained"
    # GD301 explains a difference of measurement: it owns its step at info too
    assert by_id["protocol"].owner == "GD301" and by_id["protocol"].status == "owned"
    assert chain.most_likely_cause == "GD201"


def test_gd101_owns_the_pair_specific_drop_and_gd201_is_lowered():
    chain = _hand_chain([0.95, 0.70, 0.68], ["pair_specific", "generalization"], [(0.2, 0.3), (-0.01, 0.05)])
    gd201 = _finding("GD201", Severity.FAIL)
    attribute(chain, [_finding("GD101", Severity.FAIL), gd201])
    assert chain.steps[0].owner == "GD101" and chain.steps[1].status == "not significant"
    assert gd201.severity == Severity.INFO and "GD101 owns this drop" in gd201.message
    assert chain.most_likely_cause == "GD101"


def test_the_largest_owned_share_is_the_most_likely_cause_not_the_severity():
    chain = _hand_chain([0.95, 0.90, 0.50], ["pair_specific", "generalization"], [(0.02, 0.08), (0.35, 0.45)])
    attribute(chain, [_finding("GD101", Severity.FAIL), _finding("GD202", Severity.WARN)])
    assert chain.most_likely_cause == "GD202"


def test_a_step_within_noise_of_zero_has_no_owner_even_when_its_code_fired():
    chain = _hand_chain([1.0, 1.0, 0.5], ["pair_specific", "generalization"], [(0.0, 0.0), (0.45, 0.55)])
    attribute(chain, [_finding("GD101", Severity.FAIL), _finding("GD102", Severity.FAIL)])
    assert chain.steps[0].owner is None and chain.steps[0].status == "not significant"
    assert chain.steps[1].owner == "GD102" and chain.most_likely_cause == "GD102"


def test_an_ignored_finding_owns_nothing():
    chain = _hand_chain([0.9, 0.5], ["protocol"], [(0.3, 0.5)])
    f = _finding("GD301")
    f.ignored = True
    attribute(chain, [f])
    assert chain.steps[0].status == "unexplained"


def test_the_user_model_is_read_through_the_declared_kind_for_validation_only(inverted):
    """Declaring the right kind removes the direction step and GD302."""
    model = SiameseModel(inverted.net, kind="similarity")
    report = _audit(model, inverted.train, inverted.val)
    assert "direction" not in _steps(report) and "GD302" not in report.codes()
    _assert_adds_up(_chain(report))


def _brighten_positive_pairs(x1, x2, rng):
    """A brightness offset shared by both images of each positive training pair: a shortcut."""
    offset = torch.from_numpy(rng.uniform(0, 0.5, (x1.shape[0], 1, 1, 1)).astype(np.float32))
    return (x1 + offset).clamp(0, 1), (x2 + offset).clamp(0, 1)


def test_a_shortcut_shared_by_positive_pairs_is_not_booked_as_memorization():
    """Re-pairing breaks a cue both images of a positive pair share, so the pair-specific step is large; the
    shared attribute (GD101) owns it and GD201, which sees the same drop, is not the cause."""
    sc = build_scenario(n_pairs=1500, epochs=4, positive_pair_transform=_brighten_positive_pairs, seed=0)
    report = gapdiag.audit(sc.model, sc.train, sc.val, progress=False)
    chain = _chain(report)
    _assert_adds_up(chain)
    step = _steps(report)["pair_specific"]
    assert step["significant"] and step["owner"] == "GD101"
    assert "GD201" not in report.codes(min_severity=Severity.WARN)
    assert report.primary_cause.code in ("GD101", "GD102")


def test_nested_pair_batches_give_the_same_symptom(healthy_pairs):
    """((x1, x2), target) batches, as a popular public SiameseMNIST yields them, read as pairs."""
    sc = healthy_pairs
    flat = [
        (sc.train_x1[s : s + 256], sc.train_x2[s : s + 256], torch.from_numpy(sc.train_label[s : s + 256]))
        for s in range(0, len(sc.train_label), 256)
    ]
    nested = [((x1, x2), y) for x1, x2, y in flat]
    a = _audit(sc.model, flat, sc.val, probes=["pair_composition"])
    b = _audit(sc.model, nested, sc.val, probes=["pair_composition"])
    assert _chain(a)["states"][0]["value"] == _chain(b)["states"][0]["value"]
    assert _chain(b)["states"][0]["value"] == pytest.approx(
        _plain_train_accuracy(sc), abs=1.5 / len(sc.train_label)
    )


def test_a_fault_that_owns_part_of_the_drop_outranks_a_larger_measurement_step():
    chain = _hand_chain([0.95, 0.85, 0.40], ["pair_specific", "protocol"], [(0.05, 0.15), (0.4, 0.5)])
    attribute(chain, [_finding("GD101", Severity.FAIL), _finding("GD301", Severity.INFO)])
    assert chain.step("protocol").owner == "GD301" and chain.most_likely_cause == "GD101"
