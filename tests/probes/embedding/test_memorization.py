"""GD201 — pair memorization, on small real models trained in-test."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gapdiag
from gapdiag import Items, Pairs, Severity, SiameseModel, Split
from gapdiag.data import make_episodes, make_pairs
from gapdiag.digits import SiameseCNN, load_digits_images, train_on_pairs
from gapdiag.sampling import draw_fresh_partners


def _audit(model, train, val, **kw):
    return gapdiag.audit(model, train, val, probes=["memorization"], progress=False, **kw)


@pytest.fixture(scope="module")
def memorizing():
    """A fixed set of 400 training pairs over 300 digits, trained 60 epochs without regularization.

    The identities are random groups of 5 digits, so nothing in the images tells them apart: whatever the
    model gets right on its training pairs it can only have memorized. (On the real digit classes the
    CNN learns the classes themselves, and fresh pairs of its training items are as easy as the given
    ones, however long it trains: that case is checked below as a non-finding.)
    """
    images, labels = load_digits_images()
    rng = np.random.default_rng(0)
    order = rng.permutation(labels.size)
    tr, va = np.sort(order[:300]), np.sort(order[300:800])
    identity = rng.permutation(np.arange(300) % 60)
    items = Items(images[tr], labels=identity)
    pairs = make_pairs(items, n_pairs=400, seed=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = SiameseCNN()
    train_on_pairs(net, images[tr][pairs.left], images[tr][pairs.right], pairs.label, epochs=60, seed=0)
    val_items = Items(images[va], labels=labels[va])
    val = Split("val", val_items, episodes=make_episodes(val_items, n_way=10, n_episodes=300, seed=1))
    model = SiameseModel(net)
    return model, Split("train", items, pairs=pairs), val, net


def test_memorized_pairs_raise_gd201(memorizing):
    model, train, val, _ = memorizing
    report = _audit(model, train, val)
    assert "GD201" in report.codes(min_severity=Severity.WARN)
    m = report.result("memorization").metrics
    for role in ("role_free", "role_kept"):  # identities carry no signal: every re-pairing loses
        assert m[role]["accuracy_gap"].low > 0.1
        assert m[role]["auc_gap"].low > 0.05
    finding = next(f for f in report.findings if f.code == "GD201")
    assert "both re-pairings lose accuracy: the model memorized its training pairs" in finding.message.lower()
    # the threshold-free comparison can raise the finding on its own, so the message gives it too
    assert (
        f"(gap {m['role_free']['auc_gap']:.2f})" in finding.message
        and "Threshold-free: ROC-AUC" in finding.message
    )
    assert finding.figures == ["memorization_scores"]
    # the same drop is the chain's pair-specific step, owned by GD201
    step = next(s for s in report.gap["chain"]["steps"] if s["id"] == "pair_specific")
    assert step["owner"] == "GD201" and step["value"] == pytest.approx(
        m["role_free"]["accuracy_gap"].value, abs=1e-6
    )


def test_numbers_match_a_plain_computation(memorizing):
    """Fresh pairs obey the rules, and every number equals a plain recomputation with the user's net."""
    model, train, val, net = memorizing
    report = _audit(model, train, val)
    result = report.result("memorization")
    m, table = result.metrics, result.evidence["pairs"]
    pairs, identity = train.pairs, train.items.labels
    originals = {frozenset((int(a), int(b))) for a, b in zip(pairs.left, pairs.right)}
    pools = {
        1: set(pairs.left[pairs.label == 1]) | set(pairs.right[pairs.label == 1]),
        0: set(pairs.left[pairs.label == 0]) | set(pairs.right[pairs.label == 0]),
    }
    x = train.items.get_batch(np.arange(len(train.items)))
    with torch.no_grad():
        emb = net.encode(x)

    def score(a: int, b: int) -> float:  # oriented: minus the user's distance
        return -float(net.distance(emb[a : a + 1], emb[b : b + 1])[0])

    # The audit's threshold is the best-accuracy threshold on the given pairs: recompute it by brute force.
    all_scores = np.array([score(a, b) for a, b in zip(pairs.left, pairs.right)])
    t = -m["threshold_raw"]
    accs = [np.mean((all_scores >= c) == (pairs.label == 1)) for c in np.unique(all_scores)]
    assert np.mean((all_scores >= t) == (pairs.label == 1)) == pytest.approx(max(accs))

    for role, column in (("role_free", "fresh_role_free"), ("role_kept", "fresh_role_kept")):
        c_orig, c_fresh = [], []
        for i in range(len(table["kept_item"])):
            a, b, lab = int(table["kept_item"][i]), int(table["original_partner"][i]), int(table["label"][i])
            assert frozenset((a, b)) in originals
            c = float((score(a, b) >= t) == bool(lab))
            row = []
            for f in table[column][i]:
                f = int(f)
                if f < 0:
                    continue
                assert f not in (a, b) and frozenset((a, f)) not in originals
                assert identity[f] == identity[b]  # the partner's identity...
                if role == "role_kept":
                    assert f in pools[lab]  # ...and, here, its role
                row.append(float((score(a, f) >= t) == bool(lab)))
            c_orig.append(c)
            c_fresh.append(np.mean(row) if row else c)
        c_orig, c_fresh = np.array(c_orig), np.array(c_fresh)
        assert m[role]["accuracy_original"].value == pytest.approx(c_orig.mean())
        assert m[role]["accuracy_fresh"].value == pytest.approx(c_fresh.mean())
        assert m[role]["accuracy_gap"].value == pytest.approx(c_orig.mean() - c_fresh.mean())
    assert m["n_compared_pairs"] == len(pairs)


