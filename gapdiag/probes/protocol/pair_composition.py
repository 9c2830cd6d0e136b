"""GD304 — pair composition: training and validation pairs with different shares of similar pairs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ...findings.finding import Finding, Severity
from ...gap import GRID
from ...stats import Estimate, estimate_from_draws, wilson
from ..base import Measurement, Probe
from ..registry import register_probe

if TYPE_CHECKING:
    from ...context import AuditContext

__all__ = ["PairCompositionProbe"]


@register_probe
class PairCompositionProbe(Probe):
    """GD304: are the two splits' pairs made the same way?

    Per split: the share of similar pairs (Wilson CI), negative difficulty (share of dissimilar pairs scoring
    above the median similar pair, Wilson CI; 0 = easy, 0.5 = as similar as the typical positive), accuracy and
    balanced accuracy at the decision threshold, and validation accuracy re-weighted to the training share.
    ``warn`` when both splits' pairs are the user's own and the shares differ by at least
    ``max_positive_ratio_difference`` with the CI of the difference excluding 0: plain accuracies of the two
    splits are then not comparable. Negative difficulty is reported, not judged (it moves with model quality).

    ``warn`` too when the training pairs are the user's own and their accuracy is the mix, not the model: the
    CI of the model's training accuracy at the decision threshold reaches the share of the majority label, so
    the model is not shown to do better than always answering that label. A training set of 95% similar pairs
    makes 0.95 look like learning. The evidence gives the lift, ``(accuracy - majority share) / (1 - majority
    share)`` with the accuracy's CI (0 = no better than the majority answer, 1 = no errors).
    """

    name = "pair_composition"
    concurrent = True
    family = "protocol"
    codes = ("GD304",)
    requires = frozenset({"train_pairs_any", "val_pairs_any"})
    defaults = {"max_positive_ratio_difference": 0.2}
    description = "Do training and validation pairs have the same share of similar pairs?"

    def _measure(self, ctx: AuditContext) -> Measurement:
        grid = ctx.artifact(GRID)
        level, n_boot = float(ctx.option("ci_level")), int(ctx.option("n_boot"))
        out: dict[str, Any] = {"pairs_origin": {s: ctx.pairs_origin(s) for s in ("train", "val")}}
        for split in ("train", "val"):
            s, y = ctx.pair_scores(split), ctx.pairs(split).label.astype(bool)
            out[split] = _composition(s, y, grid.threshold, grid.cells[split], level)
        r_t, r_v = out["train"]["positive_ratio"], out["val"]["positive_ratio"]
        n_t, n_v = out["train"]["n_pairs"], out["val"]["n_pairs"]
        rng = ctx.rng("pair_composition")
        draws = rng.binomial(n_v, r_v.value, n_boot) / n_v - rng.binomial(n_t, r_t.value, n_boot) / n_t
        out["positive_ratio_difference"] = estimate_from_draws(
            r_v.value - r_t.value, draws, min(n_t, n_v), level
        )
        out["val_accuracy_at_train_ratio"] = float(
            r_t.value * out["val"]["tpr"] + (1 - r_t.value) * out["val"]["tnr"]
        )
        return Measurement(metrics=out)

    def _judge(self, m: Measurement) -> list[Finding]:
        comp = m.metrics
        parts = [p for p in (self._ratio_difference(comp), self._training_at_majority(comp)) if p]
        if not parts:
            return []
        evidence: dict[str, Any] = {
            split: {k: (x.to_dict() if isinstance(x, Estimate) else x) for k, x in comp[split].items()}
            for split in ("train", "val")
        }
        evidence["positive_ratio_difference"] = comp["positive_ratio_difference"].to_dict()
        evidence["val_accuracy_at_train_ratio"] = comp["val_accuracy_at_train_ratio"]
        evidence["training_lift_over_majority"] = _lift(comp["train"])
        return [
            self.finding(
                "GD304", Severity.WARN, " ".join(parts), evidence=evidence, cause="mechanism:composition"
            )
        ]

    def _ratio_difference(self, comp: dict[str, Any]) -> str | None:
        """The message when both splits' pairs are the user's and their shares of similar pairs differ."""
        if any(o != "given" for o in comp["pairs_origin"].values()):
            return None
        diff: Estimate = comp["positive_ratio_difference"]
        limit = self.params["max_positive_ratio_difference"]
        if not (abs(diff.value) >= limit and diff.excludes(0.0)):
            return None
        t, v = comp["train"], comp["val"]
        return (
            f"Positive pairs are {t['positive_ratio'].value:.0%} of {t['n_pairs']} training pairs but "
            f"{v['positive_ratio'].value:.0%} of {v['n_pairs']} validation pairs (difference {diff:.2f}), so plain "
            f"accuracies are not comparable: an always-'different' answer scores {1 - t['positive_ratio'].value:.2f} "
            f"on train and {1 - v['positive_ratio'].value:.2f} on val. Accuracy {t['accuracy']:.2f} (train) vs "
            f"{v['accuracy']:.2f} (val); balanced accuracy {t['balanced_accuracy']:.2f} vs {v['balanced_accuracy']:.2f}; "
            f"at the training positive ratio, val accuracy would be {comp['val_accuracy_at_train_ratio']:.2f}. "
            f"Negative difficulty: {t['negative_difficulty']:.2f} vs {v['negative_difficulty']:.2f}. (raised: "
            f"ratios differ by >= {limit:.2f}, CI excludes 0.)"
        )

    def _training_at_majority(self, comp: dict[str, Any]) -> str | None:
        """The message when the user's training pairs score about what always answering their majority label does."""
        if comp["pairs_origin"]["train"] != "given":
            return None
        t = comp["train"]
        lift = _lift(t)
        if lift is None or lift["low"] > 0:
            return None
        share = t["positive_ratio"].value
        answer, majority = ("similar", share) if share >= 0.5 else ("different", 1 - share)
        return (
            f"{majority:.0%} of your {t['n_pairs']} training pairs are {answer} pairs, so always answering "
            f"'{answer}' scores {majority:.2f} on them; the model's training accuracy is {t['accuracy']:.2f} "
            f"(balanced accuracy {t['balanced_accuracy']:.2f}, 0.50 = chance; threshold-free ROC-AUC "
            f"{t['roc_auc']:.2f}). It fixes {lift['value']:.0%} [{lift['low']:.0%}, {lift['high']:.0%}] of the "
            f"errors of that answer: the training number measures the mix of pairs, not what the model learned. "
            f"Judge training by balanced accuracy or ROC-AUC, or train on balanced pairs. (raised: the CI of the "
            f"training accuracy reaches the majority share.)"
        )


