"""The attribute signal of the pairs: the measurement GD101 and GD102 share.

For every per-item attribute (built-in, catalogue-free or the user's column), pair features (level, agreement,
same, deviation) are computed on a stratified sample of each split's pairs, and their ROC-AUC for the pair
label with stratified bootstrap replicates, plus the identity-only control and a cross-validated classifier on
all features. It is a declared :class:`~gapdiag.context.Artifact`, computed once per audit and reached with
``ctx.artifact(ATTRIBUTE_SIGNAL)``; its parameters (sample size, folds, the flagging thresholds) are declared
once in :data:`SIGNAL_DEFAULTS` and configured under ``[probes.shortcut]``, the probe that owns GD101.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ...context import Artifact
from ...data import stratified_pair_indices
from ...stats import Estimate, bonferroni_z, bootstrap_multiplicities, estimate_from_draws, weighted_auc
from .attributes import (
    column_kind,
    compute_attributes,
    intervention_for_attribute,
    merge_attributes,
    pair_features,
)

if TYPE_CHECKING:
    from ...context import AuditContext

__all__ = [
    "ATTRIBUTE_SIGNAL",
    "ITEM_ATTRIBUTES",
    "SIGNAL_DEFAULTS",
    "AttributeAUCs",
    "auc_bootstrap",
    "pair_feature_table",
    "identity_repairing",
    "feature_rows",
    "flagged_rows",
    "lead_of",
    "intervention_group",
    "shortcut_candidates",
    "signal_params",
]

#: Where users configure the signal: GD101's probe owns these options.
SIGNAL_CONFIG_SECTION = "shortcut"

#: The signal's parameters and the thresholds that flag an attribute (GD101 reports them, GD102 tests them).
SIGNAL_DEFAULTS: dict[str, Any] = {
    "max_pairs": 4000,  # pairs per split (stratified): bounds the bootstrap and the classifier
    "cv_folds": 5,
    # separability |2 AUC - 1| on train: 0.3 = AUC 0.65 (or 0.35). Where the identity control ran (the
    # same pairs re-drawn from their identities), the cue must also exceed that control by the drop,
    # which removes identity cues; healthy models measured at most 0.07 of excess there.
    "min_train_separability": 0.3,
    # train minus val separability: at least 0.2 of the training signal must be gone on validation
    "min_separability_drop": 0.2,
    # the same two thresholds when no identity control is possible (no identity labels on train):
    # 0.5 = AUC 0.75, three quarters of (positive, negative) combinations ordered by the cue alone
    "min_train_separability_uncontrolled": 0.5,
    "min_separability_drop_uncontrolled": 0.3,
}


def signal_params(ctx: AuditContext) -> dict[str, Any]:
    """The signal's parameters for this audit: :data:`SIGNAL_DEFAULTS` with the ``[probes.shortcut]`` overrides."""
    configured = ctx.config.params_for(SIGNAL_CONFIG_SECTION)
    return {**SIGNAL_DEFAULTS, **{k: v for k, v in configured.items() if k in SIGNAL_DEFAULTS}}


def _item_attributes(ctx: AuditContext) -> dict[str, pd.DataFrame]:
    """Per split, the per-item attribute table (N rows): computed properties plus the user's columns."""
    out = {}
    for split, s in ctx.splits.items():
        frame = compute_attributes(s.items.get_batch, len(s.items)) if s.items.has_inputs else None
        if s.items.attributes is not None:
            out[split] = merge_attributes(frame, s.items.attributes)
        else:
            out[split] = frame if frame is not None else pd.DataFrame(index=range(len(s.items)))
    return out


# Parts in the order they are preferred as an attribute's lead feature when drops are close.
_LEAD_PARTS = ("level", "agreement", "same", "deviation")
_LEAD_TOLERANCE = 0.05

# --------------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------------


