"""The protocol probe (GD301-GD304) on small real models trained on scikit-learn's digits, with the grid
checked number by number against plain reference computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gapdiag
from gapdiag import Severity
from gapdiag.context import named_rng
from gapdiag.data import Items, Pairs, Split, make_episodes, make_pairs
from gapdiag.digits import build_scenario
from gapdiag.model import SiameseModel
from gapdiag.probes.registry import registered_probes

PROTOCOL_CODES = {"GD301", "GD302", "GD303", "GD304"}


def _audit(model, train, val, *, probes=("protocol",), config=None):
    return gapdiag.audit(model, train, val, probes=list(probes), config=config, progress=False)


def _codes(report, severity=Severity.WARN):
    return report.codes(min_severity=severity)


@pytest.fixture(scope="module")
def inverted():
    """A cosine-similarity model whose evaluation reads the score as a distance (min())."""
    return build_scenario(model_kwargs={"similarity": True}, kind="distance", n_pairs=1500, epochs=4, seed=0)


@pytest.fixture(scope="module")
def rgb16():
    """A healthy pairwise-trained model on 3-channel 16x16 digits, validated with 10-way episodes."""
    return build_scenario(channels=3, size=16, n_pairs=1500, epochs=4, seed=2)


# ------------------------------------------------------------------------------------------------------
# GD301: protocol mismatch and the gap decomposition


@pytest.mark.parametrize("which", ["healthy_episodes", "rgb16"])
def test_10way_validation_of_healthy_pairwise_model_raises_gd301(which, request):
    sc = request.getfixturevalue(which)
    # the probes that own the leakage and memorization codes run too, so their silence is meaningful
    owners = [n for n, cls in registered_probes().items() if set(cls.codes) & {"GD101", "GD102", "GD201"}]
    report = _audit(sc.model, sc.train, sc.val, probes=["protocol", *owners])
    gd301 = report.by_code("GD301")
    assert gd301 and gd301[0].severity == Severity.WARN
    assert gd301[0].figures == ["protocol_grid"]
    assert not (_codes(report) & {"GD101", "GD102", "GD201"})
    assert not (_codes(report) & {"GD302", "GD303", "GD304"})

    gap = report.gap
    assert gap["train_protocol"] == "pairwise" and gap["val_protocol"] == "10-way"
    assert gap["symptom"].startswith("Training pairwise verification accuracy")
    assert "vs validation 10-way identification accuracy" in gap["symptom"]
    assert gap["sentence"].startswith("Of the ")
    assert "comes from switching pairwise verification to 10-way identification" in gap["sentence"]
    obs, prot, gen = (gap[k]["value"] for k in ("observed_gap", "protocol_part", "generalization_part"))
    assert prot > 0.05 and obs == pytest.approx(prot + gen, abs=1e-6)
    for part in ("observed_gap", "protocol_part", "generalization_part"):
        assert gap[part]["ci_low"] <= gap[part]["value"] <= gap[part]["ci_high"]
    assert gap["grid"]["columns"] == [
        "pairwise accuracy",
        "pairwise balanced accuracy",
        "ROC-AUC",
        "10-way top-1",
    ]
    assert [r["split"] for r in gap["grid"]["rows"]] == ["train", "val"]
    # the user's protocol per split is marked
    marks = [[c["user_protocol"] for c in r["cells"]] for r in gap["grid"]["rows"]]
    assert marks == [[True, False, False, False], [False, False, False, True]]
    figs = {f.id: f for f in report.result("protocol").figures}
    assert set(figs) == {"protocol_grid", "protocol_score_hist", "protocol_roc"}
    assert "chance 0.10" in figs["protocol_grid"].data["annotations"][1][3]


def _plain_embeddings(net, items):
    with torch.no_grad():
        return net.encode(items.get_batch(np.arange(len(items)))).numpy()


def _plain_distance(net, a, b):
    with torch.no_grad():
        return net.distance(torch.from_numpy(a), torch.from_numpy(b)).double().numpy()


def _plain_auc(similarity, labels):
    pos, neg = similarity[labels == 1], similarity[labels == 0]
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return greater + 0.5 * ties


def _plain_pairwise(d, y, raw_threshold):
    accept = d <= raw_threshold  # a distance: similar when at most the threshold
    acc = np.mean(accept == (y == 1))
    bal = 0.5 * (accept[y == 1].mean() + (~accept[y == 0]).mean())
    return acc, bal, _plain_auc(-d, y)


def _plain_nway(net, emb, anchor, candidates, correct):
    hits = []
    for a, cands, c in zip(anchor, candidates, correct):
        d = [_plain_distance(net, emb[a][None], emb[j][None])[0] for j in cands]
        hits.append(int(np.argmin(d)) == int(c))
    return float(np.mean(hits))


def test_every_grid_number_matches_a_plain_reference(healthy_episodes):
    sc = healthy_episodes
    report = _audit(sc.model, sc.train, sc.val)
    m = report.result("protocol").metrics
    grid = report.gap["grid"]
    net = sc.net
    emb_t, emb_v = _plain_embeddings(net, sc.train.items), _plain_embeddings(net, sc.val.items)
    tp = sc.train.pairs
    y_t = tp.label.astype(int)
    d_t = _plain_distance(net, emb_t[tp.left], emb_t[tp.right])

    # the threshold: train-tuned, i.e. no cut "similar when d <= t" is more accurate on the training pairs
    raw = m["decision_threshold"]["raw"]
    cuts = np.concatenate([[-np.inf], np.unique(d_t)])
    best = max(np.mean((d_t <= t) == (y_t == 1)) for t in cuts)
    assert np.mean((d_t <= raw) == (y_t == 1)) == pytest.approx(best, abs=1.5 / y_t.size)

    # val pairs from val episodes: anchor-correct similar, anchor-other dissimilar
    ep = sc.val.episodes
    left, right, y_v = [], [], []
    for a, cands, c in zip(ep.anchor, ep.candidates, ep.correct):
        for j, item in enumerate(cands):
            left.append(a)
            right.append(item)
            y_v.append(int(j == c))
    y_v = np.array(y_v)
    d_v = _plain_distance(net, emb_v[np.array(left)], emb_v[np.array(right)])

    # train episodes as the context builds them: from the training labels, the "episodes.train" stream
    te = make_episodes(
        sc.train.items, n_way=10, seed=named_rng(0, "episodes.train"), labels=sc.train.items.labels
    )
    reference = {}
    for split, d, y, emb, e in (("train", d_t, y_t, emb_t, te), ("val", d_v, y_v, emb_v, ep)):
        acc, bal, auc = _plain_pairwise(d, y, raw)
        top1 = _plain_nway(net, emb, e.anchor, e.candidates, e.correct)
        ratio = y.mean()
        reference[split] = {
            "values": [acc, bal, auc, top1],
            "chances": [max(ratio, 1 - ratio), 0.5, 0.5, 0.1],
            "n": [y.size, y.size, y.size, len(e)],
        }
    for row in grid["rows"]:
        ref = reference[row["split"]]
        for k, cell in enumerate(row["cells"]):
            tol = 1.5 / ref["n"][k] if k != 2 else 1e-3
            assert cell["value"] == pytest.approx(ref["values"][k], abs=tol), (row["split"], k)
            assert cell["chance"] == pytest.approx(ref["chances"][k])
            lift = (ref["values"][k] - ref["chances"][k]) / (1 - ref["chances"][k])
            assert cell["lift"] == pytest.approx(lift, abs=tol / (1 - ref["chances"][k]))
            assert cell["n"] == ref["n"][k]
            assert cell["ci_low"] <= cell["value"] <= cell["ci_high"]
            assert cell["text"].startswith(f"{cell['value']:.2f} [")
    # the decomposition is made of grid cells
    train_pair, train_nway, val_nway = (
        reference["train"]["values"][0],
        *(reference[s]["values"][3] for s in ("train", "val")),
    )
    gap = report.gap
    assert not gap["pair_specific_part_separated"]
    assert gap["observed_gap"]["value"] == pytest.approx(train_pair - val_nway, abs=0.01)
    assert gap["protocol_part"]["value"] == pytest.approx(train_pair - train_nway, abs=0.01)
    assert gap["generalization_part"]["value"] == pytest.approx(train_nway - val_nway, abs=0.01)
    # GD302's AUC is the train ROC-AUC cell; GD304's positive ratio is the label mean
    assert m["score_direction"]["train_auc"].value == pytest.approx(reference["train"]["values"][2], abs=1e-3)
    assert m["composition"]["val"]["positive_ratio"].value == pytest.approx(0.1)


def test_same_protocol_is_all_generalization_and_clean(healthy_pairs):
    sc = healthy_pairs
    report = _audit(sc.model, sc.train, sc.val, probes=["protocol", "preprocessing", "mode"])
    assert not _codes(report), [f.message for f in report.findings]
    assert "GD301" not in report.codes()
    gap = report.gap
    assert gap["train_protocol"] == gap["val_protocol"] == "pairwise"
    assert gap["protocol_part"]["value"] == 0.0
    assert gap["generalization_part"] == gap["observed_gap"]
    assert "no protocol part" in gap["sentence"]


def test_protocol_override_compares_like_with_like(healthy_episodes):
    sc = healthy_episodes
    config = {"probes": {"protocol": {"train_protocol": "n-way"}}}
    report = _audit(sc.model, sc.train, sc.val, config=config)
    assert "GD301" not in report.codes()
    assert report.gap["train_protocol"] == report.gap["val_protocol"] == "10-way"


def _brighten_positive_pairs(x1, x2, rng):
    """A brightness offset shared by both images of each positive training pair: a shortcut."""
    offset = torch.from_numpy(rng.uniform(0, 0.5, (x1.shape[0], 1, 1, 1)).astype(np.float32))
    return (x1 + offset).clamp(0, 1), (x2 + offset).clamp(0, 1)


def test_a_shortcut_in_the_training_pairs_is_split_off_the_protocol_part():
    """The given training pairs are solved through a shortcut they share, fresh pairs of the same items are
    not: that part of the gap is named on its own instead of being counted as protocol."""
    sc = build_scenario(n_pairs=1500, epochs=4, positive_pair_transform=_brighten_positive_pairs, seed=0)
    gap = _audit(sc.model, sc.train, sc.val).gap
    assert gap["pair_specific_part_separated"] and gap["pair_specific_part"]["ci_low"] > 0.05
    parts = (
        gap["pair_specific_part"]["value"]
        + gap["protocol_part"]["value"]
        + gap["generalization_part"]["value"]
    )
    assert parts == pytest.approx(gap["observed_gap"]["value"], abs=1e-6)
    assert "is specific to the training pairs themselves" in gap["sentence"]


def test_mislabelled_given_pairs_score_below_fresh_pairs(healthy_episodes):
    sc = healthy_episodes
    tp = sc.train.pairs
    shuffled = Pairs(tp.items, tp.left, tp.right, np.random.default_rng(0).permutation(tp.label))
    gap = _audit(sc.model, Split("train", tp.items, pairs=shuffled), sc.val).gap
    assert gap["pair_specific_part_separated"] and gap["pair_specific_part"]["value"] < -0.05
    assert "scoring below fresh pairs of the same items" in gap["sentence"]


def test_precomputed_embeddings_are_measured_too(healthy_episodes):
    sc = healthy_episodes
    tp, ep = sc.train.pairs, sc.val.episodes
    train = Split.from_embeddings(
        sc.model.embed(sc.train.items.get_batch(np.arange(len(sc.train.items)))),
        sc.train.items.labels,
        name="train",
        pairs=(tp.left, tp.right, tp.label),
    )
    val = Split.from_embeddings(
        sc.model.embed(sc.val.items.get_batch(np.arange(len(sc.val.items)))),
        sc.val.items.labels,
        name="val",
        episodes=(ep.anchor, ep.candidates, ep.correct),
    )
    report = _audit(None, train, val)
    assert report.result("protocol").status == "ok"
    assert "GD301" in report.codes(min_severity=Severity.WARN)


# ------------------------------------------------------------------------------------------------------
# GD302: score direction


def test_cosine_similarity_read_with_min_raises_gd302(inverted):
    report = _audit(inverted.model, inverted.train, inverted.val)
    [gd302] = report.by_code("GD302")
    assert gd302.severity == Severity.FAIL
    assert "read as a distance (lower = more similar)" in gd302.message.lower()
    assert "ranks dissimilar training pairs above similar ones" in gd302.message
    assert "distance() probably returns a similarity (e.g. cosine)" in gd302.message
    assert "max()" in gd302.message and "kind='similarity'" in gd302.message
    assert gd302.evidence["train_auc"]["ci_high"] < 0.4
    assert gd302.evidence["train_auc_reversed"]["ci_low"] > 0.6
    # GD301 says the grid is measured the way the user reads the score
    assert "GD302" in report.by_code("GD301")[0].message


def test_correctly_declared_similarity_does_not_raise_gd302(inverted):
    model = SiameseModel(inverted.net, kind="similarity")
    report = _audit(model, inverted.train, inverted.val)
    assert "GD302" not in report.codes()
    assert report.result("protocol").metrics["score_direction"]["train_auc"].value > 0.9


# ------------------------------------------------------------------------------------------------------
# GD303: threshold transfer, GD304: pair composition


def _val_variant(sc, *, scale=1.0, positive_ratio=None):
    v = sc.val.items
    items = Items(v.inputs * scale, labels=v.labels)
    if positive_ratio is None:
        p = sc.val.pairs
        pairs = Pairs(items, p.left, p.right, p.label)
    else:
        pairs = make_pairs(items, n_pairs=2000, positive_ratio=positive_ratio, seed=1)
    return Split("val", items, pairs=pairs)


def test_train_tuned_threshold_that_fails_on_val_raises_gd303(healthy_pairs):
    # validation images from a lower-contrast capture: the ranking survives, distances shrink
    sc = healthy_pairs
    report = _audit(sc.model, sc.train, _val_variant(sc, scale=0.6))
    [gd303] = report.by_code("GD303")
    assert gd303.severity == Severity.WARN
    assert "tuned on training pairs" in gd303.message
    assert gd303.evidence["loss"]["ci_low"] > 0.05
    assert "GD304" not in report.codes()


def test_a_user_threshold_that_misses_val_raises_gd303(healthy_pairs):
    sc = healthy_pairs
    report = _audit(sc.model, sc.train, sc.val, config={"threshold": 0.15})
    [gd303] = report.by_code("GD303")
    assert "given by the user" in gd303.message and "0.15" in gd303.message


def test_very_different_positive_ratios_raise_gd304(healthy_pairs):
    sc = healthy_pairs
    report = _audit(sc.model, sc.train, _val_variant(sc, positive_ratio=0.1))
    [gd304] = report.by_code("GD304")
    assert gd304.severity == Severity.WARN
    assert "50% of" in gd304.message and "10% of" in gd304.message
    assert "balanced accuracy" in gd304.message
    ev = gd304.evidence
    assert ev["val"]["positive_ratio"]["value"] == pytest.approx(0.1)
    assert 0 <= ev["val"]["negative_difficulty"]["value"] <= 1
    # balanced accuracy is blind to the composition, so the threshold check stays quiet
    assert "GD303" not in report.codes()


def test_results_are_deterministic(healthy_episodes):
    sc = healthy_episodes
    a = _audit(sc.model, sc.train, sc.val).to_dict()
    b = _audit(sc.model, sc.train, sc.val).to_dict()
    assert a["gap"] == b["gap"]
