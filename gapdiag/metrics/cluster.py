"""Cluster quality of an embedding against labels: NMI/AMI of k-means and a sampled silhouette."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..neighbors import METRICS, _as_matrix
from ..stats import DEFAULT_LEVEL, DEFAULT_N_BOOT, Estimate, bootstrap_mean
from ..validation import check_choice, check_positive_int
from ._common import _as_rng, _label_codes

__all__ = ["cluster_metrics"]

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
        k-means restarts from random centres (scikit-learn ``KMeans``, ``k`` = number of classes); the
        run with the lowest inertia is kept.
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
    # Random initial centres, as faiss's k-means (pytorch-metric-learning's NMI) starts: k-means++ seeding
    # costs O(k^2 n) and dominated the whole audit at hundreds of identities.
    clusters = KMeans(n_clusters=counts.size, init="random", n_init=n_init, random_state=seed).fit_predict(x)

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
