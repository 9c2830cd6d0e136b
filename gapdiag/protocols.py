"""The two evaluation protocols and their numbers: pairwise verification and n-way identification.

A *cell* is one measured number of one split under one protocol (accuracy, balanced accuracy, ROC-AUC or
n-way top-1) with its bootstrap draws, so that differences of cells get confidence intervals, and its
chance level, so that numbers on different protocols can be read side by side. Which protocol the user
measures each split with is decided here, once (:func:`user_protocols`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .stats import Estimate, auc_bootstrap_draws, estimate_from_draws, mean_bootstrap_draws, roc_auc

if TYPE_CHECKING:
    from .context import AuditContext

__all__ = [
    "PAIRWISE",
    "NWAY",
    "PROTOCOL_CHOICES",
    "Cell",
    "Protocols",
    "user_protocols",
    "pairwise_cells",
    "accuracy_at_ratio_cell",
    "nway_cell",
    "difference",
    "lift",
]

PAIRWISE = "pairwise"
NWAY = "n-way"
PROTOCOL_CHOICES = ("auto", PAIRWISE, NWAY)


def lift(x: float, chance: float) -> float:
    """Lift over chance ``(x - chance) / (1 - chance)``: 0 = chance, 1 = perfect, < 0 below chance."""
    return (x - chance) / (1.0 - chance) if chance < 1.0 else float("nan")


def _num(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(round(float(x), 6))


@dataclass
class Cell:
    """One number: its estimate (CI from ``draws``), the bootstrap draws (n_boot,), chance level, units."""

    estimate: Estimate
    draws: np.ndarray | None
    chance: float
    unit: str  # "pairs" or "episodes"

    @property
    def lift(self) -> Estimate:
        e, c = self.estimate, self.chance
        return Estimate(lift(e.value, c), lift(e.low, c), lift(e.high, c), e.n, e.level)

    def to_dict(self, *, user: bool = False) -> dict[str, Any]:
        est, lifted = self.estimate, self.lift
        text = "n/a" if not np.isfinite(est.value) else f"{_estimate_text(est)} lift {lifted.value:.2f}"
        return {
            "text": text,
            "value": _num(est.value),
            "ci_low": _num(est.low),
            "ci_high": _num(est.high),
            "n": int(est.n),
            "unit": self.unit,
            "chance": _num(self.chance),
            "lift": _num(lifted.value),
            "lift_ci_low": _num(lifted.low),
            "lift_ci_high": _num(lifted.high),
            "user_protocol": bool(user),
        }


def _estimate_text(est: Estimate) -> str:
    if not (np.isfinite(est.low) and np.isfinite(est.high)):
        return f"{est.value:.2f}"
    return f"{est:.2f}"


def pairwise_cells(
    scores: np.ndarray,
    labels: np.ndarray,
    threshold: float,
    rng: np.random.Generator,
    n_boot: int,
    level: float,
) -> dict[str, Cell]:
    """Accuracy, balanced accuracy (similar when ``score >= threshold``) and ROC-AUC of pairs (P,).

    The threshold is held fixed, so each pair is a Bernoulli trial: accuracy resamples pairs; balanced
    accuracy and AUC resample similar and dissimilar pairs separately (stratified). Chance: the majority
    rate for accuracy, 0.5 for the other two.
    """
    y = np.asarray(labels).astype(bool)
    n, n_pos = y.size, int(y.sum())
    n_neg = n - n_pos
    accept = np.asarray(scores) >= threshold
    correct = (accept == y).astype(float)
    ratio = n_pos / n
    acc_draws = mean_bootstrap_draws(correct, rng, n_boot)
    acc = Cell(
        estimate_from_draws(float(correct.mean()), acc_draws, n, level),
        acc_draws,
        max(ratio, 1 - ratio),
        "pairs",
    )
    if n_pos == 0 or n_neg == 0:
        unknown = Cell(Estimate.unknown(n, level), None, 0.5, "pairs")
        return {"pairwise_accuracy": acc, "pairwise_balanced_accuracy": unknown, "roc_auc": unknown}
    tpr, tnr = float(accept[y].mean()), float((~accept[~y]).mean())
    bal_draws = 0.5 * (rng.binomial(n_pos, tpr, n_boot) / n_pos + rng.binomial(n_neg, tnr, n_boot) / n_neg)
    bal = Cell(estimate_from_draws(0.5 * (tpr + tnr), bal_draws, n, level), bal_draws, 0.5, "pairs")
    auc_draws = auc_bootstrap_draws(scores, y, rng, n_boot)
    auc = Cell(estimate_from_draws(roc_auc(scores, y), auc_draws, n, level), auc_draws, 0.5, "pairs")
    return {"pairwise_accuracy": acc, "pairwise_balanced_accuracy": bal, "roc_auc": auc}


def accuracy_at_ratio_cell(
    scores: np.ndarray,
    labels: np.ndarray,
    threshold: float,
    positive_ratio: float,
    rng: np.random.Generator,
    n_boot: int,
    level: float,
) -> Cell | None:
    """Accuracy at ``threshold`` re-weighted to ``positive_ratio``: ``r * TPR + (1 - r) * TNR``.

    The accuracy these pairs would give if similar pairs made up a share ``r`` of them, as they do in the
    training pairs: the split changes, the composition does not. None without both kinds of pair.
    """
    y = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    accept = np.asarray(scores) >= threshold
    tpr, tnr = float(accept[y].mean()), float((~accept[~y]).mean())
    r = float(positive_ratio)
    draws = r * rng.binomial(n_pos, tpr, n_boot) / n_pos + (1 - r) * rng.binomial(n_neg, tnr, n_boot) / n_neg
    value = r * tpr + (1 - r) * tnr
    return Cell(estimate_from_draws(value, draws, y.size, level), draws, max(r, 1 - r), "pairs")


def nway_cell(credit: np.ndarray, n_way: int, rng: np.random.Generator, n_boot: int, level: float) -> Cell:
    """n-way top-1 accuracy from per-episode credit (E,) (see :func:`gapdiag.metrics.nway_accuracy`)."""
    draws = mean_bootstrap_draws(credit, rng, n_boot)
    return Cell(
        estimate_from_draws(float(credit.mean()), draws, credit.size, level), draws, 1.0 / n_way, "episodes"
    )


def difference(a: Cell, b: Cell, level: float) -> Estimate:
    """``a - b`` with a CI from the difference of their bootstrap draws (paired when the draws are)."""
    if a.draws is None or b.draws is None:
        return Estimate.unknown(
            min(a.estimate.n, b.estimate.n), level, value=a.estimate.value - b.estimate.value
        )
    return estimate_from_draws(
        a.estimate.value - b.estimate.value, a.draws - b.draws, min(a.estimate.n, b.estimate.n), level
    )


@dataclass(frozen=True)
class Protocols:
    """How the user measures each split: ``train`` and ``val`` are :data:`PAIRWISE` or :data:`NWAY`;
    ``given[split]`` says whether the user gave that split's units (False: gapdiag derives them)."""

    train: str
    val: str
    given: dict[str, bool]

    @property
    def same(self) -> bool:
        return self.train == self.val


def user_protocols(ctx: AuditContext) -> Protocols:
    """The one rule for the user's protocol per split.

    A split measured the way the user gave it: pairs -> pairwise verification, episodes -> n-way
    identification (a training split with both is read by its pairs, a validation split by its episodes).
    A split given as labelled items carries no protocol and is measured like the other split (both items:
    n-way). The ``train_protocol`` / ``val_protocol`` options override the rule; n-way falls back to pairwise
    when no episodes can be built.
    """

    def own(split: str) -> str | None:
        s = ctx.splits[split]
        if s.pairs is not None and (split == "train" or s.episodes is None):
            return PAIRWISE
        if s.episodes is not None:
            return NWAY
        return None

    mine = {split: own(split) for split in ("train", "val")}
    auto = {
        "train": mine["train"] or mine["val"] or NWAY,
        "val": mine["val"] or mine["train"] or NWAY,
    }
    out = {}
    for split in ("train", "val"):
        choice = ctx.option(f"{split}_protocol")
        out[split] = auto[split] if choice == "auto" else choice
        if out[split] == NWAY and ctx.episodes(split) is None:
            out[split] = PAIRWISE
    return Protocols(out["train"], out["val"], {s: mine[s] is not None for s in ("train", "val")})
