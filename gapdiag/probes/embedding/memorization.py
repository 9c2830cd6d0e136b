"""GD201 — pair memorization: the given training pairs against fresh pairings of the same training items."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ...findings.finding import Finding, Severity
from ...gap import FRESH_PAIRS, fresh_correct
from ...stats import (
    Estimate,
    auc_placements,
    estimate_from_draws,
    normal_estimate,
    paired_mean_draws,
    placement_variance,
    wilson,
)
from ..base import FigureSpec, Measurement, Probe
from ..registry import register_probe

if TYPE_CHECKING:
    from ...context import AuditContext

__all__ = ["MemorizationProbe"]


@register_probe
class MemorizationProbe(Probe):
    """GD201 — does the model score its training pairs better in their original pairing?

    **What it measures.** The given training pairs against fresh re-pairings of the same items (the gap
    chain's shared :data:`~gapdiag.gap.FRESH_PAIRS`): each pair keeps one side (chosen at random) and the
    other is swapped, ``fresh_per_pair`` times, for another training item of the same identity (labels, or
    inferred groups of positive pairs: a fresh negative takes the original negative partner's group, which
    the original pair proves is another identity), never recreating an original pair. Two re-pairings:

    - *role-free*: the new partner may be any item of that identity. This is the chain's
      ``train_given -> train_fresh`` step: the accuracy a model loses when pairs are new.
    - *role-kept*: the new partner must have played the same role in the given pairs (member of a similar
      pair for a similar pair, of a dissimilar pair for a dissimilar one).

    A model that learned an embedding scores both like the original pairs. One that memorized its pairs
    loses both; one that memorized which items sat in positive and which in negative pairs (*roles*) loses
    only the role-free re-pairing.

    **Formulas.** At the decision threshold, per pair, correctness as given ``c_i`` in {0, 1} and the mean
    correctness of its fresh pairings ``f_i``. Accuracy gap = ``mean(c - f)`` in [-1, 1] (0 = nothing
    memorized), paired bootstrap CI over pairs; AUC gap = AUC(given) - AUC(fresh), with DeLong's paired
    interval over pairs (similar and dissimilar pairs as separate samples, a pair's fresh placements
    averaged). Pairs with no possible fresh partner keep ``f_i = c_i``.

    **Codes.** GD201 (warn/fail) when the role-free or the role-kept accuracy gap (or AUC gap) reaches its
    threshold with its CI above 0; the message says which re-pairing drops. When a shared attribute (GD101)
    owns the same drop, the report lowers GD201 to info (see :func:`gapdiag.gap.attribute`).
    """

    name = "memorization"
    concurrent = True
    family = "embedding"
    codes = ("GD201",)
    requires = frozenset({"train_pairs", "train_identities"})
    defaults: dict[str, Any] = {
        # accuracy gap (original - fresh pairing) at the audit's decision threshold
        "warn_accuracy_gap": 0.10,
        "fail_accuracy_gap": 0.25,
        # ROC-AUC gap (original - fresh pairing), threshold-free: the same size of effect as the accuracy gap,
        # so a model that merely fits its pairs a little better (AUC 0.92 vs 0.87) is not called memorizing
        "warn_auc_gap": 0.10,
        "fail_auc_gap": 0.25,
    }
    description = "Given training pairs against fresh pairings of the same training items (GD201)."

    def _measure(self, ctx: AuditContext) -> Measurement:
        fp = ctx.artifact(FRESH_PAIRS)
        n_boot, level = int(ctx.option("n_boot")), float(ctx.option("ci_level"))
        threshold, threshold_origin = ctx.decision_threshold()
        y = fp.label
        metrics: dict[str, Any] = {
            "identities_from": fp.identities_from,
            "identities_inferred": fp.inferred,
            "n_original_pairs": int(len(ctx.train.pairs)),
            "n_compared_pairs": int(y.size),
            "fresh_per_pair": int(ctx.option("fresh_per_pair")),
            "threshold_raw": float(ctx.reading().scorer.to_raw(threshold)),
            "threshold_origin": threshold_origin,
        }
        if not fp.inferred and ctx.pairs_origin("train") == "given":
            metrics["labels_contradicted"] = _contradicted(ctx, level)
        if y.all() or not y.any():
            return Measurement(
                metrics={**metrics, "measured": False},
                notes=[
                    "The training pairs are all of one kind (similar or dissimilar): memorization not measured."
                ],
            )
        given = ((fp.score_given >= threshold) == y).astype(float)
        for role, scores in (("role_free", fp.score_role_free), ("role_kept", fp.score_role_kept)):
            rng = ctx.rng(f"memorization.{role}")
            matched = np.isfinite(scores).any(axis=1)
            fresh = fresh_correct(scores, given, y, threshold)
            dg, df = paired_mean_draws(given, fresh, rng, n_boot)
            n = int(y.size)
            out = {
                "n_re_paired": int(matched.sum()),
                "accuracy_original": estimate_from_draws(given.mean(), dg, n, level),
                "accuracy_fresh": estimate_from_draws(fresh.mean(), df, n, level),
                "accuracy_gap": estimate_from_draws(given.mean() - fresh.mean(), dg - df, n, level),
            }
            sub = matched & (np.isfinite(scores).all(axis=1))
            if sub.sum() >= 10 and y[sub].any() and not y[sub].all():
                auc = _paired_auc_gap(fp.score_given[sub], scores[sub], y[sub], level=level)
                out.update(zip(("auc_original", "auc_fresh", "auc_gap"), auc))
            metrics[role] = out
        metrics["measured"] = True
        evidence = {  # one row per compared pair (item indices into the training items), for notebooks and tests
            "pairs": {
                "pair_index": fp.rows,
                "kept_item": fp.kept_item,
                "original_partner": fp.original_partner,
                "fresh_role_free": fp.fresh_role_free,
                "fresh_role_kept": fp.fresh_role_kept,
                "label": y.astype(np.int8),
            }
        }
        return Measurement(metrics=metrics, evidence=evidence, figures=[_figure(fp, y, threshold)])

    def _judge(self, m: Measurement) -> list[Finding]:
        mt = m.metrics
        if not mt.get("measured"):
            return []
        p = self.params
        levels = {role: _level(mt[role], p) for role in ("role_free", "role_kept")}
        severity = max((lv for lv in levels.values() if lv is not None), default=None)
        if severity is None:
            return []
        free, kept = mt["role_free"], mt["role_kept"]
        which = _which_memorized(free, kept, levels)
        inferred = (
            " Identities are inferred from the positive pairs (no labels were given), so fresh partners come "
            "from those groups."
            if mt["identities_inferred"]
            else ""
        )
        message = (
            f"The model scores its training pairs better as given than re-paired: accuracy "
            f"{free['accuracy_original']:.2f} on {mt['n_compared_pairs']} given pairs vs {free['accuracy_fresh']:.2f} "
            f"when one side is swapped for another item of the same identity (gap {free['accuracy_gap']:.2f}), and "
            f"{kept['accuracy_fresh']:.2f} when the new partner also played the same role (gap "
            f"{kept['accuracy_gap']:.2f}); 0 = nothing memorized, warn at {p['warn_accuracy_gap']:.2f}."
            f"{_auc_words(free, kept, p)} {which[0].upper()}"
            f"{which[1:]}. Decision threshold {mt['threshold_raw']:.4g} on your score, {mt['threshold_origin']}."
            f"{inferred}{_contradiction_words(mt.get('labels_contradicted'))}"
        )
        evidence = {k: _jsonish(v) for k, v in mt.items() if k != "measured"}
        return [
            self.finding(
                "GD201",
                severity,
                message,
                evidence=evidence,
                figures=["memorization_scores"],
                cause="mechanism:memorization",
            )
        ]


def _contradicted(ctx: AuditContext, level: float) -> Estimate:
    """The share of the given training pairs whose label the identity labels contradict (Wilson CI): similar
    pairs of two identities and dissimilar pairs of one."""
    pairs = ctx.pairs("train")
    contradicted = pairs.same_identity(ctx.identities("train")) != (pairs.label == 1)
    return wilson(int(contradicted.sum()), int(pairs.label.size), level)


def _contradiction_words(share: Estimate | None) -> str:
    """Why the pairs were memorized, when their labels say so: more than a trace of contradicted labels."""
    if share is None or not share.low > 0.01:
        return ""
    return (
        f" {share.value:.0%} [{share.low:.0%}, {share.high:.0%}] of the {share.n} given training pairs carry a label "
        "that your identity labels contradict (similar pairs of two identities, dissimilar pairs of one): no "
        "identity embedding can fit those, only pair by pair, so check how the pairs were labelled."
    )


def _auc_words(free: dict[str, Any], kept: dict[str, Any], p: dict[str, Any]) -> str:
    """The threshold-free side of the comparison, which can raise the finding on its own (a decision threshold
    that sits where few pairs are hides a gap that ROC-AUC shows)."""
    if "auc_gap" not in free:
        return ""
    kept_words = (
        f", {kept['auc_fresh']:.2f} keeping roles (gap {kept['auc_gap']:.2f})" if "auc_gap" in kept else ""
    )
    return (
        f" Threshold-free: ROC-AUC {free['auc_original']:.2f} as given vs {free['auc_fresh']:.2f} re-paired (gap "
        f"{free['auc_gap']:.2f}){kept_words}; warn at {p['warn_auc_gap']:.2f}."
    )


def _which_memorized(free: dict[str, Any], kept: dict[str, Any], levels: dict[str, Severity | None]) -> str:
    """Pairs (both re-pairings lose about as much) or roles (the role-free one loses far more)."""
    g_free, g_kept = free["accuracy_gap"].value, kept["accuracy_gap"].value
    if levels["role_free"] is not None and g_kept < 0.5 * g_free:
        return (
            "the role-free re-pairing loses far more: the model memorized which items sat in similar and which in "
            "dissimilar pairs (their roles) rather than an identity embedding"
        )
    if levels["role_free"] is not None and levels["role_kept"] is not None:
        return "both re-pairings lose accuracy: the model memorized its training pairs"
    return "the model memorized its training pairs"


def _jsonish(v: Any) -> Any:
    if isinstance(v, Estimate):
        return v.to_dict()
    if isinstance(v, dict):
        return {k: _jsonish(x) for k, x in v.items()}
    return v


def _level(gaps: dict[str, Any], p: dict[str, Any]) -> Severity | None:
    out = None
    for key, warn, fail in (
        ("accuracy_gap", "warn_accuracy_gap", "fail_accuracy_gap"),
        ("auc_gap", "warn_auc_gap", "fail_auc_gap"),
    ):
        gap = gaps.get(key)
        if gap is None or not np.isfinite(gap.value) or not gap.above(0.0):
            continue
        sev = Severity.FAIL if gap.value >= p[fail] else Severity.WARN if gap.value >= p[warn] else None
        if sev is not None and (out is None or sev > out):
            out = sev
    return out


def _figure(fp: Any, y: np.ndarray, threshold: float) -> FigureSpec:
    return FigureSpec(
        id="memorization_scores",
        kind="hist",
        title="Training pair scores: as given vs re-paired with other items of the same identity",
        data={
            "panels": [
                {
                    "title": f"{name} pairs",
                    "series": {
                        "as given": fp.score_given[m].round(5).tolist()[:2000],
                        "re-paired": fp.score_role_free[m][np.isfinite(fp.score_role_free[m])]
                        .round(5)
                        .tolist()[:2000],
                    },
                    "vlines": {"decision threshold": float(threshold)},
                }
                for name, m in (("similar", y), ("dissimilar", ~y))
            ],
            "xlabel": "score (higher = more similar)",
        },
        caption="A memorizing model separates the given pairs far better than fresh pairs of the same items.",
    )


def _paired_auc_gap(
    s_orig: np.ndarray, s_fresh: np.ndarray, y: np.ndarray, *, level: float
) -> tuple[Estimate, Estimate, Estimate]:
    """AUC of original scores (P,), of fresh scores (P, r), and their difference, with paired DeLong CIs.

    The units are the original pairs, similar and dissimilar ones sampled separately (as a stratified
    bootstrap would resample them). A pair's fresh placement is the mean over its r fresh re-pairings, so
    the variance of the difference is that of the per-pair differences of placements: the pairing is
    accounted for. O(P r log(P r)), where 500 bootstrap AUCs of 20,000 pairs x 3 cost a second.
    """
    r = s_fresh.shape[1]
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    v10_o, v01_o = auc_placements(s_orig, y)
    v10_f, v01_f = auc_placements(s_fresh.reshape(-1), np.repeat(y, r))
    # np.repeat keeps a pair's r fresh scores together, in the pairs' order: one row per pair
    v10_f, v01_f = v10_f.reshape(n_pos, r).mean(axis=1), v01_f.reshape(n_neg, r).mean(axis=1)

    n = int(y.size)
    return (
        normal_estimate(float(v10_o.mean()), placement_variance(v10_o, v01_o), n, level, bounds=(0.0, 1.0)),
        normal_estimate(
            float(v10_f.mean()), placement_variance(v10_f, v01_f), n * r, level, bounds=(0.0, 1.0)
        ),
        normal_estimate(
            float(v10_o.mean() - v10_f.mean()),
            placement_variance(v10_o - v10_f, v01_o - v01_f),
            n,
            level,
            bounds=(-1.0, 1.0),
        ),
    )
