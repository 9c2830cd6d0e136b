"""From the attribute signal to shortcut candidates: one per artifact, shared by GD101 and GD102.

``feature_rows`` turns the measured AUCs into one row per pair feature with multiplicity-adjusted intervals;
``passes`` is the flag rule; ``artifact_candidates`` reads the signal's grouping of the screened features
(correlated on the training pairs, or moved by one intervention) and keeps the artifacts with a feature that
passes, each with its lead feature, the features that move with it, where it lives (image regions, signal
segments, a feature column) and the ``cause`` both probes put on their findings. The result is a declared
artifact of the audit (:data:`SHORTCUT_CANDIDATES`), so GD101 and GD102 name and group artifacts alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ...context import Artifact
from ...stats import Estimate, bonferroni_z, estimate_from_draws
from .attributes import column_kind
from .attributes.generic import Layout
from .attributes.pair_features import without_attrs
from .signal import ATTRIBUTE_SIGNAL, AttributeAUCs, signal_params

if TYPE_CHECKING:
    from ...context import AuditContext

__all__ = [
    "Candidate",
    "SHORTCUT_CANDIDATES",
    "artifact_candidates",
    "feature_rows",
    "lead_of",
    "passes",
    "place_words",
    "region_map",
    "shortcut_candidates",
]

# Parts in the order they are preferred as an attribute's lead feature when drops are close.
_LEAD_PARTS = ("level", "agreement", "same", "pair", "deviation")
_LEAD_TOLERANCE = 0.05
# Catalogue statistics of raw values (not a named nuisance): the last choice to name an artifact.
_ROW_STATISTICS = frozenset({"mean", "std", "min", "max", "l2_norm"})


def _normal_interval(value: float, samples: np.ndarray, z: float, n: int, level: float) -> Estimate:
    """value +- z x (bootstrap standard error): used for the multiplicity-adjusted intervals."""
    s = samples[np.isfinite(samples)]
    if not np.isfinite(value) or s.size < 2:
        return Estimate.unknown(n, level, value=float(value))
    se = float(s.std(ddof=1))
    return Estimate(float(value), float(value - z * se), float(value + z * se), n, level)


def _separability(res: AttributeAUCs, split: str, j: int, sign: float) -> tuple[float, np.ndarray]:
    return sign * (2 * float(res.auc[split][j]) - 1), sign * (2 * res.boot[split][:, j] - 1)


def feature_rows(res: AttributeAUCs, *, level: float) -> list[dict[str, Any]]:
    """One row per pair feature with its AUCs, separabilities and the multiplicity-adjusted drop.

    Separability = |2 AUC - 1| on training pairs (0 = no signal, 1 = perfect), oriented by the training
    direction; the validation separability is measured in that same direction (negative = reversed).
    ``drop`` = train separability - max(validation separability, 0); ``excess_identity`` = train separability
    - max(separability on the identity-re-drawn training pairs, 0) (paired bootstrap). Their intervals, like
    ``separability_train_adj``, are bootstrap normal intervals at ``level`` made simultaneous over all compared
    features (Bonferroni). Features without bootstrap replicates (``tested`` False: catalogue-free features
    whose point values fail the thresholds) carry point values with unknown intervals.
    """
    z = bonferroni_z(level, res.n_tests)
    n_tr, n_va = res.label["train"].size, res.label["val"].size
    generic = res.layout.all_columns
    train_attrs = without_attrs(res.attributes["train"])  # pandas would deep-copy attrs into every column
    declared = res.attributes["train"].attrs.get("user_columns", ())
    rows = []
    for j, feat in enumerate(res.features):
        attr, _, part = feat.rpartition(":")
        a_tr = float(res.auc["train"][j])
        if not np.isfinite(a_tr):
            continue
        sign = 1.0 if a_tr >= 0.5 else -1.0
        sep_tr, sep_tr_b = _separability(res, "train", j, sign)
        col = generic.get(attr)
        row: dict[str, Any] = {
            "feature": feat,
            "attribute": attr,
            "part": part,
            "kind": column_kind(train_attrs[attr]) if attr in train_attrs else "numeric",
            "direction": "higher" if sign > 0 else "lower",
            "generic": col is not None,
            "declared": attr in declared,
            "tested": bool(res.tested[j]),
            "screened": bool(res.screened[j]),
            "auc_train": estimate_from_draws(a_tr, res.boot["train"][:, j], n_tr, level),
            "separability_train": estimate_from_draws(sep_tr, sep_tr_b, n_tr, level),
            "separability_train_adj": _normal_interval(sep_tr, sep_tr_b, z, n_tr, level),
            "compared": bool(np.isfinite(res.auc["val"][j])),
        }
        if col is not None:
            row.update(plain=col.plain, words=(col.more, col.less), place=col.place)
        if row["compared"]:
            sep_va, sep_va_b = _separability(res, "val", j, sign)
            row["auc_val"] = estimate_from_draws(float(res.auc["val"][j]), res.boot["val"][:, j], n_va, level)
            row["separability_val"] = estimate_from_draws(sep_va, sep_va_b, n_va, level)
            # a cue that reverses on validation is as useless as one that vanishes: clip at 0, so a reversal
            # does not make the drop larger than the training separability itself
            row["drop"] = _normal_interval(
                sep_tr - max(sep_va, 0.0), sep_tr_b - np.maximum(sep_va_b, 0.0), z, min(n_tr, n_va), level
            )
        if "fresh" in res.auc and np.isfinite(res.auc["fresh"][j]):
            sep_fr, sep_fr_b = _separability(res, "fresh", j, sign)
            row["auc_identity_only"] = estimate_from_draws(
                float(res.auc["fresh"][j]), res.boot["fresh"][:, j], n_tr, level
            )
            row["excess_identity"] = _normal_interval(
                sep_tr - max(sep_fr, 0.0), sep_tr_b - np.maximum(sep_fr_b, 0.0), z, n_tr, level
            )
        if part == "same":
            row.update(_same_rates(res, feat))
        rows.append(row)
    return rows


def _same_rates(res: AttributeAUCs, feat: str) -> dict[str, Any]:
    """For an equality feature, the share of positive and of negative pairs that share the value, per split."""
    out = {}
    for split in ("train", "val"):
        if feat in res.table[split].columns:
            v = res.table[split][feat].to_numpy(dtype=np.float64, na_value=np.nan)
            y = res.label[split] == 1
            out[f"same_rate_{split}"] = {
                "positive": float(np.nanmean(v[y])) if np.isfinite(v[y]).any() else None,
                "negative": float(np.nanmean(v[~y])) if np.isfinite(v[~y]).any() else None,
            }
    return out


def passes(row: dict[str, Any], params: dict[str, Any]) -> bool:
    """The flag rule of one feature row.

    Flagged when (1) its training separability is at least ``min_train_separability`` with the adjusted
    interval above 0, (2) its drop to validation is at least ``min_separability_drop`` with the adjusted
    interval above 0, and (3) where the identity-only control ran, its excess over the same pairs re-drawn
    from their identities passes the same test: the cue belongs to the pairing, not to identity (in an open
    set, identity-related cues such as stroke position legitimately differ between the training and
    validation identities; they survive the re-drawing and are not flagged). Without the control, the
    ``_uncontrolled`` thresholds (a larger effect) apply.
    """
    if not row["compared"] or not row["tested"]:
        return False
    sep, drop, excess = row["separability_train_adj"], row["drop"], row.get("excess_identity")
    suffix = "" if excess is not None else "_uncontrolled"
    min_sep, min_drop = params["min_train_separability" + suffix], params["min_separability_drop" + suffix]
    return bool(
        sep.value >= min_sep
        and sep.low > 0
        and drop.value >= min_drop
        and drop.low > 0
        and (excess is None or (excess.value >= min_drop and excess.low > 0))
    )


def _naming_rank(row: dict[str, Any], local: bool) -> int:
    """How well a feature names its artifact: the user's own column (scanner) first, then a named nuisance
    (tint), unless the artifact is local (image regions covering at most half the image), where the region
    says more; raw-value statistics last."""
    if row.get("declared"):
        return -1
    if row["attribute"] in _ROW_STATISTICS:
        return 2
    if row.get("generic"):
        return 0 if local else 1
    return 1 if local else 0


def lead_of(rows: list[dict[str, Any]], *, local: bool = False) -> dict[str, Any]:
    """The row that names a group best: the largest drop, near-ties (``_LEAD_TOLERANCE``) going to the most
    telling name (see ``_naming_rank``), then to the plainest part ("positive pairs are more colourful" reads
    better than "agree less in redness")."""
    top = max(r["drop"].value for r in rows)
    near = [r for r in rows if r["drop"].value >= top - _LEAD_TOLERANCE]

    def key(r: dict[str, Any]) -> tuple[int, int]:
        part = _LEAD_PARTS.index(r["part"]) if r["part"] in _LEAD_PARTS else len(_LEAD_PARTS)
        return _naming_rank(r, local), part

    return min(near, key=key)


@dataclass
class Candidate:
    """One artifact: the features that flag it and those that move with it, where it is, and its cause.

    ``lead`` names it; ``flagged`` are its features that pass the flag rule (lead first); ``members`` all its
    screened features, strongest first; ``place`` where it lives in words ("" when it has no place, e.g. a
    tint); ``cells`` its image grid cells; ``cause`` the ``Finding.cause`` of GD101 and GD102 about it.
    """

    lead: dict[str, Any]
    flagged: list[dict[str, Any]]
    members: list[dict[str, Any]]
    place: str = ""
    cells: list[tuple[int, int]] = field(default_factory=list)

    @property
    def cause(self) -> str:
        return f"artifact:{self.lead['attribute']}"

    @property
    def together(self) -> list[dict[str, Any]]:
        """The features that move with the lead, one per attribute, strongest first."""
        seen = {self.lead["attribute"]}
        out = []
        for r in self.members:
            if r["attribute"] not in seen:
                seen.add(r["attribute"])
                out.append(r)
        return out


def place_words(layout: Layout, attributes: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """Where catalogue-free columns ``attributes`` live, in words, and their image grid cells."""
    cols = [layout.all_columns[a] for a in dict.fromkeys(attributes) if a in layout.all_columns]
    if not cols or layout.kind == "sequence":  # a sequence attribute is a property, not a place
        return "", []
    if layout.kind == "image":
        cells = layout.region_cells([c.name for c in cols])
        return layout.cells_words(cells), cells
    places = list(dict.fromkeys(c.place for c in cols))
    shown = ", ".join(places[:4]) + (f" and {len(places) - 4} more" if len(places) > 4 else "")
    return shown, []


def artifact_candidates(
    res: AttributeAUCs, rows: list[dict[str, Any]], params: dict[str, Any]
) -> list[Candidate]:
    """The artifacts of the signal's grouping with at least one feature that passes the flag rule.

    Strongest first (by the lead's drop). Features of an artifact beyond those tested cannot be flagged
    themselves but are listed as moving with it.
    """
    by_feature = {r["feature"]: r for r in rows}
    out = []
    for group in res.groups:
        members = [by_feature[res.features[j]] for j in group if res.features[j] in by_feature]
        flagged = [r for r in members if passes(r, params)]
        if not flagged:
            continue
        place, cells = place_words(res.layout, [r["attribute"] for r in members])
        n_cells = max(1, (len(res.layout.row_edges) - 1) * (len(res.layout.col_edges) - 1))
        local = bool(cells) and len(cells) <= n_cells // 2  # at most half the image: a place, not a cast
        lead = lead_of(flagged, local=local)
        flagged = [lead, *[r for r in flagged if r is not lead]]
        out.append(Candidate(lead, flagged, members, place, cells))
    return sorted(out, key=lambda c: -c.lead["drop"].value)


def region_map(res: AttributeAUCs) -> dict[str, Any] | None:
    """Where the pair-label signal lives on the image grid: per cell, the training and validation separability
    of its region feature with the largest point drop (training direction; validation clipped at 0).

    Returns ``{"train": (gr, gc), "val": (gr, gc), "feature": (gr, gc) names}`` or None when the inputs are not
    images.
    """
    layout = res.layout
    if layout.kind != "image" or not layout.row_edges:
        return None
    gr, gc = len(layout.row_edges) - 1, len(layout.col_edges) - 1
    train, val = np.zeros((gr, gc)), np.zeros((gr, gc))
    best = np.full((gr, gc), -np.inf)
    names = [["" for _ in range(gc)] for _ in range(gr)]
    for j, feat in enumerate(res.features):
        col = layout.columns.get(feat.rpartition(":")[0])
        if col is None or not np.isfinite(res.auc["val"][j]):
            continue
        sign = 1.0 if res.auc["train"][j] >= 0.5 else -1.0
        s_tr = sign * (2 * res.auc["train"][j] - 1)
        s_va = max(sign * (2 * res.auc["val"][j] - 1), 0.0)
        i, k = col.cell
        if s_tr - s_va > best[i, k]:
            best[i, k], train[i, k], val[i, k], names[i][k] = s_tr - s_va, s_tr, s_va, feat
    return {"train": train, "val": val, "feature": names}


def _candidates(ctx: AuditContext) -> tuple[AttributeAUCs, list[dict[str, Any]], list[Candidate]]:
    res = ctx.artifact(ATTRIBUTE_SIGNAL)
    rows = feature_rows(res, level=float(ctx.option("ci_level")))
    return res, rows, artifact_candidates(res, rows, signal_params(ctx))


SHORTCUT_CANDIDATES: Artifact[tuple[AttributeAUCs, list[dict[str, Any]], list[Candidate]]] = Artifact(
    "leakage.shortcut_candidates",
    _candidates,
    "the signal's feature rows and one candidate per artifact, with the configured thresholds",
)


def shortcut_candidates(ctx: AuditContext) -> tuple[AttributeAUCs, list[dict[str, Any]], list[Candidate]]:
    """The shared measurement, its feature rows, and the artifacts GD101 flags (strongest first)."""
    return ctx.artifact(SHORTCUT_CANDIDATES)