def auc_bootstrap(
    x: np.ndarray, y: np.ndarray, *, rng: np.random.Generator, n_boot: int
) -> tuple[np.ndarray, np.ndarray]:
    """ROC-AUC of every column of ``x`` for the binary ``y``, with stratified bootstrap replicates.

    Parameters
    ----------
    x : ndarray (P, F) float
        One feature per column; NaN marks a missing value (those pairs are left out for that column).
    y : ndarray (P,) of 0/1
    rng, n_boot
        Positives and negatives are resampled separately (the same resamples for every column).

    Returns
    -------
    auc : ndarray (F,)
        Mann-Whitney AUC, ties counted one half (equal to :func:`gapdiag.stats.roc_auc`); NaN when a
        class has no finite value.
    boot : ndarray (n_boot, F)
        The AUC of each resample (see :func:`weighted_auc`).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    y = np.asarray(y).astype(bool)
    n_f = x.shape[1]
    auc = np.full(n_f, np.nan)
    boot = np.full((n_boot, n_f), np.nan)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return auc, boot
    wp_all = bootstrap_multiplicities(rng, n_pos, n_boot)
    wn_all = bootstrap_multiplicities(rng, n_neg, n_boot)
    ones_p, ones_n = np.ones((1, n_pos), np.float32), np.ones((1, n_neg), np.float32)
    for f in range(n_f):
        finite = np.isfinite(x[:, f])
        mp, mn = finite[y], finite[~y]
        if not mp.any() or not mn.any():
            continue
        v, yy = x[finite, f], y[finite]
        full = finite.all()
        auc[f] = float(
            weighted_auc(v, yy, ones_p if full else ones_p[:, mp], ones_n if full else ones_n[:, mn])[0]
        )
        boot[:, f] = weighted_auc(v, yy, wp_all if full else wp_all[:, mp], wn_all if full else wn_all[:, mn])
    return auc, boot


def _normal_interval(value: float, samples: np.ndarray, z: float, n: int, level: float) -> Estimate:
    """value +- z x (bootstrap standard error): used for the multiplicity-adjusted intervals."""
    s = samples[np.isfinite(samples)]
    if not np.isfinite(value) or s.size < 2:
        return Estimate.unknown(n, level, value=float(value))
    se = float(s.std(ddof=1))
    return Estimate(float(value), float(value - z * se), float(value + z * se), n, level)


# --------------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------------


def pair_feature_table(attr: pd.DataFrame, left: np.ndarray, right: np.ndarray) -> pd.DataFrame:
    """:func:`gapdiag.probes.leakage.attributes.pair_features` plus a ``deviation`` part for each numeric attribute.

    ``a:deviation`` = ``|a:level - median(a over the split's items)|``: a shared shift of random sign (the
    same random brightness on both images of a positive pair) leaves the level's mean and the agreement
    unchanged and only shows as more extreme levels.
    """
    feats = pair_features(attr, left, right)
    extra = {}
    for col in list(feats.columns):
        name, _, part = col.rpartition(":")
        if part == "level":
            median = float(np.nanmedian(attr[name].to_numpy(dtype=np.float64, na_value=np.nan)))
            extra[f"{name}:deviation"] = np.abs(feats[col].to_numpy() - median)
    if extra:
        feats = pd.concat([feats, pd.DataFrame(extra, index=feats.index)], axis=1)
    return feats


def identity_repairing(
    ids: np.ndarray, left: np.ndarray, right: np.ndarray, *, rng: np.random.Generator, attempts: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same pairs with both sides re-drawn at random from their identity: the identity-only control.

    Pair j becomes (a', b') with a' drawn uniformly from the items of identity(left[j]) and b' from those of
    identity(right[j]), drawn from all items whatever pairs they were in, a' != b'. Identity structure is
    kept (same / different identity, same identities); anything tied to the specific pairing (a tint given to
    both images of a positive pair, a scanner shared by the pair) is broken.

    Returns left' (P,), right' (P,) and ok (P,) bool (False where no distinct a', b' could be drawn).
    """
    order = np.argsort(ids, kind="stable")
    uniq, starts, counts = np.unique(ids[order], return_index=True, return_counts=True)
    code = np.searchsorted(uniq, ids)

    def draw(items: np.ndarray) -> np.ndarray:
        c = code[items]
        return order[starts[c] + np.floor(rng.random(items.size) * counts[c]).astype(np.int64)]

    new_l, new_r = draw(left), draw(right)
    bad = new_l == new_r
    for _ in range(attempts):
        if not bad.any():
            break
        new_r[bad] = draw(right[bad])
        bad = new_l == new_r
    return new_l, new_r, ~bad


@dataclass
class AttributeAUCs:
    """The shared GD101 measurement: per pair feature, the AUC for the pair label in each split.

    ``features`` are the training split's pair features ("redness:level", ...); ``auc[split]`` (F,) and
    ``boot[split]`` (n_boot, F) hold the AUC and its bootstrap replicates (NaN for a feature the split does
    not have); ``sample[split]`` are the pair indices (into ``ctx.pairs(split)``) used, ``table[split]`` the
    feature values (n_sample, F) and ``label[split]`` the labels of those pairs. The pseudo-split ``"fresh"``
    (present when training identities come from labels) holds the training sample re-drawn by
    :func:`identity_repairing`; its bootstrap uses the same resamples as ``"train"`` (paired).
    """

    features: list[str]
    auc: dict[str, np.ndarray]
    boot: dict[str, np.ndarray]
    sample: dict[str, np.ndarray]
    table: dict[str, pd.DataFrame]
    label: dict[str, np.ndarray]
    attributes: dict[str, pd.DataFrame]
    train_only: list[str]
    val_only: list[str]
    classifier: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def n_tests(self) -> int:
        """Features compared across both splits: the multiplicity of the GD101 decision."""
        return int(np.isfinite(self.auc["val"]).sum())