def _lift(split: dict[str, Any]) -> dict[str, float] | None:
    """How much of the majority answer's errors the model fixes on a split's pairs, with the accuracy's CI:
    ``(accuracy - majority share) / (1 - majority share)``; None when the split holds one kind of pair only
    or its accuracy has no interval."""
    share = split["positive_ratio"].value
    majority = max(share, 1 - share)
    acc: Estimate = split["accuracy"]
    if majority >= 1 or not np.isfinite(acc.high):
        return None
    room = 1 - majority
    return {
        "majority_share": float(majority),
        "value": float((acc.value - majority) / room),
        "low": float((acc.low - majority) / room),
        "high": float((acc.high - majority) / room),
    }


def _composition(
    s: np.ndarray, y: np.ndarray, threshold: float, cells: dict[str, Any], level: float
) -> dict[str, Any]:
    n, n_pos = y.size, int(y.sum())
    n_neg = n - n_pos
    accept = s >= threshold
    out: dict[str, Any] = {
        "n_pairs": int(n),
        "positive_ratio": wilson(n_pos, n, level),
        "accuracy": cells["pairwise_accuracy"].estimate,
        "balanced_accuracy": cells["pairwise_balanced_accuracy"].estimate,
        "roc_auc": cells["roc_auc"].estimate,
        "tpr": float(accept[y].mean()) if n_pos else float("nan"),
        "tnr": float((~accept[~y]).mean()) if n_neg else float("nan"),
    }
    if n_pos and n_neg:
        out["negative_difficulty"] = wilson(int((s[~y] > float(np.median(s[y]))).sum()), n_neg, level)
    else:
        out["negative_difficulty"] = Estimate.unknown(n_neg, level)
    return out
