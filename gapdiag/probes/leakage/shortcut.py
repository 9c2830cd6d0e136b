"""GD101 — spurious shared attribute: a nuisance property that solves the training pairs but not the val pairs.

The measurement is the leakage family's shared :data:`~gapdiag.probes.leakage.signal.ATTRIBUTE_SIGNAL`, and the
artifacts it flags are the shared :data:`~gapdiag.probes.leakage.candidates.SHORTCUT_CANDIDATES` (GD102 reads
the same); this probe judges them, localizes them and writes the findings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ...findings.finding import Finding, Severity
from ...stats import (
    Estimate,
    as_plain,
    auc_placements,
    estimate_from_draws,
    normal_estimate,
    placement_variance,
    wilson,
)
from ...thumbnails import thumbnails
from ..base import FigureSpec, Measurement, Probe
from ..registry import register_probe
from .candidates import Candidate, region_map, shortcut_candidates
from .signal import SIGNAL_DEFAULTS, AttributeAUCs
from .wording import describe, direction_words, name_of, part_text

if TYPE_CHECKING:
    from ...context import AuditContext

__all__ = ["ShortcutProbe"]

_MAX_TOGETHER = 6  # features named as moving with an artifact; the rest are counted
_MEAN_IMAGE_ITEMS = 256


def _estimate_dict(e: Estimate | None) -> dict | None:
    return None if e is None else e.to_dict()


def _pair_rows(items, left, right, picks, caption: str) -> dict[str, Any] | None:
    if picks.size == 0:
        return None
    idx = np.stack([left[picks], right[picks]], axis=1).reshape(-1)
    imgs = thumbnails(items.get_batch(idx))
    return None if imgs is None else {"caption": caption, "images": imgs}


def _self_pairs(ctx: AuditContext, split: str, level: float) -> Estimate | None:
    """Share of the split's similar pairs whose two sides have the same content (Wilson CI); None without
    similar pairs."""
    same = _copies(ctx, split)
    if same is None:
        return None
    return wilson(int(same.sum()), int(same.size), level)


def _copies(ctx: AuditContext, split: str) -> np.ndarray | None:
    """Per similar pair of the split (S,): are its two sides the same content? None without similar pairs."""
    pairs = ctx.pairs(split)
    similar = pairs.label == 1
    if not similar.any():
        return None
    return pairs.same_identity(pairs.items.content_hashes())[similar]


def _beyond_copies(ctx: AuditContext, level: float) -> dict[str, Any] | None:
    """What the model learned of the training identities besides copies.

    ROC-AUC (DeLong) of the training similar pairs of two *different* inputs against the training dissimilar
    pairs, the same on validation's pairs (copies left out there too), and the difference (train - val, the
    splits independent). A model that learned only to recognise copies knows the training identities no
    better than new ones (difference about 0); one that fits its training items scores their distinct pairs
    well above validation's, and copies do not explain its gap. None when a split has fewer than two distinct
    similar or two dissimilar pairs.
    """
    parts = {}
    for split in ("train", "val"):
        pairs, copies = ctx.pairs(split), _copies(ctx, split)
        if copies is None:
            return None
        keep = np.ones(len(pairs), dtype=bool)
        keep[np.flatnonzero(pairs.label == 1)[copies]] = False
        y = pairs.label[keep] == 1
        if min(int(y.sum()), int((~y).sum())) < 2:
            return None
        v10, v01 = auc_placements(ctx.pair_scores(split)[keep], y)
        parts[split] = (float(v10.mean()), placement_variance(v10, v01), int(keep.sum()))
    (a_t, var_t, n_t), (a_v, var_v, n_v) = parts["train"], parts["val"]
    return {
        "auc_train_distinct": normal_estimate(a_t, var_t, n_t, level, bounds=(0.0, 1.0)),
        "auc_val": normal_estimate(a_v, var_v, n_v, level, bounds=(0.0, 1.0)),
        "difference": normal_estimate(a_t - a_v, var_t + var_v, n_t + n_v, level, bounds=(-1.0, 1.0)),
    }


def _table_row(r: dict[str, Any]) -> dict[str, Any]:
    """One feature row as JSON evidence."""
    return {
        "feature": r["feature"],
        "attribute": r["attribute"],
        "part": r["part"],
        "kind": r["kind"],
        "direction": r["direction"],
        "catalogue_free": r["generic"],
        "auc_train": r["auc_train"].to_dict(),
        "auc_val": _estimate_dict(r.get("auc_val")),
        "separability_train": r["separability_train"].to_dict(),
        "separability_val": _estimate_dict(r.get("separability_val")),
        "separability_drop_adjusted": _estimate_dict(r.get("drop")),
        "auc_identity_only": _estimate_dict(r.get("auc_identity_only")),
        "excess_identity_adjusted": _estimate_dict(r.get("excess_identity")),
        **{k: r[k] for k in ("same_rate_train", "same_rate_val", "place") if k in r},
    }


@register_probe
class ShortcutProbe(Probe):
    """GD101: does a nuisance attribute solve the training pairs but not the validation pairs?

    Measures, for every built-in attribute (brightness, per-channel means, redness/greenness/blueness,
    saturation, contrast, sharpness, centre of mass, border level; value statistics of signals and feature
    rows), every catalogue-free statistic (image regions per channel: mean, spread, min, max on a grid sized
    to the image; segments and frequency bands of 1-D signals; length, padding, distinct tokens and the token
    overlap of token sequences; each feature of feature rows) and every user attribute column, the pair
    features ``level`` (mean of the two items), ``deviation`` (|level - split median|, named attributes and feature-row columns),
    ``agreement`` (-|difference|), ``same`` (equal category) or ``pair`` (a value of the pair, e.g. token
    overlap), on a stratified sample of at most ``max_pairs`` pairs per split. For each feature and split:

    - ROC-AUC for the pair label (0.5 = no signal; far from 0.5 in either direction = the feature predicts
      the label), with a stratified bootstrap CI for the features that could be flagged (point values past
      the thresholds), the user's columns and each named attribute's strongest part (the others: point values);
    - separability = |2 AUC - 1| in [0, 1] on training pairs, and the validation separability in the
      training direction (in [-1, 1]; negative = reversed);
    - drop = train separability - max(validation separability, 0), with a bootstrap normal interval made
      simultaneous over all compared features (Bonferroni);
    - identity-only control (training identities from labels): the same training pairs with both sides
      re-drawn at random from their identities; excess = train separability - max(separability there, 0),
      paired bootstrap, same adjustment. A cue of the pairing (a tint on both images of positive pairs)
      vanishes there; a cue of identity (same digits agree in stroke position) does not.

    Plus a logistic regression on the standardized named features and the tested catalogue-free ones
    (5-fold cross-validated AUC on each split, and the AUC on validation pairs of the model fitted on
    training pairs): "can the pairs be solved without looking at identity?".

    Emits GD101 (warn; fail when the drop reaches ``fail_separability_drop``) once per artifact when a feature
    passes: train separability >= ``min_train_separability`` with its adjusted CI excluding 0, drop >=
    ``min_separability_drop`` with its adjusted CI excluding 0, and, where the control ran, the excess passes
    the same test (so an open set, whose identities differ in identity-related cues, is not mistaken for a
    shortcut). Features that correlate on the training pairs (|r| >= ``group_correlation``) or that one
    intervention moves are one artifact: the finding names the lead feature, says where the artifact lives
    (image regions in words, e.g. "the top-left 4x4 pixels", with a heat map over the mean training image)
    and lists the others as moving with it. When no single attribute is flagged but the classifier is (same
    rule, unadjusted CIs, and only where the identity-only control ran), one GD101 names the classifier's
    strongest features. Identity-related attributes (a '1' has less ink than an '8', so same-digit pairs agree
    more in brightness) predict the label in both splits and are not flagged.

    Copies: the share of each split's similar pairs whose two sides have the same content (Wilson CI). When
    training's is at least ``max_self_pair_share`` with its CI above validation's, the first GD101 says so
    first and fails (or one GD101 says it alone): a sampler that draws an anchor as its own partner makes
    "identical" solve the training pairs. Unless the model learned more than copies: when its AUC on the
    training similar pairs of two different inputs exceeds validation's by ``min_beyond_copies`` with the CI
    of the difference above 0 (see :func:`_beyond_copies`), it fits its training identities, the copies are
    not what separates training from validation, and they are reported as info (a tiny training set, whose
    sampler cannot help drawing an item as its own partner, is one such case).
    """

    name = "shortcut"
    concurrent = True
    family = "leakage"
    codes = ("GD101",)
    requires = frozenset({"train_inputs", "val_inputs", "train_pairs_any", "val_pairs_any"})
    description = (
        "Nuisance attributes (colour, brightness, position, regions, length, fields, user columns) that solve "
        "training pairs only."
    )
    defaults = {
        **SIGNAL_DEFAULTS,  # the shared signal is configured here (GD101 owns it)
        # a near-perfect training cue that is gone on validation: a fail
        "fail_separability_drop": 0.8,
        "max_findings": 3,  # artifacts reported as separate findings; the rest are named in the last one
        "max_figure_features": 12,
        "thumbnail_pairs": 4,  # pairs per row of the thumbnail figure (3 rows)
        # similar pairs of an input with itself (a sampler that may draw the anchor as its own partner)
        "max_self_pair_share": 0.1,
        # AUC on distinct training similar pairs minus validation's: a model this much better on them learned
        # its training identities, not only copies
        "min_beyond_copies": 0.05,
    }

    def _measure(self, ctx: AuditContext) -> Measurement:
        level = float(ctx.option("ci_level"))
        res, rows, candidates = shortcut_candidates(ctx)
        shown = [r for r in rows if r["tested"]]
        n_tests = res.n_tests
        descriptions = {
            a: describe(a, res.attributes["train"]) for a in dict.fromkeys(r["attribute"] for r in shown)
        }
        metrics = {
            "n_pairs": {s: int(res.label[s].size) for s in ("train", "val")},
            "n_positive": {s: int(res.label[s].sum()) for s in ("train", "val")},
            "input_kind": res.layout.kind,
            "n_features_compared": n_tests,
            # the others had point values only: they could not pass the thresholds (see the signal's _tested)
            "n_features_with_intervals": int(res.tested.sum()),
            "n_catalogue_free_features": int(res.generic.sum()),
            "n_catalogue_free_tested": int((res.generic & res.tested).sum()),
            "multiplicity": f"Bonferroni over {n_tests} features",
            "classifier": self._classifier_summary(res, level),
        }
        metrics["self_pairs"] = {s: _self_pairs(ctx, s, level) for s in ("train", "val")}
        share = metrics["self_pairs"]["train"]
        metrics["beyond_copies"] = (
            _beyond_copies(ctx, level)
            if share is not None and share.value >= self.params["max_self_pair_share"]
            else None
        )
        m = Measurement(metrics=metrics, notes=list(res.notes))
        m.evidence = {
            "features": [_table_row(r) for r in shown],
            "descriptions": descriptions,
            "pairs_origin": {s: ctx.pairs_origin(s) for s in ("train", "val")},
            "_candidates": candidates,
        }
        m.figures.append(self._bars(shown))
        for fig in (self._thumbnails(ctx, res, candidates), self._regions(ctx, res, candidates)):
            if fig is not None:
                m.figures.append(fig)
        return m

    # -- measurement helpers ------------------------------------------------------------------------
    @staticmethod
    def _classifier_summary(res: AttributeAUCs, level: float) -> dict[str, Any]:
        clf = res.classifier
        if "cv_train" not in clf:
            return {}
        out: dict[str, Any] = {"n_features": clf["n_features"], "model": "logistic regression, standardized"}
        for key in ("cv_train", "cv_val", "transfer", "fresh"):
            if key in clf:
                c = clf[key]
                name = "auc_identity_only" if key == "fresh" else f"auc_{key}"
                out[name] = estimate_from_draws(c["auc"], c["boot"], c["n"], level).to_dict()
        tr = clf["cv_train"]
        for key, name in (("transfer", "separability_drop"), ("fresh", "excess_identity")):
            if key in clf:
                other = clf[key]
                d = (2 * tr["auc"] - 1) - max(2 * other["auc"] - 1, 0.0)
                d_b = (2 * tr["boot"] - 1) - np.maximum(2 * other["boot"] - 1, 0.0)
                out[name] = estimate_from_draws(d, d_b, min(tr["n"], other["n"]), level).to_dict()
        out["top_features"] = [{"feature": f, "coefficient": round(c, 4)} for f, c in clf["top_features"]]
        return out

    def _bars(self, rows: list[dict[str, Any]]) -> FigureSpec:
        """Each attribute's most training-predictive feature: AUC read in its training direction, both splits."""
        best: dict[str, dict[str, Any]] = {}
        for r in rows:
            cur = best.get(r["attribute"])
            if cur is None or r["separability_train"].value > cur["separability_train"].value:
                best[r["attribute"]] = r
        top = sorted(best.values(), key=lambda r: -r["separability_train"].value)[
            : self.params["max_figure_features"]
        ]
        groups = [f"{r['attribute']} ({r['part']}, {r['direction']} = positive)" for r in top]
        series: dict[str, Any] = {}
        for split, key in (("train", "auc_train"), ("val", "auc_val")):
            vals, lows, highs = [], [], []
            for r in top:
                e = r.get(key)
                if e is None:
                    v = lo = hi = float("nan")
                elif r["direction"] == "higher":
                    v, lo, hi = e.value, e.low, e.high
                else:  # read in the training direction: 1 - AUC, its interval mirrored
                    v, lo, hi = 1 - e.value, 1 - e.high, 1 - e.low
                vals.append(v)
                lows.append(lo)
                highs.append(hi)
            series[split] = {"value": vals, "low": lows, "high": highs}
        return FigureSpec(
            id="shortcut_auc",
            kind="bars",
            title="Attribute AUC for the pair label: train vs validation",
            data={
                "groups": groups,
                "series": series,
                "ref": 0.5,
                "ref_label": "no signal (0.5)",
                "ylabel": "AUC of the pair feature, read in its training direction (95% CI)",
                "horizontal": True,
                "ylim": [0.0, 1.0],
            },
            caption=(
                "Each attribute's most training-predictive pair feature, read in the direction it predicts on "
                "training pairs (1 = perfect). Far above 0.5 on train but near 0.5 on validation: a cue that "
                "exists only in the training pairs."
            ),
        )

    def _thumbnails(self, ctx: AuditContext, res: AttributeAUCs, candidates: list[Candidate]):
        """Training pairs that show the strongest clear train-only cue, with validation pairs for comparison."""
        if not candidates:
            return None
        top = candidates[0].lead
        out_rows = []
        for split in ("train", "val"):
            if top["feature"] not in res.table[split].columns:
                continue
            pairs, sample = ctx.pairs(split), res.sample[split]
            for p, caption in self._picks(ctx, res, top, split):
                row = _pair_rows(pairs.items, pairs.left, pairs.right, sample[p], caption)
                if row is not None:
                    out_rows.append(row)
        if not out_rows:
            return None
        return FigureSpec(
            id="shortcut_pairs",
            kind="images",
            title=f"Pairs showing the cue: {top['attribute']} ({top['part']})",
            data={"rows": out_rows},
            caption="Each row shows pairs side by side (left image, right image, next pair...).",
        )

    def _picks(self, ctx: AuditContext, res: AttributeAUCs, top: dict[str, Any], split: str):
        """Sample positions of the pairs to show: on train the positives that show the cue most and the
        negatives that show it least; on validation random positives."""
        k = int(self.params["thumbnail_pairs"])
        v = res.table[split][top["feature"]].to_numpy(dtype=np.float64, na_value=np.nan)
        v = np.where(np.isfinite(v), v, np.nanmedian(v) if np.isfinite(v).any() else 0.0)
        oriented = v if top["direction"] == "higher" else -v
        y = res.label[split] == 1
        pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
        if split == "train":
            return [
                (
                    pos[np.argsort(-oriented[pos], kind="stable")[:k]],
                    f"positive training pairs, strongest {top['feature']}",
                ),
                (
                    neg[np.argsort(oriented[neg], kind="stable")[:k]],
                    f"negative training pairs, weakest {top['feature']}",
                ),
            ]
        rng = ctx.rng("shortcut.thumbnails")
        return [
            (np.sort(rng.choice(pos, min(k, pos.size), replace=False)), "positive validation pairs (random)")
        ]

    @staticmethod
    def _regions(ctx: AuditContext, res: AttributeAUCs, candidates: list[Candidate]) -> FigureSpec | None:
        """Where on the image the pair-label signal lives on training pairs and not on validation pairs."""
        grid = region_map(res)
        if grid is None:
            return None
        pairs, sample = ctx.pairs("train"), res.sample["train"]
        pos = sample[res.label["train"] == 1][: _MEAN_IMAGE_ITEMS // 2]
        idx = np.unique(np.concatenate([pairs.left[pos], pairs.right[pos]]))
        mean = thumbnails(pairs.items.get_batch(idx).float().mean(dim=0, keepdim=True))
        if mean is None:
            return None
        lay = res.layout
        outline = [
            [lay.row_edges[i], lay.row_edges[i + 1], lay.col_edges[j], lay.col_edges[j + 1]]
            for c in candidates
            for i, j in c.cells
        ]
        return FigureSpec(
            id="shortcut_regions",
            kind="overlay",
            title="Where the pair-label signal lives: training vs validation pairs",
            data={
                "image": mean[0],
                "panels": [
                    {"title": "training pairs", "values": np.round(grid["train"], 3).tolist()},
                    {"title": "validation pairs", "values": np.round(grid["val"], 3).tolist()},
                ],
                "row_edges": list(lay.row_edges),
                "col_edges": list(lay.col_edges),
                "vmin": 0.0,
                "vmax": 1.0,
                "cbar": "separability |2 AUC - 1| (0 = none, 1 = perfect)",
                "outline": outline,
            },
            caption=(
                "Over the mean item of positive training pairs: per region, how well its strongest statistic "
                "(mean, spread, min or max of a channel; level or agreement of the pair) tells similar from "
                "dissimilar pairs, read in the training direction. Bright on training and dark on validation: a "
                "cue that only the training pairs carry. Outlined: the regions of flagged artifacts."
            ),
        )

    # -- judgement ----------------------------------------------------------------------------------
    def _judge(self, m: Measurement) -> list[Finding]:
        p = self.params
        candidates: list[Candidate] = m.evidence.pop("_candidates")
        m.evidence["flagged"] = [c.lead["feature"] for c in candidates]
        clf_text = self._classifier_text(m.metrics["classifier"])
        figures = [f.id for f in m.figures]
        findings = []
        for c in candidates[: p["max_findings"]]:
            findings.append(self._artifact_finding(c, m, clf_text, figures if not findings else []))
        rest = candidates[p["max_findings"] :]
        if rest and findings:
            m.evidence["flagged_not_reported"] = [c.lead["feature"] for c in rest]
            findings[-1].message += (
                " Further train-only cues, not reported separately: "
                + ", ".join(
                    f"{name_of(c.lead)} ({c.lead['part']}, drop {c.lead['drop'].value:.2f})" for c in rest
                )
                + "."
            )
        copies = self._copies_text(m.metrics["self_pairs"])
        learned = self._learned_beyond_copies(m.metrics["beyond_copies"]) if copies else None
        if copies and learned:
            findings.append(
                self.finding("GD101", Severity.INFO, f"{copies} {learned}", cause="artifact:self_pairs")
            )
        elif copies and findings:
            findings[0].message = f"{copies} {findings[0].message}"
            findings[0].severity = Severity.FAIL
        elif copies:
            findings.append(self.finding("GD101", Severity.FAIL, copies, cause="artifact:self_pairs"))
        if not findings:
            f = self._classifier_finding(m.metrics["classifier"], clf_text)
            if f is not None:
                findings.append(f)
        for f in findings[:1]:
            f.evidence["self_pairs"] = {k: _estimate_dict(v) for k, v in m.metrics["self_pairs"].items()}
            f.evidence["copies_solve_training_pairs"] = copies is not None and learned is None
            f.evidence["beyond_copies"] = as_plain(m.metrics["beyond_copies"])
        return findings

    def _copies_text(self, shares: dict[str, Estimate | None]) -> str | None:
        """The words when the similar training pairs are, for a share at least ``max_self_pair_share``, an input
        paired with itself, clearly more often than the validation's: 'identical' then solves them."""
        t, v = shares["train"], shares["val"]
        if t is None or not (
            t.value >= self.params["max_self_pair_share"] and t.low > (v.high if v else 0.0)
        ):
            return None
        val = f"{v.value:.0%} [{v.low:.0%}, {v.high:.0%}] of validation's" if v is not None else "validation"
        return (
            f"In {t.value:.0%} [{t.low:.0%}, {t.high:.0%}] of the similar training pairs both sides are the same "
            f"input (identical content), against {val}: 'identical' alone solves them, and a network trained on "
            "them can learn to recognise copies instead of identities. Draw the partner of a similar pair from the other "
            "items of its identity."
        )

    def _learned_beyond_copies(self, beyond: dict[str, Estimate] | None) -> str | None:
        """The words when the model scores the distinct similar training pairs clearly better than validation's:
        it learned its training identities, so the copies do not explain its gap; else None."""
        if beyond is None:
            return None
        diff = beyond["difference"]
        if not (diff.value >= self.params["min_beyond_copies"] and diff.low > 0):
            return None
        return (
            "Yet the model learned more than copies: it tells the similar training pairs of two different inputs "
            f"from the dissimilar ones with AUC {beyond['auc_train_distinct']}, above validation's "
            f"{beyond['auc_val']} by {diff} (0.5 = no signal). It fits its training identities, so the copies are "
            "not what separates training from validation; they only make part of the similar pairs trivial."
        )

    def _artifact_finding(self, c: Candidate, m: Measurement, clf_text: str, figures: list[str]) -> Finding:
        p, lead = self.params, c.lead
        drop, sep = lead["drop"], lead["separability_train"]
        sev = Severity.FAIL if drop.value >= p["fail_separability_drop"] else Severity.WARN
        n_tests = m.metrics["n_features_compared"]
        n_tr, n_va = m.metrics["n_pairs"]["train"], m.metrics["n_pairs"]["val"]
        words = direction_words(lead)
        sfx = "" if lead.get("excess_identity") is not None else "_uncontrolled"
        description = m.evidence["descriptions"].get(lead["attribute"], lead["attribute"])
        msg = (
            f"{words[0].upper()}{words[1:]}: AUC {lead['auc_train']} on {n_tr} training pairs vs "
            f"{lead['auc_val']} on {n_va} validation pairs (0.5 = no signal). On its own this cue "
            f"({name_of(lead)}; {part_text(lead['part'])}) gives a training separability of {sep.value:.2f} "
            f"(|2 AUC - 1|: 0 = none, 1 = perfect) but {max(lead['separability_val'].value, 0):.2f} on "
            f"validation: a drop of {drop:.2f} (CI simultaneous over {n_tests} features; flagged at separability "
            f">= {p['min_train_separability' + sfx]} and drop >= {p['min_separability_drop' + sfx]})."
        )
        if c.place:
            msg += f" Where: {c.place}."
        msg += f" Attribute: {description}."
        if lead.get("auc_identity_only") is not None:
            msg += (
                " The cue belongs to the pairing, not to identity: on the same training pairs re-drawn at random "
                f"from their identities its AUC is {lead['auc_identity_only']}."
            )
        msg += self._together_text(c)
        if clf_text:
            msg += f" {clf_text}"
        return self.finding(
            "GD101", sev, msg, evidence=self._evidence(c, m, words), figures=figures, cause=c.cause
        )

    def _together_text(self, c: Candidate) -> str:
        together = c.together
        if not together:
            return ""
        shown = ", ".join(
            f"{name_of(r)} ({r['part']}, drop {r['drop'].value:.2f})" for r in together[:_MAX_TOGETHER]
        )
        more = f" and {len(together) - _MAX_TOGETHER} more" if len(together) > _MAX_TOGETHER else ""
        return (
            f" Moves together with {shown}{more}: one artifact (features linked on the training pairs by a "
            f"correlation of at least {self.params['group_correlation']}, or of at least "
            f"{self.params['group_overlap']} of what their common cause, the pair label, implies, or moved by one "
            "intervention)."
        )

    @staticmethod
    def _evidence(c: Candidate, m: Measurement, words: str) -> dict[str, Any]:
        lead = c.lead
        return {
            "attribute": lead["attribute"],
            "feature": lead["feature"],
            "description": m.evidence["descriptions"].get(lead["attribute"], ""),
            "direction": words,
            "place": c.place,
            "cells": [list(x) for x in c.cells],
            "auc_train": lead["auc_train"].to_dict(),
            "auc_val": lead["auc_val"].to_dict(),
            "separability_train": lead["separability_train"].to_dict(),
            "separability_val": lead["separability_val"].to_dict(),
            "separability_drop_adjusted": lead["drop"].to_dict(),
            "auc_identity_only": _estimate_dict(lead.get("auc_identity_only")),
            "excess_identity_adjusted": _estimate_dict(lead.get("excess_identity")),
            "n_features_compared": m.metrics["n_features_compared"],
            "also_flagged": [r["feature"] for r in c.flagged[1:]],
            "moves_together_with": [r["feature"] for r in c.together],
            "classifier": m.metrics["classifier"],
        }

    @staticmethod
    def _classifier_text(clf: dict[str, Any]) -> str:
        if not clf or "auc_transfer" not in clf:
            return ""
        cv, tr = clf["auc_cv_train"], clf["auc_transfer"]
        return (
            f"A logistic regression on {clf['n_features']} attribute features, never looking at identity, "
            f"separates training pairs with cross-validated AUC {cv['value']:.2f} [{cv['ci_low']:.2f}, "
            f"{cv['ci_high']:.2f}] and, fitted on them, validation pairs with AUC {tr['value']:.2f} "
            f"[{tr['ci_low']:.2f}, {tr['ci_high']:.2f}]."
        )

    def _classifier_finding(self, clf: dict[str, Any], clf_text: str) -> Finding | None:
        """A combination of attributes solves the training pairs although no single one is flagged."""
        p = self.params
        if not clf or "separability_drop" not in clf:
            return None
        cv = clf["auc_cv_train"]
        sep = abs(2 * cv["value"] - 1)
        sep_low = 2 * cv["ci_low"] - 1
        # Without the identity-only control a combination of identity-related cues that differs between the
        # training and validation identities (an open set) cannot be told from a shortcut: no finding then.
        drop, excess = clf["separability_drop"], clf.get("excess_identity")
        if excess is None or not (
            sep >= p["min_train_separability"]
            and sep_low > 0
            and drop["value"] >= p["min_separability_drop"]
            and drop["ci_low"] > 0
            and excess["value"] >= p["min_separability_drop"]
            and excess["ci_low"] > 0
        ):
            return None
        names = ", ".join(t["feature"] for t in clf["top_features"][:3])
        msg = (
            f"No single attribute is a shortcut on its own, but together they are: {clf_text} Training "
            f"separability drops by {drop['value']:.2f} [{drop['ci_low']:.2f}, {drop['ci_high']:.2f}] on "
            f"validation. The classifier leans most on {names}."
        )
        sev = Severity.FAIL if drop["value"] >= p["fail_separability_drop"] else Severity.WARN
        return self.finding(
            "GD101",
            sev,
            msg,
            evidence={"classifier": clf},
            figures=["shortcut_auc"],
            cause="artifact:combination",
        )
