"""Retrieval, verification, cluster and n-way metrics against pytorch-metric-learning, scikit-learn and
slow plain-Python references."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gapdiag import neighbors
from gapdiag.errors import InputError
from gapdiag.metrics import (
    accuracy_at_threshold,
    best_threshold,
    cluster_metrics,
    fnmr_at_fmr,
    nway_accuracy,
    nway_metrics,
    per_class_retrieval,
    retrieval_metrics,
    verification_metrics,
)
from gapdiag.neighbors import knn
from gapdiag.stats import Estimate

BACKENDS = [
    "torch",
    pytest.param(
        "faiss", marks=pytest.mark.skipif(not neighbors.faiss_available(), reason="faiss not installed")
    ),
]
PML_METRICS = ("precision_at_1", "r_precision", "mean_average_precision_at_r")

# ----------------------------------------------------------------------------------------------------------
# Data and references


def _embeddings(kind: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seven classes of sizes 1..40 (one singleton) in 8-D, either well separated or heavily mixed."""
    rng = np.random.default_rng(seed)
    sizes = [40, 31, 25, 17, 9, 2, 1]
    labels = np.repeat(np.arange(len(sizes)) * 10 + 3, sizes)  # non-contiguous label values
    rng.shuffle(labels)
    spread = {"clustered": 4.0, "messy": 0.4}[kind]
    centres = {lab: rng.standard_normal(8) * spread for lab in np.unique(labels)}
    x = np.stack([centres[lab] for lab in labels]) + rng.standard_normal((labels.size, 8))
    return x.astype(np.float32), labels


def _slow_retrieval(x, labels, *, k_values=(1, 5, 10), metric="euclidean", depth=None):
    """Plain loops over queries and ranks, float64 distances, ties broken by index.

    ``depth`` truncates the ranked list (ranks beyond it count as misses), as ``max_k`` does.
    """
    x = np.asarray(x, dtype=np.float64)
    if metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    out = {
        name: []
        for name in ["precision_at_1", "r_precision", "map_at_r", *[f"recall_at_{k}" for k in k_values]]
    }
    for i in range(len(x)):
        r = int(np.sum(labels == labels[i])) - 1
        if r == 0:
            continue
        dists = []
        for j in range(len(x)):
            if j != i:
                dists.append((float(np.linalg.norm(x[i] - x[j])), j))
        ranked = [labels[j] == labels[i] for _, j in sorted(dists)]
        if depth is not None:
            ranked = ranked[:depth] + [False] * (len(ranked) - depth)
        out["precision_at_1"].append(float(ranked[0]))
        out["r_precision"].append(sum(ranked[:r]) / r)
        hits, precision_sum = 0, 0.0
        for rank in range(r):
            if ranked[rank]:
                hits += 1
                precision_sum += hits / (rank + 1)
        out["map_at_r"].append(precision_sum / r)
        for k in k_values:
            out[f"recall_at_{k}"].append(float(any(ranked[:k])))
    return {name: float(np.mean(v)) for name, v in out.items()}


def _pml(x, labels, **kwargs):
    torch = pytest.importorskip("torch")
    accuracy_calculator = pytest.importorskip("pytorch_metric_learning.utils.accuracy_calculator")
    pytest.importorskip("faiss")  # PML's default kNN
    calc = accuracy_calculator.AccuracyCalculator(
        include=PML_METRICS, k="max_bin_count", device=torch.device("cpu"), **kwargs
    )
    return calc.get_accuracy(x, labels)


# ----------------------------------------------------------------------------------------------------------
# Retrieval


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["clustered", "messy"])
def test_retrieval_equals_pytorch_metric_learning(kind, backend):
    x, labels = _embeddings(kind)
    ours = retrieval_metrics(x, labels, backend=backend, chunk_size=37, n_boot=0)
    theirs = _pml(x, labels)
    assert abs(ours.precision_at_1.value - theirs["precision_at_1"]) < 1e-6
    assert abs(ours.r_precision.value - theirs["r_precision"]) < 1e-6
    assert abs(ours.map_at_r.value - theirs["mean_average_precision_at_r"]) < 1e-6
    if kind == "messy":  # the comparison must not be trivial
        assert ours.map_at_r.value < 0.6


