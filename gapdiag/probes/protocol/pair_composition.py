"""GD304 — pair composition: training and validation pairs with different shares of similar pairs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ...findings.finding import Finding, Severity
from ...gap import GRID
from ...stats import Estimate, as_plain, bonferroni_z, estimate_from_draws, normal_estimate, wilson
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

    ``warn`` too when validation's dissimilar pairs were chosen harder than training's, or training's easier
    than validation's (the mirror rule: at most 1 - ``min_negative_hardness``, CI below 0.5). Per split, ``hardness``
    is the probability that a given dissimilar pair scores above a random pair of the split's items (up to
    ``random_pairs`` of each; of different identity labels where labels exist), DeLong CI: 0.5 = drawn at
    random, and the same model scores both, so its quality cancels. Raised when validation's is at least
    ``min_negative_hardness`` (CI above 0.5) and at least ``max_hardness_difference`` above training's (normal
    CI of the difference above 0). The evidence gives the validation accuracy random dissimilar pairs would
    give, and the user's n-way validation with random distractors (paired bootstrap over episodes). Without
    labels some random pairs may share an identity, which only makes them look more alike: conservative.

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
    defaults = {
        "max_positive_ratio_difference": 0.2,
        # validation negatives beat random pairs of validation items this often (0.5: drawn at random) ...
        "min_negative_hardness": 0.65,
        # ... and this much more often than training negatives beat random training pairs, CI above 0
        "max_hardness_difference": 0.15,
        "random_pairs": 2000,  # random pairs (and given dissimilar pairs) compared per split
    }
    description = (
        "Do training and validation pairs have the same share of similar pairs, and negatives as hard?"
    )

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
        for split in ("train", "val"):
            out[split]["negative_hardness"] = self._hardness(ctx, split, grid.threshold, level, n_boot)
        out["val_with_random_distractors"] = self._random_distractors(ctx, level, n_boot)
        return Measurement(metrics=out)

    def _random_pairs(self, ctx: AuditContext, split: str, n: int, rng: np.random.Generator):
        """``n`` seeded pairs (left, right) of distinct items of the split's dissimilar pairs (re-paired at random,
        so a cue that only the items of similar pairs carry cannot make random pairs look alike), of different
        identities: by labels where the split has them (the third value is then True), else of different groups
        inferred from the positive pairs. Inferred groups split an identity whose items no positive pair links,
        so a few random pairs may still share one, which makes random pairs look more alike than true negatives."""
        pairs = ctx.pairs(split)
        negative = pairs.label == 0
        members = np.unique(np.r_[pairs.left[negative], pairs.right[negative]])
        a, b = rng.choice(members, n), rng.choice(members, n)
        keep = a != b
        ids = ctx.identities(split)
        if ids is not None:
            keep &= np.asarray(ids)[a] != np.asarray(ids)[b]
        return a[keep], b[keep], ctx.splits[split].items.labels is not None

    def _hardness(self, ctx: AuditContext, split: str, threshold: float, level: float, n_boot: int):
        """How much more alike the split's dissimilar pairs are than random pairs of its items, by the model:
        P(a given dissimilar pair scores above a random pair), DeLong CI (0.5 = drawn at random, 1 = mined as
        hard as they come); and the accuracy the split's pairs would have with random pairs as dissimilar ones."""
        from ...stats import delong_auc

        pairs = ctx.pairs(split)
        y = pairs.label == 1
        neg = np.flatnonzero(~y)
        if neg.size < 20 or len(pairs.items) < 3:
            return None
        rng = ctx.rng(f"pair_composition.random.{split}")
        n = int(self.params["random_pairs"])
        neg = np.sort(rng.choice(neg, min(n, neg.size), replace=False))
        a, b, exact = self._random_pairs(ctx, split, n, rng)
        if a.size < 20:
            return None
        given = ctx.pair_scores(split)[neg]
        random = ctx.reading().scorer.orient(ctx.raw_scores(split, a, b))
        hardness = delong_auc(np.r_[given, random], np.r_[np.ones(given.size), np.zeros(random.size)], level)
        share_neg = 1.0 - float(y.mean())
        tnr_given, tnr_random = float(np.mean(given < threshold)), float(np.mean(random < threshold))
        draws = (
            rng.binomial(random.size, tnr_random, n_boot) / random.size
            - rng.binomial(given.size, tnr_given, n_boot) / given.size
        )
        gain = estimate_from_draws(
            share_neg * (tnr_random - tnr_given), share_neg * draws, int(given.size), level
        )
        return {
            "hardness": hardness,
            "n_given": int(given.size),
            "n_random": int(random.size),
            "random_pairs_by_labels": exact,
            "accuracy_with_random_negatives_gain": gain,
        }

    def _random_distractors(self, ctx: AuditContext, level: float, n_boot: int) -> dict[str, Any] | None:
        """The user's validation episodes with each distractor swapped for a random item of the episodes (not the
        anchor, not its match; of another identity label where labels exist): top-1 as given and as it would be,
        paired bootstrap over episodes."""
        from ...metrics import nway_accuracy
        from ...stats import paired_mean_draws

        e = ctx.val.episodes
        if e is None:
            return None
        rng = ctx.rng("pair_composition.distractors")
        rows = np.arange(len(e)) if len(e) <= 2000 else np.sort(rng.choice(len(e), 2000, replace=False))
        anchor, cands, correct = e.anchor[rows], e.candidates[rows], e.correct[rows]
        match = cands[np.arange(rows.size), correct]
        members = np.unique(np.r_[e.anchor, e.candidates.ravel()])
        labels = ctx.val.items.labels
        labels = None if labels is None else np.asarray(labels)
        pick = rng.choice(members, size=(rows.size, e.n_way - 1, 8))
        bad = (pick == anchor[:, None, None]) | (pick == match[:, None, None])
        if labels is not None:
            bad |= labels[pick] == labels[anchor][:, None, None]
        first_good = np.argmax(~bad, axis=2)  # the first usable of 8 draws per slot
        usable = (~bad).any(axis=2).all(axis=1)
        if usable.sum() < 20:
            return None
        distractors = np.take_along_axis(pick, first_good[..., None], axis=2)[..., 0]
        new = np.concatenate([match[:, None], distractors], axis=1)[usable]
        anchors = np.repeat(anchor[usable], e.n_way)
        scores = ctx.reading().scorer.orient(ctx.raw_scores("val", anchors, new.ravel())).reshape(new.shape)
        as_given = nway_accuracy(ctx.episode_scores("val")[rows[usable]], correct[usable])
        random = nway_accuracy(scores, np.zeros(new.shape[0], dtype=np.int64))
        dg, dr = paired_mean_draws(as_given, random, rng, n_boot)
        n = int(as_given.size)
        return {
            "n_episodes": n,
            "n_way": int(e.n_way),
            "top1_as_given": estimate_from_draws(float(as_given.mean()), dg, n, level),
            "top1_random_distractors": estimate_from_draws(float(random.mean()), dr, n, level),
            "gain": estimate_from_draws(float(random.mean() - as_given.mean()), dr - dg, n, level),
            "distractors_by_labels": labels is not None,
        }

    def _judge(self, m: Measurement) -> list[Finding]:
        comp = m.metrics
        harder = self._harder_validation_negatives(comp)
        easier = self._easier_training_negatives(comp)
        parts = [
            p for p in (self._ratio_difference(comp), self._training_at_majority(comp), harder, easier) if p
        ]
        if not parts:
            return []
        evidence: dict[str, Any] = {split: as_plain(comp[split]) for split in ("train", "val")}
        evidence["validation_negatives_harder"] = harder is not None
        evidence["training_negatives_easier"] = easier is not None
        evidence["val_with_random_distractors"] = as_plain(comp.get("val_with_random_distractors"))
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

    def _hardness_difference(self, comp: dict[str, Any]) -> tuple[dict, dict, Estimate] | None:
        """Each split's hardness and validation's minus training's (the splits independent: the variance is
        the sum of each interval's, normal, from its width); None when a split has none."""
        t, v = comp["train"].get("negative_hardness"), comp["val"].get("negative_hardness")
        if t is None or v is None:
            return None
        ht, hv = t["hardness"], v["hardness"]
        z = bonferroni_z(hv.level, 1)
        var = ((hv.high - hv.low) / (2 * z)) ** 2 + ((ht.high - ht.low) / (2 * z)) ** 2
        return t, v, normal_estimate(hv.value - ht.value, var, min(hv.n, ht.n), hv.level)

    def _raised_text(self) -> str:
        p = self.params
        return (
            f"(raised: a split's hardness >= {p['min_negative_hardness']:.2f} (validation) or <= "
            f"{1 - p['min_negative_hardness']:.2f} (training) with its CI on that side of 0.50, and validation's "
            f">= {p['max_hardness_difference']:.2f} above training's, CI above 0.)"
        )

    @staticmethod
    def _basis(split: dict[str, Any], conservative: bool) -> str:
        if split["random_pairs_by_labels"]:
            return "random pairs are of items with different identity labels"
        return (
            "random pairs are of items in different groups inferred from the positive pairs; without identity "
            "labels a few may still share an identity, which makes random pairs look more alike"
            + (
                ": the numbers are conservative"
                if conservative
                else ", and training's negatives easier than they are"
            )
        )

    def _harder_validation_negatives(self, comp: dict[str, Any]) -> str | None:
        """The message when the validation's dissimilar pairs (or distractors) were chosen harder than the
        training's: validation measures another task, not the same one on new items."""
        found, p = self._hardness_difference(comp), self.params
        if found is None:
            return None
        t, v, diff = found
        ht, hv = t["hardness"], v["hardness"]
        if not (hv.value >= p["min_negative_hardness"] and hv.above(0.5)):
            return None
        if not (diff.value >= p["max_hardness_difference"] and diff.above(0.0)):
            return None
        gain: Estimate = v["accuracy_with_random_negatives_gain"]
        msg = (
            f"Validation's dissimilar pairs are chosen hard: one scores above a random pair of validation items "
            f"{hv.value:.0%} [{hv.low:.0%}, {hv.high:.0%}] of the time ({v['n_given']} against {v['n_random']} "
            f"random pairs; 50% = drawn at random), against {ht.value:.0%} [{ht.low:.0%}, {ht.high:.0%}] for "
            f"training's ({self._basis(v, True)}). With random dissimilar pairs, validation pairwise accuracy at the "
            f"decision threshold would be {gain.value:+.2f} [{gain.low:+.2f}, {gain.high:+.2f}] higher."
        )
        nway = comp.get("val_with_random_distractors")
        if nway is not None:
            g: Estimate = nway["gain"]
            msg += (
                f" Your {nway['n_way']}-way validation with random distractors scores "
                f"{nway['top1_random_distractors'].value:.2f} [{nway['top1_random_distractors'].low:.2f}, "
                f"{nway['top1_random_distractors'].high:.2f}] against {nway['top1_as_given'].value:.2f} as given "
                f"({g.value:+.2f} [{g.low:+.2f}, {g.high:+.2f}], {nway['n_episodes']} episodes)."
            )
        return msg + (
            " Training and validation numbers then measure different tasks: build both with the same negatives "
            f"(or mine training negatives as hard). {self._raised_text()}"
        )

    def _easier_training_negatives(self, comp: dict[str, Any]) -> str | None:
        """The message when the training's dissimilar pairs were chosen easy (a sampler that pairs only distant
        identities): the training accuracy then measures an easier task than validation's."""
        found, p = self._hardness_difference(comp), self.params
        if found is None:
            return None
        t, v, diff = found
        ht, hv = t["hardness"], v["hardness"]
        if not (ht.value <= 1 - p["min_negative_hardness"] and ht.below(0.5)):
            return None
        if not (diff.value >= p["max_hardness_difference"] and diff.above(0.0)):
            return None
        gain: Estimate = t["accuracy_with_random_negatives_gain"]
        return (
            f"Training's dissimilar pairs are chosen easy: one scores above a random pair of training items only "
            f"{ht.value:.0%} [{ht.low:.0%}, {ht.high:.0%}] of the time ({t['n_given']} against {t['n_random']} "
            f"random pairs; 50% = drawn at random), against {hv.value:.0%} [{hv.low:.0%}, {hv.high:.0%}] for "
            f"validation's ({self._basis(t, False)}). With random dissimilar pairs, training pairwise accuracy at the "
            f"decision threshold would change by {gain.value:+.2f} [{gain.low:+.2f}, {gain.high:+.2f}]: the training "
            "number measures an easier task than validation's. Draw training negatives from all other identities "
            f"(or mine them hard). {self._raised_text()}"
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
