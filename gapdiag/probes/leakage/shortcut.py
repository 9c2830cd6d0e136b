"""GD101 — spurious shared attribute: a nuisance property that solves the training pairs but not the val pairs.

The measurement (:func:`attribute_auc`) is shared with the ``reliance`` probe (GD102) through
``ctx.memo`` under the key ``("leakage.attribute_auc", max_pairs, cv_folds)``; :func:`shortcut_candidates`
applies this probe's configured thresholds so both probes name the same attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ...data import stratified_pair_indices
from ...findings.finding import Finding, Severity
from ...stats import Estimate, bonferroni_z, bootstrap_multiplicities, estimate_from_draws, weighted_auc
from ...thumbnails import thumbnails
from ..base import FigureSpec, Measurement, Probe
from ..registry import register_probe

if TYPE_CHECKING:
    from ...context import AuditContext

__all__ = [
    "ShortcutProbe",
    "AttributeAUCs",
    "MEMO_KEY",
    "attribute_auc",
    "auc_bootstrap",
    "feature_rows",
    "flagged_rows",
    "shortcut_candidates",
]

MEMO_KEY = "leakage.attribute_auc"

# Parts in the order they are preferred as an attribute's lead feature when drops are close.
_LEAD_PARTS = ("level", "agreement", "same", "deviation")
_LEAD_TOLERANCE = 0.05
_DEVIATION_TEXT = (
    "deviation = how far the pair's mean lies from the split's median item, in either direction "
    "(0 = typical, larger = more extreme)"
)

# Short plain names of built-in attributes for messages; others are named as they are.
_PLAIN: dict[str, str] = {
    "center_of_mass_x": "horizontal position",
    "center_of_mass_y": "vertical position",
    "border": "border/background level",
    "saturation": "colour saturation",
    "red": "red channel level",
    "green": "green channel level",
    "blue": "blue channel level",
    "l2_norm": "norm",
    "std": "spread",
}

# Plain words for "higher" / "lower" values of the built-in attributes ("positive pairs are ...").
_MORE_LESS: dict[str, tuple[str, str]] = {
    "brightness": ("brighter", "darker"),
    "redness": ("redder", "less red"),
    "greenness": ("greener", "less green"),
    "blueness": ("bluer", "less blue"),
    "red": ("higher in the red channel", "lower in the red channel"),
    "green": ("higher in the green channel", "lower in the green channel"),
    "blue": ("higher in the blue channel", "lower in the blue channel"),
    "saturation": ("more colourful (saturated)", "greyer (less saturated)"),
    "contrast": ("higher in contrast", "lower in contrast"),
    "sharpness": ("sharper", "blurrier"),
    "center_of_mass_x": ("shifted further right", "shifted further left"),
    "center_of_mass_y": ("shifted further down", "shifted further up"),
    "border": ("brighter at the border (background)", "darker at the border (background)"),
    "mean": ("higher in mean value", "lower in mean value"),
    "std": ("more spread out", "less spread out"),
    "l2_norm": ("larger in norm", "smaller in norm"),
}


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
        return Estimate(float(value), float("nan"), float("nan"), n, level)
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
    from .attributes import pair_features

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


def attribute_auc(ctx: AuditContext, *, max_pairs: int, cv_folds: int) -> AttributeAUCs:
    """The GD101 measurement, computed once per audit and shared with GD102 through ``ctx.memo``."""
    return ctx.memo(
        (MEMO_KEY, int(max_pairs), int(cv_folds)), lambda: _measure_aucs(ctx, max_pairs, cv_folds)
    )


def _measure_aucs(ctx: AuditContext, max_pairs: int, cv_folds: int) -> AttributeAUCs:
    n_boot = int(ctx.option("n_boot"))
    samples, tables, labels, attrs = {}, {}, {}, {}
    for split in ("train", "val"):
        pairs = ctx.pairs(split)
        sample = stratified_pair_indices(pairs.label, int(max_pairs), ctx.rng(f"shortcut.sample.{split}"))
        attr = ctx.attributes(split)
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
    from .attributes import column_kind

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


def shortcut_params(ctx: AuditContext) -> dict[str, Any]:
    """This probe's parameters as configured for the audit (defaults plus ``probes.shortcut``)."""
    return {**ShortcutProbe.defaults, **ctx.config.params_for("shortcut")}


def shortcut_candidates(ctx: AuditContext) -> tuple[AttributeAUCs, list[dict[str, Any]]]:
    """The shared measurement and the attributes GD101 flags, with the shortcut probe's configured thresholds."""
    params = shortcut_params(ctx)
    res = attribute_auc(ctx, max_pairs=params["max_pairs"], cv_folds=params["cv_folds"])
    rows = feature_rows(res, level=float(ctx.option("ci_level")))
    return res, flagged_rows(rows, params)


