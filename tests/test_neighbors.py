"""Chunked exact kNN: equal to brute force, equal across backends and chunk sizes, never N x N."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gapdiag import neighbors
from gapdiag.errors import InputError
from gapdiag.neighbors import k_occurrence, k_occurrence_skewness, knn, self_knn_blocks

HAS_FAISS = neighbors.faiss_available()
BACKENDS = [
    "torch",
    pytest.param("faiss", marks=pytest.mark.skipif(not HAS_FAISS, reason="faiss not installed")),
]
ATOL = 1e-5


def _data(n: int = 240, d: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def _true_distances(queries: np.ndarray, database: np.ndarray, metric: str) -> np.ndarray:
    q, db = queries.astype(np.float64), database.astype(np.float64)
    if metric == "cosine":
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        db = db / np.linalg.norm(db, axis=1, keepdims=True)
        return 1.0 - q @ db.T
    return np.sqrt(((q[:, None, :] - db[None, :, :]) ** 2).sum(-1))


def _brute_force(queries, database, k, metric, exclude_self=False):
    """The obvious O(m n) reference in float64: full matrix, stable sort by (distance, index)."""
    full = _true_distances(queries, database, metric)
    if exclude_self:
        np.fill_diagonal(full, np.inf)
    order = np.argsort(full, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(full, order, axis=1), full


def _assert_same_neighbours(idx, dist, ref_idx, ref_dist, full):
    """Equal indices, except that a position may hold another item at the same true distance (a tie)."""
    rows = np.arange(idx.shape[0])[:, None]
    np.testing.assert_allclose(dist, ref_dist, atol=ATOL)
    np.testing.assert_allclose(full[rows, idx], ref_dist, atol=ATOL)  # a swap is only ever a tie
    assert all(len(set(row)) == len(row) for row in idx.tolist()), "an item appears twice in one list"
    assert (idx == ref_idx).mean() > 0.99


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("exclude_self", [False, True])
def test_self_knn_equals_brute_force(backend, metric, exclude_self):
    x = _data()
    idx, dist = knn(x, x, 7, metric=metric, exclude_self=exclude_self, backend=backend, chunk_size=50)
    ref_idx, ref_dist, full = _brute_force(x, x, 7, metric, exclude_self)
    assert idx.shape == dist.shape == (240, 7)
    assert idx.dtype == np.int64 and dist.dtype == np.float32
    _assert_same_neighbours(idx, dist, ref_idx, ref_dist, full)
    assert np.all(np.diff(dist, axis=1) >= 0)
    if exclude_self:
        assert not np.any(idx == np.arange(240)[:, None])
    else:
        np.testing.assert_array_equal(idx[:, 0], np.arange(240))
        np.testing.assert_array_equal(dist[:, 0], 0.0)  # exact: distances come from differences


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_queries_against_other_database_equal_brute_force(backend, metric):
    q, db = _data(60, 5, seed=1), _data(310, 5, seed=2)
    idx, dist = knn(q, db, 12, metric=metric, backend=backend)
    ref_idx, ref_dist, full = _brute_force(q, db, 12, metric)
    _assert_same_neighbours(idx, dist, ref_idx, ref_dist, full)


@pytest.mark.skipif(not HAS_FAISS, reason="faiss not installed")
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("k", [1, 10, 150])
def test_torch_and_faiss_give_the_same_neighbours(metric, k):
    x = _data(400, 16, seed=3)
    t_idx, t_dist = knn(x, x, k, metric=metric, exclude_self=True, backend="torch")
    f_idx, f_dist = knn(x, x, k, metric=metric, exclude_self=True, backend="faiss")
    _, _, full = _brute_force(x, x, k, metric, exclude_self=True)
    _assert_same_neighbours(t_idx, t_dist, f_idx, f_dist, full)


@pytest.mark.parametrize("backend", BACKENDS)
def test_chunk_size_does_not_change_the_result(backend):
    x = _data(203, 6, seed=4)
    base = knn(x, x, 9, exclude_self=True, backend=backend, chunk_size=1000)
    for chunk in (1, 7, 64, 202):
        idx, dist = knn(x, x, 9, exclude_self=True, backend=backend, chunk_size=chunk)
        np.testing.assert_array_equal(idx, base[0])
        np.testing.assert_array_equal(dist, base[1])


def test_torch_backend_only_ever_holds_chunk_by_n_blocks(monkeypatch):
    seen = []
    real_topk = torch.topk

    def spy(block, *args, **kwargs):
        seen.append(tuple(block.shape))
        return real_topk(block, *args, **kwargs)

    monkeypatch.setattr(torch, "topk", spy)
    x = _data(500, 4, seed=5)
    knn(x, x, 5, exclude_self=True, backend="torch", chunk_size=16)
    assert seen and max(rows for rows, _ in seen) <= 16 and {cols for _, cols in seen} == {500}

    # The default chunk follows a fixed element budget (at least 256 queries, for efficient matmuls), so
    # it shrinks as the database grows; a database above _TORCH_DB_BLOCK rows is searched block by block.
    seen.clear()
    monkeypatch.setattr(neighbors, "_TORCH_BLOCK_ELEMENTS", 500 * 300)
    knn(x, x, 5, backend="torch")
    assert max(rows for rows, _ in seen) <= 300
    seen.clear()
    monkeypatch.setattr(neighbors, "_TORCH_DB_BLOCK", 128)
    blocked = knn(x, x, 5, exclude_self=True, backend="torch")
    assert max(cols for _, cols in seen) <= 128
    monkeypatch.setattr(neighbors, "_TORCH_DB_BLOCK", 1 << 16)
    np.testing.assert_array_equal(blocked[0], knn(x, x, 5, exclude_self=True, backend="torch")[0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_exclude_self_removes_only_the_own_row_not_duplicates(backend):
    x = _data(50, 3, seed=6)
    x[7] = x[3]
    idx, dist = knn(x, x, 1, exclude_self=True, backend=backend)
    assert idx[3, 0] == 7 and idx[7, 0] == 3
    assert dist[3, 0] == 0.0 and dist[7, 0] == 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_exact_duplicates_keep_ties_in_index_order(backend):
    x = np.zeros((6, 2), dtype=np.float32)  # everything at distance 0: order is by index
    idx, dist = knn(x, x, 5, exclude_self=True, backend=backend)
    for row in range(6):
        assert idx[row].tolist() == [j for j in range(6) if j != row]
    assert np.all(dist == 0)


def test_exclude_self_needs_the_database_as_queries():
    x = _data(30, 3)
    knn(x, x.copy(), 2, exclude_self=True)  # an equal copy is accepted
    with pytest.raises(InputError, match="exclude_self"):
        knn(x[:10], x, 2, exclude_self=True)


def test_self_knn_blocks_of_some_rows_equal_knn_rows():
    x = _data(120, 5, seed=7)
    rows = np.array([5, 0, 119, 64])
    full_idx, full_dist = knn(x, x, 6, exclude_self=True, backend="torch")
    got = list(self_knn_blocks(x, 6, rows=rows, chunk_size=3, backend="torch"))
    assert [b[0].tolist() for b in got] == [[5, 0, 119], [64]]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in got]), full_idx[rows])
    np.testing.assert_array_equal(np.concatenate([b[2] for b in got]), full_dist[rows])


def test_accepts_torch_tensors_and_is_deterministic():
    x = _data(80, 4, seed=8)
    a = knn(torch.from_numpy(x), torch.from_numpy(x), 3)
    b = knn(x, x, 3)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_auto_falls_back_to_torch_and_explicit_faiss_explains_when_missing(monkeypatch):
    monkeypatch.setattr(neighbors, "faiss_available", lambda: False)
    assert neighbors.resolve_backend("auto") == "torch"
    with pytest.raises(InputError, match="faiss is not installed"):
        knn(_data(10, 2), _data(10, 2), 1, backend="faiss")


@pytest.mark.parametrize(
    ("queries", "database", "kwargs", "match"),
    [
        (np.full((3, 2), np.nan), None, {}, "NaN or inf"),
        (np.ones((3, 2)), np.ones((3, 4)), {}, "dimension"),
        (np.ones(3), None, {}, "2-D"),
        (np.ones((3, 2)), None, {"k": 4}, "k=4"),
        (np.ones((3, 2)), None, {"k": 3, "exclude_self": True}, "k=3"),
        (np.ones((3, 2)), None, {"k": 0}, "k must be"),
        (np.zeros((3, 2)), None, {"metric": "cosine"}, "all-zero"),
        (np.ones((3, 2)), None, {"metric": "manhattan"}, "metric"),
        (np.ones((3, 2)), None, {"backend": "annoy"}, "backend"),
    ],
)
def test_bad_input_raises_input_error(queries, database, kwargs, match):
    kwargs = {"k": 1, **kwargs}
    with pytest.raises(InputError, match=match):
        knn(queries, queries if database is None else database, **kwargs)


def test_k_occurrence_counts_appearances_in_neighbour_lists():
    idx = np.array([[1, 2], [0, 2], [0, 1], [2, 0]])
    counts = k_occurrence(idx, 5)
    np.testing.assert_array_equal(counts, [3, 2, 3, 0, 0])
    assert counts.sum() == idx.size
    with pytest.raises(InputError):
        k_occurrence(idx, 2)


def test_k_occurrence_skewness_is_positive_for_a_hub():
    x = _data(300, 20, seed=9)
    x[0] = 0.0  # the centre of a Gaussian cloud is everyone's neighbour: a hub
    idx, _ = knn(x, x, 5, exclude_self=True)
    counts = k_occurrence(idx, 300)
    assert counts[0] == counts.max()
    assert k_occurrence_skewness(counts) > 1.0
    assert np.isnan(k_occurrence_skewness(np.full(10, 5)))
    np.testing.assert_allclose(k_occurrence_skewness([0, 0, 0, 9]), 1.1547005383792515)


def test_finite_values_beyond_float32_are_refused_in_words():
    huge = np.full((3, 2), 1e300)
    with pytest.raises(InputError, match="beyond float32's range"):
        knn(huge, huge, 1)
