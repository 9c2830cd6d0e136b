"""GD102 — model reliance: does the model's score follow the spurious attribute that GD101 names?"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ...data import stratified_pair_indices
from ...findings.finding import Finding, Severity
from ...stats import Estimate, bonferroni_z
from ..base import FigureSpec, Measurement, Param, Probe
from ..registry import register_probe
from .candidates import shortcut_candidates
from .counterfactual import Test, effects, place_mask, plan_tests, spearman_with_ci, transplant
from .wording import describe, direction_words, name_of

if TYPE_CHECKING:
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


@register_probe
class RelianceProbe(Probe):
    """GD102: does the model's score follow the artifact GD101 flags?

    For each artifact that the ``shortcut`` probe flags (with its configured thresholds; the artifacts are the
    shared ``SHORTCUT_CANDIDATES`` of the context), plus every attribute the user maps to an intervention in
    ``interventions``:

    1. Within-label correlation on the training pairs GD101 used: Spearman correlation between the model's
       oriented score (higher = more similar) and each flagged pair feature of the artifact, among positive and
       among negative pairs separately (so identity cannot explain it), with Fisher-z intervals simultaneous
       over all correlations (Bonferroni). Range [-1, 1], 0 = the score ignores the attribute.
    2. A counterfactual on ``n_pairs`` validation pairs (half positive, half negative): each pair gets the
       artifact of a random *positive* training pair (one of ``n_sources``) transplanted onto both its
       items, with the intervention that moves it: the user's mapping, else the catalogue-free column's own
       (the pixels of the flagged image regions, the values of signal segments or the power of a
       frequency band, the sequence length, the value of a feature), else the catalogue's (tint / channel
       shift, brightness, contrast, translation, blur, scale). Catalogue interventions are fitted per source
       pair with ``fit_intervention(source=the pair's two items, reference=n_reference validation items)``:
       the change that brings a typical validation item to that training pair's level, so a random colour per
       pair stays a random colour per pair; catalogue-free ones are fitted per side (the left item of the
       source onto the left item of the target), so "both items carry the stamp" is transplanted as it is.
       As a control, the same transplant from a random *negative* training pair (the same kind and size of
       perturbation, without the label association). Both are re-embedded (``ctx.embed_new``) and scored.
       Reported: the flip rate of decisions at the decision threshold (transplant and control, Wilson CIs)
       and their difference, the *excess flip rate* in [-1, 1] (paired bootstrap); the false-accept rate of
       negative pairs and the accept rate of positive pairs before/after; the mean score shift in units of
       the validation score SD, transplant minus control.
       Unless the user mapped the artifact, up to three interventions are tried on it: the one above, the
       catalogue-free columns' own when a named nuisance led (a fixed noise pattern also reads as a tint),
       and a region transplant point by point when the place's features include a spread (a texture has no
       level to move). All count in the multiplicity; the one that moves the most decisions is reported.

    Emits GD102 per artifact (with the ``cause`` of its GD101 finding) when the excess flip rate is at least
    ``min_flip_excess`` with its CI (simultaneous over the interventions tested) above ``null_flip_excess``,
    or the excess score shift is at least ``min_score_shift`` SDs with its CI excluding 0 (warn; fail when
    the excess flip rate reaches ``fail_flip_excess``). For artifacts no intervention can move (a user's
    ``scanner`` column, the token overlap of two sequences), GD102 is raised from the correlation alone
    (|rho| >= ``min_correlation``, CI excluding 0) as a warning that says the evidence is correlational.
    """

    name = "reliance"
    concurrent = True
    family = "leakage"
    codes = ("GD102",)
    requires = frozenset({"model", "train_inputs", "val_inputs", "train_pairs_any", "val_pairs_any"})
    description = "Counterfactual test: does moving only the flagged artifact flip the model's decisions?"
    defaults = {
        "n_pairs": 300,  # validation pairs re-embedded per intervention (x 4 items: transplant and control)
        "n_sources": 50,  # distinct training pairs whose attribute is transplanted (per arm)
        "n_reference": 64,  # validation items that define the validation level of the attribute
        "max_interventions": 4,  # artifacts tested, the strongest GD101 artifacts first (up to 3 interventions each)
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
        level = float(ctx.option("ci_level"))
        res, rows, candidates = shortcut_candidates(ctx)
        batch = ctx.train.items.get_batch(np.array([0]))
        tests, no_iv, missing = plan_tests(
            candidates, rows, dict(self.params["interventions"] or {}), res.layout, batch
        )
        m = Measurement()
        if missing:
            m.notes.append(
                f"probes.reliance.interventions names attribute(s) {', '.join(map(repr, missing))} that both splits do "
                "not have; not tested."
            )
        m.metrics["candidates"] = [t.lead["feature"] for t in tests] + [r["feature"] for r in no_iv]
        m.metrics["n_candidates_flagged_by_gd101"] = len(candidates)
        m.evidence["tests"] = []
        if not tests and not no_iv:
            m.notes.append("GD101 flags no attribute, so there is no shortcut to test the model against.")
            return m
        correlated = [r for t in tests for r in t.rows] + no_iv
        correlations = self._correlations(ctx, res, correlated, level)
        causes = list(dict.fromkeys(t.cause for t in tests))[: int(self.params["max_interventions"])]
        run, left_out = [t for t in tests if t.cause in causes], [t for t in tests if t.cause not in causes]
        if left_out:
            m.notes.append(
                "Artifacts not tested (max_interventions): "
                + ", ".join(f"{name_of(t.lead)} ({t.intervention})" for t in left_out)
                + "."
            )
        setup = self._setup(ctx)
        z_iv = bonferroni_z(level, max(len(run), 1))
        for t in run:
            self._narrow(ctx, res, t, level)
            out = self._run_counterfactual(ctx, setup, t, z_iv, level)
            if out is None:
                m.notes.append(
                    f"Intervention {t.intervention} could not be applied to any sampled pair; not tested."
                )
            else:
                m.evidence["tests"].append(out)
        self._record(m, ctx, res, setup, correlations, correlated, no_iv, len(run))
        return m

    # -- measurement helpers ------------------------------------------------------------------------
    @staticmethod
    def _correlations(ctx: AuditContext, res, rows: list[dict[str, Any]], level: float) -> dict[str, dict]:
        """Within-label Spearman correlations of the score with each feature on the training pairs GD101 used."""
        score = ctx.pair_scores("train")[res.sample["train"]]
        y = res.label["train"] == 1
        z = bonferroni_z(level, 2 * max(len(rows), 1))
        out = {}
        for r in rows:
            v = res.table["train"][r["feature"]].to_numpy(dtype=np.float64, na_value=np.nan)
            out[r["feature"]] = {
                grp: spearman_with_ci(v[mask], score[mask], z=z, level=level)
                for grp, mask in (("positive", y), ("negative", ~y))
            }
        return out

    @staticmethod
    def _narrow(ctx: AuditContext, res, t: Test, level: float) -> None:
        """A transplanted place narrowed to the pixels where the artifact is (see ``place_mask``), read from at most
        256 items of positive and of negative training pairs of GD101's sample."""
        if t.intervention != "region_transplant":
            return
        pairs, sample, y = ctx.pairs("train"), res.sample["train"], res.label["train"] == 1

        def items(rows: np.ndarray):
            idx = np.unique(np.concatenate([pairs.left[rows], pairs.right[rows]]))[:256]
            return pairs.items.get_batch(idx)

        mask = place_mask(
            t.intervention, t.bound, items(sample[y][:128]), items(sample[~y][:128]), level=level
        )
        if mask is not None:
            t.bound["mask"] = mask

    def _setup(self, ctx: AuditContext) -> dict[str, Any]:
        """What every counterfactual shares: the validation pairs, the source pairs of both arms, the reference."""
        pairs_tr, pairs_va = ctx.pairs("train"), ctx.pairs("val")
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
        val_items, train_items = ctx.val.items, ctx.train.items
        ref_idx = np.unique(np.concatenate([pairs_va.left[sel], pairs_va.right[sel]]))
        ref_idx = np.sort(
            rng.choice(ref_idx, min(int(self.params["n_reference"]), ref_idx.size), replace=False)
        )
        thr, thr_origin = ctx.decision_threshold()

        def sources(src):
            return (train_items.get_batch(pairs_tr.left[src]), train_items.get_batch(pairs_tr.right[src]))

        return {
            "sel": sel,
            "pairs_va": pairs_va,
            "sources": {
                "transplant": sources(src_pos),
                "control": sources(src_neg) if src_neg is not None else None,
            },
            "assign": assign,
            "targets": (val_items.get_batch(pairs_va.left[sel]), val_items.get_batch(pairs_va.right[sel])),
            "reference": val_items.get_batch(ref_idx),
            "before": ctx.pair_scores("val")[sel],
            "sd": float(np.std(ctx.pair_scores("val"))) or 1.0,
            "thr": thr,
            "thr_origin": thr_origin,
            "y": pairs_va.label[sel] == 1,
        }

    def _run_counterfactual(
        self, ctx: AuditContext, s: dict[str, Any], t: Test, z: float, level: float
    ) -> dict[str, Any] | None:
        """One counterfactual: transplant and control arms re-embedded and scored, then their effects."""
        import torch

        from .attributes import get_intervention

        fitted = get_intervention(t.intervention).fit is not None
        out: dict[str, Any] = {
            "intervention": t.intervention,
            "attributes": [r["feature"] for r in t.rows],
            "place": t.place,
            "bound": {k: v for k, v in t.bound.items() if k != "mask"},
            "transplanted_positions": int(np.sum(t.bound["mask"])) if "mask" in t.bound else None,
            "fitted_per_pair": fitted,
            "cause": t.cause,
        }
        scores, valid = {}, np.ones(s["sel"].size, dtype=bool)
        for arm in ("transplant", "control"):
            src = s["sources"][arm]
            if arm == "control" and (not fitted or src is None):
                scores[arm] = s["before"].copy()  # no estimator: the control is no change at all
                continue
            new_l, new_r, ok = transplant(
                t.intervention, s["targets"], src if fitted else None, s["reference"], s["assign"][arm],
                rng=ctx.rng(f"reliance.{t.intervention}.{arm}"), bound=t.bound,
            )  # fmt: skip
            valid &= ok
            emb = ctx.embed_new(torch.cat([new_l, new_r]))
            k = new_l.shape[0]
            scores[arm] = ctx.scorer.orient(ctx.raw_scores_of(emb[:k], emb[k:]))
            if arm == "transplant":
                out["_images"] = (new_l[:_THUMB_PAIRS], new_r[:_THUMB_PAIRS])
        if not valid.any():
            return None
        rng = ctx.rng(f"reliance.boot.{t.intervention}")
        n_boot = int(ctx.option("n_boot"))
        out.update(
            effects(
                scores,
                s["before"],
                s["thr"],
                s["sd"],
                s["y"],
                valid,
                rng=rng,
                n_boot=n_boot,
                level=level,
                z=z,
            )
        )
        out["_scores"] = {
            "before": s["before"][valid],
            **{k: v[valid] for k, v in scores.items()},
            "label": s["y"][valid],
        }
        out["_lead"] = t.lead
        return out

    def _record(self, m, ctx, res, s, correlations, correlated, no_iv, n_tested) -> None:
        """Metrics, evidence and figures of the tests that ran."""
        tests = m.evidence["tests"]
        m.metrics.update(
            {
                "n_pairs": int(s["sel"].size),
                "decision_threshold": float(s["thr"]),
                "threshold_origin": s["thr_origin"],
                "val_score_sd": s["sd"],
                "interventions_tested": [t["intervention"] for t in tests],
                "multiplicity": f"Bonferroni over {n_tested} interventions and {2 * len(correlated)} correlations",
            }
        )
        m.evidence["descriptions"] = {
            r["attribute"]: describe(r["attribute"], res.attributes["train"]) for r in correlated
        }
        m.evidence["correlations"] = {
            f: {g: (e.to_dict() if e is not None else None) for g, e in c.items()}
            for f, c in correlations.items()
        }
        m.evidence["_correlations"] = correlations
        m.evidence["_no_intervention"] = no_iv
        tests.sort(key=lambda t: -t["_flip_excess"].value)
        if tests:
            m.figures.append(self._hist(tests, s["thr"]))
            fig = self._thumbs(ctx, s["pairs_va"], s["sel"], tests)
            if fig is not None:
                m.figures.append(fig)
        for t in tests:
            t.pop("_scores", None)
            t.pop("_images", None)
        m.evidence["figure_ids"] = [f.id for f in m.figures]

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
        correlations = m.evidence.pop("_correlations", {})
        no_iv = m.evidence.pop("_no_intervention", [])
        best: dict[str, tuple[float, Finding]] = {}  # per cause: one artifact, one finding
        for t in m.evidence.get("tests", []):
            flip, shift, lead = t.pop("_flip_excess"), t.pop("_shift_excess"), t.pop("_lead")
            flips = flip.value >= p["min_flip_excess"] and flip.low > p["null_flip_excess"]
            shifts = abs(shift.value) >= p["min_score_shift"] and shift.excludes(0.0)
            if flips or shifts:
                sev = Severity.FAIL if flip.value >= p["fail_flip_excess"] and flips else Severity.WARN
                found = self._test_finding(t, lead, flip, shift, sev, m, correlations)
                if found.cause not in best or flip.value > best[found.cause][0]:
                    best[found.cause] = (flip.value, found)  # the intervention that moves the most decisions
        # one artifact, one finding: of its interventions, the one that moves the most decisions speaks
        findings: list[Finding] = [f for _, f in best.values()]
        for f in findings[1:]:  # the report draws a finding's figures inline: show the shared ones once
            f.figures = []
        for r in no_iv:
            f = self._correlation_finding(r, correlations, m)
            if f is not None:
                findings.append(f)
        return findings

    def _test_finding(self, t, lead, flip, shift, sev, m, correlations) -> Finding:
        p = self.params
        ft, fc = t["flip_rate_transplant"], t["flip_rate_control"]
        thr_origin = m.metrics.get("threshold_origin", "").split(" (")[0]
        msg = (
            f"The model's decisions follow the {name_of(lead)}: transplanting {_what(t)} of positive training "
            f"pairs onto both items of {t['n_pairs']} validation pairs flips {ft['value']:.0%} "
            f"[{ft['ci_low']:.0%}, {ft['ci_high']:.0%}] of decisions at the decision threshold ({thr_origin}), "
            f"against {fc['value']:.0%} [{fc['ci_low']:.0%}, {fc['ci_high']:.0%}] for a control transplant from "
            f"negative training pairs: an excess of {flip.value:.0%} [{flip.low:.0%}, {flip.high:.0%}] (threshold "
            f"{p['min_flip_excess']:.0%})."
        )
        fa, pa = t.get("false_accept_rate_negative"), t.get("accept_rate_positive")
        if fa:
            msg += (
                f" On validation negative pairs the false-accept rate goes from {fa['before']['value']:.0%} to "
                f"{fa['transplant']['value']:.0%} (control {fa['control']['value']:.0%})."
            )
        if pa:
            msg += (
                f" On positive pairs the accept rate goes from {pa['before']['value']:.0%} to "
                f"{pa['transplant']['value']:.0%} (control {pa['control']['value']:.0%})."
            )
        msg += (
            f" Mean score shift beyond the control: {shift.value:+.2f} [{shift.low:+.2f}, {shift.high:+.2f}] "
            f"validation-score SDs. (GD101: {direction_words(lead)}.)"
        )
        corr_text = self._corr_text(t["attributes"], correlations)
        if corr_text:
            msg += f" {corr_text}"
        evidence = {k: v for k, v in t.items() if not k.startswith("_")}
        evidence["description"] = m.evidence.get("descriptions", {}).get(lead["attribute"], "")
        evidence["correlations"] = m.evidence.get("correlations", {})
        figs = [f for f in ("reliance_scores", "reliance_pairs") if f in m.evidence.get("figure_ids", [])]
        return self.finding("GD102", sev, msg, evidence=evidence, figures=figs, cause=t["cause"])

    def _correlation_finding(self, r, correlations, m) -> Finding | None:
        """GD102 from the within-label correlation alone, for an artifact no intervention moves."""
        p = self.params
        c = correlations.get(r["feature"], {})
        strong = [
            (g, e)
            for g, e in c.items()
            if e is not None and abs(e.value) >= p["min_correlation"] and e.excludes(0.0)
        ]
        if not strong:
            return None
        g, e = max(strong, key=lambda ge: abs(ge[1].value))
        msg = (
            f"Among {g} training pairs the model's score follows {name_of(r)} ({r['feature']}): Spearman {e:.2f} over "
            f"{e.n} pairs (CI simultaneous over the correlations tested; threshold |rho| >= {p['min_correlation']}). "
            f"No intervention can move {r['attribute']}, so this is correlational evidence, not a counterfactual "
            f"test (register one with gapdiag.probes.leakage.attributes.register_intervention and map it in "
            f"probes.reliance.interventions). (GD101: {direction_words(r)}.)"
        )
        evidence = {
            "feature": r["feature"],
            "correlations": m.evidence.get("correlations", {}).get(r["feature"]),
        }
        return self.finding(
            "GD102", Severity.WARN, msg, evidence=evidence, cause=f"artifact:{r['attribute']}"
        )

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


def _what(t: dict[str, Any]) -> str:
    """What a test's transplant moved, in words."""
    return Test("", {}, [], t["intervention"], t.get("bound") or {}, t.get("place", "")).what
