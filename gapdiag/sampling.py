"""Seeded sampling of pairs and episodes from identity labels, as index arrays.

Everything here works on plain arrays (labels (N,), index arrays) and a numpy ``Generator`` or seed, so
``gapdiag.data`` builds its objects from it without a cycle. The rules are documented on each function;
:func:`gapdiag.data.make_pairs` and :func:`gapdiag.data.make_episodes` are the public entry points.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError
from .validation import check_positive_int

__all__ = [
    "class_layout",
    "pair_indices",
    "episode_indices",
    "stratified_pair_indices",
    "positive_pair_components",
]

Seed = int | np.random.Generator


def class_layout(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Items grouped by class: (order, class_of_item, start_of_class, count_of_class)."""
    _, cls = np.unique(labels, return_inverse=True)
    order = np.argsort(cls, kind="stable")
    counts = np.bincount(cls)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return order, cls, starts, counts


def pair_indices(
    labels: np.ndarray, *, n_pairs: int | None = None, positive_ratio: float = 0.5, rng: Seed = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Verification pairs from identity labels (N,): ``(left (P,), right (P,), label (P,) int8)``.

    Rule: ``round(n_pairs * positive_ratio)`` positives, each an item drawn uniformly from the items whose
    class has at least two members, paired with a different item of the same class drawn uniformly; the
    rest negatives, each an item drawn uniformly paired with an item drawn uniformly from the other
    classes. ``n_pairs`` defaults to ``min(2 * N, 20000)``. Duplicate pairs may occur. Deterministic for a
    seed; a ``Generator`` is advanced.
    """
    labels = np.asarray(labels)
    n = labels.size
    n_pairs = min(2 * n, 20000) if n_pairs is None else check_positive_int(n_pairs, name="n_pairs")
    if not 0.0 <= positive_ratio <= 1.0:
        raise InputError(f"positive_ratio must lie in [0, 1]; got {positive_ratio}.")
    order, cls, starts, counts = class_layout(labels)
    if counts.size < 2:
        raise InputError(
            "make_pairs needs at least two classes to form dissimilar pairs; the labels hold one."
        )
    rng = np.random.default_rng(rng)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - starts[cls[order]]
    n_pos = int(round(n_pairs * positive_ratio))
    eligible = np.flatnonzero(counts[cls] >= 2)
    if n_pos and eligible.size == 0:
        raise InputError("make_pairs: no class has two items, so no similar pair can be formed.")
    a = eligible[rng.integers(0, eligible.size, n_pos)] if n_pos else np.empty(0, np.int64)
    c = cls[a]
    offset = 1 + np.floor(rng.random(n_pos) * (counts[c] - 1)).astype(np.int64)
    b = order[starts[c] + (rank[a] + offset) % counts[c]]
    n_neg = n_pairs - n_pos
    a2 = rng.integers(0, n, n_neg)
    c2 = cls[a2]
    # an item of another class: skip over the anchor's class block in the class-sorted order
    u = np.floor(rng.random(n_neg) * (n - counts[c2])).astype(np.int64)
    b2 = order[np.where(u < starts[c2], u, u + counts[c2])]
    left = np.concatenate([a, a2])
    right = np.concatenate([b, b2])
    label = np.concatenate([np.ones(n_pos, np.int8), np.zeros(n_neg, np.int8)])
    perm = rng.permutation(n_pairs)
    return left[perm], right[perm], label[perm]


def episode_indices(
    labels: np.ndarray, *, n_way: int = 10, n_episodes: int | None = None, rng: Seed = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n-way episodes from identity labels (N,): ``(anchor (E,), candidates (E, n), correct (E,))``.

    Rule: each anchor is drawn uniformly from items whose class has at least two members; the true match is
    another item of its class drawn uniformly; the ``n_way - 1`` distractors are one item each of ``n_way -
    1`` distinct other classes drawn uniformly (so it needs ``n_way`` classes); the true match is put at a
    uniformly drawn position. ``n_episodes`` defaults to ``min(N, 5000)``.
    """
    labels = np.asarray(labels)
    n = labels.size
    n_way = check_positive_int(n_way, name="n_way", minimum=2)
    n_episodes = min(n, 5000) if n_episodes is None else check_positive_int(n_episodes, name="n_episodes")
    order, cls, starts, counts = class_layout(labels)
    n_classes = counts.size
    if n_classes < n_way:
        raise InputError(
            f"{n_way}-way episodes need {n_way} classes with items; the labels hold {n_classes}. Lower n_way."
        )
    eligible = np.flatnonzero(counts[cls] >= 2)
    if eligible.size == 0:
        raise InputError("make_episodes: no class has two items, so no anchor has a true match.")
    rng = np.random.default_rng(rng)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - starts[cls[order]]
    anchor = eligible[rng.integers(0, eligible.size, n_episodes)]
    c = cls[anchor]
    offset = 1 + np.floor(rng.random(n_episodes) * (counts[c] - 1)).astype(np.int64)
    match = order[starts[c] + (rank[anchor] + offset) % counts[c]]
    # n_way - 1 distinct other classes per episode: the smallest random keys, the anchor's class excluded
    keys = rng.random((n_episodes, n_classes))
    keys[np.arange(n_episodes), c] = np.inf
    other = (
        np.argpartition(keys, n_way - 2, axis=1)[:, : n_way - 1]
        if n_way - 1 < n_classes
        else np.argsort(keys, axis=1)[:, : n_way - 1]
    )
    other = np.sort(other, axis=1)
    pick = np.floor(rng.random(other.shape) * counts[other]).astype(np.int64)
    distractors = order[starts[other] + pick]
    correct = rng.integers(0, n_way, n_episodes)
    candidates = np.empty((n_episodes, n_way), dtype=np.int64)
    mask = np.ones((n_episodes, n_way), dtype=bool)
    mask[np.arange(n_episodes), correct] = False
    candidates[mask] = distractors.ravel()
    candidates[np.arange(n_episodes), correct] = match
    return anchor, candidates, correct


def stratified_pair_indices(label: np.ndarray, max_pairs: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of at most ``max_pairs`` pairs (labels (P,)): up to half positives, negatives fill the rest.

    All pairs when they fit; drawn without replacement otherwise (bounded samples for costly probes).
    """
    pos, neg = np.flatnonzero(label == 1), np.flatnonzero(label == 0)
    if pos.size + neg.size <= max_pairs:
        return np.arange(label.size)
    n_pos = min(pos.size, max_pairs // 2)
    n_neg = min(neg.size, max_pairs - n_pos)
    n_pos = min(pos.size, max_pairs - n_neg)
    take = np.concatenate([rng.choice(pos, n_pos, replace=False), rng.choice(neg, n_neg, replace=False)])
    return np.sort(take)


def positive_pair_components(
    n_items: int, left: np.ndarray, right: np.ndarray, label: np.ndarray
) -> np.ndarray:
    """Connected components (N,) int64 of the graph whose edges are the positive pairs (label 1).

    Items in no positive pair are their own component. These are *inferred groups*, not identities: they
    may drive pairing, never an identity-level number compared across splits.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pos = np.asarray(label) == 1
    graph = coo_matrix((np.ones(int(pos.sum())), (left[pos], right[pos])), shape=(n_items, n_items))
    _, comp = connected_components(graph, directed=False)
    return comp.astype(np.int64)
