"""Exact k-nearest neighbours in blocks: memory grows as N x (d + k), never N x N.

Two backends give the same neighbours (ties aside):

- ``"faiss"``: ``IndexFlatL2`` (euclidean) or ``IndexFlatIP`` on L2-normalized rows (cosine), an exact
  brute-force index; faiss blocks the distance matrix internally. Imported lazily, only when used.
- ``"torch"``: one ``(chunk, block)`` tile of distances at a time from a matmul, reduced with
  ``torch.topk``; databases above 65,536 rows are cut into blocks whose top-k lists are merged.

``backend="auto"`` is torch: on the 2-core CPU machines we measure on it is 1.3-3x faster than faiss's
flat index (k = 10 to 300, d = 64 to 1,000; ``python benchmarks/run.py`` prints the ratio), and it is
always installed. Pass ``backend="faiss"`` to use faiss.

Distances: euclidean distance ``||q - x||`` (not squared) or cosine distance ``1 - cos(q, x)``. The
neighbours are selected with the fast ``||q||^2 + ||x||^2 - 2 q.x`` expansion in float32; the returned
distances are then recomputed from differences, so a row's distance to an identical row is exactly 0.
Within each row the neighbours are sorted by increasing distance, equal distances by increasing database
index, so results are deterministic for a given backend. Which of several rows tied at the k-th distance
is kept can differ between backends.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InputError
from .validation import check_choice, check_finite, check_positive_int, check_real

__all__ = [
    "NeighbourGraph",
    "METRICS",
    "BACKENDS",
    "knn",
    "self_knn_blocks",
    "k_occurrence",
    "k_occurrence_skewness",
    "faiss_available",
    "resolve_backend",
]

METRICS = ("euclidean", "cosine")
BACKENDS = ("auto", "torch", "faiss")

# Block budgets. Torch: a (chunk, block) float32 tile of about 16 MB (at least 256 queries: 64 MB against
# a full 65,536-row database block). Faiss blocks the distance matrix
# internally (4096 queries x 1024 database rows), so its chunks only bound the (chunk, k) results handed
# back per call: about 16M entries (192 MB), in whole multiples of faiss's 4096-query block where k allows
# (fewer, fuller calls are measurably faster than many small ones).
_TORCH_BLOCK_ELEMENTS = 1 << 22
# Databases above this many rows are searched block by block (each block's top-k merged), so that a
# (chunk, block) tile keeps hundreds of queries per matmul even against millions of rows.
_TORCH_DB_BLOCK = 1 << 16
_FAISS_RESULT_ELEMENTS = 1 << 24
_FAISS_QUERY_BLOCK = 4096


def faiss_available() -> bool:
    """True when the optional ``faiss`` package can be imported (checked without importing it)."""
    return importlib.util.find_spec("faiss") is not None


def resolve_backend(backend: str) -> str:
    """The concrete backend (``"torch"`` or ``"faiss"``) that ``backend`` stands for on this machine."""
    check_choice(backend, name="backend", choices=BACKENDS)
    if backend == "auto":
        return "torch"
    if backend == "faiss" and not faiss_available():
        raise InputError(
            "backend='faiss' was requested but faiss is not installed. "
            "Install it (pip install 'gapdiag[faiss]' or faiss-cpu) or pass backend='torch' or 'auto'."
        )
    return backend


def _as_matrix(x: Any, *, name: str) -> np.ndarray:
    """``x`` (ndarray, tensor or nested sequence) as a C-contiguous float32 (n, d) array, finite."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    check_real(arr, name=name, shape="(n, d)")
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(
            f"{name} must be a non-empty 2-D array of shape (n, d); got shape {tuple(arr.shape)}. "
            "Stack one embedding per row."
        )
    with np.errstate(over="ignore"):  # said below, in words
        arr32 = np.ascontiguousarray(arr, dtype=np.float32)
    if arr32.dtype != arr.dtype and not np.isfinite(arr32).all() and np.isfinite(arr).all():
        raise InputError(
            f"{name} holds finite values beyond float32's range (|x| > 3.4e38); neighbours are searched in "
            "float32, so rescale the embeddings."
        )
    return check_finite(
        arr32, name=name, hint="Embeddings must be finite; check the encoder for NaN outputs."
    )


