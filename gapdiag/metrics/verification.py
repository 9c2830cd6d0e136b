"""Pairwise verification metrics: ROC-AUC, FNMR at fixed FMR, accuracy at a threshold."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..stats import (
    DEFAULT_LEVEL,
    DEFAULT_N_BOOT,
    Estimate,
    bootstrap_auc,
    bootstrap_chunk,
    estimate_from_draws,
    roc_auc,
    wilson,
)
from ..validation import check_binary_labels, check_finite, check_positive_int, check_real, check_same_length
from ._common import _as_rng

__all__ = ["verification_metrics", "accuracy_at_threshold", "best_threshold", "fnmr_at_fmr"]

# ----------------------------------------------------------------------------------------------------------
# Verification (pairs)


def _check_scores_labels(
    scores: Any, labels: Any, *, need_both: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores.detach().cpu() if hasattr(scores, "detach") else scores)
    check_real(s, name="scores", shape="1-D (one score per pair)")
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
    chunk = bootstrap_chunk(n_pos + n_neg)
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
