"""Pair labels in the contrastive-loss convention (1 = dissimilar): the similar_label option, and the checks
that stop an audit whose labels contradict the identity labels or the user's own episodes."""

from __future__ import annotations

import pytest

import gapdiag
from gapdiag import Items, Pairs, Severity, Split
from gapdiag.errors import ConfigError, InputError

FAST = {"n_boot": 100}


def _train_with_labels_flipped(scenario, *, identities: bool) -> Split:
    """The scenario's training pairs as a loader in the contrastive-loss convention would give them."""
    given = scenario.train
    items = given.items if identities else Items(given.items.inputs)
    p = given.pairs
    return Split("train", items, Pairs(items, p.left, p.right, 1 - p.label))


def test_labels_that_contradict_the_users_own_episodes_stop_the_audit_and_name_the_option(healthy_episodes):
    s = healthy_episodes
    train = _train_with_labels_flipped(s, identities=False)
    with pytest.raises(InputError, match=r"labels are backwards.*need no pair label.*'similar_label': 0"):
        gapdiag.audit(s.model, train, s.val, config=FAST, progress=False)
    report = gapdiag.audit(s.model, train, s.val, config={**FAST, "similar_label": 0}, progress=False)
    assert report.verdict == "pass", [(f.code, f.severity.name) for f in report.findings]
    baseline = gapdiag.audit(s.model, s.train, s.val, config=FAST, progress=False)
    assert report.gap["chain"]["states"][-1]["value"] == baseline.gap["chain"]["states"][-1]["value"]


def test_labels_that_contradict_the_identity_labels_stop_the_audit_before_embedding(healthy_pairs):
    s = healthy_pairs
    calls = s.model.encoder_calls
    with pytest.raises(
        InputError, match=r"opposite of their identity labels.*0% of the \d+ pairs read as similar"
    ):
        gapdiag.audit(
            s.model, _train_with_labels_flipped(s, identities=True), s.val, config=FAST, progress=False
        )
    assert s.model.encoder_calls == calls  # refused before anything was embedded
    with pytest.raises(InputError, match="drop similar_label = 0"):
        gapdiag.audit(s.model, s.train, s.val, config={**FAST, "similar_label": 0}, progress=False)


def test_without_identities_or_episodes_backwards_labels_are_gd302_and_no_memorization_is_claimed(
    healthy_pairs,
):
    s = healthy_pairs
    train = _train_with_labels_flipped(s, identities=False)
    vp, v_items = s.val.pairs, Items(s.val.items.inputs)
    val = Split("val", v_items, Pairs(v_items, vp.left, vp.right, 1 - vp.label))
    report = gapdiag.audit(s.model, train, val, config=FAST, progress=False)
    loud = {f.code for f in report.findings if f.severity >= Severity.WARN}
    assert loud == {"GD302"}, loud
    gd302 = next(f for f in report.findings if f.code == "GD302")
    assert "similar_label = 0" in gd302.message
    assert all("Lowered to info" in f.message for f in report.findings if f.code == "GD201")


def test_similar_label_must_be_0_or_1():
    with pytest.raises(ConfigError, match="similar_label.*must be 1 .* or 0"):
        gapdiag.Config.from_mapping({"similar_label": 2})


def test_similar_label_0_flips_the_users_pair_labels_but_never_the_pairs_made_from_triplets():
    """A triplet-loss user whose validation pairs follow the contrastive convention sets similar_label = 0:
    the (anchor, positive) pairs stay similar, the validation pairs are read backwards."""
    import torch

    from gapdiag.data import as_split
    from gapdiag.label_convention import apply_similar_label

    x = torch.rand(12, 1, 4, 4)
    triplets = [(x[[0, 1]], x[[2, 3]], x[[4, 5]])]
    # one loader that mixes both layouts: only the (x1, x2, label) batch follows the user's convention
    mixed = [*triplets, (x[[6, 7]], x[[8, 9]], torch.tensor([0, 1]))]
    contrastive_val = [(x[[6, 7, 10]], x[[8, 9, 11]], torch.tensor([0, 1, 1]))]
    splits = {
        "train": as_split(triplets, "train"),
        "mixed": as_split(mixed, "mixed"),
        "val": as_split(contrastive_val, "val"),
    }
    read = apply_similar_label(splits, 0)
    assert read["train"].pairs.label.tolist() == [1, 1, 0, 0]
    assert read["mixed"].pairs.label.tolist() == [1, 1, 0, 0, 1, 0]
    assert read["val"].pairs.label.tolist() == [1, 0, 0]
    assert splits["val"].pairs.label.tolist() == [0, 1, 1]  # the user's objects are not modified