def test_long_training_on_digit_classes_is_not_pair_memorization():
    """Few fixed pairs, long training, no regularization, but real digit classes: the model learns the
    classes, fresh pairs of its training items are as easy, and GD201 stays silent."""
    from gapdiag.digits import build_scenario

    sc = build_scenario(n_train_items=200, n_pairs=300, epochs=60)
    report = _audit(sc.model, sc.train, sc.val)
    assert "GD201" not in report.codes(min_severity=Severity.WARN)
    m = report.result("memorization").metrics
    assert (
        m["measured"]
        and m["role_free"]["accuracy_gap"].value < 0.1
        and m["role_kept"]["accuracy_gap"].value < 0.1
    )


def test_identities_from_positive_pair_components():
    """Without labels, identities are connected components; fresh partners stay inside the right one."""
    rng = np.random.default_rng(1)
    n_items, n_groups = 200, 20
    group = np.arange(n_items) % n_groups
    centres = rng.normal(size=(n_groups, 8)) * 3
    emb = (centres[group] + rng.normal(size=(n_items, 8))).astype(np.float32)
    # a chain of positives through each group (one component per group) plus random negatives
    left, right, label = [], [], []
    for g in range(n_groups):
        members = np.flatnonzero(group == g)
        left += list(members[:-1])
        right += list(members[1:])
        label += [1] * (members.size - 1)
    for _ in range(300):
        a, b = rng.integers(0, n_items, 2)
        if group[a] != group[b]:
            left.append(a)
            right.append(b)
            label.append(0)
    train = Split.from_embeddings(emb, None, name="train", pairs=(left, right, label))
    val = Split.from_embeddings(emb, group, name="val")
    report = gapdiag.audit(None, train, val, probes=["memorization"], progress=False)
    result = report.result("memorization")
    assert result.status == "ok" and result.metrics["measured"]
    assert result.metrics["identities_from"] == "connected components of positive pairs"
    table = result.evidence["pairs"]
    partners = np.asarray(table["original_partner"])
    for col in np.asarray(table["fresh_role_free"]).T:
        ok = col >= 0
        assert ok.mean() > 0.9 and np.array_equal(group[col[ok]], group[partners[ok]])
    assert not [f for f in report.findings if f.severity >= Severity.WARN]  # an embedding, not memorized


