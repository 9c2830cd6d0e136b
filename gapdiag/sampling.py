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
    "draw_fresh_partners",
    "pair_keys",
    "class_layout",
    "pair_indices",
    "episode_indices",
    "stratified_pair_indices",
    "budgeted_queries",
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
    other = np.sort(_other_classes(rng, c, n_classes, n_way - 1), axis=1)
    pick = np.floor(rng.random(other.shape) * counts[other]).astype(np.int64)
    distractors = order[starts[other] + pick]
    correct = rng.integers(0, n_way, n_episodes)
    candidates = np.empty((n_episodes, n_way), dtype=np.int64)
    mask = np.ones((n_episodes, n_way), dtype=bool)
    mask[np.arange(n_episodes), correct] = False
    candidates[mask] = distractors.ravel()
    candidates[np.arange(n_episodes), correct] = match
    return anchor, candidates, correct


def _other_classes(rng: np.random.Generator, c: np.ndarray, n_classes: int, m: int) -> np.ndarray:
    """``m`` distinct classes per row (E, m), none equal to the row's class ``c`` (E,), uniformly drawn.

    Few classes: the ``m`` smallest of one random key per class. Many classes (an (E, n_classes) key
    matrix would take gigabytes: 5000 episodes of 10,000 identities, 400 MB): ``m`` uniform draws among
    the other classes, rows with a repeat drawn again, which leaves every set of ``m`` distinct classes
    equally likely.
    """
    e = c.size
    if e * n_classes <= 1 << 22:
        keys = rng.random((e, n_classes))
        keys[np.arange(e), c] = np.inf
        if m < n_classes:
            return np.argpartition(keys, m - 1, axis=1)[:, :m]
        return np.argsort(keys, axis=1)[:, :m]
    out = rng.integers(0, n_classes - 1, (e, m))
    out += out >= c[:, None]
    redo = np.arange(e)
    while redo.size:
        srt = np.sort(out[redo], axis=1)
        redo = redo[(srt[:, 1:] == srt[:, :-1]).any(axis=1)]
        fresh = rng.integers(0, n_classes - 1, (redo.size, m))
        out[redo] = fresh + (fresh >= c[redo, None])
    return out


#: Queries a budgeted search keeps at least: a mean over them (a retrieval metric, a duplicate share) has a
#: sampling error of at most ~0.011.
MIN_QUERIES = 2000


