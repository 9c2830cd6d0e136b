"""GD307 (probe ``episode_index``): a correct index that names the candidate next to the true match."""

from __future__ import annotations

import numpy as np

import gapdiag
from gapdiag import Episodes, Severity, Split
from gapdiag.probes.protocol.episode_index import pick_offsets

FAST = {"n_boot": 200}


def _told(sc, correct: np.ndarray) -> Split:
    """The scenario's validation episodes with the correct index the user's loader computed."""
    e = sc.val.episodes
    return Split("val", sc.val.items, episodes=Episodes(sc.val.items, e.anchor, e.candidates, correct))


def test_an_index_off_by_one_is_found_without_labels_and_owns_the_drop(healthy_episodes):
    sc = healthy_episodes
    e = sc.val.episodes
    report = gapdiag.audit(
        sc.model, sc.train, _told(sc, (e.correct + 1) % e.n_way), config=FAST, progress=False
    )
    [f] = report.by_code("GD307")
    assert f.severity == Severity.FAIL and f.evidence["shift"] == e.n_way - 1
    assert f.evidence["share_at_shift"]["ci_low"] > 0.5 > f.evidence["share_at_index"]["ci_high"]
    assert "1 position before" in f.message
    chain = report.gap["chain"]
    assert chain["most_likely_cause"] == "GD307"
    assert next(s for s in chain["steps"] if s["id"] == "generalization")["owner"] == "GD307"
    # numbers on the pairs derived from those episodes are the index's, not the model's
    assert all(f.severity == Severity.INFO for f in report.findings if f.code in ("GD105", "GD304"))


def test_a_right_index_piles_the_picks_at_the_named_candidate(healthy_episodes):
    sc = healthy_episodes
    report = gapdiag.audit(sc.model, sc.train, sc.val, probes=["episode_index"], progress=False)
    assert not report.by_code("GD307")
    shares = report.metrics["episode_index"]["val"]["shares"]
    assert shares[0].low > max(s.high for s in shares[1:])


def test_an_index_that_always_names_the_first_slot_is_not_told_from_chance(healthy_episodes):
    """The documented limit: a fixed wrong slot spreads the picks evenly over the offsets."""
    sc = healthy_episodes
    e = sc.val.episodes
    report = gapdiag.audit(
        sc.model,
        sc.train,
        _told(sc, np.zeros(len(e), dtype=np.int64)),
        probes=["episode_index"],
        progress=False,
    )
    assert not report.by_code("GD307")


def test_pick_offsets_count_round_the_list_and_leave_ties_out():
    scores = np.array([[0.1, 0.9, 0.2], [0.8, 0.1, 0.2], [0.5, 0.5, 0.1]])
    assert pick_offsets(scores, np.array([0, 1, 0])).tolist() == [1, 2, -1]