def test_draw_fresh_partners_reports_impossible_pairs():
    """An identity with a single pair has no fresh positive: the pair is marked -1, never repeated."""
    identity = np.array([0, 0, 1, 1, 1])
    pool = {1: np.ones(5, bool), 0: np.ones(5, bool)}
    anchor, partner, label = np.array([0, 2]), np.array([1, 3]), np.array([1, 1])
    keys = np.unique(np.minimum(anchor, partner) * 5 + np.maximum(anchor, partner))
    out = draw_fresh_partners(
        anchor, partner, label, identity, pool, keys, n_items=5, replicates=4, rng=np.random.default_rng(0)
    )
    assert (out[0] == -1).all()  # identity 0 has no third member
    assert (out[1] == 4).all()  # the only valid fresh partner of item 2


def test_memorized_roles_are_told_from_memorized_pairs():
    """Items that only ever sit in similar pairs and items that only ever sit in dissimilar pairs, identities
    invisible in the images: a long-trained net learns the roles. Re-pairing that keeps roles barely hurts; the
    role-free re-pairing (the chain's pair-specific step) collapses, and GD201 says it is the roles."""
    images, _ = load_digits_images()
    rng = np.random.default_rng(0)
    tr = np.sort(rng.permutation(images.shape[0])[:300])
    identity = rng.permutation(np.arange(300) % 60)
    role = rng.permutation(300) % 2
    pos_items, neg_items = np.flatnonzero(role == 1), np.flatnonzero(role == 0)
    left, right, label = [], [], []
    for g in rng.choice(np.unique(identity[pos_items]), 400):
        members = pos_items[identity[pos_items] == g]
        if members.size >= 2:
            a, b = rng.choice(members, 2, replace=False)
            left, right, label = left + [a], right + [b], label + [1]
    while len(label) < 800:
        a, b = rng.choice(neg_items, 2, replace=False)
        if identity[a] != identity[b]:
            left, right, label = left + [a], right + [b], label + [0]
    left, right, label = map(np.array, (left, right, label))
    items = Items(images[tr], labels=identity)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = SiameseCNN()
    train_on_pairs(net, images[tr][left], images[tr][right], label, epochs=40, seed=0)
    val_items = Items(images[np.setdiff1d(np.arange(images.shape[0]), tr)][:500], labels=np.arange(500) % 10)
    val = Split("val", val_items, episodes=make_episodes(val_items, n_way=10, n_episodes=200, seed=1))
    report = _audit(SiameseModel(net), Split("train", items, pairs=Pairs(items, left, right, label)), val)
    m = report.result("memorization").metrics
    assert m["role_free"]["accuracy_gap"].low > 0.25 and m["role_kept"]["accuracy_gap"].value < 0.15
    [finding] = report.by_code("GD201")
    assert "memorized which items sat in similar and which in dissimilar pairs" in finding.message
    step = next(s for s in report.gap["chain"]["steps"] if s["id"] == "pair_specific")
    assert step["owner"] == "GD201" and step["status"] == "owned"


def test_pair_labels_that_contradict_the_identity_labels_are_counted(memorizing):
    """A third of the given pair labels flipped: the identity labels contradict them, and GD201's words say so
    (this model learned the labels before the flip, so the words are checked on their own)."""
    from gapdiag.probes.embedding.memorization import _contradiction_words

    model, train, val, _ = memorizing
    p = train.pairs
    flipped = np.random.default_rng(3).random(p.label.size) < 1 / 3
    noisy = Split(
        "train",
        train.items,
        pairs=Pairs(train.items, p.left, p.right, np.where(flipped, 1 - p.label, p.label)),
    )
    share = _audit(model, noisy, val).result("memorization").metrics["labels_contradicted"]
    assert share.value == pytest.approx(flipped.mean()) and share.n == p.label.size
    words = _contradiction_words(share)
    assert (
        f"{share.value:.0%} [{share.low:.0%}, {share.high:.0%}] of the 400 given training pairs carry"
        in words
    )
    # labels as given by make_pairs agree with the identities: nothing to say
    clean = _audit(model, train, val).result("memorization").metrics["labels_contradicted"]
    assert clean.value == 0 and _contradiction_words(clean) == ""
