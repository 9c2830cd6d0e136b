"""GD201 — pair memorization: the given training pairs against fresh pairings of the same training items."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ...findings.finding import Finding, Severity
from ...stats import (
    Estimate,
    bootstrap_mean,
    bootstrap_multiplicities,
    estimate_from_draws,
    roc_auc,
    weighted_auc,
)
from ..base import FigureSpec, Measurement, Probe
from ..registry import register_probe

if TYPE_CHECKING:
    from ...context import AuditContext

__all__ = ["MemorizationProbe", "draw_fresh_partners"]


def _pair_keys(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """Order-free key of each item pair (a_i, b_i): ``min * n + max`` (int64)."""
    lo, hi = np.minimum(a, b).astype(np.int64), np.maximum(a, b).astype(np.int64)
    return lo * n + hi


def _in_sorted(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """Membership of each key in a sorted key array (bool, shape of ``keys``)."""
    if sorted_keys.size == 0:
        return np.zeros(keys.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), sorted_keys.size - 1)
    return sorted_keys[pos] == keys


def draw_fresh_partners(
    anchor: np.ndarray,
    partner: np.ndarray,
    label: np.ndarray,
    identity: np.ndarray,
    pool: dict[int, np.ndarray],
    original_keys: np.ndarray,
    *,
    n_items: int,
    replicates: int,
    rng: np.random.Generator,
    attempts: int = 30,
) -> np.ndarray:
    """For each pair, ``replicates`` new partners for ``anchor``: other items of the partner's identity.

    Parameters
    ----------
    anchor, partner : ndarray (P,) int
        The kept item and the replaced item of each original pair.
    label : ndarray (P,) int
        1 = similar, 0 = dissimilar; a fresh partner is drawn from ``pool[label]``.
    identity : ndarray (N,) int
        Identity code of every item (labels, or connected components of positive pairs).
    pool : dict {0: bool (N,), 1: bool (N,)}
        Items that occur in dissimilar / similar original pairs: a fresh partner keeps the replaced
        partner's role, so per-item properties tied to the role (a tint shared by positive pairs, a pool of
        hard negatives) stay as they were and only the pairing changes.
    original_keys : ndarray, sorted int64
        ``_pair_keys`` of every original pair; a fresh pair never repeats one.

    Returns
    -------
    ndarray (P, replicates) int64
        The fresh partner of each replicate, or -1 where no valid partner exists (every other member of
        the partner's identity is the anchor, already paired with it, or outside the role pool).
    """
    p = anchor.size
    out = np.full((p, replicates), -1, dtype=np.int64)
    layouts = {}
    for lab in (0, 1):
        members = np.flatnonzero(pool[lab])
        order = members[np.argsort(identity[members], kind="stable")]
        ids_sorted = identity[order]
        uniq, starts, counts = np.unique(ids_sorted, return_index=True, return_counts=True)
        layouts[lab] = (order, uniq, starts, counts)

    group_start = np.zeros(p, dtype=np.int64)
    group_count = np.zeros(p, dtype=np.int64)
    for lab in (0, 1):
        sel = label == lab
        order, uniq, starts, counts = layouts[lab]
        if not sel.any() or uniq.size == 0:
            continue
        g = np.searchsorted(uniq, identity[partner[sel]])
        g = np.minimum(g, uniq.size - 1)
        found = uniq[g] == identity[partner[sel]]
        group_start[sel] = np.where(found, starts[g], 0)
        group_count[sel] = np.where(found, counts[g], 0)
    order_of = {lab: layouts[lab][0] for lab in (0, 1)}

    def valid(rows: np.ndarray, cand: np.ndarray) -> np.ndarray:
        keys = _pair_keys(anchor[rows], cand, n_items)
        return (cand != anchor[rows]) & (cand != partner[rows]) & ~_in_sorted(keys, original_keys)

    todo_r, todo_c = np.nonzero((group_count > 1)[:, None] & np.ones((1, replicates), bool))
    for _ in range(attempts):
        if todo_r.size == 0:
            break
        u = np.floor(rng.random(todo_r.size) * group_count[todo_r]).astype(np.int64)
        cand = np.empty(todo_r.size, dtype=np.int64)
        for lab in (0, 1):
            m = label[todo_r] == lab
            cand[m] = order_of[lab][group_start[todo_r[m]] + u[m]]
        ok = valid(todo_r, cand)
        out[todo_r[ok], todo_c[ok]] = cand[ok]
        todo_r, todo_c = todo_r[~ok], todo_c[~ok]
    # The few left after random attempts: enumerate their candidates exactly.
    for row in np.unique(todo_r):
        lab = int(label[row])
        members = order_of[lab][group_start[row] : group_start[row] + group_count[row]]
        members = members[valid(np.full(members.size, row), members)]
        slots = todo_c[todo_r == row]
        if members.size:
            out[row, slots] = members[rng.integers(0, members.size, slots.size)]
    return out


@register_probe
class MemorizationProbe(Probe):
    """GD201 — does the model score its training pairs better in their original pairing?

    **What it measures.** For every given training pair ``(a, b)`` (up to ``max_pairs``, drawn at random)
    one side is kept (chosen at random, so left and right play the same part) and the other side is
    replaced, ``fresh_per_pair`` times, by another training item of the *replaced item's* identity
    that played the same role in the original pairs (occurs in a similar pair for a similar pair, in a
    dissimilar pair for a dissimilar one). The fresh pair therefore has the same label, the same kept
    item, a partner of the same identity and role, and is never one of the original pairs. Identities
    are the item labels or, without labels, the connected components of the graph of positive pairs
    (fresh positives stay within a component; fresh negatives take the original negative's component,
    which the original pair proves is another identity). A model that learned an embedding scores fresh
    pairs as well as original ones: both come from the same distribution. A model that memorized its
    pairs does not.

    **Formulas.** At the audit's decision threshold ``t`` (similar when the oriented score ``>= t``):
    ``correct_orig_i`` in {0, 1}; ``correct_fresh_i`` is the mean over the replicates of pair ``i``.

    - accuracy gap = ``mean(correct_orig - correct_fresh)`` over matched pairs, in [-1, 1]; 0 = no
      memorization, positive = better on the original pairing. Paired bootstrap CI over pairs.
    - AUC gap = ``AUC(original pairs) - AUC(fresh pairs)``, in [-1, 1], 0 = no memorization;
      stratified paired bootstrap over pairs (similar and dissimilar resampled separately, the same
      resample for both sets).
    - right only in the original pairing = ``mean(correct_orig * (1 - correct_fresh))``: the share of
      pairs the model gets right as given but wrong when the partner is swapped for another item of the
      same identity. Its mirror, right only in the fresh pairing, ``mean((1 - correct_orig) *
      correct_fresh)``, is the control: the accuracy gap is exactly their difference (the discordant
      pairs of a McNemar test), and without memorization the two shares are equal.

    **Codes.** GD201 (warn/fail) when the accuracy gap or the AUC gap reaches its threshold and its CI
    excludes 0. Caveat: if the given positive pairs are *easier by construction* than other same-identity
    pairs (e.g. two augmentations of one photo), fresh positives are harder without any memorization;
    the message reports the per-label accuracies so this can be seen.
    """

    name = "memorization"
    family = "embedding"
    codes = ("GD201",)
    requires = frozenset({"train_pairs", "train_identities"})
    defaults: dict[str, Any] = {
        # accuracy gap (original - fresh pairing) at the audit's decision threshold
        "warn_accuracy_gap": 0.10,
        "fail_accuracy_gap": 0.25,
        # ROC-AUC gap (original - fresh pairing), threshold-free
        "warn_auc_gap": 0.05,
        "fail_auc_gap": 0.15,
        "fresh_per_pair": 3,  # fresh partners drawn per original pair (averaged: less noise)
        "max_pairs": 20000,  # original pairs compared (a random subset above this)
    }
    description = "Given training pairs against fresh pairings of the same training items (GD201)."

    def _measure(self, ctx: AuditContext) -> Measurement:
        pairs = ctx.train.pairs
        n_items = len(pairs.items)
        identity = np.unique(ctx.identities("train"), return_inverse=True)[1].reshape(-1)
        scores_all = ctx.pair_scores("train")
        rng = ctx.rng("memorization")
        n_boot, level = int(ctx.option("n_boot")), float(ctx.option("ci_level"))
        label_all = pairs.label.astype(np.int64)

        sel = np.arange(len(pairs))
        if sel.size > int(self.params["max_pairs"]):
            sel = np.sort(rng.choice(sel.size, int(self.params["max_pairs"]), replace=False))
        left, right, label = pairs.left[sel], pairs.right[sel], label_all[sel]
        keep_left = rng.random(sel.size) < 0.5
        anchor = np.where(keep_left, left, right)
        partner = np.where(keep_left, right, left)
        pool = {}
        for lab in (0, 1):
            m = label_all == lab
            pool[lab] = np.zeros(n_items, dtype=bool)
            pool[lab][pairs.left[m]] = True
            pool[lab][pairs.right[m]] = True
        original_keys = np.unique(_pair_keys(pairs.left, pairs.right, n_items))
        r = int(self.params["fresh_per_pair"])
        fresh = draw_fresh_partners(
            anchor, partner, label, identity, pool, original_keys, n_items=n_items, replicates=r, rng=rng
        )
        matched = (fresh >= 0).all(axis=1)
        n_unmatched = int((~matched).sum())
        notes: list[str] = []
        metrics: dict[str, Any] = {
            "identities_from": ctx.identities_origin("train"),
            "n_original_pairs": int(len(pairs)),
            "n_compared_pairs": int(matched.sum()),
            "n_pairs_without_fresh_partner": n_unmatched,
            "fresh_per_pair": r,
        }
        y = label[matched].astype(bool)
        if matched.sum() < 10 or y.all() or not y.any():
            notes.append(
                f"Only {int(matched.sum())} training pairs could be re-paired with a fresh partner of the same "
                "identity (similar and dissimilar both needed), so memorization was not measured. This happens "
                "when every identity has a single pair (e.g. positives made of two views of one input)."
            )
            metrics["measured"] = False
            return Measurement(metrics=metrics, notes=notes)

        anchor, fresh, keep_left = anchor[matched], fresh[matched], keep_left[matched]
        s_orig = scores_all[sel][matched]
        a_rep = np.repeat(anchor, r)
        f_flat = fresh.reshape(-1)
        kl = np.repeat(keep_left, r)
        raw = ctx.raw_scores("train", np.where(kl, a_rep, f_flat), np.where(kl, f_flat, a_rep))
        s_fresh = ctx.scorer.orient(raw).reshape(-1, r)
        threshold, threshold_origin = ctx.decision_threshold()

        c_orig = ((s_orig >= threshold) == y).astype(float)
        c_fresh = ((s_fresh >= threshold) == y[:, None]).mean(axis=1)
        acc_orig = bootstrap_mean(c_orig, rng=rng, n_boot=n_boot, level=level)
        acc_fresh = bootstrap_mean(c_fresh, rng=rng, n_boot=n_boot, level=level)
        acc_gap = bootstrap_mean(c_orig - c_fresh, rng=rng, n_boot=n_boot, level=level)
        only_orig = bootstrap_mean(c_orig * (1 - c_fresh), rng=rng, n_boot=n_boot, level=level)
        only_fresh = bootstrap_mean((1 - c_orig) * c_fresh, rng=rng, n_boot=n_boot, level=level)
        auc_orig, auc_fresh, auc_gap = _paired_auc_gap(
            s_orig, s_fresh, y, rng=rng, n_boot=n_boot, level=level
        )
        by_label = {}
        for name, m in (("similar", y), ("dissimilar", ~y)):
            by_label[name] = {
                "n_pairs": int(m.sum()),
                "accuracy_original": bootstrap_mean(c_orig[m], rng=rng, n_boot=n_boot, level=level),
                "accuracy_fresh": bootstrap_mean(c_fresh[m], rng=rng, n_boot=n_boot, level=level),
            }
        metrics.update(
            {
                "measured": True,
                "threshold": float(threshold),
                "threshold_raw": float(ctx.scorer.to_raw(threshold)),
                "threshold_origin": threshold_origin,
                "accuracy_original": acc_orig,
                "accuracy_fresh": acc_fresh,
                "accuracy_gap": acc_gap,
                "auc_original": auc_orig,
                "auc_fresh": auc_fresh,
                "auc_gap": auc_gap,
                "right_only_in_original_pairing": only_orig,
                "right_only_in_fresh_pairing": only_fresh,
                "by_label": by_label,
            }
        )
        # Examples: pairs right as given and wrong in every fresh pairing (item indices into train items).
        strict = np.flatnonzero((c_orig == 1) & (c_fresh == 0))[:10]
        # Per-pair table (columnar, one row per compared pair), for notebook users and tests.
        original_partner = np.where(keep_left, pairs.right[sel][matched], pairs.left[sel][matched])
        evidence: dict[str, Any] = {
            "pairs": {
                "pair_index": sel[matched],
                "kept_item": anchor,
                "original_partner": original_partner,
                "fresh_partners": fresh,
                "label": y.astype(np.int8),
                "score_original": s_orig,
                "score_fresh": s_fresh,
                "correct_original": c_orig,
                "correct_fresh": c_fresh,
            },
            "examples_right_only_in_original": [
                {
                    "anchor": int(anchor[i]),
                    "original_partner": int(original_partner[i]),
                    "fresh_partners": [int(v) for v in fresh[i]],
                    "label": int(y[i]),
                }
                for i in strict
            ],
        }
        fig = FigureSpec(
            id="memorization_scores",
            kind="hist",
            title="Training pair scores: original pairing vs fresh pairing of the same items",
            data={
                "panels": [
                    {
                        "title": f"{name} pairs",
                        "series": {
                            "original pairing": s_orig[m].round(5).tolist(),
                            "fresh pairing": s_fresh[m].reshape(-1).round(5).tolist(),
                        },
                        "vlines": {"decision threshold": float(threshold)},
                    }
                    for name, m in (("similar", y), ("dissimilar", ~y))
                ],
                "xlabel": "score (higher = more similar)",
            },
            caption="A memorizing model separates the original pairs far better than fresh pairs of the same items.",
        )
        if n_unmatched:
            notes.append(
                f"{n_unmatched} of {sel.size} training pairs have no possible fresh partner (no other item of the "
                "partner's identity and role) and are left out of the comparison."
            )
        return Measurement(metrics=metrics, evidence=evidence, figures=[fig], notes=notes)

    def _judge(self, m: Measurement) -> list[Finding]:
        mt = m.metrics
        if not mt.get("measured"):
            return []
        acc_gap: Estimate = mt["accuracy_gap"]
        auc_gap: Estimate = mt["auc_gap"]
        p = self.params

        def level_of(gap: Estimate, warn: float, fail: float) -> Severity | None:
            if not np.isfinite(gap.value) or not gap.above(0.0):
                return None
            if gap.value >= fail:
                return Severity.FAIL
            if gap.value >= warn:
                return Severity.WARN
            return None

        levels = [
            s
            for s in (
                level_of(acc_gap, p["warn_accuracy_gap"], p["fail_accuracy_gap"]),
                level_of(auc_gap, p["warn_auc_gap"], p["fail_auc_gap"]),
            )
            if s is not None
        ]
        if not levels:
            return []
        severity = max(levels)
        n = mt["n_compared_pairs"]
        r = mt["fresh_per_pair"]
        bl = mt["by_label"]
        message = (
            f"The model scores its training pairs better in their original pairing than in fresh pairings of "
            f"the same items: accuracy {mt['accuracy_original']:.2f} on {n} given pairs vs "
            f"{mt['accuracy_fresh']:.2f} on {n * r} fresh pairs, gap {acc_gap:.2f} (threshold "
            f"{p['warn_accuracy_gap']:.2f}); ROC-AUC {mt['auc_original']:.3f} vs {mt['auc_fresh']:.3f}, gap "
            f"{auc_gap:.3f} (threshold {p['warn_auc_gap']:.2f}; 0 = no memorization). "
            f"{mt['right_only_in_original_pairing'].value:.0%} of pairs are right only in their original pairing, "
            f"against {mt['right_only_in_fresh_pairing'].value:.0%} right only in the fresh one (equal without "
            f"memorization). Similar pairs: {bl['similar']['accuracy_original'].value:.2f} original vs "
            f"{bl['similar']['accuracy_fresh'].value:.2f} fresh; dissimilar: "
            f"{bl['dissimilar']['accuracy_original'].value:.2f} vs {bl['dissimilar']['accuracy_fresh'].value:.2f}. "
            f"Fresh pairs swap one item for another of the same identity ({mt['identities_from']}) and role; "
            f"decision threshold {mt['threshold_raw']:.4g} on the raw score, {mt['threshold_origin']}. An "
            "attribute shared only within each positive pair (GD101/GD102) is pair-specific too and would show "
            "here as well."
        )
        evidence = {
            k: (v.to_dict() if isinstance(v, Estimate) else v)
            for k, v in mt.items()
            if k not in ("by_label", "measured")
        }
        evidence["by_label"] = {
            lab: {k: (v.to_dict() if isinstance(v, Estimate) else v) for k, v in d.items()}
            for lab, d in bl.items()
        }
        return [self.finding("GD201", severity, message, evidence=evidence, figures=["memorization_scores"])]


def _paired_auc_gap(
    s_orig: np.ndarray,
    s_fresh: np.ndarray,
    y: np.ndarray,
    *,
    rng: np.random.Generator,
    n_boot: int,
    level: float,
) -> tuple[Estimate, Estimate, Estimate]:
    """AUC of original scores (P,), of fresh scores (P, r), and their difference, with paired CIs.

    Similar and dissimilar pairs are resampled separately; one resample of pair indices serves both sets
    (a fresh pair follows its original pair), so the CI of the difference accounts for the pairing. Each
    resample is a row of multiplicities, and both AUCs come from :func:`weighted_auc` in O(n_boot x P r),
    without a sort per resample.
    """
    r = s_fresh.shape[1]
    a_orig = roc_auc(s_orig, y)
    a_fresh = roc_auc(s_fresh.reshape(-1), np.repeat(y, r))
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    flat_fresh, flat_y = s_fresh.reshape(-1), np.repeat(y, r)
    chunk = max(1, int(4_000_000 // (y.size * r)))
    so, sf = [], []
    for start in range(0, n_boot, chunk):
        k = min(chunk, n_boot - start)
        wp, wn = bootstrap_multiplicities(rng, n_pos, k), bootstrap_multiplicities(rng, n_neg, k)
        so.append(weighted_auc(s_orig, y, wp, wn))
        sf.append(weighted_auc(flat_fresh, flat_y, np.repeat(wp, r, axis=1), np.repeat(wn, r, axis=1)))
    so_all, sf_all = np.concatenate(so), np.concatenate(sf)
    n = int(y.size)
    return (
        estimate_from_draws(a_orig, so_all, n, level),
        estimate_from_draws(a_fresh, sf_all, n * r, level),
        estimate_from_draws(a_orig - a_fresh, so_all - sf_all, n, level),
    )
