"""Feature-row column order per split, for the preprocessing probe (GD305).

A validation table whose columns come in another order (a DataFrame's column order, a column dropped or
inserted upstream) keeps every pooled statistic: the values are the same, in other places. What moves is
which column has which mean, spread and correlations. Each validation column is matched to the training
column it resembles most; a slip is an order that lines the two tables up.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...stats import bootstrap_multiplicities, estimate_from_draws
from .orientation import undo_explains

__all__ = ["column_order", "column_scales", "reordered"]

# resamples for the CIs: each recomputes a (D x D) correlation matrix per split, D <= 64 feature columns
_MAX_BOOT = 200


def _moments(x: np.ndarray, w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column means (D,), standard deviations (D,) and correlations (D, D) of rows ``x`` (n, D), each row
    counted ``w`` (n,) times (once when None)."""
    w = np.ones(x.shape[0]) if w is None else w
    total = w.sum()
    mean = w @ x / total
    centred = x - mean
    cov = (centred * w[:, None]).T @ centred / total
    sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    # a column constant up to rounding (in the sample or a resample) correlates with nothing
    varies = sd > 1e-9 * (np.abs(mean) + 1.0)
    safe = np.where(varies, sd, 1.0)
    corr = np.clip(cov / np.outer(safe, safe), -1.0, 1.0) * np.outer(varies, varies)
    return mean, np.where(varies, sd, 0.0), corr


def _marginal(mv: np.ndarray, sv: np.ndarray, mt: np.ndarray, st: np.ndarray) -> np.ndarray:
    """How far two columns' (mean, sd) are apart, scale-free: squared differences over the summed variances
    (0 = equal), capped at 4 (means two pooled SDs apart are simply different), so that a column constant
    in both splits at two values cannot outweigh the rest of the table."""
    with np.errstate(divide="ignore", invalid="ignore"):
        apart = ((mv - mt) ** 2 + (sv - st) ** 2) / (sv**2 + st**2)
    return np.minimum(np.nan_to_num(apart, nan=0.0, posinf=4.0), 4.0)


def _cost(val: tuple, train: tuple, order: np.ndarray) -> float:
    """How far validation columns are from the training columns ``order`` names (order[i] for column i):
    their means and spreads (:func:`_marginal`) plus their correlations, mean squared differences."""
    (mv, sv, rv), (mt, st, rt) = val, train
    marginal = np.mean(_marginal(mv, sv, mt[order], st[order]))
    return float(marginal + np.mean((rv - rt[np.ix_(order, order)]) ** 2))


def _best_order(val: tuple, train: tuple, rounds: int = 5) -> np.ndarray:
    """The training column each validation column resembles most (one each).

    First by means, spreads and each column's sorted absolute correlations with the others (which do not
    depend on their order); then, a few rounds, by its correlations with the others *in the order found so
    far*, which tells apart columns that look alike on their own (standardized features); and every
    cyclic shift and the reversal of the columns, whole. The order of lowest :func:`_cost` is kept.
    """
    from scipy.optimize import linear_sum_assignment

    (mv, sv, rv), (mt, st, rt) = val, train
    marginal = _marginal(mv[:, None], sv[:, None], mt[None, :], st[None, :])
    profile_v, profile_t = np.sort(np.abs(rv), axis=1), np.sort(np.abs(rt), axis=1)
    order = linear_sum_assignment(
        marginal + ((profile_v[:, None, :] - profile_t[None, :, :]) ** 2).mean(axis=2)
    )[1]
    best, best_cost = order, _cost(val, train, order)
    for _ in range(rounds):
        # validation column i against training column j: rv[i, k] vs rt[j, order[k]] over the columns k
        along = rt[:, order]
        order = linear_sum_assignment(marginal + ((rv[:, None, :] - along[None, :, :]) ** 2).mean(axis=2))[1]
        cost = _cost(val, train, order)
        if cost >= best_cost:
            break
        best, best_cost = order, cost
    # the slips with structure, tried whole: every column moved by k places (a column dropped or inserted
    # upstream), and the order reversed; they line up tables whose columns look alike one by one
    d = rv.shape[0]
    for shifted in [*((np.arange(d) + k) % d for k in range(1, d)), np.arange(d)[::-1]]:
        cost = _cost(val, train, shifted)
        if cost < best_cost:
            best, best_cost = shifted, cost
    return best


def _clipped(x: np.ndarray, share: float = 0.01) -> np.ndarray:
    """Rows (n, D) with each column clipped to its own ``share`` and ``1 - share`` quantiles: a column that
    is nearly constant with a few large values (a rarely inked pixel, standardized) has a spread that one
    sample sees and the next does not, and would otherwise count as a difference between the tables."""
    lo, hi = np.quantile(x, [share, 1.0 - share], axis=0)
    return np.clip(x, lo, hi)


