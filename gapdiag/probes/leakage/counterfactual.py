"""The counterfactual machinery of GD102: which intervention tests which artifact, the transplant, the statistics.

Not a probe: :mod:`.reliance` runs it. ``plan_tests`` picks, for each artifact GD101 flags, the intervention
that moves it (the user's mapping first, then the catalogue-free column's own intervention bound to its place,
then the catalogue's); ``transplant`` moves validation pairs to the level of training pairs; ``effects``
turns the re-scored pairs into flip rates and score shifts with their intervals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import GapdiagError
from ...stats import Estimate, estimate_from_draws, wilson
from .attributes import apply_intervention, fit_intervention, get_intervention, intervention_for_attribute
from .attributes.generic import Layout, merge_bound
from .candidates import Candidate, lead_of

if TYPE_CHECKING:
    import torch

__all__ = [
    "Test",
    "plan_tests",
    "place_mask",
    "transplant",
    "effects",
    "paired_mean_diff",
    "spearman_with_ci",
]


# what a catalogue-free intervention moves, in words, from the place it is bound to
_MOVES = {
    "region_transplant": "the level of {place}",
    "band_transplant": "the power in {place}",
    "sequence_length": "the sequence length",
    "token_count": "the {place}",
    "feature_value": "the value of {place}",
}


@dataclass
class Test:
    """One counterfactual: an artifact (``lead`` and its ``rows``), the intervention that moves it and its
    parameters bound to the artifact's place, and the ``cause`` GD101 gives it."""

    cause: str
    lead: dict[str, Any]
    rows: list[dict[str, Any]]
    intervention: str
    bound: dict[str, Any] = field(default_factory=dict)
    place: str = ""

    @property
    def what(self) -> str:
        """What the transplant moves, in words ("the pixels of the top-left 4x4 pixels (rows 0-3, ...)")."""
        if self.intervention == "region_transplant" and self.bound.get("mode") == "add":
            return f"the pattern of {self.place or 'the flagged place'}, point by point,"
        if self.intervention in _MOVES:
            return _MOVES[self.intervention].format(place=self.place or "the flagged place")
        return f"the {self.intervention}"


def _choose(
    rows: list[dict[str, Any]], user_map: dict[str, str], layout: Layout, batch
) -> tuple[str, dict] | None:
    """The intervention for an artifact's features (strongest first) and its bound parameters, or None."""
    for r in rows:
        attr = r["attribute"]
        if attr in user_map:
            return user_map[attr], {}
        col = layout.all_columns.get(attr)
        if col is not None:
            if col.intervention and get_intervention(col.intervention).applies_to(batch):
                same = [
                    layout.all_columns[x["attribute"]] for x in rows if x["attribute"] in layout.all_columns
                ]
                bound = merge_bound([c.bound for c in same if c.intervention == col.intervention])
                return col.intervention, bound
            continue
        usable = [n for n in intervention_for_attribute(attr) if get_intervention(n).applies_to(batch)]
        if usable:
            return usable[0], {}
    return None


def _variants(
    chosen: tuple[str, dict], members: list[dict[str, Any]], user_map: dict[str, str], layout: Layout, batch
) -> list[tuple[str, dict]]:
    """The interventions tried on one artifact: the chosen one, and what else could be the artifact.

    A named nuisance moving with an artifact need not be the artifact (a fixed noise pattern also reads as
    "less green"), so its catalogue-free features' own intervention is tried too; and a place whose features
    include a spread (a texture, a noise pattern) is also transplanted point by point, since moving its
    level cannot reproduce it. At most three, all counted in the multiplicity; the strongest proof speaks.
    """
    out = [chosen]
    if any(r["attribute"] in user_map for r in members):  # the user said how to move it
        return out
    generic = [r for r in members if r["attribute"] in layout.all_columns]
    alternative = _choose(generic, user_map, layout, batch)
    if alternative is not None and alternative[0] != chosen[0]:
        out.append(alternative)
    modes = {layout.all_columns[r["attribute"]].bound.get("mode") for r in generic}
    for name, bound in list(out):
        if bound.get("mode") == "mean" and "add" in modes:
            out.append((name, {**bound, "mode": "add"}))
    return out


