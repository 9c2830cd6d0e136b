"""GD302 — score direction: the evaluation reads the score the wrong way round (``min()`` of a similarity)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ...findings.finding import Finding, Severity
from ...stats import Estimate, roc_curve_points
from ..base import FigureSpec, Measurement, Probe
from ..registry import register_probe

if TYPE_CHECKING:
    from ...context import AuditContext

__all__ = ["ScoreDirectionProbe"]

FIG_HIST = "score_hist"
FIG_ROC = "score_roc"


@register_probe
class ScoreDirectionProbe(Probe):
    """GD302: read as the user declared (``kind``), does the score rank similar training pairs first?

    Measures the ROC-AUC (in [0, 1], 0.5 = no signal) of the training pairs' scores read as declared, with a
    stratified bootstrap CI (``ctx.reading()``, which also decides how gapdiag reads the score for every other
    number). ``fail`` when the whole CI lies below ``0.5 - direction_margin`` (a global option): the
    evaluation ranks dissimilar pairs above similar ones, e.g. ``min()`` over a cosine similarity. Figures:
    the score distributions of similar and dissimilar pairs per split, and ROC curves, as the user reads them.
    """

    name = "score_direction"
    concurrent = True
    family = "protocol"
    codes = ("GD302",)
    requires = frozenset({"train_pairs_any", "val_pairs_any"})
    defaults = {"max_plot_points": 2000}  # points per histogram series (a seeded subsample)
    description = "Is the score read the right way round (min() of a distance, max() of a similarity)?"

    def _measure(self, ctx: AuditContext) -> Measurement:
        reading = ctx.reading()
        auc = reading.declared_auc
        metrics: dict[str, Any] = {
            "kind": ctx.scorer.kind,
            "rule": ctx.scorer.rule,
            "declared_auc": auc,
            "reversed_auc": Estimate(1 - auc.value, 1 - auc.high, 1 - auc.low, auc.n, auc.level),
            "n_pairs": int(auc.n),
            "pairs_from": reading.split,
            "reversed": reading.reversed,
            "margin": float(ctx.option("direction_margin")),
        }
        return Measurement(metrics=metrics, figures=self._figures(ctx))

    def _figures(self, ctx: AuditContext) -> list[FigureSpec]:
        cap = int(self.params["max_plot_points"])
        panels, roc = [], {}
        for split in ("train", "val"):
            raw, y = ctx.raw_pair_scores(split), ctx.pairs(split).label.astype(bool)
            rng = ctx.rng(f"score_direction.figure.{split}")
            series = {}
            for name, mask in (("similar pairs", y), ("dissimilar pairs", ~y)):
                vals = raw[mask]
                if vals.size > cap:
                    vals = vals[np.sort(rng.choice(vals.size, cap, replace=False))]
                series[name] = np.round(vals, 5).tolist()
            panels.append({"title": f"{split} ({y.size} pairs)", "series": series, "vlines": {}})
            if y.any() and (~y).any():
                pts = roc_curve_points(ctx.scorer.orient(raw), y)
                roc[split] = {"x": pts["fpr"], "y": pts["tpr"]}
        figs = [
            FigureSpec(
                FIG_HIST,
                "hist",
                "Scores of similar and dissimilar pairs",
                {"panels": panels, "xlabel": f"your score ({ctx.scorer.rule})"},
                caption="Similar pairs should sit on the 'more similar' side of your score.",
            )
        ]
        if roc:
            figs.append(
                FigureSpec(
                    FIG_ROC,
                    "lines",
                    "ROC of the score per split, read as you declared",
                    {
                        "series": roc,
                        "xlabel": "false match rate (dissimilar pairs accepted)",
                        "ylabel": "true match rate (similar pairs accepted)",
                        "diagonal": True,
                    },
                    caption="The diagonal is chance; a curve below it means the score is read the wrong way.",
                )
            )
        return figs

    def _judge(self, m: Measurement) -> list[Finding]:
        mt = m.metrics
        if not mt["reversed"]:
            return []
        if mt["kind"] == "distance":
            read = "Read as a distance (lower = more similar)"
            cause = "distance() probably returns a similarity (e.g. cosine): pick the match with max() or declare kind='similarity'."
        else:
            read = "Read as a similarity (higher = more similar)"
            cause = "distance() probably returns a distance: pick the match with min() or declare kind='distance'."
        auc, rev = mt["declared_auc"], mt["reversed_auc"]
        message = (
            f"{read}, the score ranks dissimilar training pairs above similar ones: AUC {auc:.2f} on {mt['n_pairs']} "
            f"{mt['pairs_from']} pairs (0.5 = no signal); read the other way it is {rev:.2f}. {cause} Your pair "
            "labels may also mean 1 = dissimilar (the contrastive-loss convention): gapdiag reads 1 as similar unless "
            "the configuration says similar_label = 0; identity labels or episodes would tell which. (fail: the whole CI is below "
            f"{0.5 - mt['margin']:.2f}.) gapdiag's other numbers read the score the way the training pairs separate."
        )
        evidence = {"train_auc": auc.to_dict(), "train_auc_reversed": rev.to_dict(), "kind": mt["kind"]}
        return [
            self.finding(
                "GD302",
                Severity.FAIL,
                message,
                evidence=evidence,
                figures=[FIG_HIST, FIG_ROC],
                cause="mechanism:direction",
            )
        ]
