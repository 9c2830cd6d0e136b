"""GD102 — model reliance: does the model's score follow the spurious attribute that GD101 names?"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ...data import stratified_pair_indices
from ...errors import GapdiagError
from ...findings.finding import Finding, Severity
from ...stats import Estimate, bonferroni_z, estimate_from_draws, wilson
from ..base import FigureSpec, Measurement, Param, Probe
from ..registry import register_probe
from .signal import feature_rows, lead_of, shortcut_candidates
from .wording import describe, direction_words, plain_name

if TYPE_CHECKING:
    import torch

    from ...context import AuditContext

__all__ = ["RelianceProbe", "spearman_with_ci", "transplant"]

_MAX_PANELS = 3  # interventions shown in the score histogram
_MAX_ROWS = 5  # rows of the thumbnail figure: the pairs as given, then one per intervention
_THUMB_PAIRS = 4


def _unknown_interventions(mapping: dict[str, Any]) -> str | None:
    """Why ``probes.reliance.interventions`` cannot be used, or None (checked when the probe is built)."""
    from .attributes import list_interventions

    unknown = {a: iv for a, iv in mapping.items() if iv not in list_interventions()}
    if not unknown:
        return None
    attr, iv = next(iter(unknown.items()))
    return (
        f"[{attr!r}] names unknown intervention {iv!r}; registered: {', '.join(list_interventions())}. Register "
        "yours with gapdiag.probes.leakage.attributes.register_intervention."
    )


def spearman_with_ci(x: np.ndarray, y: np.ndarray, *, z: float, level: float) -> Estimate | None:
    """Spearman correlation of ``x`` and ``y`` (n,) with a Fisher-z interval (Fieller's SE sqrt(1.06/(n-3))).

    ``z`` is the normal quantile of the interval (pass a multiplicity-adjusted one). None when fewer than 10
    finite pairs or either variable is constant.
    """
    from scipy.stats import rankdata

    ok = np.isfinite(x) & np.isfinite(y)
    n = int(ok.sum())
    if n < 10:
        return None
    rx, ry = rankdata(x[ok]), rankdata(y[ok])
    if rx.std() == 0 or ry.std() == 0:
        return None
    r = float(np.corrcoef(rx, ry)[0, 1])
    se = np.sqrt(1.06 / (n - 3))
    fz = np.arctanh(np.clip(r, -0.999999, 0.999999))
    return Estimate(r, float(np.tanh(fz - z * se)), float(np.tanh(fz + z * se)), n, level)


def transplant(
    name: str,
    targets: tuple[torch.Tensor, torch.Tensor],
    sources: tuple[torch.Tensor, torch.Tensor] | None,
    reference: torch.Tensor,
    assignment: np.ndarray,
    *,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Transplant the attribute of source pairs onto target pairs with intervention ``name``.

    Parameters
    ----------
    targets : (left (P, ...), right (P, ...))
        Validation pairs; both images of a pair get the same intervention.
    sources : (left (K, ...), right (K, ...)) or None
        Training pairs. Source k's parameters are ``fit_intervention(name, source=its two images,
        reference=reference)``: what moves a typical validation item to that pair's level (its colour
        cast, brightness, position...). None applies the intervention's default parameters (an
        intervention without an estimator).
    reference : (R, ...)
        Validation items: the level the parameters are measured from.
    assignment : ndarray (P,) int
        The source pair of each target pair (0..K-1).

    Returns
    -------
    left, right : tensors of the targets' shapes
    ok : ndarray (P,) bool
        False where the fit or the intervention refused (e.g. a constant image for contrast); those pairs
        are left unchanged and out of the statistics.
    """
    import torch

    from .attributes import apply_intervention, fit_intervention

    left, right = targets
    out_l, out_r = left.clone(), right.clone()
    ok = np.ones(left.shape[0], dtype=bool)
    n_src = 1 if sources is None else sources[0].shape[0]
    for k in range(n_src):
        rows = np.flatnonzero(assignment == k) if sources is not None else np.arange(left.shape[0])
        if rows.size == 0:
            continue
        idx = torch.from_numpy(rows)
        batch = torch.cat([left[idx], right[idx]])
        try:
            params = None
            if sources is not None:
                params = fit_intervention(name, torch.stack([sources[0][k], sources[1][k]]), reference)
            moved = apply_intervention(name, batch, params, rng=rng)
        except GapdiagError:
            ok[rows] = False
            continue
        out_l[idx], out_r[idx] = moved[: rows.size], moved[rows.size :]
    return out_l, out_r, ok


def _paired_mean_diff(
    a: np.ndarray, b: np.ndarray, *, rng, n_boot: int, level: float, z: float | None = None
):
    """mean(a - b) over paired units (n,), percentile bootstrap (or normal with ``z`` for adjusted CIs)."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = d.size
    if n == 0:
        return Estimate.unknown(0, level)
    boot = d[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    if z is None:
        return estimate_from_draws(float(d.mean()), boot, n, level)
    se = float(boot.std(ddof=1))
    return Estimate(float(d.mean()), float(d.mean() - z * se), float(d.mean() + z * se), n, level)


@register_probe
class RelianceProbe(Probe):
    """GD102: does the model's score follow the attribute GD101 flags?

    For each attribute that the ``shortcut`` probe flags (with its configured thresholds; the measurement is
    shared through ``ctx.memo``), plus every attribute the user maps to an intervention in
    ``interventions``:

    1. Within-label correlation on the training pairs GD101 used: Spearman correlation between the model's
       oriented score (higher = more similar) and the attribute's pair feature, among positive and among
       negative pairs separately (so identity cannot explain it), with Fisher-z intervals simultaneous over
       all correlations (Bonferroni). Range [-1, 1], 0 = the score ignores the attribute.
    2. A counterfactual on ``n_pairs`` validation pairs (half positive, half negative): each pair gets the
       attribute of a random *positive* training pair (one of ``n_sources``) transplanted onto both its
       images, with the intervention matched to the attribute (tint / channel shift, brightness, contrast,
       translation, blur, scale, or the user's). Its parameters are fitted per source pair with
       ``fit_intervention(source=the pair's two images, reference=n_reference validation items)``: the
       change that brings a typical validation item to that training pair's level, so a random colour per
       pair stays a random colour per pair. As a control, the same transplant from a random *negative*
       training pair (the same kind and size of perturbation, without the label association). Both are
       re-embedded (``ctx.embed_new``) and scored. Reported: the flip rate of
       decisions at the decision threshold (transplant and control, Wilson CIs) and their difference,
       the *excess flip rate* in [-1, 1] (paired bootstrap); the false-accept rate of negative pairs and the
       accept rate of positive pairs before/after; the mean score shift in units of the validation score SD,
       transplant minus control.

    Emits GD102 per intervention when the excess flip rate is at least ``min_flip_excess`` with its CI
    (simultaneous over the interventions tested) above ``null_flip_excess``, or the excess score shift is
    at least ``min_score_shift`` SDs with its CI excluding 0 (warn; fail when the excess flip rate reaches
    ``fail_flip_excess``). For attributes no intervention can move (a user's ``scanner`` column), GD102 is
    raised from the correlation alone (|rho| >= ``min_correlation``, CI excluding 0) as a warning that says
    the evidence is correlational.
    """

    name = "reliance"
    family = "leakage"
    codes = ("GD102",)
    requires = frozenset({"model", "train_inputs", "val_inputs", "train_pairs_any", "val_pairs_any"})
    description = "Counterfactual test: does moving only the flagged attribute flip the model's decisions?"
    defaults = {
        "n_pairs": 300,  # validation pairs re-embedded per intervention (x 4 images: transplant and control)
        "n_sources": 50,  # distinct training pairs whose attribute is transplanted (per arm)
        "n_reference": 64,  # validation items that define the validation level of the attribute
        "max_interventions": 4,  # the strongest GD101 artifacts first
        # {attribute column: registered intervention}, overrides the built-in choice
        "interventions": Param({}, check=_unknown_interventions),
        # decisions flipped by the transplant beyond those flipped by the control transplant
        "min_flip_excess": 0.1,
        "null_flip_excess": 0.02,  # the CI must clear this small null (not just 0)
        "fail_flip_excess": 0.25,
        "min_score_shift": 0.5,  # excess mean score shift, in SDs of the validation pair scores
        "min_correlation": 0.3,  # |Spearman| for the correlation-only case (no intervention)
    }

    def _measure(self, ctx: AuditContext) -> Measurement:
        import torch

        from .attributes import get_intervention, intervention_for_attribute

        level = float(ctx.option("ci_level"))
        n_boot = int(ctx.option("n_boot"))
        user_map = dict(self.params["interventions"] or {})
        res, flagged = shortcut_candidates(ctx)
        rows = {r["feature"]: r for r in feature_rows(res, level=level)}
        candidates = list(flagged)
        seen = {r["attribute"] for r in candidates}
        missing: list[str] = []
        for attr in user_map:
            if attr in seen:
                continue
            options = [r for r in rows.values() if r["attribute"] == attr and r["compared"]]
            if options:  # the user asked for it: test it whether or not GD101 flags it
                candidates.append(lead_of(options))
                seen.add(attr)
            else:
                missing.append(attr)
        m = Measurement()
        if missing:
            m.notes.append(
                f"probes.reliance.interventions names attribute(s) {', '.join(map(repr, missing))} that both splits do "
                "not have; not tested."
            )
        m.metrics["candidates"] = [r["feature"] for r in candidates]
        m.metrics["n_candidates_flagged_by_gd101"] = len(flagged)
        if not candidates:
            m.notes.append("GD101 flags no attribute, so there is no shortcut to test the model against.")
            m.evidence["tests"] = []
            return m

        # --- 1. within-label correlations on the training pairs GD101 used --------------------------
        pairs_tr = ctx.pairs("train")
        score_tr = ctx.pair_scores("train")[res.sample["train"]]
        y_tr = res.label["train"] == 1
        z_corr = bonferroni_z(level, 2 * len(candidates))
        correlations = {}
        for r in candidates:
            v = res.table["train"][r["feature"]].to_numpy(dtype=np.float64, na_value=np.nan)
            correlations[r["feature"]] = {
                grp: spearman_with_ci(v[mask], score_tr[mask], z=z_corr, level=level)
                for grp, mask in (("positive", y_tr), ("negative", ~y_tr))
            }

        # --- 2. counterfactuals, one per intervention ------------------------------------------------
        train_items = ctx.train.items
        probe_batch = train_items.get_batch(np.array([0]))
        plan: dict[str, list[dict[str, Any]]] = {}
        no_intervention = []
        for r in candidates:
            attr = r["attribute"]
            names = [user_map[attr]] if attr in user_map else intervention_for_attribute(attr)
            usable = [n for n in names if get_intervention(n).applies_to(probe_batch)]
            if not usable:
                no_intervention.append(r)
                continue
            plan.setdefault(usable[0], []).append(r)
        order = sorted(plan, key=lambda k: -max(r["drop"].value for r in plan[k]))
        skipped = order[self.params["max_interventions"] :]
        order = order[: self.params["max_interventions"]]
        if skipped:
            m.notes.append(f"Interventions not tested (max_interventions): {', '.join(skipped)}.")

        pairs_va = ctx.pairs("val")
        rng = ctx.rng("reliance.sample")
        sel = stratified_pair_indices(pairs_va.label, int(self.params["n_pairs"]), rng)
        pos_tr, neg_tr = np.flatnonzero(pairs_tr.label == 1), np.flatnonzero(pairs_tr.label == 0)
        n_src = int(self.params["n_sources"])
        src_pos = rng.choice(pos_tr, min(n_src, pos_tr.size), replace=False)
        src_neg = rng.choice(neg_tr, min(n_src, neg_tr.size), replace=False) if neg_tr.size else None
        assign = {
            "transplant": rng.integers(0, src_pos.size, sel.size),
            "control": rng.integers(0, src_neg.size, sel.size) if src_neg is not None else None,
        }
        val_items = ctx.val.items
        targets = (val_items.get_batch(pairs_va.left[sel]), val_items.get_batch(pairs_va.right[sel]))
        ref_idx = np.unique(np.concatenate([pairs_va.left[sel], pairs_va.right[sel]]))
        ref_idx = np.sort(
            rng.choice(ref_idx, min(int(self.params["n_reference"]), ref_idx.size), replace=False)
        )
        reference = val_items.get_batch(ref_idx)
        before = ctx.pair_scores("val")[sel]
        all_val = ctx.pair_scores("val")
        sd = float(np.std(all_val)) or 1.0
        thr, thr_origin = ctx.decision_threshold()
        y_va = pairs_va.label[sel] == 1
        z_iv = bonferroni_z(level, max(len(order), 1))

        tests = []
        for iv in order:
            spec = get_intervention(iv)
            fitted = spec.fit is not None
            out = {
                "intervention": iv,
                "attributes": [r["feature"] for r in plan[iv]],
                "fitted_per_pair": fitted,
            }
            scores = {}
            valid = np.ones(sel.size, dtype=bool)
            for arm, src in (("transplant", src_pos), ("control", src_neg)):
                if arm == "control" and (not fitted or src is None):
                    scores[arm] = before.copy()  # no estimator: the control is no change at all
                    continue
                sources = None
                if fitted:
                    sources = (
                        train_items.get_batch(pairs_tr.left[src]),
                        train_items.get_batch(pairs_tr.right[src]),
                    )
                new_l, new_r, ok = transplant(
                    iv, targets, sources, reference, assign[arm], rng=ctx.rng(f"reliance.{iv}.{arm}")
                )
                valid &= ok
                emb = ctx.embed_new(torch.cat([new_l, new_r]))
                k = new_l.shape[0]
                scores[arm] = ctx.scorer.orient(ctx.raw_scores_of(emb[:k], emb[k:]))
                if arm == "transplant":
                    out["_images"] = (new_l[:_THUMB_PAIRS], new_r[:_THUMB_PAIRS])
            if not valid.any():
                m.notes.append(f"Intervention {iv} could not be applied to any sampled pair; not tested.")
                continue
            out.update(
                self._effects(
                    scores,
                    before,
                    thr,
                    sd,
                    y_va,
                    valid,
                    rng=ctx.rng(f"reliance.boot.{iv}"),
                    n_boot=n_boot,
                    level=level,
                    z=z_iv,
                )
            )
            out["_scores"] = {
                "before": before[valid],
                **{k: v[valid] for k, v in scores.items()},
                "label": y_va[valid],
            }
            tests.append(out)

        m.metrics.update(
            {
                "n_pairs": int(sel.size),
                "decision_threshold": float(thr),
                "threshold_origin": thr_origin,
                "val_score_sd": sd,
                "interventions_tested": [t["intervention"] for t in tests],
                "multiplicity": f"Bonferroni over {len(order)} interventions and {2 * len(candidates)} correlations",
            }
        )
        descriptions = {r["attribute"]: describe(r["attribute"], res.attributes["train"]) for r in candidates}
        m.evidence["correlations"] = {
            f: {g: (e.to_dict() if e is not None else None) for g, e in c.items()}
            for f, c in correlations.items()
        }
        m.evidence["_correlations"] = correlations
        m.evidence["_candidates"] = candidates
        m.evidence["_no_intervention"] = no_intervention
        m.evidence["descriptions"] = descriptions
        m.evidence["tests"] = tests
        tests.sort(key=lambda t: -t["_flip_excess"].value)
        if tests:
            m.figures.append(self._hist(tests, thr))
            fig = self._thumbs(ctx, pairs_va, sel, tests)
            if fig is not None:
                m.figures.append(fig)
        for t in tests:
            t.pop("_scores", None)
            t.pop("_images", None)
        m.evidence["figure_ids"] = [f.id for f in m.figures]
        return m

    # -- statistics ---------------------------------------------------------------------------------
    @staticmethod
    def _effects(scores, before, thr, sd, y, valid, *, rng, n_boot, level, z) -> dict[str, Any]:
        b = before[valid]
        yv = y[valid]
        acc_b = b >= thr
        out: dict[str, Any] = {"n_pairs": int(valid.sum())}
        flips, shifts, accepts = {}, {}, {}
        for arm in ("transplant", "control"):
            a = scores[arm][valid]
            acc = a >= thr
            flips[arm] = (acc != acc_b).astype(float)
            shifts[arm] = (a - b) / sd
            accepts[arm] = acc.astype(float)
            out[f"flip_rate_{arm}"] = wilson(int(flips[arm].sum()), flips[arm].size, level).to_dict()
            out[f"score_shift_{arm}"] = _paired_mean_diff(
                shifts[arm], np.zeros_like(shifts[arm]), rng=rng, n_boot=n_boot, level=level
            ).to_dict()
        out["_flip_excess"] = _paired_mean_diff(
            flips["transplant"], flips["control"], rng=rng, n_boot=n_boot, level=level, z=z
        )
        out["_shift_excess"] = _paired_mean_diff(
            shifts["transplant"], shifts["control"], rng=rng, n_boot=n_boot, level=level, z=z
        )
        out["flip_excess_adjusted"] = out["_flip_excess"].to_dict()
        out["score_shift_excess_adjusted"] = out["_shift_excess"].to_dict()
        for grp, mask, what in (("negative", ~yv, "false_accept_rate"), ("positive", yv, "accept_rate")):
            if not mask.any():
                continue
            n = int(mask.sum())
            out[f"{what}_{grp}"] = {
                "before": wilson(int(acc_b[mask].sum()), n, level).to_dict(),
                "transplant": wilson(int(accepts["transplant"][mask].sum()), n, level).to_dict(),
                "control": wilson(int(accepts["control"][mask].sum()), n, level).to_dict(),
                "excess": _paired_mean_diff(
                    accepts["transplant"][mask], accepts["control"][mask], rng=rng, n_boot=n_boot, level=level
                ).to_dict(),
            }
        return out

    # -- figures ------------------------------------------------------------------------------------
    @staticmethod
    def _hist(tests: list[dict[str, Any]], thr: float) -> FigureSpec:
        """Scores of the sampled validation pairs before and after each transplant (negatives: false accepts)."""
        panels = []
        groups = (("negative", False), ("positive", True)) if len(tests) == 1 else (("negative", False),)
        for t in tests[:_MAX_PANELS]:
            s = t["_scores"]
            for grp, want in groups:
                mask = s["label"] == want
                if not mask.any():
                    continue
                panels.append(
                    {
                        "title": f"'{t['intervention']}': validation {grp} pairs",
                        "series": {
                            "original": np.round(s["before"][mask], 5).tolist(),
                            "attribute transplanted": np.round(s["transplant"][mask], 5).tolist(),
                            "control transplant": np.round(s["control"][mask], 5).tolist(),
                        },
                        "vlines": {"decision threshold": float(thr)},
                    }
                )
        return FigureSpec(
            id="reliance_scores",
            kind="hist",
            title="Counterfactual: validation pair scores before and after the transplant",
            data={"panels": panels, "xlabel": "oriented score (higher = more similar)"},
            caption=(
                "The attribute of positive training pairs transplanted onto both images of validation pairs, vs a "
                "control transplant from negative training pairs. Negative pairs pushed past the threshold are "
                "false accepts caused by the attribute alone."
            ),
        )

    @staticmethod
    def _thumbs(ctx, pairs_va, sel, tests: list[dict[str, Any]]) -> FigureSpec | None:
        """A few validation pairs as given and after each transplant (one row each)."""
        import torch

        from ...thumbnails import thumbnails

        k = _THUMB_PAIRS
        items = ctx.val.items
        orig = items.get_batch(
            np.stack([pairs_va.left[sel[:k]], pairs_va.right[sel[:k]]], axis=1).reshape(-1)
        )
        moved = [
            torch.stack([t["_images"][0][:k], t["_images"][1][:k]], dim=1).reshape(-1, *orig.shape[1:])
            for t in tests[: _MAX_ROWS - 1]
        ]
        both = torch.cat([orig, *moved])
        lo, hi = float(both.min()), float(both.max())
        rows = [{"caption": "validation pairs as given", "images": thumbnails(orig, lo=lo, hi=hi)}]
        for t, x in zip(tests, moved):
            rows.append(
                {
                    "caption": f"the same pairs with the '{t['intervention']}' of positive training pairs",
                    "images": thumbnails(x, lo=lo, hi=hi),
                }
            )
        if any(r["images"] is None for r in rows):
            return None
        return FigureSpec(
            id="reliance_pairs",
            kind="images",
            title="Validation pairs before and after each transplant",
            data={"rows": rows},
            caption="Each row shows the same pairs side by side (left image, right image, next pair...).",
        )

    # -- judgement ----------------------------------------------------------------------------------
    def _judge(self, m: Measurement) -> list[Finding]:
        p = self.params
        findings: list[Finding] = []
        tests = m.evidence.get("tests", [])
        correlations = m.evidence.pop("_correlations", {})
        candidates = m.evidence.pop("_candidates", [])
        no_iv = m.evidence.pop("_no_intervention", [])
        descriptions = m.evidence.get("descriptions", {})
        by_feature = {r["feature"]: r for r in candidates}
        thr_origin = m.metrics.get("threshold_origin", "")
        for t in tests:
            flip, shift = t.pop("_flip_excess"), t.pop("_shift_excess")
            flips = flip.value >= p["min_flip_excess"] and flip.low > p["null_flip_excess"]
            shifts = abs(shift.value) >= p["min_score_shift"] and shift.excludes(0.0)
            if not (flips or shifts):
                continue
            sev = Severity.FAIL if flip.value >= p["fail_flip_excess"] and flips else Severity.WARN
            group = [by_feature[a] for a in t["attributes"] if a in by_feature]
            lead = lead_of(group) if group else None
            attr = lead["attribute"] if lead else t["attributes"][0]
            ft, fc = t["flip_rate_transplant"], t["flip_rate_control"]
            msg = (
                f"The model's decisions follow the {plain_name(attr)}: transplanting the {t['intervention']} of positive training "
                f"pairs onto both items of {t['n_pairs']} validation pairs flips {ft['value']:.0%} "
                f"[{ft['ci_low']:.0%}, {ft['ci_high']:.0%}] of decisions at the decision threshold ({thr_origin.split(' (')[0]}), against "
                f"{fc['value']:.0%} [{fc['ci_low']:.0%}, {fc['ci_high']:.0%}] for a control transplant from negative "
                f"training pairs: an excess of {flip.value:.0%} [{flip.low:.0%}, {flip.high:.0%}] (threshold "
                f"{p['min_flip_excess']:.0%})."
            )
            fa = t.get("false_accept_rate_negative")
            if fa:
                msg += (
                    f" On validation negative pairs the false-accept rate goes from {fa['before']['value']:.0%} to "
                    f"{fa['transplant']['value']:.0%} (control {fa['control']['value']:.0%})."
                )
            pa = t.get("accept_rate_positive")
            if pa:
                msg += (
                    f" On positive pairs the accept rate goes from {pa['before']['value']:.0%} to "
                    f"{pa['transplant']['value']:.0%} (control {pa['control']['value']:.0%})."
                )
            msg += (
                f" Mean score shift beyond the control: {shift.value:+.2f} [{shift.low:+.2f}, {shift.high:+.2f}] "
                "validation-score SDs."
            )
            if lead:
                msg += f" (GD101: {direction_words(lead)}.)"
            corr_text = self._corr_text(t["attributes"], correlations)
            if corr_text:
                msg += f" {corr_text}"
            evidence = {k: v for k, v in t.items() if not k.startswith("_")}
            evidence["description"] = descriptions.get(attr, "")
            evidence["correlations"] = m.evidence.get("correlations", {})
            figs = [f for f in ("reliance_scores", "reliance_pairs") if f in m.evidence.get("figure_ids", [])]
            findings.append(self.finding("GD102", sev, msg, evidence=evidence, figures=figs))
        for f in findings[1:]:  # the report draws a finding's figures inline: show the shared ones once
            f.figures = []
        for r in no_iv:
            c = correlations.get(r["feature"], {})
            strong = [
                (g, e)
                for g, e in c.items()
                if e is not None and abs(e.value) >= p["min_correlation"] and e.excludes(0.0)
            ]
            if not strong:
                continue
            g, e = max(strong, key=lambda ge: abs(ge[1].value))
            msg = (
                f"Among {g} training pairs the model's score follows {r['feature']}: Spearman {e:.2f} over {e.n} "
                f"pairs (CI simultaneous over the correlations tested; threshold |rho| >= {p['min_correlation']}). "
                f"No intervention can move {r['attribute']}, so this is correlational evidence, not a counterfactual "
                f"test (register one with gapdiag.probes.leakage.attributes.register_intervention and map it in "
                f"probes.reliance.interventions). (GD101: {direction_words(r)}.)"
            )
            findings.append(
                self.finding(
                    "GD102",
                    Severity.WARN,
                    msg,
                    evidence={
                        "feature": r["feature"],
                        "correlations": m.evidence.get("correlations", {}).get(r["feature"]),
                    },
                )
            )
        return findings

    @staticmethod
    def _corr_text(features: list[str], correlations: dict[str, dict[str, Estimate | None]]) -> str:
        best = None
        for f in features:
            for g, e in correlations.get(f, {}).items():
                if e is not None and (best is None or abs(e.value) > abs(best[2].value)):
                    best = (f, g, e)
        if best is None:
            return ""
        f, g, e = best
        return f"Within {g} training pairs the score's Spearman correlation with {f} is {e:.2f} (n = {e.n})."