def intervention_group(attr: str) -> str:
    """Attributes moved by the same intervention describe one artifact (red, redness, saturation: a tint)."""
    from .attributes import intervention_for_attribute

    moves = intervention_for_attribute(attr)
    return moves[0] if moves else attr


# --------------------------------------------------------------------------------------------------
# Words
# --------------------------------------------------------------------------------------------------


def describe(attr: str, table: pd.DataFrame | None) -> str:
    """Plain-words description of an attribute column (built-in, registered or the user's)."""
    from .attributes import describe_attribute

    try:
        return describe_attribute(attr, table=table)
    except Exception:  # an unregistered user column without a table entry: its name is all we know
        return f"user-supplied column {attr!r}"


def plain_name(attr: str) -> str:
    """'horizontal position [center_of_mass_x]' for built-ins with a plainer name, else the name itself."""
    return f"{_PLAIN[attr]} [{attr}]" if attr in _PLAIN else attr


def part_text(part: str) -> str:
    """What a pair-feature part means, in words."""
    from .attributes import FEATURE_PARTS

    return _DEVIATION_TEXT if part == "deviation" else FEATURE_PARTS.get(part, part)


def direction_words(row: dict[str, Any], split_word: str = "training") -> str:
    """'positive training pairs are redder than negative ones', and the like, for a feature row."""
    attr, part, higher = row["attribute"], row["part"], row["direction"] == "higher"
    if part == "level":
        more, less = _MORE_LESS.get(attr, (f"higher in {attr}", f"lower in {attr}"))
        return f"positive {split_word} pairs are {more if higher else less} than negative ones"
    if part == "deviation":
        if higher:
            return (
                f"positive {split_word} pairs are more extreme in {attr} than negative ones "
                "(further from the typical value, in either direction)"
            )
        return f"positive {split_word} pairs are closer to the typical {attr} than negative ones"
    if part == "agreement":
        return (
            f"the two items of a positive {split_word} pair agree {'more' if higher else 'less'} in {attr} "
            "than those of a negative pair"
        )
    rates = row.get("same_rate_train") or {}
    extra = ""
    if rates.get("positive") is not None and rates.get("negative") is not None:
        extra = f" ({rates['positive']:.0%} of positive vs {rates['negative']:.0%} of negative pairs)"
    return (
        f"positive {split_word} pairs share the same {attr} {'more' if higher else 'less'} often than "
        f"negative pairs{extra}"
    )


# --------------------------------------------------------------------------------------------------
# Thumbnails
# --------------------------------------------------------------------------------------------------


def _pair_rows(items, left, right, picks, caption: str) -> dict[str, Any] | None:
    if picks.size == 0:
        return None
    idx = np.stack([left[picks], right[picks]], axis=1).reshape(-1)
    imgs = thumbnails(items.get_batch(idx))
    return None if imgs is None else {"caption": caption, "images": imgs}


# --------------------------------------------------------------------------------------------------
# The probe
# --------------------------------------------------------------------------------------------------


def _estimate_dict(e: Estimate | None) -> dict | None:
    return None if e is None else e.to_dict()


