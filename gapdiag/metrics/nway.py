"""n-way identification: top-1 accuracy of anchor-vs-candidates episodes, vectorized, with chance and lift."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..stats import DEFAULT_LEVEL, DEFAULT_N_BOOT, Estimate, bootstrap_mean
from ..validation import check_finite, check_index_array, check_positive_int, check_real, check_same_length
from ._common import _as_rng

__all__ = ["nway_accuracy", "nway_metrics"]

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
    check_real(s, name="scores", shape="(E, n)")
    if s.ndim != 2:
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
