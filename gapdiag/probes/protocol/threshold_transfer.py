"""GD303 — threshold transfer: the decision threshold tuned on training misplaces validation pairs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ...findings.finding import Finding, Severity
from ...metrics import best_threshold
from ...protocols import PAIRWISE, user_protocols
from ...stats import Estimate, estimate_from_draws, mean_bootstrap_draws, roc_auc
from ..base import FigureSpec, Measurement, Probe
from ..registry import register_probe

if TYPE_CHECKING:
    from ...context import AuditContext

__all__ = ["ThresholdTransferProbe"]

FIG = "threshold_hist"


def _balanced(
    correct: np.ndarray, y: np.ndarray, rng: np.random.Generator, n_boot: int
) -> tuple[float, np.ndarray]:
    """Balanced mean of per-pair values (P,) over the two classes, with stratified bootstrap draws."""
    value = 0.5 * (correct[y].mean() + correct[~y].mean())
    draws = 0.5 * (
        mean_bootstrap_draws(correct[y], rng, n_boot) + mean_bootstrap_draws(correct[~y], rng, n_boot)
    )
    return float(value), draws


@register_probe
class ThresholdTransferProbe(Probe):
    """GD303: balanced accuracy lost on validation pairs by the threshold fixed on training.

    On validation pairs: balanced accuracy ``(TPR + TNR) / 2`` at the decision threshold (``ctx.decision_
    threshold()``: the user's ``threshold`` option, else tuned on training pairs) against balanced accuracy at
    the best validation threshold, cross-fitted (2 stratified folds: tuned on one half, applied to the other)
    so it carries no in-sample optimism. The loss is the mean paired difference of per-pair correctness,
    balanced over the two classes, with a stratified bootstrap CI. Balanced accuracy keeps the check blind to
    the positive ratio (GD304's business). ``warn`` when loss >= ``min_threshold_loss`` with its CI above 0
    and the user's validation protocol is pairwise (their number depends on the threshold); ``info`` when
    only derived validation pairs show it (an n-way validation needs no threshold).
    """

    name = "threshold_transfer"
    concurrent = True
    family = "protocol"
    codes = ("GD303",)
    requires = frozenset({"train_pairs_any", "val_pairs_any"})
    defaults = {"min_threshold_loss": 0.05, "max_plot_points": 2000}
    description = "Does the training threshold still separate validation pairs?"

    def _measure(self, ctx: AuditContext) -> Measurement:
        threshold, origin = ctx.decision_threshold()
        p = ctx.pairs("val")
        s, y = ctx.pair_scores("val"), p.label.astype(bool)
        scorer = ctx.reading().scorer
        out: dict[str, Any] = {
            "n_pairs": int(y.size),
            "threshold_origin": origin,
            "threshold_raw": float(scorer.to_raw(threshold)),
            "val_protocol_pairwise": user_protocols(ctx).val == PAIRWISE,
            "val_pairs_origin": ctx.pairs_origin("val"),
        }
        if int(y.sum()) < 2 or int((~y).sum()) < 2:
            return Measurement(metrics={**out, "available": False})
        n_boot, level = int(ctx.option("n_boot")), float(ctx.option("ci_level"))
        rng = ctx.rng("threshold_transfer")
        fold = np.empty(y.size, dtype=np.int64)
        for cls in (True, False):  # stratified halves
            idx = np.flatnonzero(y == cls)
            fold[idx] = rng.permutation(idx.size) % 2
        oracle = np.empty(y.size, dtype=bool)
        for f in (0, 1):
            t_f, _ = best_threshold(s[fold != f], y[fold != f], balanced=True)
            oracle[fold == f] = (s[fold == f] >= t_f) == y[fold == f]
        given = (s >= threshold) == y
        loss, loss_draws = _balanced(oracle.astype(float) - given.astype(float), y, rng, n_boot)
        bal_given, given_draws = _balanced(given.astype(float), y, rng, n_boot)
        bal_oracle, oracle_draws = _balanced(oracle.astype(float), y, rng, n_boot)
        best_t, _ = best_threshold(s, y, balanced=True)
        out.update(
            available=True,
            val_balanced_accuracy_at_threshold=estimate_from_draws(bal_given, given_draws, y.size, level),
            val_balanced_accuracy_at_best_val_threshold=estimate_from_draws(
                bal_oracle, oracle_draws, y.size, level
            ),
            loss=estimate_from_draws(loss, loss_draws, y.size, level),
            best_val_threshold_raw=float(scorer.to_raw(best_t)),
            val_auc=float(roc_auc(s, y)),
        )
        return Measurement(
            metrics=out, figures=[self._figure(ctx, float(scorer.to_raw(best_t)), out["threshold_raw"])]
        )

    def _figure(self, ctx: AuditContext, best_raw: float, raw: float) -> FigureSpec:
        cap = int(self.params["max_plot_points"])
        scores, y = ctx.raw_pair_scores("val"), ctx.pairs("val").label.astype(bool)
        rng = ctx.rng("threshold_transfer.figure")
        series = {}
        for name, mask in (("similar pairs", y), ("dissimilar pairs", ~y)):
            vals = scores[mask]
            if vals.size > cap:
                vals = vals[np.sort(rng.choice(vals.size, cap, replace=False))]
            series[name] = np.round(vals, 5).tolist()
        return FigureSpec(
            FIG,
            "hist",
            "Validation pair scores and the two thresholds",
            {
                "panels": [
                    {
                        "title": f"val ({y.size} pairs)",
                        "series": series,
                        "vlines": {"decision threshold": raw, "best val threshold": best_raw},
                    }
                ],
                "xlabel": "your score",
            },
            caption="The decision threshold comes from training; the best validation threshold is cross-fitted.",
        )

    def _judge(self, m: Measurement) -> list[Finding]:
        tr = m.metrics
        if not tr.get("available") or "validation" in tr["threshold_origin"]:
            return []
        loss: Estimate = tr["loss"]
        if not (loss.value >= self.params["min_threshold_loss"] and loss.above(0.0)):
            return []
        message = (
            f"At the decision threshold ({tr['threshold_origin']}: {tr['threshold_raw']:.4g} on your score), "
            f"validation balanced accuracy is {tr['val_balanced_accuracy_at_threshold']:.2f} against "
            f"{tr['val_balanced_accuracy_at_best_val_threshold']:.2f} at the best validation threshold (about "
            f"{tr['best_val_threshold_raw']:.4g}, cross-fitted): the threshold costs {loss:.2f} on {tr['n_pairs']} "
            f"validation pairs (threshold-free val ROC-AUC {tr['val_auc']:.2f}); the score scale drifts between "
            f"splits. (raised: loss >= {self.params['min_threshold_loss']:.2f}, CI above 0.)"
        )
        if not tr["val_protocol_pairwise"]:
            message += " Your validation number is n-way, which needs no threshold; this matters if you deploy verification at this threshold."
        evidence = {k: (v.to_dict() if isinstance(v, Estimate) else v) for k, v in tr.items()}
        severity = Severity.WARN if tr["val_protocol_pairwise"] else Severity.INFO
        return [
            self.finding(
                "GD303", severity, message, evidence=evidence, figures=[FIG], cause="mechanism:threshold"
            )
        ]