def plan_tests(
    candidates: list[Candidate], rows: list[dict[str, Any]], user_map: dict[str, str], layout: Layout, batch
) -> tuple[list[Test], list[dict[str, Any]], list[str]]:
    """The counterfactuals to run, the artifacts no intervention moves, and the user's unknown attributes.

    Parameters
    ----------
    candidates : the artifacts GD101 flags, strongest first
    rows : every feature row of the signal (for the user's attributes GD101 does not flag)
    user_map : ``{attribute: intervention}`` from ``probes.reliance.interventions``
    layout : the catalogue-free columns of the audit
    batch : Tensor (1, ...) a training item in the user's dtype (to check which interventions apply)
    """
    tests, no_intervention = [], []
    seen = set()
    for c in candidates:
        members = [*c.flagged, *c.together]
        seen.update(r["attribute"] for r in members)
        chosen = _choose(members, user_map, layout, batch)
        if chosen is None:
            no_intervention.append(c.lead)
            continue
        for name, bound in _variants(chosen, members, user_map, layout, batch):
            tests.append(Test(c.cause, c.lead, c.flagged, name, bound, c.place))
    missing = []
    for attr, iv in user_map.items():
        if attr in seen:
            continue
        options = [r for r in rows if r["attribute"] == attr and r["compared"] and r["tested"]]
        if not options:  # the user asked for it: test it whether or not GD101 flags it
            missing.append(attr)
            continue
        lead = lead_of(options)
        tests.append(Test(f"artifact:{attr}", lead, [lead], iv, {}, lead.get("place", "")))
    return tests, no_intervention, missing


def place_mask(
    name: str, bound: dict[str, Any], positive: torch.Tensor, negative: torch.Tensor, *, level: float
) -> np.ndarray | None:
    """The points of a transplanted region where the artifact is: (H, W) or (L,) bool, or None.

    Within the boxes of a ``region_transplant`` (image pixels or signal positions), the points where items of
    positive training pairs ``positive`` (B1, ...) and of negative ones ``negative`` (B2, ...) differ on
    average: a two-sample z = |mean difference| / its standard error, largest over channels, at least the
    Bonferroni quantile of ``level`` over the region's points. Moving only those carries a faint pattern (a
    watermark, a click) without the source item's content around it, which would flip decisions in both arms
    alike. None (the whole region) for other interventions or when no point differs clearly.
    """
    from ...modality import is_image_like
    from ...stats import bonferroni_z

    if name != "region_transplant":
        return None
    a, b = positive.double(), negative.double()
    if a.ndim == (3 if is_image_like(a) else 2):  # no channel axis: add one
        a, b = a.unsqueeze(1), b.unsqueeze(1)
    se = (a.var(0) / a.shape[0] + b.var(0) / b.shape[0]).sqrt()
    diff = (a.mean(0) - b.mean(0)).abs()
    z = (diff / se.clamp(min=1e-12)).where(se > 0, (diff > 0).double() * float("inf")).amax(0).numpy()
    place = np.zeros(z.shape, dtype=bool)
    for box in bound.get("boxes", ()):
        place[tuple(slice(int(lo), int(hi)) for lo, hi in zip(box[::2], box[1::2], strict=True))] = True
    mask = place & (z >= bonferroni_z(level, max(int(place.sum()), 1)))
    return mask if mask.any() else None


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