@pytest.mark.parametrize("kind", ["clustered", "messy"])
def test_per_class_retrieval_equals_pytorch_metric_learning_per_class(kind):
    x, labels = _embeddings(kind, seed=1)
    per_class = per_class_retrieval(retrieval_metrics(x, labels, n_boot=0))
    theirs = _pml(x, labels, return_per_class=True)
    assert per_class["label"].tolist() == [3, 13, 23, 33, 43, 53]  # the singleton class 63 has no query
    np.testing.assert_allclose(per_class["precision_at_1"], theirs["precision_at_1"], atol=1e-6)
    np.testing.assert_allclose(per_class["r_precision"], theirs["r_precision"], atol=1e-6)
    np.testing.assert_allclose(per_class["map_at_r"], theirs["mean_average_precision_at_r"], atol=1e-6)
    assert per_class["n_queries"].tolist() == [40, 31, 25, 17, 9, 2]


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("kind", ["clustered", "messy"])
def test_retrieval_equals_slow_reference(kind, metric):
    x, labels = _embeddings(kind, seed=2)
    ours = retrieval_metrics(x, labels, metric=metric, k_values=(1, 3, 10), n_boot=0)
    slow = _slow_retrieval(x, labels, metric=metric, k_values=(1, 3, 10))
    assert abs(ours.precision_at_1.value - slow["precision_at_1"]) < 1e-6
    assert abs(ours.r_precision.value - slow["r_precision"]) < 1e-6
    assert abs(ours.map_at_r.value - slow["map_at_r"]) < 1e-6
    for k in (1, 3, 10):
        assert abs(ours.recall_at_k[k].value - slow[f"recall_at_{k}"]) < 1e-6


def test_singletons_are_excluded_and_reported():
    x, labels = _embeddings("messy", seed=3)
    result = retrieval_metrics(x, labels, n_boot=0)
    assert result.n_items == 125 and result.n_queries == 124
    assert result.fraction_without_positive == pytest.approx(1 / 125)
    assert 63 not in result.query_labels
    assert result.k == 39 and result.n_truncated == 0  # largest class minus one
    assert all(v.shape == (124,) for v in result.per_query.values())
    np.testing.assert_allclose(result.per_query["map_at_r"].mean(), result.map_at_r.value)


def test_truncated_lists_give_lower_bounds_and_are_counted():
    x, labels = _embeddings("messy", seed=4)
    full = retrieval_metrics(x, labels, n_boot=0)
    cut = retrieval_metrics(x, labels, n_boot=0, max_k=12)
    assert cut.k == 12 and cut.n_truncated == np.sum(np.isin(labels, [3, 13, 23, 33]))  # classes of 14+ items
    assert cut.r_precision.value <= full.r_precision.value
    assert cut.map_at_r.value <= full.map_at_r.value
    assert cut.precision_at_1.value == full.precision_at_1.value
    slow = _slow_retrieval(x, labels, depth=12)
    assert abs(cut.r_precision.value - slow["r_precision"]) < 1e-6
    assert abs(cut.map_at_r.value - slow["map_at_r"]) < 1e-6


def test_precomputed_knn_indices_give_the_same_result():
    x, labels = _embeddings("messy", seed=5)
    idx, _ = knn(x, x, 60, exclude_self=True)
    a = retrieval_metrics(x, labels, knn_indices=idx, rng=3)
    b = retrieval_metrics(x, labels, rng=3)
    assert a.to_dict() == b.to_dict()


def test_retrieval_intervals_are_deterministic_and_contain_the_value():
    x, labels = _embeddings("messy", seed=6)
    a = retrieval_metrics(x, labels, rng=np.random.default_rng(11), n_boot=200)
    b = retrieval_metrics(x, labels, rng=np.random.default_rng(11), n_boot=200)
    assert a.to_dict() == b.to_dict()
    for est in [a.precision_at_1, a.r_precision, a.map_at_r, *a.recall_at_k.values()]:
        assert isinstance(est, Estimate) and est.low <= est.value <= est.high and est.n == a.n_queries
    # recall@1 is precision@1; the same resamples give the same interval
    assert a.recall_at_k[1] == a.precision_at_1
    assert a.recall_at_k[1].value <= a.recall_at_k[5].value <= a.recall_at_k[10].value


