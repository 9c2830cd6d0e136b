"""Retrieval, verification, cluster and n-way metrics, vectorized, with confidence intervals.

Conventions used throughout:

- Embeddings are (n, d) float arrays with one row per item; labels are (n,) identity ids of any dtype.
- Pair and episode scores are *oriented*: higher = more similar (see ``gapdiag.scoring``). A pair is
  called similar (accepted) when ``score >= threshold``.
- Every metric here lies in [0, 1] and higher is better, except FNMR, FMR (lower is better) and the
  silhouette (in [-1, 1], higher is better). Chance levels are stated where they exist.
- Intervals are percentile bootstrap intervals from :mod:`gapdiag.stats` (Wilson for plain proportions).

Retrieval metrics use exactly the definitions of pytorch-metric-learning's ``AccuracyCalculator``
(``avg_of_avgs=False``, query set = reference set, ``k="max_bin_count"``) and agree with it to 1e-6 on
the same embeddings; ``tests/test_metrics.py`` checks this against the library and against a plain loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InputError
from .neighbors import METRICS, _as_matrix, self_knn_blocks
from .stats import (
    DEFAULT_LEVEL,
    DEFAULT_N_BOOT,
    Estimate,
    bootstrap_auc,
    bootstrap_mean,
    estimate_from_draws,
    roc_auc,
    wilson,
)
from .validation import (
    check_binary_labels,
    check_choice,
    check_finite,
    check_index_array,
    check_labels,
    check_positive_int,
    check_same_length,
)

__all__ = [
    "RetrievalMetrics",
    "retrieval_metrics",
    "per_class_retrieval",
    "verification_metrics",
    "accuracy_at_threshold",
    "best_threshold",
    "fnmr_at_fmr",
    "cluster_metrics",
    "nway_accuracy",
    "nway_metrics",
]


def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng(0)
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise InputError(f"rng must be a numpy Generator, an int seed or None; got {type(rng).__name__}.")


def _label_codes(labels: Any, n: int, *, name: str = "labels") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels (n,), code of each item (n,) int64 into the sorted classes, items per class (C,) int64).

    Needs at least 2 classes.
    """
    arr = check_labels(labels, name=name, n=n)
    uniques, codes = np.unique(arr, return_inverse=True)
    if uniques.size < 2:
        raise InputError(
            f"{name} hold a single class ({uniques[0]!r}) for {n} items; these metrics compare classes "
            "and need at least 2. Pass embeddings of items from several identities."
        )
    codes = codes.reshape(-1)
    # int32 codes: gathering (n, k) neighbour labels moves half the bytes of int64
    return arr, codes.astype(np.int32), np.bincount(codes).astype(np.int64)


# ----------------------------------------------------------------------------------------------------------
# Retrieval


@dataclass(frozen=True, eq=False)
class RetrievalMetrics:
    """Leave-one-out retrieval quality of an embedding: every item queries all the others.

    All values are means over the evaluated queries (items whose class has at least one other item), in
    [0, 1], higher = better, each with a bootstrap CI over queries.

    Attributes
    ----------
    precision_at_1 : Estimate
        Fraction of queries whose nearest other item has the query's class. Chance is about
        ``sum_c p_c^2`` for class frequencies ``p_c`` (1 / n_classes for balanced classes).
    r_precision : Estimate
        With ``R`` = the number of other items of the query's class: the fraction of the ``R`` nearest
        that have the query's class.
    map_at_r : Estimate
        MAP@R (Musgrave et al., 2020): ``(1/R) * sum_{i<=R} P@i * rel_i`` over the ``R`` nearest.
    recall_at_k : dict[int, Estimate]
        Fraction of queries with at least one item of their class among the ``k`` nearest (the
        metric-learning "Recall@k"; recall@1 equals precision@1).
    n_items : int
        Rows in the embedding matrix.
    n_queries : int
        Queries evaluated (the ``n`` of every estimate).
    fraction_without_positive : float
        Fraction of items that are the only item of their class; they cannot be evaluated and are left
        out of every mean, as pytorch-metric-learning does.
    k : int
        Depth of the kNN lists used.
    n_truncated : int
        Evaluated queries whose ``R`` exceeds ``k`` (only when ``max_k`` bounded the lists). For them
        R-precision and MAP@R count the unseen ranks ``k+1..R`` as misses: the means are lower bounds.
    metric : str
        "euclidean" or "cosine".
    query_rows : ndarray of shape (n_queries,), int64
        Row of each evaluated query in the embedding matrix.
    query_labels : ndarray of shape (n_queries,)
        Label of each evaluated query.
    per_query : dict[str, ndarray of shape (n_queries,), float64]
        The per-query values behind each mean: "precision_at_1", "r_precision", "map_at_r" and
        "recall_at_{k}" for each k. Use :func:`per_class_retrieval` for per-class means.
    """

    precision_at_1: Estimate
    r_precision: Estimate
    map_at_r: Estimate
    recall_at_k: dict[int, Estimate]
    n_items: int
    n_queries: int
    fraction_without_positive: float
    k: int
    n_truncated: int
    metric: str
    query_rows: np.ndarray = field(repr=False)
    query_labels: np.ndarray = field(repr=False)
    per_query: dict[str, np.ndarray] = field(repr=False)

    def to_dict(self) -> dict:
        """JSON-ready summary (no per-query arrays)."""
        return {
            "precision_at_1": self.precision_at_1.to_dict(),
            "r_precision": self.r_precision.to_dict(),
            "map_at_r": self.map_at_r.to_dict(),
            "recall_at_k": {str(k): est.to_dict() for k, est in self.recall_at_k.items()},
            "n_items": int(self.n_items),
            "n_queries": int(self.n_queries),
            "fraction_without_positive": round(float(self.fraction_without_positive), 6),
            "k": int(self.k),
            "n_truncated": int(self.n_truncated),
            "metric": self.metric,
        }