def _measure_aucs(ctx: AuditContext) -> AttributeAUCs:
    params = signal_params(ctx)
    max_pairs, cv_folds = int(params["max_pairs"]), int(params["cv_folds"])
    n_boot = int(ctx.option("n_boot"))
    samples, tables, labels, attrs = {}, {}, {}, {}
    for split in ("train", "val"):
        pairs = ctx.pairs(split)
        sample = stratified_pair_indices(pairs.label, int(max_pairs), ctx.rng(f"shortcut.sample.{split}"))
        attr = ctx.artifact(ITEM_ATTRIBUTES)[split]
        samples[split] = sample
        attrs[split] = attr
        tables[split] = pair_feature_table(attr, pairs.left[sample], pairs.right[sample])
        labels[split] = pairs.label[sample].astype(np.int8)
    notes = []
    if ctx.identities_origin("train") == "labels":
        pairs = ctx.pairs("train")
        sample = samples["train"]
        fl, fr, ok = identity_repairing(
            ctx.identities("train"), pairs.left[sample], pairs.right[sample], rng=ctx.rng("shortcut.fresh")
        )
        fresh = pair_feature_table(attrs["train"], fl, fr)
        fresh.loc[~ok, :] = np.nan
        tables["fresh"], labels["fresh"] = fresh, labels["train"]
    else:
        notes.append(
            "Training identities do not come from labels, so the identity-only control (the same pairs re-drawn "
            "from their identities) was not run; GD101 rests on the train-vs-validation contrast alone."
        )
    features = list(tables["train"].columns)
    train_only = [f for f in features if f not in tables["val"].columns]
    val_only = [f for f in tables["val"].columns if f not in tables["train"].columns]
    auc, boot = {}, {}
    for split in tables:
        x = np.full((labels[split].size, len(features)), np.nan)
        for j, f in enumerate(features):
            if f in tables[split].columns:
                x[:, j] = tables[split][f].to_numpy(dtype=np.float64, na_value=np.nan)
        # "fresh" shares the training resamples (the same generator state): a paired bootstrap
        seed_name = "train" if split == "fresh" else split
        auc[split], boot[split] = auc_bootstrap(
            x, labels[split], rng=ctx.rng(f"shortcut.boot.{seed_name}"), n_boot=n_boot
        )
    if train_only:
        cols = sorted({f.rpartition(":")[0] for f in train_only})
        notes.append(
            f"Attribute(s) {', '.join(cols)} exist on the training items only: their training AUC is "
            "reported, but without validation values the train-vs-validation contrast that GD101 needs is "
            "unknown, so they are never flagged. Give the validation items the same columns to check them."
        )
    if val_only:
        cols = sorted({f.rpartition(":")[0] for f in val_only})
        notes.append(
            f"Attribute(s) {', '.join(cols)} exist on the validation items only and were not compared."
        )
    res = AttributeAUCs(
        features, auc, boot, samples, tables, labels, attrs, train_only, val_only, notes=notes
    )
    common = [f for f in features if f not in train_only]
    res.classifier = _classifier(ctx, res, common, cv_folds)
    return res