def test_recall_at_k_beyond_the_database_uses_everything():
    x = np.random.default_rng(7).standard_normal((6, 3)).astype(np.float32)
    labels = np.array([0, 0, 0, 1, 1, 1])
    result = retrieval_metrics(x, labels, k_values=(1, 50), n_boot=0)
    assert result.recall_at_k[50].value == 1.0


@pytest.mark.parametrize(
    ("x", "labels", "kwargs", "match"),
    [
        (np.ones((4, 2)), [0, 0, 0, 0], {}, "single class"),
        (np.random.default_rng(0).random((3, 2)), [0, 1, 2], {}, "single item"),
        (np.ones((4, 2)), [0, 0, 1], {}, "4 items"),
        (np.array([[0.0, 1], [np.nan, 1], [1, 1], [2, 2]]), [0, 0, 1, 1], {}, "NaN or inf"),
        (np.ones((4, 2)), [0, 0, 1, 1], {"k_values": ()}, "k_values"),
        (np.ones((4, 2)), [0, 0, 1, 1], {"metric": "l1"}, "metric"),
        (np.ones((30, 2)), [0, 1] * 15, {"k_values": (1, 10), "max_k": 5}, "max_k"),
        (np.ones((4, 2)), [0, 0, 1, 1], {"knn_indices": np.zeros((3, 2), int)}, "knn_indices"),
    ],
)
def test_retrieval_bad_input_raises_input_error(x, labels, kwargs, match):
    with pytest.raises(InputError, match=match):
        retrieval_metrics(x, labels, **kwargs)


# ----------------------------------------------------------------------------------------------------------
# Verification


def _pairs(seed: int = 0, n_pos: int = 300, n_neg: int = 700, tied: bool = True):
    rng = np.random.default_rng(seed)
    scores = np.concatenate([rng.normal(1.0, 1.0, n_pos), rng.normal(0.0, 1.0, n_neg)])
    if tied:
        scores = np.round(scores, 1)  # many equal scores: the hard case for threshold sweeps
    labels = np.concatenate([np.ones(n_pos, int), np.zeros(n_neg, int)])
    return scores, labels


def _brute_force_best(scores, labels, balanced):
    best = -1.0
    for t in [*np.unique(scores), np.inf]:
        accept = scores >= t
        if balanced:
            acc = 0.5 * (accept[labels == 1].mean() + (~accept[labels == 0]).mean())
        else:
            acc = np.mean(accept == (labels == 1))
        best = max(best, acc)
    return best


@pytest.mark.parametrize("tied", [True, False])
def test_roc_auc_equals_sklearn(tied):
    from sklearn.metrics import roc_auc_score

    scores, labels = _pairs(tied=tied)
    result = verification_metrics(scores, labels, n_boot=100)
    assert result["roc_auc"].value == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert result["roc_auc"].low < result["roc_auc"].value < result["roc_auc"].high
    assert result["n_positive"] == 300 and result["n_negative"] == 700
    assert result["positive_ratio"] == pytest.approx(0.3)


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("balanced", [False, True])
def test_best_threshold_equals_brute_force_over_all_thresholds(tied, balanced):
    scores, labels = _pairs(seed=1, tied=tied)
    threshold, acc = best_threshold(scores, labels, balanced=balanced)
    assert acc == pytest.approx(_brute_force_best(scores, labels, balanced), abs=1e-12)
    assert accuracy_at_threshold(scores, labels, threshold, balanced=balanced) == pytest.approx(
        acc, abs=1e-12
    )


def test_best_threshold_edges():
    assert best_threshold([0.1, 0.2, 0.9, 0.8], [0, 0, 1, 1]) == (pytest.approx(0.5), 1.0)
    t, acc = best_threshold([0.9, 0.8, 0.1], [1, 1, 0])  # perfect: midpoint between 0.1 and 0.8
    assert acc == 1.0 and 0.1 < t <= 0.8
    t, acc = best_threshold([0.5, 0.5, 0.5, 0.5, 0.5], [1, 1, 1, 1, 0])  # accepting all is best
    assert acc == 0.8 and accuracy_at_threshold([0.5] * 5, [1, 1, 1, 1, 0], t) == 0.8
    t, acc = best_threshold([0.5, 0.5, 0.5, 0.5, 0.5], [1, 0, 0, 0, 0])  # rejecting all is best
    assert acc == 0.8 and t > 0.5