def column_order(
    train: np.ndarray, val: np.ndarray, rng: np.random.Generator, n_boot: int, level: float
) -> dict[str, Any]:
    """Whether validation rows (n_v, D) line up with training rows (n_t, D) only with their columns reordered.

    ``difference`` is the cost of the columns as given (0 = same means, spreads and correlations); the best
    order (one training column per validation column) *explains* the share ``1 - cost(order) / cost(given)``.
    Rows of both splits are resampled (at most 200 times) for the CIs, the order held fixed.
    """
    n = min(train.shape[0], val.shape[0])
    train, val = _clipped(train), _clipped(val)
    at_t, at_v = _moments(train), _moments(val)
    order = _best_order(at_v, at_t)
    given = np.arange(train.shape[1])
    moved = np.flatnonzero(order != given)
    out: dict[str, Any] = {"n_columns": int(given.size), "moved": moved.tolist(), "to": order[moved].tolist()}
    b = min(int(n_boot), _MAX_BOOT)
    wt = bootstrap_multiplicities(rng, train.shape[0], b).astype(np.float64)
    wv = bootstrap_multiplicities(rng, val.shape[0], b).astype(np.float64)
    boot = [(_moments(val, wv[k]), _moments(train, wt[k])) for k in range(b)]
    given_b = np.array([_cost(v, t, given) for v, t in boot])
    out["difference"] = estimate_from_draws(_cost(at_v, at_t, given), given_b, n, level)
    if moved.size:
        ordered_b = np.array([_cost(v, t, order) for v, t in boot])
        point = 1.0 - _cost(at_v, at_t, order) / max(out["difference"].value, 1e-12)
        with np.errstate(divide="ignore", invalid="ignore"):
            draws = np.where(given_b > 0, 1.0 - ordered_b / given_b, np.nan)
        out["explained"] = estimate_from_draws(point, draws, n, level)
    return out


def reordered(check: dict[str, Any] | None, params: dict[str, Any]) -> bool:
    """A real difference between the tables that putting the columns in another order mostly removes."""
    if not check or "explained" not in check:
        return False
    return undo_explains(
        check["difference"], check["explained"], params["min_column_difference"], params["min_explained"]
    )


def _centre_spread(x: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Median and interquartile range along ``axis``: a column that is mostly one value with a few others
    (a rarely inked pixel) reads constant instead of a spread each sample sees differently."""
    q1, med, q3 = np.quantile(x, [0.25, 0.5, 0.75], axis=axis)
    return med, q3 - q1


def column_scales(
    train: np.ndarray, val: np.ndarray, rng: np.random.Generator, n_boot: int, level: float, top: int = 3
) -> dict[str, Any]:
    """How the scale of each feature column moved between training rows (n_t, D) and validation rows (n_v, D).

    Robust per column: the shift of the validation median in training interquartile ranges,
    ``(median_v - median_t) / IQR_t`` (0 = same), and the ratio ``IQR_v / IQR_t`` (1 = same), both (D,) in
    ``"median_shift"`` and ``"iqr_ratio"`` (NaN for columns whose training IQR is 0). ``"top"``: the ``top``
    columns with the largest ``|shift| + |log ratio|``, each with bootstrap CIs over the rows of both splits.
    A column in other units (grams for kilograms) or left unscaled comes first.
    """
    (mt, st), (mv, sv) = _centre_spread(train), _centre_spread(val)
    varies = st > 0
    safe = np.where(varies, st, 1.0)
    shift = np.where(varies, (mv - mt) / safe, np.nan)
    ratio = np.where(varies, np.clip(sv / safe, 1e-12, 1e12), np.nan)
    score = np.where(
        varies, np.abs(np.nan_to_num(shift)) + np.abs(np.log(np.nan_to_num(ratio, nan=1.0))), -1.0
    )
    cols = [int(j) for j in np.argsort(-score)[:top] if score[j] > 0]
    out: dict[str, Any] = {"median_shift": shift, "iqr_ratio": ratio, "top": []}
    if not cols:
        return out
    b = min(int(n_boot), _MAX_BOOT)
    # resampled rows of the chosen columns only: (b, n, len(cols)) per split
    (bmt, bst), (bmv, bsv) = (
        _centre_spread(x[:, cols][rng.integers(0, x.shape[0], size=(b, x.shape[0]))], axis=1)
        for x in (train, val)
    )
    bst = np.where(bst > 0, bst, np.nan)
    n = int(min(train.shape[0], val.shape[0]))
    out["top"] = [
        {
            "column": j,
            "median_shift": estimate_from_draws(
                float(shift[j]), (bmv[:, k] - bmt[:, k]) / bst[:, k], n, level
            ),
            "iqr_ratio": estimate_from_draws(float(ratio[j]), bsv[:, k] / bst[:, k], n, level),
        }
        for k, j in enumerate(cols)
    ]
    return out