def _retrieval_block(
    nb_codes: np.ndarray, q_codes: np.ndarray, r: np.ndarray, k_values: tuple[int, ...]
) -> dict[str, np.ndarray]:
    """Per-query metrics of one block from neighbour labels (b, k), query labels (b,) and R (b,)."""
    k = nb_codes.shape[1]
    same = nb_codes == q_codes[:, None]
    hits = same & (np.arange(k) < r[:, None])  # relevant items among the first R ranks
    hits_so_far = np.cumsum(hits, axis=1, dtype=np.int32)
    n_hits = hits_so_far[:, -1]
    # MAP@R numerator: sum over relevant ranks i of P@i = (hits up to i) / i
    precision_sum = np.einsum("bk,bk,k->b", hits_so_far, hits, 1.0 / np.arange(1, k + 1))
    out = {
        "precision_at_1": same[:, 0].astype(np.float64),
        "r_precision": n_hits / r,
        "map_at_r": precision_sum / r,
    }
    for kv in k_values:
        out[f"recall_at_{kv}"] = same[:, : min(kv, k)].any(axis=1).astype(np.float64)
    return out


def _depth_grouped_blocks(
    x: np.ndarray,
    query_rows: np.ndarray,
    r_all: np.ndarray,
    k: int,
    k_recall: int,
    metric: str,
    chunk_size: int | None,
    backend: str,
):
    """Yield ``(positions, rows, indices)`` of self-kNN blocks, each searched only as deep as it needs.

    A query needs ``max(R, largest recall k)`` neighbours (at most ``k``). Queries whose depth is within a
    factor 2 of the deepest remaining one share one search at that depth; the rest are searched
    shallower, and so on. With classes of similar size this is a single search (as in
    pytorch-metric-learning); with a long tail of class sizes a few large classes no longer force every
    query to the depth of the largest one. ``positions`` index into ``query_rows``.
    """
    depth = np.minimum(np.maximum(r_all[query_rows], k_recall), k)
    order = np.argsort(depth, kind="stable")
    sorted_depth = depth[order]
    end = order.size
    while end > 0:
        deepest = int(sorted_depth[end - 1])
        start = int(np.searchsorted(sorted_depth[:end], deepest // 2, side="right"))
        positions = order[start:end]
        done = 0
        for rows, idx, _ in self_knn_blocks(
            x,
            deepest,
            rows=query_rows[positions],
            metric=metric,
            chunk_size=chunk_size,
            backend=backend,
            exact_distances=False,
        ):
            yield positions[done : done + rows.size], rows, idx
            done += rows.size
        end = start


def retrieval_metrics(
    embeddings: Any,
    labels: Any,
    *,
    k_values: tuple[int, ...] = (1, 5, 10),
    metric: str = "euclidean",
    rng: np.random.Generator | int | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    level: float = DEFAULT_LEVEL,
    max_k: int | None = None,
    knn_indices: Any = None,
    backend: str = "auto",
    chunk_size: int | None = None,
) -> RetrievalMetrics:
    """Precision@1, R-precision, MAP@R and recall@k of leave-one-out retrieval, with bootstrap CIs.

    Every item whose class has another item queries all other items (its own row excluded). The kNN
    lists come from :func:`gapdiag.neighbors.self_knn_blocks` and are reduced block by block, so memory
    stays at ``n x d`` plus ``chunk x k``. Equal to pytorch-metric-learning's ``AccuracyCalculator``
    (``include=("precision_at_1", "r_precision", "mean_average_precision_at_r")``, ``k="max_bin_count"``,
    ``avg_of_avgs=False``) on the same embeddings, ties in distance aside.

    Parameters
    ----------
    embeddings : array-like of shape (n, d)
        One row per item, finite; converted to float32 (a torch tensor is accepted).
    labels : array-like of shape (n,)
        Class (identity) of each item, any hashable dtype; at least 2 classes.
    k_values : tuple of int
        The ``k`` of each recall@k. A ``k`` of ``n - 1`` or more uses all other items (recall 1).
    metric : {"euclidean", "cosine"}
        Distance between embeddings.
    rng : numpy Generator, int or None
        Seed or generator for the bootstrap (None = seed 0). Results are deterministic for a given seed.
    n_boot : int
        Bootstrap resamples over queries; 0 gives point values with NaN interval bounds.
    level : float
        Confidence level of the intervals.
    max_k : int or None
        Optional bound on the kNN depth. A query needs ``max(R, max(k_values))`` neighbours, ``R`` being
        the number of other items of its class; queries are searched in groups of similar depth, so only
        the queries of large classes are searched deep. None (default) = exact for every query, as in
        pytorch-metric-learning; memory per block is ``chunk x depth``. With a bound, queries whose
        ``R`` exceeds ``max_k`` are truncated (counted in ``n_truncated``): their precision@1 and recall@k
        stay exact, but R-precision and MAP@R count the unseen ranks as misses and become lower bounds.
    knn_indices : array-like of shape (n, k'), int, optional
        Precomputed self-excluded neighbour lists of all ``n`` rows, nearest first (as from
        ``knn(x, x, k', exclude_self=True)``), to reuse a kNN graph built elsewhere. Lists shorter
        than the depth needed truncate as with ``max_k``.
    backend, chunk_size
        Passed to the kNN search (see :func:`gapdiag.neighbors.knn`).

    Returns
    -------
    RetrievalMetrics

    Raises
    ------
    InputError
        Mismatched lengths, NaN or inf embeddings, fewer than 2 classes, no class with 2 or more items,
        bad ``k_values`` or ``max_k`` or ``knn_indices``.
    """
    check_choice(metric, name="metric", choices=METRICS)
    rng = _as_rng(rng)
    x = _as_matrix(embeddings, name="embeddings")
    n = x.shape[0]
    label_arr, codes, counts = _label_codes(labels, n)
    if not k_values:
        raise InputError("k_values is empty; pass the k of each recall@k, e.g. (1, 5, 10).")
    k_values = tuple(sorted({check_positive_int(kv, name="k_values entry") for kv in k_values}))
    n_boot = check_positive_int(n_boot, name="n_boot", minimum=0)

    r_all = counts[codes] - 1
    query_rows = np.flatnonzero(r_all > 0)
    if query_rows.size == 0:
        raise InputError(
            f"every one of the {counts.size} classes in labels has a single item, so no item has another "
            "item of its class to retrieve. Retrieval metrics need at least one class with 2+ items."
        )
    k_need = min(max(int(r_all.max()), max(k_values)), n - 1)
    k_recall = min(max(k_values), n - 1)
    if knn_indices is not None:
        knn_arr = check_index_array(knn_indices, name="knn_indices", n_items=n, ndim=2)
        if knn_arr.shape[0] != n:
            raise InputError(
                f"knn_indices has {knn_arr.shape[0]} rows but there are {n} embeddings; pass the "
                "self-excluded neighbour lists of every row (knn(x, x, k, exclude_self=True))."
            )
        if knn_arr.shape[1] < k_recall:
            raise InputError(
                f"knn_indices holds {knn_arr.shape[1]} neighbours per row but recall@{k_recall} needs "
                f"{k_recall}. Build deeper lists or drop that k from k_values."
            )
        k = min(knn_arr.shape[1], k_need)
        blocks = ((np.arange(query_rows.size), query_rows, knn_arr[query_rows, :k]),)
    else:
        k = k_need
        if max_k is not None:
            max_k = check_positive_int(max_k, name="max_k")
            if max_k < k_recall:
                raise InputError(
                    f"max_k={max_k} is below the largest k in k_values ({k_recall}); raise max_k or drop "
                    "that k from k_values."
                )
            k = min(k, max_k)
        blocks = _depth_grouped_blocks(x, query_rows, r_all, k, k_recall, metric, chunk_size, backend)

    names = ["precision_at_1", "r_precision", "map_at_r", *(f"recall_at_{kv}" for kv in k_values)]
    per_query = {name: np.empty(query_rows.size, dtype=np.float64) for name in names}
    for positions, rows, idx in blocks:
        values = _retrieval_block(codes[idx], codes[rows], r_all[rows], k_values)
        for name in names:
            per_query[name][positions] = values[name]

    means = _joint_bootstrap_means([per_query[m] for m in names], rng, n_boot, level)
    estimates = dict(zip(names, means, strict=True))
    return RetrievalMetrics(
        precision_at_1=estimates["precision_at_1"],
        r_precision=estimates["r_precision"],
        map_at_r=estimates["map_at_r"],
        recall_at_k={kv: estimates[f"recall_at_{kv}"] for kv in k_values},
        n_items=n,
        n_queries=int(query_rows.size),
        fraction_without_positive=float(1.0 - query_rows.size / n),
        k=int(k),
        n_truncated=int(np.count_nonzero(r_all[query_rows] > k)),
        metric=metric,
        query_rows=query_rows,
        query_labels=label_arr[query_rows],
        per_query=per_query,
    )


def _joint_bootstrap_means(
    columns: list[np.ndarray], rng: np.random.Generator, n_boot: int, level: float
) -> list[Estimate]:
    """Means of several per-query arrays (each (q,)) with percentile CIs from the *same* resamples.

    Equivalent to ``stats.bootstrap_mean`` per column, but one draw of resample indices serves every
    metric: about 5x cheaper for six metrics, and metrics that coincide (recall@1 and precision@1) get
    identical intervals. A resample's mean is ``counts @ values / q`` with ``counts`` the multiplicity of
    each query in it.
    """
    values = np.stack(columns, axis=1)  # (q, M)
    q = values.shape[0]
    points = values.mean(axis=0)
    samples = np.empty((n_boot, values.shape[1]))
    rows = max(1, min(n_boot, (1 << 22) // q))
    for start in range(0, n_boot, rows):
        b = min(rows, n_boot - start)
        idx = rng.integers(0, q, size=(b, q), dtype=np.int32).astype(np.int64)
        idx += (np.arange(b, dtype=np.int64) * q)[:, None]
        counts = np.bincount(idx.ravel(), minlength=b * q).reshape(b, q)
        samples[start : start + b] = counts @ values / q
    return [estimate_from_draws(float(points[j]), samples[:, j], q, level) for j in range(values.shape[1])]


def per_class_retrieval(result: RetrievalMetrics) -> dict[str, np.ndarray]:
    """Per-class means of the per-query retrieval values (columnar, one entry per evaluated class).

    Parameters
    ----------
    result : RetrievalMetrics
        Output of :func:`retrieval_metrics`.

    Returns
    -------
    dict of ndarray, each of shape (C,)
        ``"label"`` (the class, sorted), ``"n_queries"`` (int64), and the mean of every per-query metric
        of ``result.per_query`` over the queries of that class (float64, in [0, 1], higher = better).
        Classes with a single item are absent (they have no query). The mean of a column is the
        "average of per-class averages" (pytorch-metric-learning's ``avg_of_avgs=True``), which weights
        classes equally instead of queries. Ready for ``pandas.DataFrame(...)``.
    """
    uniques, inverse = np.unique(result.query_labels, return_inverse=True)
    inverse = inverse.reshape(-1)
    n_per = np.bincount(inverse, minlength=uniques.size)
    out: dict[str, np.ndarray] = {"label": uniques, "n_queries": n_per.astype(np.int64)}
    for name, values in result.per_query.items():
        out[name] = np.bincount(inverse, weights=values, minlength=uniques.size) / n_per
    return out


# ----------------------------------------------------------------------------------------------------------
# Verification (pairs)


def _check_scores_labels(
    scores: Any, labels: Any, *, need_both: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores.detach().cpu() if hasattr(scores, "detach") else scores)
    if s.dtype == object or not np.issubdtype(s.dtype, np.number):
        raise InputError(f"scores must be numeric; got dtype {s.dtype}.")
    s = s.astype(np.float64).reshape(-1) if s.ndim <= 1 else None
    if s is None:
        raise InputError(f"scores must be 1-D (one score per pair); got shape {np.shape(scores)}.")
    y = check_binary_labels(labels, name="labels").astype(bool)
    check_same_length(scores=s, labels=y)
    if s.size == 0:
        raise InputError("scores and labels are empty; pass at least one similar and one dissimilar pair.")
    check_finite(s, name="scores", hint="Every pair needs a finite score; check the distance function.")
    if need_both and (y.all() or not y.any()):
        which = "similar (1)" if y.all() else "dissimilar (0)"
        raise InputError(
            f"all {y.size} pairs are {which}; verification metrics need both similar and dissimilar pairs."
        )
    return s, y


def accuracy_at_threshold(scores: Any, labels: Any, threshold: float, *, balanced: bool = False) -> float:
    """Accuracy of the decision "similar when ``score >= threshold``".

    Parameters
    ----------
    scores : array-like of shape (p,), float
        Oriented pair scores, higher = more similar.
    labels : array-like of shape (p,), 0/1 or bool
        1 = similar pair, 0 = dissimilar pair.
    threshold : float
        Decision threshold on the oriented score.
    balanced : bool
        Return balanced accuracy ``(TPR + TNR) / 2`` instead of plain accuracy (needs both classes).

    Returns
    -------
    float
        In [0, 1], higher = better. Chance: 0.5 for balanced accuracy; the majority-class rate for plain
        accuracy.
    """
    s, y = _check_scores_labels(scores, labels, need_both=balanced)
    accept = s >= threshold
    if balanced:
        return float(0.5 * (accept[y].mean() + (~accept[~y]).mean()))
    return float(np.mean(accept == y))


def _threshold_table(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every distinct decision of "accept when score >= t", via one sort.

    Returns the sorted distinct scores u (U,), and for each of the U + 1 candidate cuts j (accept
    ``u[j:]``; j = U accepts nothing) the true positives and true negatives, plus the scores below the cut.
    """
    order = np.argsort(s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    u, first = np.unique(s_sorted, return_index=True)
    starts = np.append(first, s.size)  # items below each candidate cut
    pos_below = np.concatenate(([0], np.cumsum(y_sorted)))[starts]
    n_pos = int(y.sum())
    tp = n_pos - pos_below
    tn = starts - pos_below
    return u, tp, tn, starts


def best_threshold(scores: Any, labels: Any, *, balanced: bool = False) -> tuple[float, float]:
    """The threshold with the highest (balanced) accuracy on these pairs, in O(p log p).

    Parameters
    ----------
    scores : array-like of shape (p,), float
        Oriented pair scores, higher = more similar.
    labels : array-like of shape (p,), 0/1 or bool
        1 = similar, 0 = dissimilar; both must occur.
    balanced : bool
        Maximize balanced accuracy ``(TPR + TNR) / 2`` instead of accuracy.

    Returns
    -------
    threshold : float
        Use as "similar when ``score >= threshold``". It is the midpoint between the two distinct scores
        the best cut falls between (the smallest score when accepting everything is best, just above the
        largest score when rejecting everything is). Among equally good cuts the lowest threshold wins.
    accuracy : float
        The (balanced) accuracy at that threshold on these pairs, in [0, 1]. Optimistic for other pairs:
        the threshold was tuned on the same pairs.
    """
    s, y = _check_scores_labels(scores, labels)
    u, tp, tn, _ = _threshold_table(s, y)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    acc = 0.5 * (tp / n_pos + tn / n_neg) if balanced else (tp + tn) / s.size
    j = int(np.argmax(acc))
    if j == 0:
        threshold = float(u[0])
    elif j == u.size:
        threshold = float(np.nextafter(u[-1], np.inf))
    else:
        threshold = float(0.5 * (u[j - 1] + u[j]))
        if not (u[j - 1] < threshold <= u[j]):  # adjacent floats: the midpoint rounds onto u[j-1]
            threshold = float(u[j])
    return threshold, float(acc[j])


def fnmr_at_fmr(
    scores: Any,
    labels: Any,
    fmr_targets: tuple[float, ...] = (1e-3, 1e-2, 1e-1),
    *,
    rng: np.random.Generator | int | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    level: float = DEFAULT_LEVEL,
) -> dict[float, dict[str, Any]]:
    """False non-match rate at the threshold that holds the false match rate at or below each target.

    For a target ``f`` with ``N`` dissimilar pairs, the threshold is the lowest one whose FMR (fraction of
    dissimilar pairs accepted) is at most ``f``: it lets through at most ``floor(f * N)`` dissimilar pairs,
    i.e. it sits just above the ``(floor(f * N) + 1)``-th highest dissimilar score.

    Parameters
    ----------
    scores : array-like of shape (p,), float
        Oriented pair scores, higher = more similar.
    labels : array-like of shape (p,), 0/1 or bool
        1 = similar, 0 = dissimilar; both must occur.
    fmr_targets : tuple of float
        Target false match rates, each in (0, 1).
    rng, n_boot, level
        Bootstrap settings (None = seed 0). Similar and dissimilar pairs are resampled separately and
        the threshold is re-estimated in every resample, so the interval includes threshold uncertainty.

    Returns
    -------
    dict
        For each target: ``"fnmr"`` (Estimate; fraction of similar pairs rejected, in [0, 1], lower =
        better), ``"threshold"`` (float; similar when ``score >= threshold``), ``"fmr"`` (the FMR actually
        reached, <= target), and ``"resolvable"`` (bool; False when there are fewer than ``1 / f``
        dissimilar pairs, so the threshold simply rejects every dissimilar pair and the number says little
        about the target).
    """
    s, y = _check_scores_labels(scores, labels)
    rng = _as_rng(rng)
    n_boot = check_positive_int(n_boot, name="n_boot", minimum=0)
    targets = tuple(float(f) for f in fmr_targets)
    bad = [f for f in targets if not 0.0 < f < 1.0]
    if bad:
        raise InputError(f"fmr_targets must lie strictly between 0 and 1; got {bad}. Example: (1e-3, 1e-2).")
    pos_sorted, neg_sorted = np.sort(s[y]), np.sort(s[~y])
    n_pos, n_neg = pos_sorted.size, neg_sorted.size
    # Allowed false matches per target; the small epsilon guards products like 0.29 * 100 = 28.999...
    allowed = {f: min(int(np.floor(f * n_neg + 1e-9)), n_neg - 1) for f in targets}
    # The cut sits above the (allowed+1)-th highest negative = position (n_neg - 1 - allowed) ascending.
    cut_pos = {f: n_neg - 1 - a for f, a in allowed.items()}

    samples: dict[float, list[np.ndarray]] = {f: [] for f in targets}
    chunk = max(1, int(2_000_000 // (n_pos + n_neg)))
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        neg_idx = rng.integers(0, n_neg, size=(m, n_neg))
        pos_idx = rng.integers(0, n_pos, size=(m, n_pos))
        for f in targets:
            # neg_sorted is increasing, so the order statistic of the indices gives that of the scores
            tau = neg_sorted[np.partition(neg_idx, cut_pos[f], axis=1)[:, cut_pos[f]]]
            below = np.searchsorted(pos_sorted, tau, side="right")  # positives with score <= tau
            samples[f].append((pos_idx < below[:, None]).mean(axis=1))

    out: dict[float, dict[str, Any]] = {}
    for f in targets:
        tau = neg_sorted[cut_pos[f]]
        threshold = float(np.nextafter(tau, np.inf))  # accept score > tau  <=>  score >= threshold
        fnmr = np.searchsorted(pos_sorted, tau, side="right") / n_pos
        fmr = (n_neg - np.searchsorted(neg_sorted, tau, side="right")) / n_neg
        boot = np.concatenate(samples[f]) if samples[f] else np.empty(0)
        out[f] = {
            "fnmr": estimate_from_draws(float(fnmr), boot, n_pos, level),
            "threshold": threshold,
            "fmr": float(fmr),
            "resolvable": bool(n_neg * f >= 1.0),
        }
    return out


def verification_metrics(
    scores: Any,
    labels: Any,
    *,
    fmr_targets: tuple[float, ...] = (1e-3, 1e-2, 1e-1),
    threshold: float | None = None,
    rng: np.random.Generator | int | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    level: float = DEFAULT_LEVEL,
) -> dict[str, Any]:
    """Pairwise verification quality: ROC-AUC, FNMR at fixed FMR, accuracy at a threshold.

    Parameters
    ----------
    scores : array-like of shape (p,), float
        Oriented pair scores, higher = more similar (orient raw distances with ``gapdiag.scoring``).
    labels : array-like of shape (p,), 0/1 or bool
        1 = similar pair, 0 = dissimilar pair; both must occur.
    fmr_targets : tuple of float
        False match rates at which FNMR is reported, each in (0, 1).
    threshold : float, optional
        Decision threshold ("similar when ``score >= threshold``") for ``accuracy`` and
        ``balanced_accuracy``, e.g. the one tuned on training pairs. None = the best-accuracy threshold of
        these same pairs (optimistic; ``threshold_source`` says which).
    rng : numpy Generator, int or None
        Bootstrap seed or generator (None = seed 0).
    n_boot, level
        Bootstrap resamples and confidence level.

    Returns
    -------
    dict
        ``"n_pairs"``, ``"n_positive"``, ``"n_negative"`` (int), ``"positive_ratio"`` (float);
        ``"roc_auc"`` (Estimate, in [0, 1], 0.5 = chance, higher = better; far below 0.5 means the score is
        read in the wrong direction); ``"fnmr_at_fmr"`` (see :func:`fnmr_at_fmr`);
        ``"best_threshold"`` and ``"best_accuracy"`` (float; accuracy maximized over thresholds on these
        pairs, optimistic); ``"threshold"``, ``"threshold_source"`` ("given" or "best_on_these_pairs");
        ``"accuracy"`` (Estimate, Wilson interval, chance = majority rate ``max(positive_ratio,
        1 - positive_ratio)``) and ``"balanced_accuracy"`` (Estimate, stratified bootstrap, chance 0.5) at
        ``threshold``.
    """
    s, y = _check_scores_labels(scores, labels)
    rng = _as_rng(rng)
    n_boot = check_positive_int(n_boot, name="n_boot", minimum=0)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    best_t, best_acc = best_threshold(s, y)
    source = "best_on_these_pairs"
    if threshold is None:
        threshold = best_t
    else:
        threshold = float(threshold)
        if not np.isfinite(threshold):
            raise InputError(f"threshold must be a finite number; got {threshold!r}.")
        source = "given"
    accept = s >= threshold
    correct = int(np.count_nonzero(accept == y))
    tpr, tnr = float(accept[y].mean()), float((~accept[~y]).mean())
    # With a fixed threshold each pair is a Bernoulli trial, so resampling the pairs of one class is exactly
    # a binomial draw of that class's hit rate.
    boot = 0.5 * (
        rng.binomial(n_pos, tpr, size=n_boot) / n_pos + rng.binomial(n_neg, tnr, size=n_boot) / n_neg
    )
    if n_boot > 0:
        auc = bootstrap_auc(s, y, rng=rng, n_boot=n_boot, level=level)
    else:  # stats.bootstrap_auc needs at least one resample
        auc = Estimate.unknown(int(s.size), level, value=roc_auc(s, y))
    return {
        "n_pairs": int(s.size),
        "n_positive": n_pos,
        "n_negative": n_neg,
        "positive_ratio": n_pos / s.size,
        "roc_auc": auc,
        "fnmr_at_fmr": fnmr_at_fmr(s, y, fmr_targets, rng=rng, n_boot=n_boot, level=level),
        "best_threshold": best_t,
        "best_accuracy": best_acc,
        "threshold": threshold,
        "threshold_source": source,
        "accuracy": wilson(correct, s.size, level),
        "balanced_accuracy": estimate_from_draws(0.5 * (tpr + tnr), boot, int(s.size), level),
    }


# ----------------------------------------------------------------------------------------------------------
# Clusters


def cluster_metrics(
    embeddings: Any,
    labels: Any,
    *,
    rng: np.random.Generator | int | None = None,
    metric: str = "euclidean",
    n_init: int = 3,
    silhouette_sample: int = 2000,
    n_boot: int = DEFAULT_N_BOOT,
    level: float = DEFAULT_LEVEL,
) -> dict[str, Any]:
    """How well k-means on the embeddings recovers the classes, and how separated the classes are.

    Parameters
    ----------
    embeddings : array-like of shape (n, d)
        One finite row per item; with ``metric="cosine"`` rows are L2-normalized first (spherical k-means
        approximation) and the silhouette uses cosine distance.
    labels : array-like of shape (n,)
        Class of each item; at least 2 classes and fewer classes than items.
    rng : numpy Generator, int or None
        Seeds k-means and the silhouette subsample (None = seed 0).
    metric : {"euclidean", "cosine"}
    n_init : int
        k-means restarts (scikit-learn ``KMeans``, ``k`` = number of classes).
    silhouette_sample : int
        Items drawn (without replacement) for the silhouette, which costs ``sample^2`` distances.
    n_boot, level
        Bootstrap over the sampled items' silhouette values.

    Returns
    -------
    dict
        ``"nmi"`` and ``"ami"`` (float; normalized / adjusted mutual information between k-means clusters
        and labels, higher = better; NMI in [0, 1], AMI is 0 at chance and 1 at perfect agreement).
        Point values from one seeded k-means run: no interval, since an interval would need a k-means run
        per resample. ``"silhouette"`` (Estimate over the sampled items; in [-1, 1], higher = classes
        tighter and farther apart, near 0 = overlapping; items alone in their class in the sample count
        0 as in scikit-learn). ``"n_clusters"``, ``"n_items"``, ``"silhouette_n"`` (items sampled).
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_mutual_info_score, normalized_mutual_info_score, silhouette_samples

    check_choice(metric, name="metric", choices=METRICS)
    rng = _as_rng(rng)
    n_init = check_positive_int(n_init, name="n_init")
    silhouette_sample = check_positive_int(silhouette_sample, name="silhouette_sample", minimum=3)
    x = _as_matrix(embeddings, name="embeddings").astype(np.float64)
    n = x.shape[0]
    _, codes, counts = _label_codes(labels, n)
    if counts.size >= n:
        raise InputError(
            f"labels give every one of the {n} items its own class; clustering quality needs classes with "
            "several items each."
        )
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        if np.any(norms == 0):
            raise InputError(
                "embeddings have all-zero rows; cosine is undefined for them. Use metric='euclidean'."
            )
        x = x / norms
    seed = int(rng.integers(0, 2**31 - 1))
    clusters = KMeans(n_clusters=counts.size, n_init=n_init, random_state=seed).fit_predict(x)

    sub = np.sort(rng.choice(n, size=min(silhouette_sample, n), replace=False))
    sub_codes = codes[sub]
    n_sub_classes = np.unique(sub_codes).size
    if 2 <= n_sub_classes <= sub.size - 1:
        values = silhouette_samples(x[sub], sub_codes, metric=metric)
        silhouette = bootstrap_mean(values, rng=rng, n_boot=n_boot, level=level)
    else:  # the sample holds one class only, or one item per class: silhouette is undefined
        silhouette = Estimate.unknown(int(sub.size), level)
    return {
        "nmi": float(normalized_mutual_info_score(codes, clusters)),
        "ami": float(adjusted_mutual_info_score(codes, clusters)),
        "silhouette": silhouette,
        "n_clusters": int(counts.size),
        "n_items": int(n),
        "silhouette_n": int(sub.size),
    }


# ----------------------------------------------------------------------------------------------------------
# n-way identification


def nway_accuracy(scores: Any, correct: Any) -> np.ndarray:
    """Per-episode credit of picking the candidate with the highest score.

    Parameters
    ----------
    scores : array-like of shape (E, n), float
        Oriented scores of each episode's anchor against its ``n >= 2`` candidates, higher = more similar.
    correct : array-like of shape (E,), int
        Position of the true match in each row, in ``0..n-1``.

    Returns
    -------
    ndarray of shape (E,), float64
        1 when the true match has the unique highest score, 0 when another candidate scores higher, and
        ``1 / t`` when it ties with ``t - 1`` others for the highest score (the expected credit of
        breaking the tie at random; a constant scorer thus earns exactly chance, ``1 / n``). The mean is
        the n-way top-1 accuracy, in [0, 1], higher = better, chance ``1 / n``.
    """
    s = np.asarray(scores.detach().cpu() if hasattr(scores, "detach") else scores)
    if s.dtype == object or not np.issubdtype(s.dtype, np.number) or s.ndim != 2:
        raise InputError(f"scores must be a numeric (E, n) array, one row per episode; got shape {s.shape}.")
    if s.shape[0] == 0 or s.shape[1] < 2:
        raise InputError(
            f"scores need at least one episode and 2 candidates per episode; got shape {s.shape}."
        )
    s = check_finite(s.astype(np.float64), name="scores", hint="Every candidate needs a finite score.")
    c = check_index_array(correct, name="correct", n_items=s.shape[1])
    check_same_length(scores=s, correct=c)
    row_max = s.max(axis=1)
    at_max = s == row_max[:, None]
    true_at_max = at_max[np.arange(s.shape[0]), c]
    return np.where(true_at_max, 1.0 / at_max.sum(axis=1), 0.0)


def nway_metrics(
    scores: Any,
    correct: Any,
    *,
    rng: np.random.Generator | int | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    level: float = DEFAULT_LEVEL,
) -> dict[str, Any]:
    """n-way top-1 accuracy with its chance level and lift over chance.

    Parameters
    ----------
    scores : array-like of shape (E, n), float
        Oriented scores, higher = more similar.
    correct : array-like of shape (E,), int
        Position of the true match per episode.
    rng, n_boot, level
        Bootstrap over episodes (None = seed 0).

    Returns
    -------
    dict
        ``"accuracy"`` (Estimate, in [0, 1], ties share credit, see :func:`nway_accuracy`),
        ``"chance"`` (float, ``1 / n``), ``"lift"`` (Estimate, ``(accuracy - chance) / (1 - chance)``:
        0 = chance, 1 = perfect, negative = worse than chance; the same monotone map applied to the
        accuracy interval), ``"n_episodes"``, ``"n_candidates"``, ``"per_episode"`` (ndarray (E,)).
    """
    credit = nway_accuracy(scores, correct)
    n_candidates = int(np.shape(scores)[1])
    chance = 1.0 / n_candidates
    acc = bootstrap_mean(
        credit, rng=_as_rng(rng), n_boot=check_positive_int(n_boot, name="n_boot", minimum=0), level=level
    )

    def lift(a: float) -> float:
        return (a - chance) / (1.0 - chance)

    return {
        "accuracy": acc,
        "chance": chance,
        "lift": Estimate(lift(acc.value), lift(acc.low), lift(acc.high), acc.n, acc.level),
        "n_episodes": int(credit.size),
        "n_candidates": n_candidates,
        "per_episode": credit,
    }