@register_probe
class ShortcutProbe(Probe):
    """GD101: does a nuisance attribute solve the training pairs but not the validation pairs?

    Measures, for every built-in attribute (brightness, per-channel means, redness/greenness/blueness,
    saturation, contrast, sharpness, centre of mass, border level; generic statistics for non-image
    inputs) and every user attribute column, the pair features ``level`` (mean of the two items),
    ``deviation`` (|level - split median|), ``agreement`` (-|difference|) or ``same`` (equal category), on a
    stratified sample of at most ``max_pairs`` pairs per split. For each feature and split:

    - ROC-AUC for the pair label (0.5 = no signal; far from 0.5 in either direction = the feature predicts
      the label), with a stratified bootstrap CI;
    - separability = |2 AUC - 1| in [0, 1] on training pairs, and the validation separability in the
      training direction (in [-1, 1]; negative = reversed);
    - drop = train separability - max(validation separability, 0), with a bootstrap normal interval made
      simultaneous over all compared features (Bonferroni);
    - identity-only control (training identities from labels): the same training pairs with both sides
      re-drawn at random from their identities; excess = train separability - max(separability there, 0),
      paired bootstrap, same adjustment. A cue of the pairing (a tint on both images of positive pairs)
      vanishes there; a cue of identity (same digits agree in stroke position) does not.

    Plus a logistic regression on all standardized features (5-fold cross-validated AUC on each split, and the
    AUC on validation pairs of the model fitted on training pairs): "can the pairs be solved without
    looking at identity?".

    Emits GD101 (warn; fail when the drop reaches ``fail_separability_drop``) once per artifact (attributes
    moved by the same intervention are one artifact, e.g. red, redness, saturation = a tint), naming the
    attribute with the largest drop, when: train separability >= ``min_train_separability`` and its
    adjusted CI excludes 0, drop >= ``min_separability_drop`` with its adjusted CI excluding 0, and, where
    the control ran, the excess passes the same test (so an open set, whose identities differ in
    identity-related cues, is not mistaken for a shortcut). When no
    single attribute is flagged but the classifier is (same rule, unadjusted CIs, and only where the
    identity-only control ran), one GD101 names the
    classifier's strongest features. Identity-related attributes (a '1' has less ink than an '8', so
    same-digit pairs agree more in brightness) predict the label in both splits and are not flagged.
    """

    name = "shortcut"
    family = "leakage"
    codes = ("GD101",)
    requires = frozenset({"train_inputs", "val_inputs", "train_pairs_any", "val_pairs_any"})
    description = (
        "Nuisance attributes (colour, brightness, position, user columns) that solve training pairs only."
    )
    defaults = {
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
        # a near-perfect training cue that is gone on validation: a fail
        "fail_separability_drop": 0.8,
        "max_findings": 3,  # artifacts reported as separate findings; the rest are named in the last one
        "max_figure_features": 12,
        "thumbnail_pairs": 4,  # pairs per row of the thumbnail figure (3 rows)
    }

    def _measure(self, ctx: AuditContext) -> Measurement:
        level = float(ctx.option("ci_level"))
        res = attribute_auc(ctx, max_pairs=self.params["max_pairs"], cv_folds=self.params["cv_folds"])
        rows = feature_rows(res, level=level)
        n_tests = res.n_tests
        clf = self._classifier_summary(res, level)
        table = []
        for r in rows:
            table.append(
                {
                    "feature": r["feature"],
                    "attribute": r["attribute"],
                    "part": r["part"],
                    "kind": r["kind"],
                    "direction": r["direction"],
                    "auc_train": r["auc_train"].to_dict(),
                    "auc_val": _estimate_dict(r.get("auc_val")),
                    "separability_train": r["separability_train"].to_dict(),
                    "separability_val": _estimate_dict(r.get("separability_val")),
                    "separability_drop_adjusted": _estimate_dict(r.get("drop")),
                    "auc_identity_only": _estimate_dict(r.get("auc_identity_only")),
                    "excess_identity_adjusted": _estimate_dict(r.get("excess_identity")),
                    **{k: r[k] for k in ("same_rate_train", "same_rate_val") if k in r},
                }
            )
        describe_table = res.attributes["train"]
        descriptions = {a: describe(a, describe_table) for a in dict.fromkeys(r["attribute"] for r in rows)}
        metrics = {
            "n_pairs": {s: int(res.label[s].size) for s in ("train", "val")},
            "n_positive": {s: int(res.label[s].sum()) for s in ("train", "val")},
            "n_features_compared": n_tests,
            "multiplicity": f"Bonferroni over {n_tests} features",
            "classifier": clf,
        }
        m = Measurement(metrics=metrics, notes=list(res.notes))
        m.evidence = {
            "features": table,
            "descriptions": descriptions,
            "pairs_origin": {s: ctx.pairs_origin(s) for s in ("train", "val")},
            "_rows": rows,
        }
        m.figures.append(self._bars(rows))
        thumbs = self._thumbnails(ctx, res, rows)
        if thumbs is not None:
            m.figures.append(thumbs)
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

    def _thumbnails(self, ctx: AuditContext, res: AttributeAUCs, rows: list[dict[str, Any]]):
        """Training pairs that show the strongest clear train-only cue, with validation pairs for comparison."""
        flagged = flagged_rows(rows, self.params)
        if not flagged:
            return None
        top = flagged[0]
        k = int(self.params["thumbnail_pairs"])
        out_rows = []
        for split, words in (("train", "training"), ("val", "validation")):
            pairs = ctx.pairs(split)
            sample = res.sample[split]
            if top["feature"] not in res.table[split].columns:
                continue
            v = res.table[split][top["feature"]].to_numpy(dtype=np.float64, na_value=np.nan)
            v = np.where(np.isfinite(v), v, np.nanmedian(v) if np.isfinite(v).any() else 0.0)
            oriented = v if top["direction"] == "higher" else -v
            y = res.label[split] == 1
            pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
            if split == "train":
                # the positives that show the cue most and the negatives that show it least
                picks = [
                    (
                        pos[np.argsort(-oriented[pos], kind="stable")[:k]],
                        f"positive {words} pairs, strongest {top['feature']}",
                    ),
                    (
                        neg[np.argsort(oriented[neg], kind="stable")[:k]],
                        f"negative {words} pairs, weakest {top['feature']}",
                    ),
                ]
            else:
                rng = ctx.rng("shortcut.thumbnails")
                picks = [
                    (
                        np.sort(rng.choice(pos, min(k, pos.size), replace=False)),
                        f"positive {words} pairs (random)",
                    )
                ]
            for p, caption in picks:
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

    # -- judgement ----------------------------------------------------------------------------------
    def _judge(self, m: Measurement) -> list[Finding]:
        p = self.params
        rows = m.evidence.pop("_rows")
        flagged = flagged_rows(rows, p)
        descriptions = m.evidence["descriptions"]
        n_tests = m.metrics["n_features_compared"]
        n_tr, n_va = m.metrics["n_pairs"]["train"], m.metrics["n_pairs"]["val"]
        clf_text = self._classifier_text(m.metrics["classifier"])
        m.evidence["flagged"] = [r["feature"] for r in flagged]
        findings: list[Finding] = []
        groups: dict[str, list[dict[str, Any]]] = {}
        for r in flagged:
            groups.setdefault(intervention_group(r["attribute"]), []).append(r)
        # each group led by its best-named row, the others after it
        ordered = []
        for g in groups.values():
            lead = lead_of(g)
            ordered.append([lead, *[r for r in g if r is not lead]])
        ordered.sort(key=lambda g: -g[0]["drop"].value)
        for group in ordered[: p["max_findings"]]:
            lead = group[0]
            drop, sep = lead["drop"], lead["separability_train"]
            sev = Severity.FAIL if drop.value >= p["fail_separability_drop"] else Severity.WARN
            also = ", ".join(f"{r['attribute']} ({r['part']}, drop {r['drop'].value:.2f})" for r in group[1:])
            words = direction_words(lead)
            sfx = "" if lead.get("excess_identity") is not None else "_uncontrolled"
            msg = (
                f"{words[0].upper()}{words[1:]}: AUC {lead['auc_train']} on {n_tr} training pairs vs "
                f"{lead['auc_val']} on {n_va} validation pairs (0.5 = no signal). On its own this cue "
                f"({plain_name(lead['attribute'])}; {part_text(lead['part'])}) gives a training separability of "
                f"{sep.value:.2f} (|2 AUC - 1|: 0 = none, 1 = perfect) but {max(lead['separability_val'].value, 0):.2f} "
                f"on validation: a drop of {drop:.2f} (CI simultaneous over {n_tests} attribute features; "
                f"flagged at separability >= {p['min_train_separability' + sfx]} and drop >= {p['min_separability_drop' + sfx]})."
                f" Attribute: {descriptions.get(lead['attribute'], lead['attribute'])}."
            )
            if lead.get("auc_identity_only") is not None:
                idn = lead["auc_identity_only"]
                msg += (
                    f" The cue belongs to the pairing, not to identity: on the same training pairs re-drawn at "
                    f"random from their identities its AUC is {idn}."
                )
            if also:
                msg += f" The same artifact also shows in: {also}."
            if clf_text:
                msg += f" {clf_text}"
            evidence = {
                "attribute": lead["attribute"],
                "feature": lead["feature"],
                "description": descriptions.get(lead["attribute"], ""),
                "direction": words,
                "auc_train": lead["auc_train"].to_dict(),
                "auc_val": lead["auc_val"].to_dict(),
                "separability_train": sep.to_dict(),
                "separability_val": lead["separability_val"].to_dict(),
                "separability_drop_adjusted": drop.to_dict(),
                "auc_identity_only": _estimate_dict(lead.get("auc_identity_only")),
                "excess_identity_adjusted": _estimate_dict(lead.get("excess_identity")),
                "n_features_compared": n_tests,
                "also_flagged": [r["feature"] for r in group[1:]],
                "classifier": m.metrics["classifier"],
            }
            findings.append(
                self.finding("GD101", sev, msg, evidence=evidence, figures=["shortcut_auc", "shortcut_pairs"])
            )
        for f in findings[1:]:  # the report draws a finding's figures inline: show the shared ones once
            f.figures = []
        rest = ordered[p["max_findings"] :]
        if rest and findings:
            m.evidence["flagged_not_reported"] = [g[0]["feature"] for g in rest]
            findings[-1].message += (
                " Further train-only cues, not reported separately: "
                + ", ".join(
                    f"{g[0]['attribute']} ({g[0]['part']}, drop {g[0]['drop'].value:.2f})" for g in rest
                )
                + "."
            )
        if not findings:
            f = self._classifier_finding(m.metrics["classifier"], clf_text)
            if f is not None:
                findings.append(f)
        return findings

    @staticmethod
    def _classifier_text(clf: dict[str, Any]) -> str:
        if not clf or "auc_transfer" not in clf:
            return ""
        cv, tr = clf["auc_cv_train"], clf["auc_transfer"]
        return (
            f"A logistic regression on all {clf['n_features']} attribute features, never looking at identity, "
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
        return self.finding("GD101", sev, msg, evidence={"classifier": clf}, figures=["shortcut_auc"])
