"""GD206 — degenerate scores: the model gives validation pairs (almost) the same score."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ...findings.finding import Finding, Severity
from ...stats import Estimate, bootstrap_chunk, bootstrap_multiplicities, estimate_from_draws
from ..base import FigureSpec, Measurement, Param, Probe
from ..registry import register_probe

if TYPE_CHECKING:
    from ...context import AuditContext

__all__ = ["DegenerateScoresProbe"]

#: Relative size below which two scores count as the same value (float32 embeddings carry ~7 digits).
_TIE_TOLERANCE = 1e-6


def sd_draws(x: np.ndarray, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """Bootstrap draws (n_boot,) of the standard deviation (ddof 0) of ``x`` (n,), resampled with replacement."""
    c = x - x.mean()  # centred first: the moments below do not lose the small spread to a large mean
    out = np.empty(n_boot)
    step = bootstrap_chunk(x.size)
    for s in range(0, n_boot, step):
        w = bootstrap_multiplicities(rng, x.size, min(step, n_boot - s)).astype(np.float64)
        m1 = w @ c / x.size
        out[s : s + w.shape[0]] = np.sqrt(np.maximum(w @ (c * c) / x.size - m1 * m1, 0.0))
    return out


def _ties(scores: np.ndarray, scale: float) -> float:
    """The share of ``scores`` (n,) within ``_TIE_TOLERANCE x scale`` of their median: one shared value."""
    if scores.size == 0:
        return float("nan")
    return float(np.mean(np.abs(scores - np.median(scores)) <= _TIE_TOLERANCE * max(scale, 1e-30)))


@register_probe
class DegenerateScoresProbe(Probe):
    """GD206: do the model's scores on validation pairs vary at all, compared with training pairs?

    Measures the standard deviation of the oriented scores (higher = more similar) of the validation pairs
    and of the training pairs (given, or derived from episodes or labels; a seeded sample of at most
    ``max_pairs`` per split) and their ratio rho = SD_val / SD_train in [0, inf): 1 = the same spread,
    0 = every validation pair gets one score. The CI is a percentile bootstrap, pairs resampled independently
    in each split. Also reported: the share of validation pairs that share the median score (within a
    relative 1e-6 of the training scale: the same value up to float precision) and, for validation episodes,
    the share whose best candidate is tied with another.

    Why the ratio: a model that separates its training pairs spreads their scores over the gap between
    positives and negatives, about one training SD or more; if the validation scores spread over a tenth of
    that (rho < 0.1), the whole validation distribution (+-2 SD) fits inside 0.4 training SDs, inside that
    gap: the decision threshold tuned on training puts (nearly) all validation pairs on one side, and which
    candidate wins an n-way episode is decided by differences the model does not resolve. Healthy models
    stay near 1 (0.6 to 1.5 on the planted test data); a shortcut model that sees no artifact on clean
    validation items gives them all one embedding, rho near 0.

    Emits GD206: fail when the whole CI of rho lies below ``fail_sd_ratio`` (or the validation scores are
    constant), warn when it lies below ``max_sd_ratio``. The rule needs the upper CI bound below the
    threshold, so a small validation set cannot raise it by chance; with constant training scores too, the
    finding says the model scores every pair alike.
    """

    name = "degenerate_scores"
    concurrent = True
    family = "embedding"
    codes = ("GD206",)
    requires = frozenset({"train_pairs_any", "val_pairs_any"})
    description = "Validation scores that barely vary: every threshold and every n-way pick is arbitrary."
    defaults = {
        "max_pairs": Param(20000, low=10),  # pairs per split (seeded sample) for the spread and its CI
        "max_sd_ratio": Param(0.1, low=0.0, high=1.0),  # warn: SD_val / SD_train wholly below this
        "fail_sd_ratio": Param(0.01, low=0.0, high=1.0),  # fail: wholly below this
    }

    def _measure(self, ctx: AuditContext) -> Measurement:
        level, n_boot = float(ctx.option("ci_level")), int(ctx.option("n_boot"))
        scores = {}
        for split in ("train", "val"):
            s = np.asarray(ctx.pair_scores(split), dtype=np.float64)
            cap = int(self.params["max_pairs"])
            if s.size > cap:
                s = s[
                    np.sort(ctx.rng(f"degenerate_scores.sample.{split}").choice(s.size, cap, replace=False))
                ]
            scores[split] = s
        sd = {k: float(v.std()) for k, v in scores.items()}
        draws = {k: sd_draws(v, ctx.rng(f"degenerate_scores.boot.{k}"), n_boot) for k, v in scores.items()}
        scale = max(sd["train"], float(np.abs(scores["train"]).mean()), 1e-30)
        m = Measurement()
        m.metrics = {
            "n_pairs": {k: int(v.size) for k, v in scores.items()},
            "sd": {k: estimate_from_draws(sd[k], draws[k], scores[k].size, level).to_dict() for k in sd},
            "val_share_at_median_score": _ties(scores["val"], scale),
            "val_distinct_scores": int(np.unique(np.round(scores["val"] / (_TIE_TOLERANCE * scale))).size),
        }
        if sd["train"] > 0:
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio_draws = draws["val"] / draws["train"]
            n = min(v.size for v in scores.values())
            m.metrics["sd_ratio"] = estimate_from_draws(
                sd["val"] / sd["train"], ratio_draws, n, level
            ).to_dict()
        if ctx.episodes("val") is not None:
            m.metrics["val_episodes_top_tied"] = self._top_ties(ctx.episode_scores("val"), scale)
        m.figures.append(self._hist(scores))
        return m

    @staticmethod
    def _top_ties(scores: np.ndarray, scale: float) -> float:
        """Share of episodes (E, n) whose best candidate's score is tied (float precision) with another's."""
        top2 = -np.sort(-scores, axis=1)[:, :2]
        return float(np.mean(top2[:, 0] - top2[:, 1] <= _TIE_TOLERANCE * scale))

    @staticmethod
    def _hist(scores: dict[str, np.ndarray]) -> FigureSpec:
        return FigureSpec(
            id="degenerate_scores_hist",
            kind="hist",
            title="Pair scores: training vs validation",
            data={
                "panels": [
                    {"title": f"{k} pairs", "series": {k: np.round(v[:5000], 6).tolist()}, "vlines": {}}
                    for k, v in scores.items()
                ],
                "xlabel": "oriented score (higher = more similar)",
            },
            caption="A validation histogram that is one narrow spike where training spreads out: degenerate scores.",
        )

    def _judge(self, m: Measurement) -> list[Finding]:
        p = self.params
        mt = m.metrics
        sd_tr, sd_va = mt["sd"]["train"]["value"], mt["sd"]["val"]["value"]
        ratio = mt.get("sd_ratio")
        if ratio is None:
            if sd_va == 0:
                msg = (
                    f"The model gives every pair the same score, on training ({mt['n_pairs']['train']} pairs) and "
                    f"validation ({mt['n_pairs']['val']} pairs): its embeddings do not depend on the input."
                )
                return [self._finding(Severity.FAIL, msg, mt)]
            return []
        est = Estimate(ratio["value"], ratio["ci_low"], ratio["ci_high"], ratio["n"])
        high = est.high if np.isfinite(est.high) else est.value
        if sd_va == 0 or high < p["fail_sd_ratio"]:
            sev = Severity.FAIL
        elif high < p["max_sd_ratio"]:
            sev = Severity.WARN
        else:
            return []
        msg = (
            f"Validation scores barely vary: their standard deviation is {sd_va:.3g} against {sd_tr:.3g} on training "
            f"pairs, a ratio of {est.value:.3g} [{est.low:.3g}, {est.high:.3g}] ({mt['n_pairs']['val']} validation, "
            f"{mt['n_pairs']['train']} training pairs; 1 = the same spread, 0 = one score for all; flagged when the "
            f"whole CI is below {p['max_sd_ratio']}, fail below {p['fail_sd_ratio']}). "
            f"{mt['val_share_at_median_score']:.0%} of validation pairs share the median score up to float precision"
        )
        if "val_episodes_top_tied" in mt:
            msg += f", and {mt['val_episodes_top_tied']:.0%} of validation episodes have a tie for the best candidate"
        msg += (
            ". Every decision threshold and every n-way pick is then decided by differences the model does not "
            "resolve: the validation accuracy measures noise. A model that learned a shortcut gives inputs without "
            "it one embedding (see GD101/GD102)."
        )
        return [self._finding(sev, msg, mt)]

    def _finding(self, sev: Severity, msg: str, metrics: dict[str, Any]) -> Finding:
        return self.finding(
            "GD206",
            sev,
            msg,
            evidence=dict(metrics),
            figures=["degenerate_scores_hist"],
            cause="scores:degenerate",
        )
