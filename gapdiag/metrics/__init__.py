"""Retrieval, verification, cluster and n-way metrics, vectorized, with confidence intervals.

One module per kind: :mod:`.retrieval`, :mod:`.verification`, :mod:`.cluster`, :mod:`.nway`; everything
public is importable from ``gapdiag.metrics``.

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

from .cluster import cluster_metrics
from .nway import nway_accuracy, nway_metrics
from .retrieval import RetrievalMetrics, per_class_retrieval, retrieval_metrics
from .verification import accuracy_at_threshold, best_threshold, fnmr_at_fmr, verification_metrics

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