def _classifier(ctx: AuditContext, res: AttributeAUCs, columns: list[str], cv_folds: int) -> dict[str, Any]:
    """A cross-validated logistic regression on all attribute features: can pairs be solved without identity?

    Returns the out-of-fold AUC on training pairs, the same on validation pairs, and the AUC on validation
    pairs of the model fitted on all training pairs (transfer), each with bootstrap replicates.
    """
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if not columns:
        return {}
    n_boot = int(ctx.option("n_boot"))

    def model():
        return make_pipeline(
            SimpleImputer(strategy="median", keep_empty_features=True),
            StandardScaler(),
            # liblinear converges fast even on separable data (a perfect shortcut), where lbfgs crawls
            LogisticRegression(C=1.0, solver="liblinear", max_iter=500, random_state=0),
        )

    def oof(split: str) -> np.ndarray | None:
        x = res.table[split][columns].to_numpy(dtype=np.float64, na_value=np.nan)
        y = res.label[split]
        folds = min(int(cv_folds), int(np.bincount(y, minlength=2).min()))
        if folds < 2:
            return None
        seed = int(ctx.rng(f"shortcut.cv.{split}").integers(0, 2**31 - 1))
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        return cross_val_predict(model(), x, y, cv=cv, method="decision_function")

    out: dict[str, Any] = {"n_features": len(columns)}
    scores = {"cv_train": oof("train"), "cv_val": oof("val")}
    x_tr = res.table["train"][columns].to_numpy(dtype=np.float64, na_value=np.nan)
    fitted = model().fit(x_tr, res.label["train"])
    x_va = res.table["val"][columns].to_numpy(dtype=np.float64, na_value=np.nan)
    scores["transfer"] = fitted.decision_function(x_va)
    if "fresh" in res.table:
        x_fr = res.table["fresh"][columns].to_numpy(dtype=np.float64, na_value=np.nan)
        ok = ~np.isnan(x_fr).all(axis=1)
        f_scores = np.full(x_fr.shape[0], np.nan)
        f_scores[ok] = fitted.decision_function(x_fr[ok])
        scores["fresh"] = f_scores
    for key, s in scores.items():
        if s is None:
            continue
        split = {"cv_train": "train", "fresh": "train"}.get(key, "val")
        seed = "cv_train" if key == "fresh" else key  # paired with the training pairs' resamples
        a, b = auc_bootstrap(s[:, None], res.label[split], rng=ctx.rng(f"shortcut.clf.{seed}"), n_boot=n_boot)
        out[key] = {"auc": float(a[0]), "boot": b[:, 0], "n": int(np.isfinite(s).sum())}
    coef = fitted[-1].coef_.ravel()
    top = np.argsort(-np.abs(coef), kind="stable")[:5]
    out["top_features"] = [(columns[i], float(coef[i])) for i in top]
    return out


# --------------------------------------------------------------------------------------------------
# From AUCs to rows, and the decision rule
# --------------------------------------------------------------------------------------------------


def feature_rows(res: AttributeAUCs, *, level: float) -> list[dict[str, Any]]:
    """One row per pair feature with its AUCs, separabilities and the multiplicity-adjusted drop.

    Separability = |2 AUC - 1| on training pairs (0 = no signal, 1 = perfect), oriented by the training
    direction; the validation separability is measured in that same direction (negative = reversed).
    ``drop`` = train separability - max(validation separability, 0); ``excess_identity`` = train separability
    - max(separability on the identity-re-drawn training pairs, 0) (paired bootstrap). Their intervals, like
    ``separability_train_adj``, are bootstrap normal intervals at ``level`` made simultaneous over all compared
    features (Bonferroni).
    """
    z = bonferroni_z(level, res.n_tests)
    rows = []
    n_tr, n_va = res.label["train"].size, res.label["val"].size
    for j, feat in enumerate(res.features):
        attr, _, part = feat.rpartition(":")
        a_tr, a_va = float(res.auc["train"][j]), float(res.auc["val"][j])
        b_tr, b_va = res.boot["train"][:, j], res.boot["val"][:, j]
        if not np.isfinite(a_tr):
            continue
        sign = 1.0 if a_tr >= 0.5 else -1.0
        sep_tr, sep_tr_b = sign * (2 * a_tr - 1), sign * (2 * b_tr - 1)
        row: dict[str, Any] = {
            "feature": feat,
            "attribute": attr,
            "part": part,
            "kind": column_kind(res.attributes["train"][attr])
            if attr in res.attributes["train"]
            else "numeric",
            "direction": "higher" if sign > 0 else "lower",
            "auc_train": estimate_from_draws(a_tr, b_tr, n_tr, level),
            "separability_train": estimate_from_draws(sep_tr, sep_tr_b, n_tr, level),
            "separability_train_adj": _normal_interval(sep_tr, sep_tr_b, z, n_tr, level),
            "compared": bool(np.isfinite(a_va)),
        }
        if np.isfinite(a_va):
            sep_va, sep_va_b = sign * (2 * a_va - 1), sign * (2 * b_va - 1)
            row["auc_val"] = estimate_from_draws(a_va, b_va, n_va, level)
            row["separability_val"] = estimate_from_draws(sep_va, sep_va_b, n_va, level)
            # a cue that reverses on validation is as useless as one that vanishes: clip at 0, so a reversal
            # does not make the drop larger than the training separability itself
            row["drop"] = _normal_interval(
                sep_tr - max(sep_va, 0.0), sep_tr_b - np.maximum(sep_va_b, 0.0), z, min(n_tr, n_va), level
            )
        if "fresh" in res.auc and np.isfinite(res.auc["fresh"][j]):
            a_fr, b_fr = float(res.auc["fresh"][j]), res.boot["fresh"][:, j]
            sep_fr, sep_fr_b = sign * (2 * a_fr - 1), sign * (2 * b_fr - 1)
            row["auc_identity_only"] = estimate_from_draws(a_fr, b_fr, n_tr, level)
            row["excess_identity"] = _normal_interval(
                sep_tr - max(sep_fr, 0.0), sep_tr_b - np.maximum(sep_fr_b, 0.0), z, n_tr, level
            )
        if part == "same":
            for split in ("train", "val"):
                if feat in res.table[split].columns:
                    v = res.table[split][feat].to_numpy(dtype=np.float64, na_value=np.nan)
                    y = res.label[split] == 1
                    row[f"same_rate_{split}"] = {
                        "positive": float(np.nanmean(v[y])) if np.isfinite(v[y]).any() else None,
                        "negative": float(np.nanmean(v[~y])) if np.isfinite(v[~y]).any() else None,
                    }
        rows.append(row)
    return rows


