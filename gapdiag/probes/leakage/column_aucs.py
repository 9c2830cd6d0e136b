"""The ROC-AUC of every column of a feature table for a binary label: point values and bootstrap replicates.

The leakage signal compares hundreds of pair features; these compute their AUCs in batches (one sort per
column) and, for the columns that need intervals, stratified bootstrap replicates that share their resamples
across columns.
"""

from __future__ import annotations

import numpy as np

from ...stats import auc_ranks, bootstrap_multiplicities, weighted_auc

__all__ = ["auc_bootstrap", "point_aucs"]


def auc_bootstrap(
    x: np.ndarray, y: np.ndarray, *, rng: np.random.Generator, n_boot: int
) -> tuple[np.ndarray, np.ndarray]:
    """ROC-AUC of every column of ``x`` for the binary ``y``, with stratified bootstrap replicates.

    Parameters
    ----------
    x : ndarray (P, F) float
        One feature per column; NaN marks a missing value (those pairs are left out for that column).
    y : ndarray (P,) of 0/1
    rng, n_boot
        Positives and negatives are resampled separately (the same resamples for every column, whatever the
        columns: a column's replicates do not depend on which other columns are passed).

    Returns
    -------
    auc : ndarray (F,)
        Mann-Whitney AUC, ties counted one half (equal to :func:`gapdiag.stats.roc_auc`); NaN when a
        class has no finite value.
    boot : ndarray (n_boot, F)
        The AUC of each resample (see :func:`weighted_auc`).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    y = np.asarray(y).astype(bool)
    n_f = x.shape[1]
    auc = np.full(n_f, np.nan)
    boot = np.full((n_boot, n_f), np.nan)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return auc, boot
    wp_all = bootstrap_multiplicities(rng, n_pos, n_boot)
    wn_all = bootstrap_multiplicities(rng, n_neg, n_boot)
    ones_p, ones_n = np.ones((1, n_pos), np.float32), np.ones((1, n_neg), np.float32)
    for f in range(n_f):
        finite = np.isfinite(x[:, f])
        mp, mn = finite[y], finite[~y]
        if not mp.any() or not mn.any():
            continue
        v, yy = x[finite, f], y[finite]
        full, ranks = finite.all(), auc_ranks(v, yy)  # one sort serves the point value and the replicates
        auc[f] = float(
            weighted_auc(
                v, yy, ones_p if full else ones_p[:, mp], ones_n if full else ones_n[:, mn], ranks=ranks
            )[0]
        )
        boot[:, f] = weighted_auc(
            v, yy, wp_all if full else wp_all[:, mp], wn_all if full else wn_all[:, mn], ranks=ranks
        )
    return auc, boot


def point_aucs(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The ROC-AUC of every column of ``x`` (P, F) for the binary ``y`` (P,), without intervals -> (F,).

    The same Mann-Whitney AUC as :func:`auc_bootstrap` (ties one half, NaN values left out per column), in
    one batched sort and search for the columns without NaN: fast enough for hundreds of features.
    """
    import torch

    x = np.asarray(x, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    y = np.asarray(y).astype(bool)
    out = np.full(x.shape[1], np.nan)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0 or x.shape[1] == 0:
        return out
    full = np.isfinite(x).all(axis=0)
    if full.any():
        neg = torch.from_numpy(np.ascontiguousarray(np.sort(x[~y][:, full], axis=0).T))
        pos = torch.from_numpy(np.ascontiguousarray(x[y][:, full].T))
        lo = torch.searchsorted(neg, pos, right=False).sum(dim=1, dtype=torch.float64)
        hi = torch.searchsorted(neg, pos, right=True).sum(dim=1, dtype=torch.float64)
        out[full] = ((lo + hi) / (2.0 * n_pos * n_neg)).numpy()
    for f in np.flatnonzero(~full):
        finite = np.isfinite(x[:, f])
        yy = y[finite]
        if yy.any() and not yy.all():
            ones = np.ones((1, int(yy.sum())), np.float32), np.ones((1, int((~yy).sum())), np.float32)
            out[f] = float(weighted_auc(x[finite, f], yy, *ones)[0])
    return out
