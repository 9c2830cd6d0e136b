"""The protocol probe: both splits under both protocols, the gap decomposition, and the classic bugs of the
evaluation boundary (score direction, threshold transfer, pair composition).

Codes: GD301 (protocol mismatch / gap decomposition), GD302 (score direction), GD303 (threshold transfer),
GD304 (pair composition).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ...findings.finding import Finding, Severity
from ...metrics import best_threshold, nway_accuracy
from ...stats import (
    Estimate,
    auc_bootstrap_draws,
    estimate_from_draws,
    mean_bootstrap_draws,
    roc_auc,
    roc_curve_points,
    wilson,
)
from ..base import FigureSpec, Measurement, Param, Probe
from ..registry import register_probe

if TYPE_CHECKING:
    from ...context import AuditContext

__all__ = ["ProtocolProbe"]

PAIRWISE = "pairwise"
NWAY = "n-way"
_PROTOCOL_CHOICES = ("auto", PAIRWISE, NWAY)
_COLUMNS = ("pairwise_accuracy", "pairwise_balanced_accuracy", "roc_auc", "nway_top1")

# Figure ids of this probe (findings reference them).
FIG_GRID = "protocol_grid"
FIG_HIST = "protocol_score_hist"
FIG_ROC = "protocol_roc"


# ------------------------------------------------------------------------------------------------------
# Small statistics helpers (bootstrap draws are kept so that differences of cells get CIs)


def _nanestimate_from_draws(n: int, level: float) -> Estimate:
    return Estimate.unknown(int(n), level)


def _lift(x: float, chance: float) -> float:
    return (x - chance) / (1.0 - chance) if chance < 1.0 else float("nan")


def _liftestimate_from_draws(est: Estimate, chance: float) -> Estimate:
    return Estimate(
        _lift(est.value, chance), _lift(est.low, chance), _lift(est.high, chance), est.n, est.level
    )


def _num(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(round(float(x), 6))


def _fmt(est: Estimate) -> str:
    if not np.isfinite(est.value):
        return "n/a"
    if not (np.isfinite(est.low) and np.isfinite(est.high)):
        return f"{est.value:.2f}"
    return f"{est:.2f}"


def _negated(est: Estimate) -> Estimate:
    return Estimate(-est.value, -est.high, -est.low, est.n, est.level)


# ------------------------------------------------------------------------------------------------------
# Cells of the grid


@dataclass
class _Cell:
    """One number of the grid: estimate, bootstrap draws (for differences), chance level, units."""

    estimate: Estimate
    draws: np.ndarray | None
    chance: float
    unit: str  # "pairs" or "episodes"

    @property
    def lift(self) -> Estimate:
        return _liftestimate_from_draws(self.estimate, self.chance)

    def to_dict(self, *, user: bool) -> dict[str, Any]:
        est, lift = self.estimate, self.lift
        text = "n/a" if not np.isfinite(est.value) else f"{_fmt(est)} lift {lift.value:.2f}"
        return {
            "text": text,
            "value": _num(est.value),
            "ci_low": _num(est.low),
            "ci_high": _num(est.high),
            "n": int(est.n),
            "unit": self.unit,
            "chance": _num(self.chance),
            "lift": _num(lift.value),
            "lift_ci_low": _num(lift.low),
            "lift_ci_high": _num(lift.high),
            "user_protocol": bool(user),
        }


def _pairwise_cells(
    scores: np.ndarray,
    labels: np.ndarray,
    threshold: float,
    rng: np.random.Generator,
    n_boot: int,
    level: float,
) -> dict[str, _Cell]:
    """Accuracy, balanced accuracy (at ``threshold``, "similar when score >= threshold") and ROC-AUC.

    The threshold is held fixed, so each pair is a Bernoulli trial: accuracy resamples pairs, balanced
    accuracy and AUC resample similar and dissimilar pairs separately (stratified; the AUC with
    :func:`_auc_draws`, the resampling of :func:`gapdiag.stats.bootstrap_auc` without a sort per draw).
    """
    y = np.asarray(labels).astype(bool)
    n = y.size
    n_pos = int(y.sum())
    n_neg = n - n_pos
    accept = np.asarray(scores) >= threshold
    correct = (accept == y).astype(float)
    ratio = n_pos / n
    acc_draws = mean_bootstrap_draws(correct, rng, n_boot)
    acc = _Cell(
        estimate_from_draws(float(correct.mean()), acc_draws, n, level),
        acc_draws,
        max(ratio, 1.0 - ratio),
        "pairs",
    )
    if n_pos == 0 or n_neg == 0:
        bal = _Cell(_nanestimate_from_draws(n, level), None, 0.5, "pairs")
        auc = _Cell(_nanestimate_from_draws(n, level), None, 0.5, "pairs")
        return {"pairwise_accuracy": acc, "pairwise_balanced_accuracy": bal, "roc_auc": auc}
    tpr, tnr = float(accept[y].mean()), float((~accept[~y]).mean())
    bal_draws = 0.5 * (rng.binomial(n_pos, tpr, n_boot) / n_pos + rng.binomial(n_neg, tnr, n_boot) / n_neg)
    bal = _Cell(estimate_from_draws(0.5 * (tpr + tnr), bal_draws, n, level), bal_draws, 0.5, "pairs")
    auc_draws = auc_bootstrap_draws(scores, y, rng, n_boot)
    auc = _Cell(estimate_from_draws(roc_auc(scores, y), auc_draws, n, level), auc_draws, 0.5, "pairs")
    return {"pairwise_accuracy": acc, "pairwise_balanced_accuracy": bal, "roc_auc": auc}


def _nway_cell(credit: np.ndarray, n_way: int, rng: np.random.Generator, n_boot: int, level: float) -> _Cell:
    draws = mean_bootstrap_draws(credit, rng, n_boot)
    return _Cell(
        estimate_from_draws(float(credit.mean()), draws, credit.size, level), draws, 1.0 / n_way, "episodes"
    )


def _difference(a: _Cell, b: _Cell, level: float) -> Estimate:
    """a - b with a CI from the difference of independent bootstrap draws of the two cells."""
    if a.draws is None or b.draws is None:
        return _nanestimate_from_draws(0, level)
    return estimate_from_draws(
        a.estimate.value - b.estimate.value, a.draws - b.draws, min(a.estimate.n, b.estimate.n), level
    )


def _subsample(n: int, cap: int | None, rng: np.random.Generator) -> np.ndarray | None:
    if cap is None or n <= int(cap):
        return None
    return np.sort(rng.choice(n, size=int(cap), replace=False))


# ------------------------------------------------------------------------------------------------------
# The probe


@register_probe
class ProtocolProbe(Probe):
    """Both splits under both protocols, the decomposition of the gap, and the boundary bugs.

    What it measures
    ----------------
    **The grid (GD301).** Each split is evaluated under pairwise verification and n-way identification,
    whatever the user gave: train episodes are built from labels or from the graph of positive pairs, val
    pairs from val episodes (anchor-correct similar, anchor-other dissimilar). Columns:

    - pairwise accuracy at the decision threshold (``ctx.decision_threshold()``: the user's ``threshold``
      option, else the one that maximizes training accuracy); chance = majority-class rate
      ``max(r, 1 - r)`` of the split's positive ratio ``r``;
    - pairwise balanced accuracy ``(TPR + TNR) / 2`` at the same threshold; chance 0.5;
    - ROC-AUC of the oriented score (threshold-free); chance 0.5;
    - n-way top-1: the candidate the user's evaluation picks (argmax of the oriented score, i.e. ``min()``
      of a distance) is the true match; ties share credit; chance ``1 / n``.

    Every cell has a 95% percentile bootstrap CI (pairs, or episodes, resampled; the threshold held fixed)
    and the lift over chance ``(x - chance) / (1 - chance)`` (0 = chance, 1 = perfect, < 0 below chance).

    **The decomposition.** With ``A`` = train under the train protocol (the user's units), ``B`` = train
    under the val protocol, ``C`` = val under the val protocol: observed gap ``A - C`` = protocol part
    ``A - B`` + generalization part ``B - C`` (the design's decomposition). Refinement: ``B`` is measured on
    other units of the training items than ``A`` (generated episodes, not the given pairs), so ``A - B``
    would also absorb whatever is specific to the given training pairs (memorized pairs, a shortcut shared
    within positive pairs). So ``A'`` = train under the train protocol on *fresh* units of the same items
    (pairs with the same count and positive ratio, or episodes with the same count and n, drawn from the
    training identities) is measured too; when the pair-specific part ``A - A'`` is material (``>=
    min_protocol_part`` with a CI excluding 0) it is separated: observed = ``(A - A')`` + ``(A' - B)`` +
    ``(B - C)``; otherwise it is reported but folded in, and the two-part decomposition stands. With the same
    protocol on both splits the protocol part is 0.

    Each cell is bootstrapped independently over its own units (train pairs, train episodes, val episodes or
    val pairs) and the parts' CIs are percentile intervals of the differences of the draws. Cells of the same
    split share items, so their errors are positively correlated in truth; independent resampling ignores
    that and gives intervals that are, if anything, slightly too wide (conservative). The user's protocol per
    split is the one given: pairs for train and episodes for val when a split has both; when both splits
    carry both (e.g. ``Items`` passed for both), they are compared under n-way identification (the protocols
    match). The ``train_protocol`` / ``val_protocol`` options override this.

    GD301 is ``warn`` when the protocols differ, ``|protocol part| >= min_protocol_part``, its share of the
    explanation ``|protocol| / (|pair-specific| + |protocol| + |generalization|) >= min_protocol_share`` and
    its CI excludes 0; ``info`` when the protocols differ but the protocol part is smaller. Nothing when the
    protocols match.

    **GD302 score direction.** ROC-AUC (in [0, 1], 0.5 = no signal) of the oriented score on the training
    pairs, with a stratified bootstrap CI. ``fail`` when the whole CI is below ``0.5 - direction_margin``:
    read the way the user declared (``kind``), the score ranks dissimilar pairs above similar ones.

    **GD303 threshold transfer.** On val pairs, balanced accuracy at the decision threshold against
    balanced accuracy at the best val threshold. The best val threshold is cross-fitted (2 stratified
    folds: tuned on one half, applied to the other) so it carries no in-sample optimism; the loss is the
    mean paired difference of per-pair correctness (balanced over the two classes), with a stratified
    bootstrap CI. Balanced accuracy makes the check blind to the positive ratio, which is GD304's business.
    ``warn`` when the loss >= ``min_threshold_loss`` with its CI above 0 and the val protocol is pairwise
    (the user's val number depends on the threshold); ``info`` when only the derived val pairs show it.

    **GD304 pair composition.** Per split: positive ratio (Wilson CI), negative difficulty (share of
    dissimilar pairs whose score exceeds the median similar-pair score, Wilson CI; 0 = easy, 0.5 = as
    similar as the typical positive), accuracy and balanced accuracy, and val accuracy re-weighted to the
    training positive ratio. ``warn`` when both splits' pairs are the user's own (not derived) and the
    positive ratios differ by >= ``max_positive_ratio_difference`` with the CI of the difference excluding 0.
    Negative difficulty is reported, not judged: it also moves with the model's quality on the split, so a
    difference alone does not prove a composition difference.
    """

    name = "protocol"
    family = "protocol"
    codes = ("GD301", "GD302", "GD303", "GD304")
    requires = frozenset({"train_pairs_any", "val_pairs_any"})
    defaults = {
        # "auto" (pairs for train, episodes for val, n-way when both splits have both), "pairwise" or "n-way"
        "train_protocol": Param("auto", choices=_PROTOCOL_CHOICES),
        "val_protocol": Param("auto", choices=_PROTOCOL_CHOICES),
        # GD301: the protocol part must be at least this large in absolute accuracy ...
        "min_protocol_part": 0.05,
        # ... and at least this share of |protocol| + |generalization| (a quarter of the explanation)
        "min_protocol_share": 0.25,
        # GD302: fail when the AUC's whole CI lies below 0.5 - margin (clearly inverted, not just weak)
        "direction_margin": 0.1,
        # GD303: balanced accuracy lost on val by the transferred threshold (5 points is a visible loss)
        "min_threshold_loss": 0.05,
        # GD304: positive ratios this far apart make plain accuracies incomparable (0.5 vs 0.3 and beyond)
        "max_positive_ratio_difference": 0.2,
        # figures: points per histogram series (subsampled, seeded)
        "max_plot_points": 2000,
    }
    description = (
        "Protocol grid and gap decomposition, score direction, threshold transfer, pair composition."
    )

    # -- measure ----------------------------------------------------------------------------------------
    def _measure(self, ctx: AuditContext) -> Measurement:
        n_boot = int(ctx.option("n_boot"))
        level = float(ctx.option("ci_level"))
        cap = ctx.option("max_pairs_per_split")
        threshold, threshold_origin = ctx.decision_threshold()
        scorer = ctx.scorer
        notes: list[str] = []

        pair_data: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        cells: dict[str, dict[str, _Cell | None]] = {}
        episodes = {}
        for split in ("train", "val"):
            p = ctx.pairs(split)
            s, y = ctx.pair_scores(split), p.label.astype(bool)
            keep = _subsample(y.size, cap, ctx.rng(f"protocol.cap.{split}"))
            if keep is not None:
                notes.append(f"{split}: {y.size} pairs, a seeded sample of {keep.size} is evaluated.")
                s, y = s[keep], y[keep]
            pair_data[split] = (s, y)
            row: dict[str, _Cell | None] = dict(
                _pairwise_cells(s, y, threshold, ctx.rng(f"protocol.pairwise.{split}"), n_boot, level)
            )
            e = ctx.episodes(split)
            episodes[split] = e
            if e is None:
                row["nway_top1"] = None
                notes.append(f"{split}: no episodes could be built ({ctx.episodes_origin(split)}).")
            else:
                credit = nway_accuracy(ctx.episode_scores(split), e.correct)
                row["nway_top1"] = _nway_cell(
                    credit, e.n_way, ctx.rng(f"protocol.nway.{split}"), n_boot, level
                )
            cells[split] = row

        protocols = self._protocols(ctx)
        n_way = next((episodes[s].n_way for s in ("val", "train") if episodes[s] is not None), ctx.n_way())
        n_ways = {s: (episodes[s].n_way if episodes[s] is not None else None) for s in ("train", "val")}
        if n_ways["train"] is not None and n_ways["val"] is not None and n_ways["train"] != n_ways["val"]:
            notes.append(
                f"train episodes are {n_ways['train']}-way and val episodes {n_ways['val']}-way "
                f"(train has fewer identities); the n-way column compares different chance levels."
            )

        def label_of(protocol: str, split: str | None = None) -> str:
            if protocol == PAIRWISE:
                return PAIRWISE
            n = n_ways.get(split) if split else None
            return f"{n or n_way}-way"

        def describe(protocol: str, split: str) -> str:
            return (
                "pairwise verification"
                if protocol == PAIRWISE
                else f"{label_of(protocol, split)} identification"
            )

        key_of = {PAIRWISE: "pairwise_accuracy", NWAY: "nway_top1"}
        a = cells["train"][key_of[protocols["train"]]]
        b = cells["train"][key_of[protocols["val"]]]
        c = cells["val"][key_of[protocols["val"]]]
        fresh, fresh_what = self._fresh_train_cell(ctx, protocols["train"], threshold, n_boot, level)
        same = protocols["train"] == protocols["val"]
        nan = _nanestimate_from_draws(0, level)
        observed = _difference(a, c, level) if a is not None and c is not None else nan
        # a2: train under the train protocol on fresh units (same items, new pairings). The pair-specific part
        # a - a2 is separated only when it is material; otherwise a2 = a and the decomposition is the
        # design's two-part one (the small pair-specific part is then reported but folded in).
        pair_part = _difference(a, fresh, level) if fresh is not None and a is not None else None
        separated = (
            pair_part is not None
            and abs(pair_part.value) >= float(self.params["min_protocol_part"])
            and pair_part.excludes(0.0)
        )
        a2 = fresh if separated else a
        if a is None or c is None:
            protocol_part = generalization = nan
        elif same:
            protocol_part = Estimate(0.0, 0.0, 0.0, observed.n, level)
            generalization = _difference(a2, c, level)
        elif b is not None:
            protocol_part = _difference(a2, b, level)
            generalization = _difference(b, c, level)
        else:
            protocol_part = generalization = nan
        parts = [protocol_part.value, generalization.value] + ([pair_part.value] if separated else [])
        denom = float(np.sum(np.abs(parts)))
        share = abs(protocol_part.value) / denom if np.isfinite(denom) and denom > 0 else float("nan")

        # GD302: direction of the score on training pairs
        s_t, y_t = pair_data["train"]
        direction = cells["train"]["roc_auc"].estimate
        direction_reversed = Estimate(
            1 - direction.value, 1 - direction.high, 1 - direction.low, direction.n, level
        )

        # GD303: threshold transfer (balanced accuracy, cross-fitted best val threshold)
        s_v, y_v = pair_data["val"]
        transfer = self._threshold_transfer(ctx, s_v, y_v, threshold, n_boot, level)
        transfer["threshold_origin"] = threshold_origin

        # GD304: composition per split
        composition = {
            split: self._composition(cells[split], *pair_data[split], threshold, level=level)
            for split in ("train", "val")
        }
        composition["pairs_origin"] = {s: ctx.pairs_origin(s) for s in ("train", "val")}
        r_t, r_v = composition["train"]["positive_ratio"], composition["val"]["positive_ratio"]
        rng = ctx.rng("protocol.composition")
        n_t, n_v = y_t.size, y_v.size
        ratio_draws = rng.binomial(n_v, r_v.value, n_boot) / n_v - rng.binomial(n_t, r_t.value, n_boot) / n_t
        composition["positive_ratio_difference"] = estimate_from_draws(
            r_v.value - r_t.value, ratio_draws, min(n_t, n_v), level
        )
        tpr_v, tnr_v = composition["val"]["tpr"], composition["val"]["tnr"]
        composition["val_accuracy_at_train_ratio"] = float(r_t.value * tpr_v + (1 - r_t.value) * tnr_v)

        # the grid and the gap dict the report renders at the top
        columns = [
            "pairwise accuracy",
            "pairwise balanced accuracy",
            "ROC-AUC",
            f"{n_way}-way top-1"
            if n_ways["train"] in (None, n_ways["val"]) or n_ways["val"] is None
            else f"n-way top-1 (train {n_ways['train']}, val {n_ways['val']})",
        ]
        user_key = {s: key_of[protocols[s]] for s in ("train", "val")}
        rows = []
        for split in ("train", "val"):
            row_cells = []
            for key in _COLUMNS:
                cell = cells[split][key]
                if cell is None:
                    row_cells.append(
                        {
                            "text": "n/a",
                            "value": None,
                            "ci_low": None,
                            "ci_high": None,
                            "chance": None,
                            "lift": None,
                        }
                    )
                else:
                    row_cells.append(cell.to_dict(user=key == user_key[split]))
            rows.append({"split": split, "cells": row_cells})
        raw_threshold = float(scorer.to_raw(threshold))
        legend = (
            f"brackets: {level:.0%} bootstrap CI; lift = (acc - chance)/(1 - chance); chance: majority-class rate "
            f"for pairwise accuracy, 0.5 for balanced accuracy and ROC-AUC, 1/n for n-way; threshold: "
            f"{threshold_origin} ({raw_threshold:.4g} on your score, {scorer.rule}); train episodes: "
            f"{ctx.episodes_origin('train')}; val pairs: {ctx.pairs_origin('val')}."
        )
        symptom = (
            f"Training {describe(protocols['train'], 'train')} accuracy {_fmt(a.estimate) if a else 'n/a'}"
            f" ({a.estimate.n if a else 0} {a.unit if a else 'units'}, chance {a.chance if a else float('nan'):.2f}) vs "
            f"validation {describe(protocols['val'], 'val')} accuracy {_fmt(c.estimate) if c else 'n/a'}"
            f" ({c.estimate.n if c else 0} {c.unit if c else 'units'}, chance {c.chance if c else float('nan'):.2f})."
        )
        unit_word = "pairs" if protocols["train"] == PAIRWISE else "episodes"
        sentence = _gap_sentence(
            observed,
            protocol_part,
            generalization,
            pair_part if separated else None,
            describe(protocols["train"], "train"),
            describe(protocols["val"], "val"),
            same,
            fresh_value=None if fresh is None else fresh.estimate,
            unit_word=unit_word,
        )
        caveat = ""
        if NWAY in protocols.values() and None not in n_ways.values() and n_ways["train"] != n_ways["val"]:
            caveat = (
                f" Caveat: the training split has fewer identities, so its n-way cells are {n_ways['train']}-way "
                f"against {n_ways['val']}-way on val (chance {1 / n_ways['train']:.2f} vs {1 / n_ways['val']:.2f})."
            )
            sentence += caveat
        gap = {
            "symptom": symptom,
            "sentence": sentence,
            "train_protocol": label_of(protocols["train"], "train"),
            "val_protocol": label_of(protocols["val"], "val"),
            "observed_gap": observed.to_dict(),
            "protocol_part": protocol_part.to_dict(),
            "generalization_part": generalization.to_dict(),
            "pair_specific_part": None if pair_part is None else pair_part.to_dict(),
            "pair_specific_part_separated": bool(separated),
            "protocol_share": _num(share),
            "grid": {"columns": columns, "rows": rows, "legend": legend},
        }

        metrics: dict[str, Any] = {
            "gap": gap,
            "protocols": {
                "train": gap["train_protocol"],
                "val": gap["val_protocol"],
                "same": same,
                "caveat": caveat.strip(),
                "train_description": describe(protocols["train"], "train"),
                "val_description": describe(protocols["val"], "val"),
            },
            "decomposition": {
                "observed_gap": observed,
                "protocol_part": protocol_part,
                "generalization_part": generalization,
                "pair_specific_part": pair_part,
                "pair_specific_part_separated": bool(separated),
                "protocol_share": _num(share),
                "train_under_train_protocol": a.estimate if a else None,
                "train_under_train_protocol_fresh": None if fresh is None else fresh.estimate,
                "fresh_units": fresh_what,
                "train_under_val_protocol": b.estimate if b else None,
                "val_under_val_protocol": c.estimate if c else None,
            },
            "decision_threshold": {"oriented": threshold, "raw": raw_threshold, "origin": threshold_origin},
            "score_direction": {
                "kind": scorer.kind,
                "rule": scorer.rule,
                "train_auc": direction,
                "train_auc_reversed": direction_reversed,
                "n_pairs": int(y_t.size),
            },
            "threshold_transfer": transfer,
            "composition": composition,
            "origins": {
                "train_pairs": ctx.pairs_origin("train"),
                "val_pairs": ctx.pairs_origin("val"),
                "train_episodes": ctx.episodes_origin("train"),
                "val_episodes": ctx.episodes_origin("val"),
            },
        }
        for split in ("train", "val"):
            metrics[split] = {
                key: (None if cells[split][key] is None else cells[split][key].estimate) for key in _COLUMNS
            }
            metrics[split]["chance"] = {
                key: (None if cells[split][key] is None else cells[split][key].chance) for key in _COLUMNS
            }
            metrics[split]["n_way"] = n_ways[split]

        figures = self._figures(ctx, cells, columns, user_key, pair_data, threshold, transfer, level)
        return Measurement(
            metrics=metrics,
            evidence={"decision_threshold_origin": threshold_origin},
            figures=figures,
            notes=notes,
        )

    @staticmethod
    def _given(split) -> tuple[bool, bool]:
        return split.pairs is not None, split.episodes is not None

    def _protocols(self, ctx: AuditContext) -> dict[str, str]:
        t_pairs, t_eps = self._given(ctx.train)
        v_pairs, v_eps = self._given(ctx.val)
        if t_pairs and t_eps and v_pairs and v_eps:
            auto = {"train": NWAY, "val": NWAY}
        else:
            auto = {
                "train": PAIRWISE if t_pairs or not t_eps else NWAY,
                "val": NWAY if v_eps or not v_pairs else PAIRWISE,
            }
        out = {}
        for split in ("train", "val"):
            choice = self.params[f"{split}_protocol"]
            out[split] = auto[split] if choice == "auto" else choice
            if out[split] == NWAY and ctx.episodes(split) is None:
                out[split] = PAIRWISE  # no episodes can be built (no labels, no positive pairs)
        return out

    @staticmethod
    def _fresh_train_cell(
        ctx: AuditContext, protocol: str, threshold: float, n_boot: int, level: float
    ) -> tuple[_Cell | None, str]:
        """Train under its own protocol on *fresh* units: new pairs (same count and positive ratio) or new
        episodes (same count and n) drawn from the training identities, scored with the same threshold.

        Only when the user gave the units (generated ones are fresh already). ``(None, reason)`` otherwise.
        """
        from ...data import Items, make_episodes, make_pairs
        from ...errors import InputError

        ids = ctx.identities("train")
        given = ctx.train.pairs if protocol == PAIRWISE else ctx.train.episodes
        if given is None:
            return None, "the training units were generated, not given"
        if ids is None:
            return None, "no training identities"
        seed = int(ctx.rng("protocol.fresh").integers(0, 2**31 - 1))
        rng = ctx.rng("protocol.fresh.boot")
        try:
            if protocol == PAIRWISE:
                holder = Items(None, labels=ids, n=len(ids))
                fresh = make_pairs(holder, n_pairs=len(given), positive_ratio=given.positive_ratio, seed=seed)
                scores = ctx.scorer.orient(ctx.raw_scores("train", fresh.left, fresh.right))
                correct = ((scores >= threshold) == fresh.label.astype(bool)).astype(float)
                ratio = float(fresh.label.mean())
                draws = mean_bootstrap_draws(correct, rng, n_boot)
                est = estimate_from_draws(float(correct.mean()), draws, correct.size, level)
                cell = _Cell(est, draws, max(ratio, 1.0 - ratio), "pairs")
                return cell, f"{len(fresh)} fresh pairs of the same training items"
            holder = Items(None, labels=ids, n=len(ids))
            n_way = min(given.n_way, int(np.unique(ids).size))
            fresh_e = make_episodes(holder, n_way=n_way, n_episodes=len(given), seed=seed, labels=ids)
            left = np.repeat(fresh_e.anchor, fresh_e.n_way)
            raw = ctx.raw_scores("train", left, fresh_e.candidates.reshape(-1))
            credit = nway_accuracy(ctx.scorer.orient(raw).reshape(len(fresh_e), n_way), fresh_e.correct)
            return _nway_cell(credit, n_way, rng, n_boot, level), f"{len(fresh_e)} fresh training episodes"
        except InputError as exc:
            return None, f"fresh units could not be drawn ({exc})"

    @staticmethod
    def _composition(
        row: dict[str, _Cell | None], s: np.ndarray, y: np.ndarray, threshold: float, *, level: float
    ) -> dict[str, Any]:
        n, n_pos = y.size, int(y.sum())
        n_neg = n - n_pos
        accept = s >= threshold
        out: dict[str, Any] = {
            "n_pairs": int(n),
            "positive_ratio": wilson(n_pos, n, level),
            "accuracy": row["pairwise_accuracy"].estimate,
            "balanced_accuracy": row["pairwise_balanced_accuracy"].estimate,
            "tpr": float(accept[y].mean()) if n_pos else float("nan"),
            "tnr": float((~accept[~y]).mean()) if n_neg else float("nan"),
        }
        if n_pos and n_neg:
            med = float(np.median(s[y]))
            out["negative_difficulty"] = wilson(int((s[~y] > med).sum()), n_neg, level)
        else:
            out["negative_difficulty"] = _nanestimate_from_draws(n_neg, level)
        return out

    @staticmethod
    def _threshold_transfer(
        ctx: AuditContext, s: np.ndarray, y: np.ndarray, threshold: float, n_boot: int, level: float
    ) -> dict[str, Any]:
        n_pos, n_neg = int(y.sum()), int((~y).sum())
        out: dict[str, Any] = {"n_pairs": int(y.size)}
        if n_pos < 2 or n_neg < 2:
            out["available"] = False
            return out
        rng = ctx.rng("protocol.threshold_transfer")
        fold = np.empty(y.size, dtype=np.int64)
        for cls in (True, False):  # stratified halves
            idx = np.flatnonzero(y == cls)
            fold[idx] = rng.permutation(idx.size) % 2
        oracle = np.empty(y.size, dtype=bool)
        fold_thresholds = []
        for f in (0, 1):
            t_f, _ = best_threshold(s[fold != f], y[fold != f], balanced=True)
            fold_thresholds.append(t_f)
            oracle[fold == f] = (s[fold == f] >= t_f) == y[fold == f]
        given = (s >= threshold) == y
        d = oracle.astype(float) - given.astype(float)
        loss = 0.5 * (d[y].mean() + d[~y].mean())
        loss_draws = 0.5 * (
            mean_bootstrap_draws(d[y], rng, n_boot) + mean_bootstrap_draws(d[~y], rng, n_boot)
        )
        bal_given = 0.5 * (given[y].mean() + given[~y].mean())
        bal_given_draws = 0.5 * (
            mean_bootstrap_draws(given[y], rng, n_boot) + mean_bootstrap_draws(given[~y], rng, n_boot)
        )
        bal_oracle = 0.5 * (oracle[y].mean() + oracle[~y].mean())
        bal_oracle_draws = 0.5 * (
            mean_bootstrap_draws(oracle[y], rng, n_boot) + mean_bootstrap_draws(oracle[~y], rng, n_boot)
        )
        best_t, best_bal = best_threshold(s, y, balanced=True)
        out.update(
            {
                "available": True,
                "val_balanced_accuracy_at_threshold": estimate_from_draws(
                    bal_given, bal_given_draws, y.size, level
                ),
                "val_balanced_accuracy_at_best_val_threshold": estimate_from_draws(
                    bal_oracle, bal_oracle_draws, y.size, level
                ),
                "loss": estimate_from_draws(loss, loss_draws, y.size, level),
                "threshold_raw": float(ctx.scorer.to_raw(threshold)),
                "best_val_threshold_raw": float(ctx.scorer.to_raw(best_t)),
                "best_val_threshold_in_sample_balanced_accuracy": float(best_bal),
                "val_auc": float(roc_auc(s, y)),
                "cross_fit_thresholds_raw": [float(ctx.scorer.to_raw(t)) for t in fold_thresholds],
                "best_val_threshold_oriented": float(best_t),
            }
        )
        return out

    def _figures(
        self,
        ctx: AuditContext,
        cells: dict[str, dict[str, _Cell | None]],
        columns: list[str],
        user_key: dict[str, str],
        pair_data: dict[str, tuple[np.ndarray, np.ndarray]],
        threshold: float,
        transfer: dict[str, Any],
        level: float,
    ) -> list[FigureSpec]:
        values, notes = [], []
        for split in ("train", "val"):
            vrow, nrow = [], []
            for key in _COLUMNS:
                cell = cells[split][key]
                if cell is None or not np.isfinite(cell.estimate.value):
                    vrow.append(float("nan"))
                    nrow.append("n/a")
                else:
                    vrow.append(float(cell.lift.value))
                    mine = " (yours)" if key == user_key[split] else ""
                    nrow.append(f"{_fmt(cell.estimate)}\nchance {cell.chance:.2f}{mine}")
            values.append(vrow)
            notes.append(nrow)
        grid = FigureSpec(
            FIG_GRID,
            "heatmap",
            "Both splits under both protocols",
            {
                "rows": ["train", "val"],
                "cols": [
                    "pairwise acc.",
                    "balanced acc.",
                    "ROC-AUC",
                    columns[3].replace(" top-1", "\ntop-1"),
                ],
                "values": values,
                "annotations": notes,
                "vmin": -1.0,
                "vmax": 1.0,
                "cmap": "RdYlGn",
                "cbar": "lift over chance (0 = chance, 1 = perfect)",
            },
            caption=f"Each cell: value [{level:.0%} CI] and its chance level; colour = lift over chance.",
        )
        scorer = ctx.scorer
        cap = int(self.params["max_plot_points"])
        panels, roc_series = [], {}
        vlines = {
            ("your threshold" if "user" in ctx.decision_threshold()[1] else "train-tuned threshold"): float(
                scorer.to_raw(threshold)
            )
        }
        if transfer.get("available"):
            vlines["best val threshold"] = float(scorer.to_raw(transfer["best_val_threshold_oriented"]))
        for split in ("train", "val"):
            s, y = pair_data[split]
            rng = ctx.rng(f"protocol.figure.{split}")
            series = {}
            for name, mask in (("similar pairs", y), ("dissimilar pairs", ~y)):
                vals = np.asarray(scorer.to_raw(s[mask]), dtype=float)
                if vals.size > cap:
                    vals = vals[np.sort(rng.choice(vals.size, cap, replace=False))]
                series[name] = np.round(vals, 5).tolist()
            panels.append({"title": f"{split} ({y.size} pairs)", "series": series, "vlines": dict(vlines)})
            if y.any() and (~y).any():
                auc = cells[split]["roc_auc"].estimate
                pts = roc_curve_points(s, y)
                roc_series[f"{split} (AUC {_fmt(auc)})"] = {"x": pts["fpr"], "y": pts["tpr"]}
        hist = FigureSpec(
            FIG_HIST,
            "hist",
            "Scores of similar and dissimilar pairs",
            {"panels": panels, "xlabel": f"your score ({scorer.rule})"},
            caption="Vertical lines: the decision threshold used for the grid and the best threshold on val pairs.",
        )
        figures = [grid, hist]
        if roc_series:
            figures.append(
                FigureSpec(
                    FIG_ROC,
                    "lines",
                    "ROC of the score per split",
                    {
                        "series": roc_series,
                        "xlabel": "false match rate (dissimilar pairs accepted)",
                        "ylabel": "true match rate (similar pairs accepted)",
                        "diagonal": True,
                    },
                    caption="The score as your evaluation reads it; the diagonal is chance.",
                )
            )
        return figures

    # -- judge ------------------------------------------------------------------------------------------
    def _judge(self, m: Measurement) -> list[Finding]:
        p = self.params
        mt = m.metrics
        findings: list[Finding] = []
        direction = mt["score_direction"]
        auc = direction["train_auc"]
        inverted = np.isfinite(auc.high) and auc.below(0.5 - p["direction_margin"])
        if inverted:
            findings.append(self._gd302(direction))
        gd301 = self._gd301(mt, inverted)
        if gd301 is not None:
            findings.append(gd301)
        gd303 = self._gd303(mt)
        if gd303 is not None:
            findings.append(gd303)
        gd304 = self._gd304(mt)
        if gd304 is not None:
            findings.append(gd304)
        return findings

    def _gd302(self, direction: dict[str, Any]) -> Finding:
        auc, rev = direction["train_auc"], direction["train_auc_reversed"]
        if direction["kind"] == "distance":
            read = "read as a distance (lower = more similar)"
            cause = (
                "distance() probably returns a similarity (e.g. cosine): pick the match with max() or declare "
                "kind='similarity'."
            )
        else:
            read = "read as a similarity (higher = more similar)"
            cause = "distance() probably returns a distance: pick the match with min() or declare kind='distance'."
        message = (
            f"{read[0].upper()}{read[1:]}, the score ranks dissimilar training pairs above similar ones: AUC "
            f"{_fmt(auc)} on {direction['n_pairs']} training pairs (0.5 = no signal); read the other way it is "
            f"{_fmt(rev)}. {cause} (fail: the whole CI is below {0.5 - self.params['direction_margin']:.2f}.)"
        )
        return self.finding(
            "GD302",
            Severity.FAIL,
            message,
            evidence={
                "train_auc": auc.to_dict(),
                "train_auc_reversed": rev.to_dict(),
                "kind": direction["kind"],
            },
            figures=[FIG_HIST, FIG_ROC],
        )

    def _gd301(self, mt: dict[str, Any], inverted: bool) -> Finding | None:
        if mt["protocols"]["same"]:
            return None
        p = self.params
        gap = mt["gap"]
        dec = mt["decomposition"]
        obs, prot, gen = dec["observed_gap"], dec["protocol_part"], dec["generalization_part"]
        share = dec["protocol_share"]
        t_proto, v_proto = gap["train_protocol"], gap["val_protocol"]
        t_desc, v_desc = mt["protocols"]["train_description"], mt["protocols"]["val_description"]
        evidence = {
            "train_protocol": t_proto,
            "val_protocol": v_proto,
            "observed_gap": obs.to_dict(),
            "protocol_part": prot.to_dict(),
            "generalization_part": gen.to_dict(),
            "protocol_share": share,
            "pair_specific_part": None
            if dec["pair_specific_part"] is None
            else dec["pair_specific_part"].to_dict(),
            "train_under_val_protocol": None
            if dec["train_under_val_protocol"] is None
            else dec["train_under_val_protocol"].to_dict(),
            "fresh_units": dec["fresh_units"],
        }
        direction_note = (
            " The grid is measured as your evaluation reads the score, which GD302 shows is inverted: fix the "
            "direction first and re-run; the decomposition will change."
            if inverted
            else ""
        )
        if not np.isfinite(prot.value):
            return self.finding(
                "GD301",
                Severity.INFO,
                f"Training is measured by {t_desc} and validation by {v_desc}, but the gap cannot be split: "
                f"training could not be evaluated under the validation protocol.{direction_note}",
                evidence=evidence,
                figures=[FIG_GRID],
            )
        b = dec["train_under_val_protocol"]
        pair_part, fresh = dec["pair_specific_part"], dec["train_under_train_protocol_fresh"]
        pair_text = ""
        if dec["pair_specific_part_separated"]:
            pair_text = (
                f"{_fmt(pair_part)} is specific to the given training units ({dec['fresh_units']} score "
                f"{_fmt(fresh)} under {t_desc}), "
            )
        body = (
            f"Training is measured by {t_desc} ({_fmt(dec['train_under_train_protocol'])}) and validation by "
            f"{v_desc} ({_fmt(dec['val_under_val_protocol'])}); the two numbers live on different scales with "
            f"different chance levels. Under {v_desc}, training scores {_fmt(b)}. Of the observed gap "
            f"{_fmt(obs)}, {pair_text}{_fmt(prot)} ({share:.0%} of the explanation) comes from the change of "
            f"protocol and {_fmt(gen)} is generalization."
        )
        if mt["protocols"]["caveat"]:
            body += " " + mt["protocols"]["caveat"]
        material = (
            abs(prot.value) >= p["min_protocol_part"]
            and share is not None
            and share >= p["min_protocol_share"]
            and prot.excludes(0.0)
        )
        rule = (
            f" (raised: |protocol part| >= {p['min_protocol_part']:.2f}, share >= {p['min_protocol_share']:.0%}, "
            f"CI excludes 0.)"
        )
        if material:
            return self.finding(
                "GD301", Severity.WARN, body + rule + direction_note, evidence=evidence, figures=[FIG_GRID]
            )
        return self.finding(
            "GD301",
            Severity.INFO,
            body
            + " The protocol part is small; judge generalization by the same-protocol gap."
            + direction_note,
            evidence=evidence,
            figures=[FIG_GRID],
        )

    def _gd303(self, mt: dict[str, Any]) -> Finding | None:
        tr = mt["threshold_transfer"]
        if not tr.get("available") or "validation" in tr["threshold_origin"]:
            return None
        loss = tr["loss"]
        if not (loss.value >= self.params["min_threshold_loss"] and loss.above(0.0)):
            return None
        val_pairwise = mt["protocols"]["val"] == PAIRWISE
        comp = mt["composition"]
        ratio_note = ""
        r_t, r_v = comp["train"]["positive_ratio"].value, comp["val"]["positive_ratio"].value
        if (
            abs(r_t - r_v) >= self.params["max_positive_ratio_difference"]
            and "accuracy" in tr["threshold_origin"]
        ):
            ratio_note = (
                f" Part of it may be composition: the threshold maximizes plain accuracy on training pairs with "
                f"{r_t:.0%} positives, validation pairs have {r_v:.0%}."
            )
        message = (
            f"At the decision threshold ({tr['threshold_origin']}: {tr['threshold_raw']:.4g} on your score), "
            f"validation balanced accuracy is {_fmt(tr['val_balanced_accuracy_at_threshold'])} against "
            f"{_fmt(tr['val_balanced_accuracy_at_best_val_threshold'])} at the best validation threshold "
            f"(about {tr['best_val_threshold_raw']:.4g}, cross-fitted): the threshold costs {_fmt(loss)} on "
            f"{tr['n_pairs']} validation pairs (threshold-free val ROC-AUC {tr['val_auc']:.2f}): the score scale "
            f"drifts between splits, so a threshold fixed on training misplaces validation pairs.{ratio_note} "
            f"(raised: loss >= "
            f"{self.params['min_threshold_loss']:.2f}, CI above 0.)"
        )
        if not val_pairwise:
            message += (
                " Your validation number is n-way, which needs no threshold; this matters if you deploy "
                "verification at this threshold."
            )
        return self.finding(
            "GD303",
            Severity.WARN if val_pairwise else Severity.INFO,
            message,
            evidence={
                k: (v.to_dict() if isinstance(v, Estimate) else v)
                for k, v in tr.items()
                if not k.startswith("_")
            },
            figures=[FIG_HIST],
        )

    def _gd304(self, mt: dict[str, Any]) -> Finding | None:
        comp = mt["composition"]
        if any(o != "given" for o in comp["pairs_origin"].values()):
            return None
        diff = comp["positive_ratio_difference"]
        if not (abs(diff.value) >= self.params["max_positive_ratio_difference"] and diff.excludes(0.0)):
            return None
        t, v = comp["train"], comp["val"]
        message = (
            f"Positive pairs are {t['positive_ratio'].value:.0%} of {t['n_pairs']} training pairs but "
            f"{v['positive_ratio'].value:.0%} of {v['n_pairs']} validation pairs (difference {_fmt(diff)}), so "
            f"plain accuracies are not comparable: an always-'different' answer scores "
            f"{1 - t['positive_ratio'].value:.2f} on train and {1 - v['positive_ratio'].value:.2f} on val. "
            f"Accuracy {_fmt(t['accuracy'])} (train) vs {_fmt(v['accuracy'])} (val); balanced accuracy "
            f"{_fmt(t['balanced_accuracy'])} vs {_fmt(v['balanced_accuracy'])}; at the training positive ratio, "
            f"val accuracy would be {comp['val_accuracy_at_train_ratio']:.2f}. Negative difficulty (share of "
            f"dissimilar pairs scoring above the median similar pair): {_fmt(t['negative_difficulty'])} vs "
            f"{_fmt(v['negative_difficulty'])}. (raised: ratios differ by >= "
            f"{self.params['max_positive_ratio_difference']:.2f}, CI excludes 0.)"
        )
        evidence = {
            split: {k: (x.to_dict() if isinstance(x, Estimate) else x) for k, x in comp[split].items()}
            for split in ("train", "val")
        }
        evidence["positive_ratio_difference"] = diff.to_dict()
        evidence["val_accuracy_at_train_ratio"] = comp["val_accuracy_at_train_ratio"]
        return self.finding("GD304", Severity.WARN, message, evidence=evidence, figures=[FIG_HIST])


def _gap_sentence(
    observed: Estimate,
    protocol: Estimate,
    generalization: Estimate,
    pair_part: Estimate | None,
    train_desc: str,
    val_desc: str,
    same: bool,
    *,
    fresh_value: Estimate | None,
    unit_word: str,
) -> str:
    """The one sentence at the top of the report: observed = [pair-specific part] + protocol part +
    generalization part, where the pair-specific part is given only when it was separated (material)."""
    if not np.isfinite(observed.value):
        return "The gap could not be measured: one of the splits could not be evaluated under its protocol."
    if not np.isfinite(generalization.value):
        return (
            f"Training is measured by {train_desc} and validation by {val_desc} (observed gap {_fmt(observed)}); "
            f"training could not be evaluated under the validation protocol, so the gap cannot be split."
        )
    gen_clause = (
        f"under the same protocol val trails train by {_fmt(generalization)}"
        if generalization.value >= 0
        else f"under the same protocol val is ahead of train by {_fmt(_negated(generalization))}"
        + (
            " (the training items themselves are harder for the model than the validation items)"
            if generalization.below(0.0)
            else ""
        )
    )
    pair_clause = ""
    if pair_part is not None and pair_part.value >= 0:
        pair_clause = (
            f"{_fmt(pair_part)} is specific to the training {unit_word} themselves (fresh {unit_word} of the "
            f"same training items score {_fmt(fresh_value)}: memorized {unit_word} or a shortcut they share), "
        )
    elif pair_part is not None:
        pair_clause = (
            f"{_fmt(pair_part)} comes from the given training {unit_word} scoring below fresh {unit_word} of the "
            f"same items ({_fmt(fresh_value)}: mislabelled or unusually hard {unit_word}), "
        )
    if same:
        head = f"Both splits are measured by {val_desc}, so there is no protocol part"
        if pair_clause:
            return f"{head}. Of the {_fmt(observed)} gap, {pair_clause}and {gen_clause}."
        if observed.value >= 0:
            return f"{head}: the whole {_fmt(observed)} drop is generalization."
        return f"{head}: val scores {_fmt(_negated(observed))} above train."
    switch = f"switching {train_desc} to {val_desc}"
    if observed.value >= 0 and protocol.value >= 0:
        return (
            f"Of the {_fmt(observed)} drop, {pair_clause}{_fmt(protocol)} comes from {switch}; {gen_clause}."
        )
    return (
        f"The observed gap (train - val) is {_fmt(observed)}: {pair_clause}{switch} contributes {_fmt(protocol)}, "
        f"and {gen_clause}."
    )