def budgeted_queries(n: int, cost_per_query: float, budget: float, rng: np.random.Generator) -> np.ndarray:
    """Rows (m,) of ``n`` that query a search costing ``cost_per_query`` each, within ``budget`` in total.

    Every row while ``n x cost_per_query <= budget`` (the search is exact); beyond it a seeded uniform
    sample, sorted, of ``budget / cost_per_query`` rows and at least :data:`MIN_QUERIES`.
    """
    m = max(MIN_QUERIES, int(float(budget) // max(1.0, float(cost_per_query))))
    if m >= n:
        return np.arange(n, dtype=np.int64)
    return np.sort(rng.choice(n, m, replace=False)).astype(np.int64)


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


def pair_keys(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """Order-free key of each item pair (a_i, b_i): ``min * n + max`` (int64)."""
    lo, hi = np.minimum(a, b).astype(np.int64), np.maximum(a, b).astype(np.int64)
    return lo * n + hi


def _in_sorted(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """Membership of each key in a sorted key array (bool, shape of ``keys``)."""
    if sorted_keys.size == 0:
        return np.zeros(keys.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), sorted_keys.size - 1)
    return sorted_keys[pos] == keys


def draw_fresh_partners(
    anchor: np.ndarray,
    partner: np.ndarray,
    label: np.ndarray,
    identity: np.ndarray,
    pool: dict[int, np.ndarray],
    original_keys: np.ndarray,
    *,
    n_items: int,
    replicates: int,
    rng: np.random.Generator,
    attempts: int = 30,
) -> np.ndarray:
    """For each pair, ``replicates`` new partners for ``anchor``: other items of the partner's identity.

    Parameters
    ----------
    anchor, partner : ndarray (P,) int
        The kept item and the replaced item of each original pair.
    label : ndarray (P,) int
        1 = similar, 0 = dissimilar; a fresh partner is drawn from ``pool[label]``.
    identity : ndarray (N,) int
        Identity code of every item (labels, or connected components of positive pairs).
    pool : dict {0: bool (N,), 1: bool (N,)}
        Items that occur in dissimilar / similar original pairs: a fresh partner keeps the replaced
        partner's role, so per-item properties tied to the role (a tint shared by positive pairs, a pool of
        hard negatives) stay as they were and only the pairing changes.
    original_keys : ndarray, sorted int64
        ``_pair_keys`` of every original pair; a fresh pair never repeats one.

    Returns
    -------
    ndarray (P, replicates) int64
        The fresh partner of each replicate, or -1 where no valid partner exists (every other member of
        the partner's identity is the anchor, already paired with it, or outside the role pool).
    """
    p = anchor.size
    out = np.full((p, replicates), -1, dtype=np.int64)
    order_of, group_start, group_count = _partner_groups(partner, label, identity, pool)

    def valid(rows: np.ndarray, cand: np.ndarray) -> np.ndarray:
        keys = pair_keys(anchor[rows], cand, n_items)
        return (cand != anchor[rows]) & (cand != partner[rows]) & ~_in_sorted(keys, original_keys)

    todo_r, todo_c = np.nonzero((group_count > 1)[:, None] & np.ones((1, replicates), bool))
    for _ in range(attempts):
        if todo_r.size == 0:
            break
        u = np.floor(rng.random(todo_r.size) * group_count[todo_r]).astype(np.int64)
        cand = np.empty(todo_r.size, dtype=np.int64)
        for lab in (0, 1):
            m = label[todo_r] == lab
            cand[m] = order_of[lab][group_start[todo_r[m]] + u[m]]
        ok = valid(todo_r, cand)
        out[todo_r[ok], todo_c[ok]] = cand[ok]
        todo_r, todo_c = todo_r[~ok], todo_c[~ok]
    # The few left after random attempts: enumerate their candidates exactly.
    for row in np.unique(todo_r):
        lab = int(label[row])
        members = order_of[lab][group_start[row] : group_start[row] + group_count[row]]
        members = members[valid(np.full(members.size, row), members)]
        slots = todo_c[todo_r == row]
        if members.size:
            out[row, slots] = members[rng.integers(0, members.size, slots.size)]
    return out


def _partner_groups(
    partner: np.ndarray, label: np.ndarray, identity: np.ndarray, pool: dict[int, np.ndarray]
) -> tuple[dict[int, np.ndarray], np.ndarray, np.ndarray]:
    """Per label, the pool's items sorted by identity (``order_of[label]``), and for each pair (P,) where the
    replaced partner's identity starts in that order and how many items it has there."""
    p = partner.size
    order_of: dict[int, np.ndarray] = {}
    group_start = np.zeros(p, dtype=np.int64)
    group_count = np.zeros(p, dtype=np.int64)
    for lab in (0, 1):
        members = np.flatnonzero(pool[lab])
        order = members[np.argsort(identity[members], kind="stable")]
        uniq, starts, counts = np.unique(identity[order], return_index=True, return_counts=True)
        order_of[lab] = order
        sel = label == lab
        if not sel.any() or uniq.size == 0:
            continue
        g = np.minimum(np.searchsorted(uniq, identity[partner[sel]]), uniq.size - 1)
        found = uniq[g] == identity[partner[sel]]
        group_start[sel] = np.where(found, starts[g], 0)
        group_count[sel] = np.where(found, counts[g], 0)
    return order_of, group_start, group_count