def _naive_fnmr(scores, labels, target):
    """Try every threshold, keep the lowest whose FMR is within the target."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    for t in sorted([*np.unique(scores), np.inf]):
        fmr = np.mean(neg >= t)
        if fmr <= target:
            return np.mean(pos < t), fmr
    raise AssertionError("unreachable: t = inf has FMR 0")


@pytest.mark.parametrize("tied", [True, False])
def test_fnmr_at_fmr_equals_naive_sweep(tied):
    scores, labels = _pairs(seed=2, n_neg=2000, tied=tied)
    result = fnmr_at_fmr(scores, labels, (1e-3, 0.01, 0.05, 0.1, 0.29), n_boot=100)
    for target, row in result.items():
        fnmr, fmr = _naive_fnmr(scores, labels, target)
        assert row["fnmr"].value == pytest.approx(fnmr, abs=1e-12)
        assert row["fmr"] == pytest.approx(fmr, abs=1e-12) and row["fmr"] <= target
        accept = scores >= row["threshold"]
        assert np.mean(~accept[labels == 1]) == pytest.approx(fnmr, abs=1e-12)
        assert np.mean(accept[labels == 0]) == pytest.approx(fmr, abs=1e-12)
        assert row["fnmr"].low <= row["fnmr"].value <= row["fnmr"].high
        assert row["resolvable"]
    assert not fnmr_at_fmr(scores[:400], labels[:400], (1e-3,), n_boot=10)[1e-3]["resolvable"]


def test_verification_metrics_at_a_given_threshold():
    scores, labels = _pairs(seed=3)
    result = verification_metrics(scores, labels, threshold=0.7, rng=5, n_boot=200)
    assert result["threshold_source"] == "given" and result["threshold"] == 0.7
    assert result["accuracy"].value == pytest.approx(accuracy_at_threshold(scores, labels, 0.7))
    bal = result["balanced_accuracy"]
    assert bal.value == pytest.approx(accuracy_at_threshold(scores, labels, 0.7, balanced=True))
    assert bal.low < bal.value < bal.high
    tuned = verification_metrics(scores, labels, n_boot=0)
    assert tuned["threshold_source"] == "best_on_these_pairs"
    assert tuned["accuracy"].value == pytest.approx(tuned["best_accuracy"])
    assert tuned["best_accuracy"] >= result["accuracy"].value
    assert math.isnan(tuned["roc_auc"].low)  # n_boot=0: point values only
    assert set(tuned["fnmr_at_fmr"]) == {1e-3, 1e-2, 1e-1}
    assert (
        verification_metrics(scores, labels, rng=1)["roc_auc"]
        == verification_metrics(scores, labels, rng=1)["roc_auc"]
    )


@pytest.mark.parametrize(
    ("scores", "labels", "kwargs", "match"),
    [
        ([0.1, 0.2, 0.3], [1, 0], {}, "Mismatched lengths"),
        ([0.1, 0.2], [1, 1], {}, "all 2 pairs are similar"),
        ([0.1, np.nan], [1, 0], {}, "NaN or inf"),
        ([0.1, 0.2], [1, 2], {}, "0 \\(dissimilar\\) or 1"),
        ([0.1, 0.2], [1, 0], {"fmr_targets": (0.0,)}, "strictly between"),
    ],
)
def test_verification_bad_input_raises_input_error(scores, labels, kwargs, match):
    with pytest.raises(InputError, match=match):
        verification_metrics(scores, labels, **kwargs)


# ----------------------------------------------------------------------------------------------------------
# Clusters


def test_cluster_metrics_separated_classes_score_high_and_random_labels_score_chance():
    x, labels = _embeddings("clustered", seed=8)
    keep = labels != 63  # k-means cannot be expected to isolate a single point
    good = cluster_metrics(x[keep], labels[keep], rng=0, n_boot=100)
    assert good["nmi"] > 0.8 and good["ami"] > 0.8
    assert good["silhouette"].value > 0.3 and good["silhouette"].low <= good["silhouette"].value
    assert good["n_clusters"] == 6 and good["silhouette_n"] == keep.sum()
    shuffled = np.random.default_rng(0).permutation(labels[keep])
    bad = cluster_metrics(x[keep], shuffled, rng=0, n_boot=0, silhouette_sample=50)
    assert abs(bad["ami"]) < 0.1 and bad["silhouette"].value < 0.05 and bad["silhouette_n"] == 50
    assert cluster_metrics(x, labels, rng=4, n_boot=10) == cluster_metrics(x, labels, rng=4, n_boot=10)


def test_cluster_metrics_needs_two_classes():
    with pytest.raises(InputError, match="single class"):
        cluster_metrics(np.random.default_rng(0).random((5, 2)), [1] * 5)


# ----------------------------------------------------------------------------------------------------------
# n-way


def test_nway_accuracy_credits_ties_equally():
    scores = np.array(
        [
            [0.9, 0.1, 0.2],  # correct unique max
            [0.1, 0.9, 0.2],  # wrong
            [0.5, 0.5, 0.1],  # tie of 2 including the correct one
            [0.3, 0.3, 0.3],  # constant scorer: chance
            [0.1, 0.7, 0.7],  # tie of 2 excluding the correct one
        ]
    )
    credit = nway_accuracy(scores, [0, 0, 1, 2, 0])
    np.testing.assert_allclose(credit, [1.0, 0.0, 0.5, 1 / 3, 0.0])
    result = nway_metrics(scores, [0, 0, 1, 2, 0], n_boot=50)
    assert result["chance"] == pytest.approx(1 / 3)
    assert result["accuracy"].value == pytest.approx(credit.mean())
    assert result["lift"].value == pytest.approx((credit.mean() - 1 / 3) / (2 / 3))
    assert result["n_episodes"] == 5 and result["n_candidates"] == 3


def test_nway_constant_scores_earn_exactly_chance():
    result = nway_metrics(np.zeros((40, 5)), np.arange(40) % 5, n_boot=0)
    assert result["accuracy"].value == pytest.approx(0.2) and result["lift"].value == pytest.approx(0.0)
    assert math.isnan(result["accuracy"].low)


@pytest.mark.parametrize(
    ("scores", "correct", "match"),
    [
        (np.zeros((2, 3)), [0, 3], "outside"),
        (np.zeros((2, 3)), [0], "Mismatched lengths"),
        (np.zeros((2, 1)), [0, 0], "2 candidates"),
        (np.array([[0.0, np.inf]]), [0], "NaN or inf"),
    ],
)
def test_nway_bad_input_raises_input_error(scores, correct, match):
    with pytest.raises(InputError, match=match):
        nway_accuracy(scores, correct)


@pytest.mark.parametrize("backend", BACKENDS)
def test_chunking_and_depth_grouping_do_not_change_values(backend):
    x, labels = _embeddings("messy", seed=9)
    base = retrieval_metrics(x, labels, backend=backend, rng=2)
    for chunk in (1, 5, 64):
        other = retrieval_metrics(x, labels, backend=backend, chunk_size=chunk, rng=2)
        assert other.to_dict() == base.to_dict()
        for name, values in base.per_query.items():
            np.testing.assert_array_equal(other.per_query[name], values)


@pytest.mark.parametrize(
    "call",
    [
        lambda z: retrieval_metrics(z, np.arange(20) % 4),
        lambda z: knn(z, z, 3),
        lambda z: verification_metrics(z[:, 0], np.arange(20) % 2),
        lambda z: nway_accuracy(z[:5, :4], np.zeros(5, dtype=int)),
    ],
    ids=["retrieval", "knn", "verification", "nway"],
)
def test_complex_values_are_refused_not_silently_cast_to_real(call):
    z = np.random.default_rng(0).normal(size=(20, 4)) * (1 + 1j)
    with pytest.raises(InputError, match="real-valued.*complex128.*real part or the magnitude"):
        call(z)