def flagged_rows(rows: list[dict[str, Any]], params: dict[str, Any]) -> list[dict[str, Any]]:
    """The lead flagged feature of each attribute, strongest attribute first.

    A feature is flagged when (1) its training separability is at least ``min_train_separability`` with the
    adjusted interval above 0, (2) its drop to validation is at least ``min_separability_drop`` with the
    adjusted interval above 0, and (3) where the identity-only control ran, its excess over the same pairs
    re-drawn from their identities passes the same test: the cue belongs to the pairing, not to identity
    (in an open set, identity-related cues such as stroke position legitimately differ between the training
    and validation identities; they survive the re-drawing and are not flagged). An attribute's lead feature
    is the one with the largest drop, where drops within ``_LEAD_TOLERANCE`` of the largest are broken by the
    plainest part (level, agreement, same, deviation).
    """
    by_attr: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if not r["compared"]:
            continue
        sep, drop, excess = r["separability_train_adj"], r["drop"], r.get("excess_identity")
        # Without the identity control a cue of identity (which legitimately differs between open-set
        # splits) cannot be told from a cue of the pairing, so a larger effect is required.
        suffix = "" if excess is not None else "_uncontrolled"
        min_sep, min_drop = (
            params["min_train_separability" + suffix],
            params["min_separability_drop" + suffix],
        )
        if (
            sep.value >= min_sep
            and sep.low > 0
            and drop.value >= min_drop
            and drop.low > 0
            and (excess is None or (excess.value >= min_drop and excess.low > 0))
        ):
            by_attr.setdefault(r["attribute"], []).append(r)
    leads = []
    for group in by_attr.values():
        leads.append(lead_of(group))
    return sorted(leads, key=lambda r: -r["drop"].value)


def lead_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The row that names a group best: the largest drop, near-ties (``_LEAD_TOLERANCE``) going to the plainest
    part ("positive pairs are more colourful" reads better than "agree less in redness")."""
    top = max(r["drop"].value for r in rows)
    near = [r for r in rows if r["drop"].value >= top - _LEAD_TOLERANCE]
    return min(
        near, key=lambda r: _LEAD_PARTS.index(r["part"]) if r["part"] in _LEAD_PARTS else len(_LEAD_PARTS)
    )


def shortcut_candidates(ctx: AuditContext) -> tuple[AttributeAUCs, list[dict[str, Any]]]:
    """The shared measurement and the attributes GD101 flags, with the configured thresholds."""
    res = ctx.artifact(ATTRIBUTE_SIGNAL)
    rows = feature_rows(res, level=float(ctx.option("ci_level")))
    return res, flagged_rows(rows, signal_params(ctx))


def intervention_group(attr: str) -> str:
    """Attributes moved by the same intervention describe one artifact (red, redness, saturation: a tint)."""

    moves = intervention_for_attribute(attr)
    return moves[0] if moves else attr


ITEM_ATTRIBUTES: Artifact[dict[str, pd.DataFrame]] = Artifact(
    "leakage.item_attributes", _item_attributes, "per split, one row of attributes per item"
)
ATTRIBUTE_SIGNAL: Artifact[AttributeAUCs] = Artifact(
    "leakage.attribute_signal",
    _measure_aucs,
    "pair-feature AUCs per split, with bootstrap draws and controls",
)
