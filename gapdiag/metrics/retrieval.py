"""Leave-one-out retrieval metrics (precision@1, R-precision, MAP@R, recall@k) with bootstrap CIs.

The definitions are pytorch-metric-learning's ``AccuracyCalculator`` (``avg_of_avgs=False``, query set =
reference set, ``k="max_bin_count"``); values agree with it to 1e-6 on the same embeddings (see
``tests/test_metrics.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from ..neighbors import METRICS, _as_matrix, self_knn_blocks
from ..stats import DEFAULT_LEVEL, DEFAULT_N_BOOT, Estimate, estimate_from_draws
from ..validation import check_choice, check_index_array, check_positive_int
from ._common import _as_rng, _label_codes

__all__ = ["RetrievalMetrics", "retrieval_metrics", "per_class_retrieval"]

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
    n_queries_total : int
        Items that could query (their class has another item). Above ``n_queries`` the values are
        estimates from a random query sample against all items (``estimated``), and the intervals
        include that sampling.
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
    n_queries_total: int | None = None

    @property
    def estimated(self) -> bool:
        """True when only a sample of the items queried: the values estimate the all-items values."""
        return self.n_queries_total is not None and self.n_queries < self.n_queries_total

    def to_dict(self) -> dict:
        """JSON-ready summary (no per-query arrays)."""
        sampling = {
            "estimated": self.estimated,
            "n_queries_total": int(
                self.n_queries_total if self.n_queries_total is not None else self.n_queries
            ),
        }
        return {
            **sampling,
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
    query_rows: Any = None,
    max_queries: int | None = None,
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

    With ``query_rows`` or ``max_queries`` only a sample of the items query, each against *all* items:
    the means then estimate the full leave-one-out values (``RetrievalMetrics.estimated``), and the
    bootstrap over the sampled queries carries that sampling into the intervals.

    Parameters
    ----------
    embeddings : array-like of shape (n, d)
        One row per item, finite; converted to float32 (a torch tensor or a memory map is accepted).
    labels : array-like of shape (n,)
        Class (identity) of each item, any hashable dtype; at least 2 classes.
    k_values : tuple of int
        The ``k`` of each recall@k. A ``k`` of ``n - 1`` or more uses all other items (recall 1).
    metric : {"euclidean", "cosine"}
        Distance between embeddings.
    rng : numpy Generator, int or None
        Seed or generator for the query sample and the bootstrap (None = seed 0). Results are
        deterministic for a given seed.
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
    query_rows : array-like of shape (m,), int, optional
        The items that query (a seeded random sample, for an estimate). Rows whose class has no other
        item are dropped from it. Default: every item.
    max_queries : int, optional
        Without ``query_rows``: when more items than this could query, a uniform random sample (from
        ``rng``) of this many does.
    knn_indices : array-like of shape (m, k'), int, optional
        Precomputed self-excluded neighbour lists, nearest first, of the ``query_rows`` (of all ``n``
        rows when ``query_rows`` is None), as from ``knn(x, x, k', exclude_self=True)``: a kNN graph
        built elsewhere. Queries that need more than ``k'`` neighbours are searched again as deep as
        they need.
    backend, chunk_size
        Passed to the kNN search (see :func:`gapdiag.neighbors.knn`).

    Returns
    -------
    RetrievalMetrics

    Raises
    ------
    InputError
        Mismatched lengths, NaN or inf embeddings, fewer than 2 classes, no class with 2 or more items,
        bad ``k_values``, ``max_k``, ``query_rows``, ``max_queries`` or ``knn_indices``.
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
    n_eligible = int(np.count_nonzero(r_all > 0))
    if n_eligible == 0:
        raise InputError(
            f"every one of the {counts.size} classes in labels has a single item, so no item has another "
            "item of its class to retrieve. Retrieval metrics need at least one class with 2+ items."
        )
    rows, graph_pos = _queries(r_all, query_rows, max_queries, rng)
    k_recall = min(max(k_values), n - 1)
    k = min(max(int(r_all[rows].max()), max(k_values)), n - 1)
    if max_k is not None:
        max_k = check_positive_int(max_k, name="max_k")
        if max_k < k_recall:
            raise InputError(
                f"max_k={max_k} is below the largest k in k_values ({k_recall}); raise max_k or drop "
                "that k from k_values."
            )
        k = min(k, max_k)
    blocks = _blocks(x, rows, graph_pos, knn_indices, r_all, k, k_recall, metric, chunk_size, backend)

    names = ["precision_at_1", "r_precision", "map_at_r", *(f"recall_at_{kv}" for kv in k_values)]
    per_query = {name: np.empty(rows.size, dtype=np.float64) for name in names}
    for positions, block_rows, idx in blocks:
        values = _retrieval_block(codes[idx], codes[block_rows], r_all[block_rows], k_values)
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
        n_queries=int(rows.size),
        fraction_without_positive=float(1.0 - n_eligible / n),
        k=int(k),
        n_truncated=int(np.count_nonzero(r_all[rows] > k)),
        metric=metric,
        query_rows=rows,
        query_labels=label_arr[rows],
        per_query=per_query,
        n_queries_total=n_eligible,
    )


def _queries(
    r_all: np.ndarray, query_rows: Any, max_queries: Any, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray | None]:
    """The evaluated query rows (m,) and, for given ``query_rows``, their positions in it (else None)."""
    n = r_all.size
    if query_rows is None:
        rows = np.flatnonzero(r_all > 0)
        if max_queries is not None and rows.size > check_positive_int(max_queries, name="max_queries"):
            rows = np.sort(rng.choice(rows, int(max_queries), replace=False))
        return rows, None
    if max_queries is not None:
        raise InputError("Pass query_rows or max_queries, not both: max_queries samples the query rows.")
    given = check_index_array(query_rows, name="query_rows", n_items=n, ndim=1)
    positions = np.flatnonzero(r_all[given] > 0)
    if positions.size == 0:
        raise InputError(
            f"none of the {given.size} query_rows has another item of its class to retrieve; sample the "
            "queries among items of classes with 2+ items."
        )
    return given[positions], positions


def _blocks(x, rows, graph_pos, knn_indices, r_all, k, k_recall, metric, chunk_size, backend):
    """Yield ``(positions, rows, indices)``: from ``knn_indices`` where deep enough, else searched.

    ``graph_pos`` (m,) is the row of ``knn_indices`` of each query (None: the query's own item row).
    """
    if knn_indices is None:
        yield from _depth_grouped_blocks(x, rows, r_all, k, k_recall, metric, chunk_size, backend)
        return
    knn_arr = check_index_array(knn_indices, name="knn_indices", n_items=x.shape[0], ndim=2)
    if graph_pos is None and knn_arr.shape[0] != x.shape[0]:
        raise InputError(
            f"knn_indices has {knn_arr.shape[0]} rows but there are {x.shape[0]} embeddings; pass the "
            "self-excluded neighbour lists of every row (knn(x, x, k, exclude_self=True)), or query_rows."
        )
    if graph_pos is not None and knn_arr.shape[0] <= int(graph_pos.max()):
        raise InputError(
            f"knn_indices has {knn_arr.shape[0]} rows, fewer than query_rows; pass one neighbour list per "
            "query row, in the order of query_rows."
        )
    if knn_arr.shape[1] < k_recall:
        raise InputError(
            f"knn_indices holds {knn_arr.shape[1]} neighbours per row but recall@{k_recall} needs "
            f"{k_recall}. Build deeper lists or drop that k from k_values."
        )
    source = rows if graph_pos is None else graph_pos
    need = np.minimum(np.maximum(r_all[rows], k_recall), k)
    depth = min(knn_arr.shape[1], k)
    covered = np.flatnonzero(need <= depth)
    step = max(1, (1 << 22) // max(1, depth))
    for s in range(0, covered.size, step):
        positions = covered[s : s + step]
        yield positions, rows[positions], knn_arr[source[positions], :depth]
    deeper = np.flatnonzero(need > depth)
    if deeper.size:
        for positions, block_rows, idx in _depth_grouped_blocks(
            x, rows[deeper], r_all, k, k_recall, metric, chunk_size, backend
        ):
            yield deeper[positions], block_rows, idx


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