def _normalized(x: np.ndarray, *, name: str) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1)
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise InputError(
            f"{name} has {zero.size} all-zero row(s), first at row {int(zero[0])}; cosine distance is "
            "undefined for them. Use metric='euclidean' or remove those rows."
        )
    return np.ascontiguousarray(x / norms[:, None], dtype=np.float32)


def _check_k(k: Any, n_available: int, *, exclude_self: bool) -> int:
    k = check_positive_int(k, name="k")
    if k > n_available:
        extra = " (the query's own row is excluded)" if exclude_self else ""
        raise InputError(
            f"k={k} neighbours were requested but the database has only {n_available} candidate rows"
            f"{extra}. Pass k <= {n_available}."
        )
    return k


def _chunk_rows(chunk_size: Any, backend: str, n_database: int, k: int) -> int:
    if chunk_size is not None:
        return check_positive_int(chunk_size, name="chunk_size")
    if backend == "faiss":
        rows = _FAISS_RESULT_ELEMENTS // max(1, k)
        if rows >= _FAISS_QUERY_BLOCK:
            return rows // _FAISS_QUERY_BLOCK * _FAISS_QUERY_BLOCK
        return max(256, rows)  # very deep lists: fewer queries per call to bound the results
    return max(256, _TORCH_BLOCK_ELEMENTS // max(1, min(n_database, _TORCH_DB_BLOCK)))


def _canonical_order(indices: np.ndarray, distances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row by (distance, index), so ties come back in the same order from both backends.

    Both backends already return rows sorted by distance, so only rows with a tie out of index order (or,
    after distances were recomputed, a pair out of distance order) are re-sorted, in place.
    """
    if indices.shape[1] < 2:
        return indices, distances
    d_prev, d_next = distances[:, :-1], distances[:, 1:]
    misordered = (d_next < d_prev) | ((d_next == d_prev) & (indices[:, 1:] < indices[:, :-1]))
    rows = np.flatnonzero(misordered.any(axis=1))
    if rows.size:  # in place: both arrays are fresh search results owned by the caller
        order = np.lexsort((indices[rows], distances[rows]), axis=-1)
        indices[rows] = np.take_along_axis(indices[rows], order, axis=1)
        distances[rows] = np.take_along_axis(distances[rows], order, axis=1)
    return indices, distances


def _search(
    queries: np.ndarray,
    database: np.ndarray,
    k: int,
    *,
    self_rows: np.ndarray | None,
    metric: str,
    chunk_size: int | None,
    backend: str,
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Yield ``(start, stop, indices, distances)`` for consecutive query blocks.

    ``self_rows`` (m,) int64, when given, is the database row of each query, excluded from its result.
    ``queries`` and ``database`` are validated float32 matrices, normalized already for cosine.
    """
    from ._threads import all_threads

    with all_threads():  # a large computation: every core, even inside a probe's single-threaded block
        yield from _search_blocks(queries, database, k, self_rows, metric, chunk_size, backend)


def _search_blocks(
    queries: np.ndarray,
    database: np.ndarray,
    k: int,
    self_rows: np.ndarray | None,
    metric: str,
    chunk_size: int | None,
    backend: str,
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    m, n = queries.shape[0], database.shape[0]
    rows = _chunk_rows(chunk_size, backend, n, k)
    if backend == "faiss":
        import faiss

        index = (
            faiss.IndexFlatL2(database.shape[1])
            if metric == "euclidean"
            else faiss.IndexFlatIP(database.shape[1])
        )
        index.add(database)
        extra = 1 if self_rows is not None else 0
        for start in range(0, m, rows):
            stop = min(m, start + rows)
            raw, idx = index.search(queries[start:stop], k + extra)
            if self_rows is not None:
                idx, raw = _drop_self(idx, raw, self_rows[start:stop])
            dist = np.sqrt(np.maximum(raw, 0.0)) if metric == "euclidean" else 1.0 - raw
            yield start, stop, idx.astype(np.int64, copy=False), dist.astype(np.float32, copy=False)
        return

    yield from _torch_search(queries, database, k, self_rows=self_rows, metric=metric, rows=rows)


def _torch_search(
    queries: np.ndarray, database: np.ndarray, k: int, *, self_rows: np.ndarray | None, metric: str, rows: int
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """The torch backend of :func:`_search`: (rows, block) distance tiles from a matmul, reduced by topk.

    A database of more than ``_TORCH_DB_BLOCK`` rows is cut into blocks whose top-k lists are merged, so
    each matmul keeps a few hundred queries against one block (instead of a handful against all rows).
    The database is only read: a read-only or memory-mapped array is used in place, never copied.
    """
    import torch

    from ._threads import ignoring_warnings

    m, n = queries.shape[0], database.shape[0]
    # read-only arrays (memory maps): torch warns, but nothing writes here
    with ignoring_warnings(UserWarning, "The given NumPy array is not writable"):
        db = torch.from_numpy(database)
        q_all = torch.from_numpy(queries)
    step = min(n, _TORCH_DB_BLOCK)
    blocks = [(b0, min(n, b0 + step)) for b0 in range(0, n, step)]
    sq = [(db[b0:b1] * db[b0:b1]).sum(dim=1) for b0, b1 in blocks] if metric == "euclidean" else None
    buffer = torch.empty((min(rows, m), step), dtype=db.dtype)
    # Rank by ||x||^2 - 2 q.x (euclidean) or by q.x, largest first (cosine): the row's constant ||q||^2,
    # or 1 - similarity, is applied to the k kept values only, one pass less over every tile.
    largest = metric != "euclidean"
    with torch.no_grad():
        for start in range(0, m, rows):
            stop = min(m, start + rows)
            q = q_all[start:stop]
            own = torch.from_numpy(self_rows[start:stop]) if self_rows is not None else None
            best_v = best_i = None
            for j, (b0, b1) in enumerate(blocks):
                # one (chunk, block) tile, written into the same buffer every time it has the full shape
                full = stop - start == buffer.shape[0] and b1 - b0 == step
                out = {"out": buffer} if full else {}
                if largest:
                    tile = torch.mm(q, db[b0:b1].T, **out)
                else:
                    tile = torch.addmm(sq[j].unsqueeze(0), q, db[b0:b1].T, beta=1.0, alpha=-2.0, **out)
                if own is not None:
                    inside = (own >= b0) & (own < b1)
                    tile[torch.nonzero(inside).view(-1), own[inside] - b0] = (
                        -math.inf if largest else math.inf
                    )
                values, idx = _select(tile, min(k, b1 - b0), largest)
                if best_v is None:
                    best_v, best_i = values, idx
                else:
                    cat_v, cat_i = (
                        torch.cat([best_v, values], dim=1),
                        torch.cat([best_i, idx.add_(b0)], dim=1),
                    )
                    best_v, pos = _select(cat_v, min(k, cat_v.shape[1]), largest)
                    best_i = torch.gather(cat_i, 1, pos)
            best_v, pos = torch.sort(best_v, dim=1, descending=largest)
            best_i = torch.gather(best_i, 1, pos)
            if largest:
                dist = best_v.neg_().add_(1.0)
            else:
                dist = best_v.add_((q * q).sum(dim=1, keepdim=True)).clamp_(min=0.0).sqrt_()
            yield start, stop, best_i.numpy().astype(np.int64, copy=False), dist.numpy()


def _select(values, k: int, largest: bool):
    """The k smallest (or largest) entries of each row of ``values`` (r, c), unsorted, and their columns."""
    import torch

    if k == 1:  # a plain reduction is about twice as fast as topk
        v, i = torch.max(values, dim=1) if largest else torch.min(values, dim=1)
        return v.unsqueeze(1), i.unsqueeze(1)
    return torch.topk(values, k, dim=1, largest=largest, sorted=False)


def _exact_distances(queries: np.ndarray, database: np.ndarray, idx: np.ndarray, metric: str) -> np.ndarray:
    """Distances of each query (b, d) to its neighbours ``idx`` (b, k) from differences, not the expansion.

    The expansion loses digits near 0 (a row's distance to itself comes out as 1e-3, not 0); the direct
    difference does not. For unit rows, ``1 - cos = ||q - x||^2 / 2``. Works in sub-blocks of ~16 MB.
    """
    out = np.empty(idx.shape, dtype=np.float32)
    step = max(1, (1 << 22) // max(1, idx.shape[1] * queries.shape[1]))
    for s in range(0, idx.shape[0], step):
        diff = database[idx[s : s + step]] - queries[s : s + step, None, :]
        sq = np.einsum("bkd,bkd->bk", diff, diff)
        out[s : s + step] = np.sqrt(sq) if metric == "euclidean" else 0.5 * sq
    return out


def _finish(
    queries: np.ndarray, database: np.ndarray, idx: np.ndarray, dist: np.ndarray, metric: str, exact: bool
) -> tuple[np.ndarray, np.ndarray]:
    if exact:
        dist = _exact_distances(queries, database, idx, metric)
    return _canonical_order(idx, dist)


def _drop_self(idx: np.ndarray, dist: np.ndarray, self_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """From (b, k + 1) results remove each row's own index, or the last column where it is absent.

    The own index is nearly always first (distance 0) and is then dropped by slicing; other rows (exact
    duplicates ahead of it, or k + 1 rows at least as close so that it is absent) are rebuilt in place.
    """
    odd = np.flatnonzero(idx[:, 0] != self_rows)
    if odd.size:
        sub_idx, sub_dist = idx[odd], dist[odd]
        keep = sub_idx != self_rows[odd, None]  # faiss lists each index at most once per row
        keep[keep.all(axis=1), -1] = False
        idx[odd, 1:] = sub_idx[keep].reshape(odd.size, -1)
        dist[odd, 1:] = sub_dist[keep].reshape(odd.size, -1)
    return idx[:, 1:], dist[:, 1:]


def knn(
    queries: Any,
    database: Any,
    k: int,
    *,
    metric: str = "euclidean",
    exclude_self: bool = False,
    chunk_size: int | None = None,
    backend: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest database rows of every query row, without an (m, n) matrix.

    Parameters
    ----------
    queries : array-like of shape (m, d)
        Query embeddings; converted to float32. A torch tensor is accepted (moved to CPU).
    database : array-like of shape (n, d)
        Database embeddings; converted to float32.
    k : int
        Number of neighbours, ``1 <= k <= n`` (``n - 1`` with ``exclude_self``).
    metric : {"euclidean", "cosine"}
        ``"euclidean"``: distance ``||q - x||``. ``"cosine"``: distance ``1 - cos(q, x)`` in [0, 2];
        rows must be non-zero.
    exclude_self : bool
        Leave each query's own row out of its neighbours (self-retrieval). Requires ``queries`` to be the
        database (the same object, or an equal array). Only the own row index is removed; other rows with
        an identical embedding remain neighbours at distance 0.
    chunk_size : int, optional
        Queries per block. Peak extra memory is ``chunk_size x n`` float32 (torch) plus
        ``chunk_size x k`` results. Default: tiles of 16 to 64 MB (torch); for faiss, which blocks
        internally, calls of about 16M results (a multiple of 4096 queries unless k > 4096). Never changes
        the result.
    backend : {"auto", "torch", "faiss"}
        ``"auto"`` is torch (see the module docstring).

    Returns
    -------
    indices : ndarray of shape (m, k), int64
        Database row of each neighbour, nearest first; equal distances by increasing index.
    distances : ndarray of shape (m, k), float32
        The matching distances, non-decreasing along each row (lower = more similar).

    Raises
    ------
    InputError
        Non-2-D, empty, non-finite or dimension-mismatched inputs, ``k`` out of range, zero rows with
        ``metric="cosine"``, ``exclude_self`` with a different database, or faiss requested but missing.
    """
    check_choice(metric, name="metric", choices=METRICS)
    concrete = resolve_backend(backend)
    same = queries is database
    q = _as_matrix(queries, name="queries")
    db = q if same else _as_matrix(database, name="database")
    if q.shape[1] != db.shape[1]:
        raise InputError(
            f"queries have dimension {q.shape[1]} but database rows have dimension {db.shape[1]}; "
            "both must come from the same encoder."
        )
    if exclude_self and not (same or (q.shape == db.shape and np.array_equal(q, db))):
        raise InputError(
            "exclude_self=True needs queries to be the database itself (self-retrieval); got a "
            f"different array (queries {q.shape}, database {db.shape}). Pass the same array twice or "
            "use exclude_self=False."
        )
    k = _check_k(k, db.shape[0] - int(exclude_self), exclude_self=exclude_self)
    if metric == "cosine":
        q = _normalized(q, name="queries")
        db = q if (same or exclude_self) else _normalized(db, name="database")
    self_rows = np.arange(q.shape[0], dtype=np.int64) if exclude_self else None
    indices = np.empty((q.shape[0], k), dtype=np.int64)
    distances = np.empty((q.shape[0], k), dtype=np.float32)
    for start, stop, idx, dist in _search(
        q, db, k, self_rows=self_rows, metric=metric, chunk_size=chunk_size, backend=concrete
    ):
        indices[start:stop], distances[start:stop] = _finish(q[start:stop], db, idx, dist, metric, True)
    return indices, distances


def self_knn_blocks(
    embeddings: Any,
    k: int,
    *,
    rows: np.ndarray | None = None,
    metric: str = "euclidean",
    chunk_size: int | None = None,
    backend: str = "auto",
    exact_distances: bool = True,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Self-excluded kNN of some rows of ``embeddings`` against all of them, yielded block by block.

    For consumers that reduce each block at once (retrieval metrics), so that memory stays at
    ``chunk_size x k`` instead of ``len(rows) x k``.

    Parameters
    ----------
    embeddings : array-like of shape (n, d)
        The database; also the source of the queries.
    k : int
        Neighbours per query, ``1 <= k <= n - 1``.
    rows : ndarray of shape (m,), int, optional
        Which rows are queries (default: all, in order). Each query's own row is excluded.
    metric, chunk_size, backend
        As in :func:`knn`.
    exact_distances : bool
        Recompute the returned distances from differences, as :func:`knn` does (default). ``False`` skips
        that step (about 20% of the time at k = 300) for callers that only use the indices; distances then
        carry the float32 rounding of the expansion.

    Yields
    ------
    block_rows : ndarray of shape (b,), int64
        The query rows of this block, in the order of ``rows``.
    indices : ndarray of shape (b, k), int64
    distances : ndarray of shape (b, k), float32
        As returned by :func:`knn` with ``exclude_self=True``.
    """
    check_choice(metric, name="metric", choices=METRICS)
    concrete = resolve_backend(backend)
    db = _as_matrix(embeddings, name="embeddings")
    k = _check_k(k, db.shape[0] - 1, exclude_self=True)
    if metric == "cosine":
        db = _normalized(db, name="embeddings")
    if rows is None:
        rows = np.arange(db.shape[0], dtype=np.int64)
    else:
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= db.shape[0]):
            raise InputError(
                f"rows must index the {db.shape[0]} embeddings; got values outside 0..{db.shape[0] - 1}."
            )
    queries = db if np.array_equal(rows, np.arange(db.shape[0])) else db[rows]
    for start, stop, idx, dist in _search(
        queries, db, k, self_rows=rows, metric=metric, chunk_size=chunk_size, backend=concrete
    ):
        idx, dist = _finish(queries[start:stop], db, idx, dist, metric, exact_distances)
        yield rows[start:stop], idx, dist


def k_occurrence(indices: Any, n: int) -> np.ndarray:
    """How often each database row appears in the kNN lists of the queries (hubness).

    Parameters
    ----------
    indices : array-like of shape (m, k), int
        Neighbour indices as returned by :func:`knn` (usually self-kNN with ``exclude_self=True``).
    n : int
        Number of database rows.

    Returns
    -------
    ndarray of shape (n,), int64
        ``N_k(x)``: the number of kNN lists that contain row ``x``. The counts sum to ``m * k``; the mean is
        ``m * k / n``. Rows that are never a neighbour ("anti-hubs") have 0.
    """
    n = check_positive_int(n, name="n")
    idx = np.asarray(indices)
    if idx.ndim != 2 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise InputError(
            f"indices must be a 2-D integer array of shape (m, k); got shape {idx.shape}, dtype {idx.dtype}."
        )
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise InputError(f"indices must lie in 0..{n - 1} for n={n}; got values in {idx.min()}..{idx.max()}.")
    return np.bincount(idx.ravel(), minlength=n).astype(np.int64)


def k_occurrence_skewness(counts: Any) -> float:
    """Skewness of the k-occurrence distribution, the standard hubness score.

    Parameters
    ----------
    counts : array-like of shape (n,)
        Output of :func:`k_occurrence`.

    Returns
    -------
    float
        ``E[(N_k - mean)^3] / std^3`` (population moments, as in Radovanovic et al., 2010). 0 for a
        symmetric distribution; large positive values (above about 1) mean a few hubs appear in many
        neighbour lists. NaN when all counts are equal.
    """
    c = np.asarray(counts, dtype=np.float64).reshape(-1)
    if c.size == 0:
        raise InputError("counts is empty; pass the k-occurrence counts of at least one row.")
    centred = c - c.mean()
    var = float(np.mean(centred**2))
    if var == 0.0:
        return float("nan")
    return float(np.mean(centred**3) / var**1.5)


@dataclass(frozen=True, eq=False)
class NeighbourGraph:
    """The k nearest database rows of some query rows: one shared artifact of an audit.

    Attributes
    ----------
    rows : ndarray of shape (m,), int64
        The query rows (sorted), all of them when ``exact``; else a seeded uniform sample.
    indices : ndarray of shape (m, k), int64
        Database row of each neighbour, nearest first (a query's own row excluded in a self-graph).
    distances : ndarray of shape (m, k), float32
        The matching distances, non-decreasing along each row (lower = more similar).
    metric : str
        "euclidean" or "cosine".
    n_queries_total : int
        Rows that could have queried (the size of the query split).
    n_database : int
        Rows searched (the size of the database split): always all of them.
    """

    rows: np.ndarray = field(repr=False)
    indices: np.ndarray = field(repr=False)
    distances: np.ndarray = field(repr=False)
    metric: str
    n_queries_total: int
    n_database: int

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])

    @property
    def exact(self) -> bool:
        """True when every row queried (nothing is estimated from a sample)."""
        return self.rows.size == self.n_queries_total

    def head(self, k: int) -> NeighbourGraph:
        """The same graph cut to its first ``k`` neighbours per row (views, no copy)."""
        if k > self.k:
            raise InputError(f"The graph holds {self.k} neighbours per row; {k} were asked for.")
        return NeighbourGraph(
            self.rows,
            self.indices[:, :k],
            self.distances[:, :k],
            self.metric,
            self.n_queries_total,
            self.n_database,
        )

    def sampling(self) -> dict[str, Any]:
        """JSON-ready description: ``{"exact", "n_queries", "n_queries_total", "n_database", "metric"}``."""
        return {
            "exact": self.exact,
            "n_queries": int(self.rows.size),
            "n_queries_total": int(self.n_queries_total),
            "n_database": int(self.n_database),
            "metric": self.metric,
        }