def _like(moved: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``moved`` in the dtype of ``target`` (token ids and other integers rounded back)."""
    if target.is_floating_point():
        return moved.to(target.dtype)
    return moved.round().to(target.dtype)


def _move_rows(name, left, right, sources, k, reference, bound, rng):
    """Source pair k's intervention on target rows (left (r, ...), right (r, ...)): both sides fitted to the
    pair as a whole, or, for a per-side intervention, each side fitted to the same side of the source."""
    spec = get_intervention(name)
    if sources is None:
        moved = apply_intervention(name, _cat(left, right), dict(bound), rng=rng)
        return moved[: left.shape[0]], moved[left.shape[0] :]
    if spec.per_side:
        p_l = fit_intervention(name, sources[0][k : k + 1], reference, bound=bound)
        p_r = fit_intervention(name, sources[1][k : k + 1], reference, bound=bound)
        return apply_intervention(name, left, p_l, rng=rng), apply_intervention(name, right, p_r, rng=rng)
    import torch

    params = fit_intervention(name, torch.stack([sources[0][k], sources[1][k]]), reference, bound=bound)
    moved = apply_intervention(name, _cat(left, right), params, rng=rng)
    return moved[: left.shape[0]], moved[left.shape[0] :]


def _cat(a, b):
    import torch

    return torch.cat([a, b])


def transplant(
    name: str,
    targets: tuple[torch.Tensor, torch.Tensor],
    sources: tuple[torch.Tensor, torch.Tensor] | None,
    reference: torch.Tensor,
    assignment: np.ndarray,
    *,
    rng: np.random.Generator,
    bound: dict[str, Any] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Transplant the attribute of source pairs onto target pairs with intervention ``name``.

    Parameters
    ----------
    targets : (left (P, ...), right (P, ...))
        Validation pairs; both items of a pair get the intervention.
    sources : (left (K, ...), right (K, ...)) or None
        Training pairs. Source k's parameters are ``fit_intervention(name, source=its two items,
        reference=reference)``: what moves a typical validation item to that pair's level (its colour
        cast, brightness, position...); for a per-side intervention (a transplanted region, a sequence length)
        each target item gets the fit to the same side of the source pair. None applies the
        intervention's default parameters (an intervention without an estimator).
    reference : (R, ...)
        Validation items: the level the parameters are measured from.
    assignment : ndarray (P,) int
        The source pair of each target pair (0..K-1).
    bound : dict, optional
        Parameters fixed by the artifact's place (the pixel boxes of a region...), passed to every fit.

    Returns
    -------
    left, right : tensors of the targets' shapes and dtypes
    ok : ndarray (P,) bool
        False where the fit or the intervention refused (e.g. a constant image for contrast); those pairs
        are left unchanged and out of the statistics.
    """
    import torch

    left, right = targets
    out_l, out_r = left.clone(), right.clone()
    ok = np.ones(left.shape[0], dtype=bool)
    n_src = 1 if sources is None else sources[0].shape[0]
    for k in range(n_src):
        rows = np.flatnonzero(assignment == k) if sources is not None else np.arange(left.shape[0])
        if rows.size == 0:
            continue
        idx = torch.from_numpy(rows)
        try:
            m_l, m_r = _move_rows(name, left[idx], right[idx], sources, k, reference, dict(bound or {}), rng)
        except GapdiagError:
            ok[rows] = False
            continue
        out_l[idx], out_r[idx] = _like(m_l, left), _like(m_r, right)
    return out_l, out_r, ok


def paired_mean_diff(a: np.ndarray, b: np.ndarray, *, rng, n_boot: int, level: float, z: float | None = None):
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


def effects(scores, before, thr, sd, y, valid, *, rng, n_boot, level, z) -> dict[str, Any]:
    """Flip rates, score shifts and accept rates of the transplant and control arms.

    ``scores[arm]`` (P,) are the oriented scores after each arm, ``before`` (P,) before; ``thr`` the decision
    threshold, ``sd`` the validation score SD, ``y`` (P,) the labels, ``valid`` (P,) the pairs both arms moved.
    The excess flip rate and excess shift (transplant minus control, paired) carry intervals at ``z``.
    """
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
        out[f"score_shift_{arm}"] = paired_mean_diff(
            shifts[arm], np.zeros_like(shifts[arm]), rng=rng, n_boot=n_boot, level=level
        ).to_dict()
    kw = {"rng": rng, "n_boot": n_boot, "level": level}
    out["_flip_excess"] = paired_mean_diff(flips["transplant"], flips["control"], z=z, **kw)
    out["_shift_excess"] = paired_mean_diff(shifts["transplant"], shifts["control"], z=z, **kw)
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
            "excess": paired_mean_diff(accepts["transplant"][mask], accepts["control"][mask], **kw).to_dict(),
        }
    return out
