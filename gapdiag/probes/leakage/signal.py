"""The attribute signal of the pairs: the measurement GD101 and GD102 share.

For every per-item attribute (built-in, catalogue-free or the user's column), pair features (level, agreement,
same, deviation; a pair-level value such as the token overlap) are computed on a stratified sample of each
split's pairs, and their ROC-AUC for the pair label, plus the identity-only control and a cross-validated
classifier. It is a declared :class:`~gapdiag.context.Artifact`, computed once per audit and reached with
``ctx.artifact(ATTRIBUTE_SIGNAL)``; its parameters (sample size, folds, the flagging thresholds, the
catalogue-free detectors) are declared once in :data:`SIGNAL_DEFAULTS` and configured under
``[probes.shortcut]``, the probe that owns GD101.

Cost is bounded by the sample, not by the splits' sizes or the number of features: attributes are computed
for the items of the sampled pairs only; every feature gets its exact AUC in every split (one sort per
feature), but bootstrap intervals, the expensive part, only the features that could be flagged (point values
past the thresholds), the user's columns and each named attribute's strongest part (see :func:`_tested`).
A feature whose point values fail the thresholds can never be flagged, so this changes no decision; the
multiplicity of the decision stays the number of all features compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ...context import Artifact
from ...data import stratified_pair_indices
from ...modality import INPUT_KINDS, input_kind
from ..base import Param, ProbeSkipped
from .attributes import (
    compute_attributes,
    intervention_for_attribute,
    merge_attributes,
    pair_features,
)
from .attributes.generic import Layout, categorize_generic, compute_generic, make_layout, pair_level_features
from .attributes.pair_features import without_attrs
from .column_aucs import auc_bootstrap, point_aucs

if TYPE_CHECKING:
    from ...context import AuditContext
    from ...data import Pairs

__all__ = [
    "ATTRIBUTE_SIGNAL",
    "INPUT_LAYOUT",
    "ITEM_ATTRIBUTES",
    "PAIR_SAMPLE",
    "PairSample",
    "SIGNAL_DEFAULTS",
    "AttributeAUCs",
    "auc_bootstrap",
    "point_aucs",
    "pair_feature_table",
    "identity_repairing",
    "intervention_group",
    "signal_params",
    "strength_of",
]

#: Where users configure the signal: GD101's probe owns these options.
SIGNAL_CONFIG_SECTION = "shortcut"


def _check_names(value: Any) -> str | None:
    if not all(isinstance(v, str) and v for v in value):
        return "must be a list of non-empty column names, one per feature of the rows, in order."
    return None


#: The signal's parameters and the thresholds that flag an attribute (GD101 reports them, GD102 tests them).
SIGNAL_DEFAULTS: dict[str, Any] = {
    # pairs per split (stratified): bounds the attribute table, the bootstrap and the classifier. 1,000 of
    # each label already resolve the flag thresholds: the Bonferroni half-width of a separability is about
    # 0.1 (of the drop 0.14) over 300 features, so a feature at the thresholds (0.3, drop 0.2) clears zero
    "max_pairs": 2000,
    # similar and dissimilar pairs each split needs at least: with fewer, bootstrap intervals of an AUC
    # collapse onto its point value (4 pairs give "AUC 0.00 [0.00, 0.00]") and no cue can be told from chance
    # among the features compared; 10 + 10 pairs have 184,756 orderings, enough for a Bonferroni-level test
    "min_pairs_per_label": Param(10, low=2),
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
    # -- catalogue-free detectors (attributes.generic) --
    # what the inputs are; "auto" reads it from the first training batch (gapdiag.modality.input_kind)
    "input_kind": Param("auto", choices=("auto", *INPUT_KINDS)),
    "pad_id": 0,  # the pad token of token-id sequences (length = positions not holding it)
    "feature_names": Param([], check=_check_names),  # names of the columns of feature rows, in order
    # per-item statistics at most: sizes the image grid (cells of >= 4 pixels, at most this many region
    # statistics) and caps the per-feature columns of wide feature rows
    "max_generic_attributes": Param(192, low=1),
    # one artifact, one finding: flagged features are one artifact when a chain of features links them,
    # each correlated with the next on the training pairs at least this much (|Pearson r|; 0.7 = half the
    # variance shared), or belonging to the same attribute or intervention, ...
    "group_correlation": Param(0.7, low=0.0, high=1.0),
    # ... or carried by the same pairs: their correlation is at least this share of what their common
    # cause, the pair label, implies (r(A, B) >= share x r(A, label) x r(B, label)); 1 = two independent
    # indicators of one artifact, <= 0 = artifacts on different pairs
    "group_overlap": Param(0.5, low=0.0, high=1.0),
    # catalogue-free features per artifact whose bootstrap intervals are computed (the strongest first)
    "tested_per_artifact": Param(2, low=1),
    "max_artifacts": Param(8, low=1),  # artifacts whose catalogue-free features are tested
}


def signal_params(ctx: AuditContext) -> dict[str, Any]:
    """The signal's parameters for this audit: :data:`SIGNAL_DEFAULTS` with the ``[probes.shortcut]`` overrides."""
    configured = ctx.config.params_for(SIGNAL_CONFIG_SECTION)
    defaults = {k: (v.default if isinstance(v, Param) else v) for k, v in SIGNAL_DEFAULTS.items()}
    return {**defaults, **{k: v for k, v in configured.items() if k in SIGNAL_DEFAULTS}}


def _layout(ctx: AuditContext) -> Layout:
    """The catalogue-free columns of this audit, decided from the first training items."""
    items = ctx.train.items
    if not items.has_inputs:
        return Layout("other", (), {})
    p = signal_params(ctx)
    options = {
        "declared": p["input_kind"],
        "pad_id": int(p["pad_id"]),
        "max_attributes": int(p["max_generic_attributes"]),
        "feature_names": tuple(p["feature_names"]),
    }
    first = items.get_batch(np.arange(min(len(items), 8)))
    if input_kind(first, declared=p["input_kind"]) == "sequence" and len(items) > 8:
        # which tokens to track needs a sample of items (token ids are small to read)
        rows = np.sort(ctx.rng("shortcut.layout").choice(len(items), min(len(items), 2000), replace=False))
        first = items.get_batch(rows)
    return make_layout(first, **options)


@dataclass(frozen=True)
class PairSample:
    """The pairs the signal measures and the items they touch.

    ``pairs[split]`` (P,) indexes ``ctx.pairs(split)``: a stratified sample of at most ``max_pairs``.
    ``left[key]`` and ``right[key]`` (P,) are the item indices of each sampled pair, for ``"train"``,
    ``"val"`` and, where training identities come from labels, ``"fresh"`` (the training sample re-drawn by
    :func:`identity_repairing`, items of the training split; ``fresh_ok`` (P,) is False where no distinct
    pair could be drawn). ``rows[split]`` (m,) are the sorted distinct items of the split that any of these
    pairs uses: the only items whose attributes are computed, so the cost is bounded by the sample (at most
    ``4 x max_pairs`` training and ``2 x max_pairs`` validation items), not by the split's size.
    """

    pairs: dict[str, np.ndarray]
    left: dict[str, np.ndarray]
    right: dict[str, np.ndarray]
    rows: dict[str, np.ndarray]
    fresh_ok: np.ndarray | None = None

    def positions(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """Where each pair's two items sit in the attribute table of its split (rows of ``rows``) -> (P,), (P,)."""
        rows = self.rows["train" if key == "fresh" else key]
        return np.searchsorted(rows, self.left[key]), np.searchsorted(rows, self.right[key])


def _usable_pairs(pairs: Pairs, minimum: int) -> np.ndarray:
    """Indices (sorted) of the pairs (P,) that count as evidence: each pair of items once, sides that differ.

    A pair the loader yields again and again (a fixed pair list over many epochs) is one unit of evidence: its
    repeats would land on both sides of a cross-validation split and narrow every interval. An input paired
    with itself agrees with itself in every attribute, so its pair says nothing about any one (GD101 reports
    the share of such copies on its own); with copies in the sample, every agreement feature would separate
    the training pairs. Copies are kept when fewer than ``minimum`` pairs of a label would remain.
    """
    lo, hi = np.minimum(pairs.left, pairs.right), np.maximum(pairs.left, pairs.right)
    _, first = np.unique(np.stack([lo, hi, pairs.label]), axis=1, return_index=True)
    first = np.sort(first)
    distinct = first[~pairs.same_identity(pairs.items.content_hashes())[first]]
    kept = pairs.label[distinct] == 1
    if min(int(kept.sum()), int((~kept).sum())) < minimum:
        return first
    return distinct


def _pair_sample(ctx: AuditContext) -> PairSample:
    params = signal_params(ctx)
    max_pairs = int(params["max_pairs"])
    pairs, left, right = {}, {}, {}
    for split in ("train", "val"):
        p = ctx.pairs(split)
        usable = _usable_pairs(p, int(params["min_pairs_per_label"]))
        pairs[split] = usable[
            stratified_pair_indices(p.label[usable], max_pairs, ctx.rng(f"shortcut.sample.{split}"))
        ]
        left[split], right[split] = p.left[pairs[split]], p.right[pairs[split]]
    fresh_ok = None
    if ctx.identities_origin("train") == "labels":
        left["fresh"], right["fresh"], fresh_ok = identity_repairing(
            ctx.identities("train"), left["train"], right["train"], rng=ctx.rng("shortcut.fresh")
        )
    used = {
        "train": [v for k, v in [*left.items(), *right.items()] if k != "val"],
        "val": [left["val"], right["val"]],
    }
    rows = {split: np.unique(np.concatenate(v)).astype(np.int64) for split, v in used.items()}
    return PairSample(pairs, left, right, rows, fresh_ok)


def _item_attributes(ctx: AuditContext) -> dict[str, pd.DataFrame]:
    """Per split, the attribute table of the sampled pairs' items (catalogue, catalogue-free, the user's columns).

    One row per item of ``PAIR_SAMPLE.rows[split]`` (m rows, indexed by the item's index in the split).
    """
    layout = ctx.artifact(INPUT_LAYOUT)
    sample = ctx.artifact(PAIR_SAMPLE)
    out = {}
    for split, s in ctx.splits.items():
        rows = sample.rows[split]
        frame = None
        if s.items.has_inputs and rows.size:

            def get_batch(idx: np.ndarray, items=s.items, rows=rows) -> Any:
                return items.get_batch(rows[idx])

            named = compute_attributes(get_batch, rows.size)
            # items of another shape than the training items (a preprocessing fault, GD305) get no
            # catalogue-free columns: those are then reported as present on one split only
            same_shape = tuple(s.items.item_shape) == layout.item_shape
            generic = compute_generic(layout if same_shape else Layout("other", (), {}), get_batch, rows.size)
            frame = pd.concat([named, generic], axis=1)
            frame.attrs["descriptions"] = dict(generic.attrs.get("descriptions", {}))
        if s.items.attributes is not None:
            merged = merge_attributes(frame, s.items.attributes.iloc[rows])
            merged.attrs["descriptions"] = {
                **(frame.attrs["descriptions"] if frame is not None else {}),
                **merged.attrs["descriptions"],
            }
            # the user's own columns name an artifact better than any computed feature moving with them
            merged.attrs["user_columns"] = list(s.items.attributes.columns)
            frame = merged
        frame = frame if frame is not None else pd.DataFrame(index=range(rows.size))
        frame.index = pd.Index(rows, name="item")
        out[split] = frame
    return categorize_generic(layout, out)


# --------------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------------


def pair_feature_table(
    attr: pd.DataFrame, left: np.ndarray, right: np.ndarray, *, no_deviation: frozenset[str] = frozenset()
) -> pd.DataFrame:
    """:func:`gapdiag.probes.leakage.attributes.pair_features` plus a ``deviation`` part for each numeric attribute.

    ``a:deviation`` = ``|a:level - median(a over the table's items, the split's sampled items)|``: a shared
    shift of random sign (the same random brightness on both images of a positive pair) leaves the level's
    mean and the agreement unchanged and only shows as more extreme levels. Attributes in ``no_deviation`` (the catalogue-free
    statistics of images and signals, which are many and local) get level and agreement only.
    """
    feats = pair_features(attr, left, right)
    attr = without_attrs(attr)
    extra = {}
    for col in list(feats.columns):
        name, _, part = col.rpartition(":")
        if part == "level" and name not in no_deviation:
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

    ``features`` are the training split's pair features ("redness:level", ...); ``auc[split]`` (F,) holds
    every feature's AUC (NaN for a feature the split does not have) and ``boot[split]`` (n_boot, F) the
    bootstrap replicates of the *tested* features (``tested`` (F,) bool; NaN columns elsewhere).
    ``sample[split]`` are the pair indices (into ``ctx.pairs(split)``) used, ``table[split]`` the feature
    values (n_sample, F) and ``label[split]`` the labels of those pairs. The pseudo-split ``"fresh"`` (present
    when training identities come from labels) holds the training sample re-drawn by
    :func:`identity_repairing`; its bootstrap uses the same resamples as ``"train"`` (paired).
    ``generic`` (F,) marks the catalogue-free features, ``screened`` (F,) the features whose point values pass
    the flag thresholds, and ``groups`` the screened features grouped into artifacts (indices into
    ``features``, strongest artifact first, each strongest feature first).
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
    layout: Layout = field(default_factory=lambda: Layout("other", (), {}))
    tested: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    generic: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    screened: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    groups: list[list[int]] = field(default_factory=list)
    classifier: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def n_tests(self) -> int:
        """Features compared across both splits: the multiplicity of the GD101 decision."""
        return int(np.isfinite(self.auc["val"]).sum())


def _check_enough_pairs(split: str, label: np.ndarray, minimum: int) -> None:
    n_pos = int(np.count_nonzero(label == 1))
    n_neg = int(label.size - n_pos)
    if min(n_pos, n_neg) < minimum:
        raise ProbeSkipped(
            f"the {split} split has {n_pos} similar and {n_neg} dissimilar pairs; telling a spurious cue from "
            f"chance needs at least {minimum} of each ([probes.{SIGNAL_CONFIG_SECTION}] min_pairs_per_label)"
        )


def _pair_tables(ctx: AuditContext, layout: Layout) -> dict[str, Any]:
    """Per split (and the identity-re-drawn "fresh" training pairs), the sampled pairs' features."""
    attrs = ctx.artifact(ITEM_ATTRIBUTES)
    sample = ctx.artifact(PAIR_SAMPLE)
    # a feature row's columns are few (at most max_generic_attributes) and each may carry a shared random
    # value on positive pairs (a session's gain, a device's offset): they get a deviation part like the
    # catalogue's; image regions and signal segments are many and local, and get level and agreement only
    generic_cols = frozenset() if layout.kind == "tabular" else frozenset(layout.columns)
    tables, labels, notes = {}, {}, []
    for key in sample.left:
        split = "train" if key == "fresh" else key
        feats = pair_feature_table(attrs[split], *sample.positions(key), no_deviation=generic_cols)
        items = ctx.splits[split].items
        if layout.pair_columns and items.has_inputs:
            feats = pd.concat(
                [feats, pair_level_features(layout, items.get_batch, sample.left[key], sample.right[key])],
                axis=1,
            )
        if key == "fresh":
            feats.loc[~sample.fresh_ok, :] = np.nan
        tables[key] = feats
        labels[key] = ctx.pairs(split).label[sample.pairs[split]].astype(np.int8)
    if "fresh" not in tables:
        notes.append(
            "Training identities do not come from labels, so the identity-only control (the same pairs re-drawn "
            "from their identities) was not run; GD101 rests on the train-vs-validation contrast alone."
        )
    return {"samples": sample.pairs, "tables": tables, "labels": labels, "attributes": attrs, "notes": notes}


def _matrix(table: pd.DataFrame, features: list[str]) -> np.ndarray:
    """The values (P, F) of ``features`` in ``table``; NaN for a feature it does not have."""
    x = np.full((len(table), len(features)), np.nan)
    for j, f in enumerate(features):
        if f in table.columns:
            x[:, j] = table[f].to_numpy(dtype=np.float64, na_value=np.nan)
    return x


def _split_notes(train_only: list[str], val_only: list[str]) -> list[str]:
    notes = []
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
    return notes


def _measure_aucs(ctx: AuditContext) -> AttributeAUCs:
    params = signal_params(ctx)
    for split in ("train", "val"):
        _check_enough_pairs(split, ctx.pairs(split).label, int(params["min_pairs_per_label"]))
    layout = ctx.artifact(INPUT_LAYOUT)
    t = _pair_tables(ctx, layout)
    tables, labels = t["tables"], t["labels"]
    features = list(tables["train"].columns)
    train_only = [f for f in features if f not in tables["val"].columns]
    val_only = [f for f in tables["val"].columns if f not in tables["train"].columns]
    x = {split: _matrix(tables[split], features) for split in tables}
    auc = {split: point_aucs(x[split], labels[split]) for split in tables}
    generic_attrs = layout.all_columns
    generic = np.array([f.rpartition(":")[0] in generic_attrs for f in features], dtype=bool)
    strength = strength_of(auc, params)
    screened = np.isfinite(strength) & (strength >= 0)
    order = [int(j) for j in np.argsort(-np.where(screened, strength, -np.inf), kind="stable") if screened[j]]
    groups = _group(features, x["train"], labels["train"].astype(np.float64), order, params)
    declared = set(t["attributes"]["train"].attrs.get("user_columns", ()))
    tested = _tested(features, generic, screened, groups, auc["train"], declared, params)
    n_boot = int(ctx.option("n_boot"))
    boot = {}
    cols = np.flatnonzero(tested)
    for split in tables:
        # "fresh" shares the training resamples (the same generator state): a paired bootstrap
        seed_name = "train" if split == "fresh" else split
        a, b = auc_bootstrap(
            x[split][:, cols], labels[split], rng=ctx.rng(f"shortcut.boot.{seed_name}"), n_boot=n_boot
        )
        auc[split][cols] = a
        boot[split] = np.full((n_boot, len(features)), np.nan)
        boot[split][:, cols] = b
    notes = [*t["notes"], *_split_notes(train_only, val_only), *layout.notes]
    res = AttributeAUCs(
        features, auc, boot, t["samples"], tables, labels, t["attributes"], train_only, val_only,
        layout=layout, tested=tested, generic=generic, screened=screened, groups=groups, notes=notes,
    )  # fmt: skip
    # the classifier reads every named feature, whether or not it got intervals
    common = [f for j, f in enumerate(features) if (tested[j] or not generic[j]) and f not in train_only]
    res.classifier = _classifier(ctx, res, common, int(params["cv_folds"]))
    return res


def _tested(
    features: list[str],
    generic: np.ndarray,
    screened: np.ndarray,
    groups: list[list[int]],
    auc_train: np.ndarray,
    declared: set[str],
    params: dict[str, Any],
) -> np.ndarray:
    """Which features (F,) get bootstrap intervals: every one that could be flagged, and what the report shows.

    - screened features (their point values pass the flag thresholds), the catalogue-free ones at most
      ``tested_per_artifact`` per artifact of the ``max_artifacts`` strongest (one is enough to flag it);
    - every part of the user's own columns;
    - of each named attribute, its most separating part on training pairs: the report's table and bars;
    - all catalogue-free features when there are few (token sequences, narrow rows).

    A feature left out has point values only (its row says so); it could not have been flagged, so no
    decision changes, and the multiplicity stays the number of all features compared.
    """
    tested = screened & ~generic
    if generic.sum() <= _TEST_ALL_BELOW:
        tested |= generic
    for g in groups[: int(params["max_artifacts"])]:
        picks = [j for j in g if generic[j]][: int(params["tested_per_artifact"])]
        tested[picks] = True
    separability = np.abs(2 * auc_train - 1)
    best: dict[str, int] = {}
    for j, feat in enumerate(features):
        attr = feat.rpartition(":")[0]
        if generic[j] or not np.isfinite(separability[j]):
            continue
        if attr in declared:
            tested[j] = True
        if attr not in best or separability[j] > separability[best[attr]]:
            best[attr] = j
    tested[list(best.values())] = True
    return tested


def strength_of(auc: dict[str, np.ndarray], params: dict[str, Any]) -> np.ndarray:
    """Per feature (F,), by how much its point values clear the flag thresholds (negative: they do not).

    With s = |2 AUC_train - 1| and the validation and identity-control separabilities read in the training
    direction: the smallest of s - min_train_separability, drop - min_separability_drop and, where the
    control has the feature, excess - min_separability_drop, with drop = s - max(val separability, 0) and
    excess = s - max(control separability, 0). Without the control the ``_uncontrolled`` thresholds apply.
    NaN where the feature is missing from a split.
    """
    sign = np.where(auc["train"] >= 0.5, 1.0, -1.0)
    sep = sign * (2 * auc["train"] - 1)
    drop = sep - np.maximum(sign * (2 * auc["val"] - 1), 0.0)
    fresh = auc.get("fresh", np.full_like(sep, np.nan))
    controlled = np.isfinite(fresh)
    min_sep = np.where(
        controlled, params["min_train_separability"], params["min_train_separability_uncontrolled"]
    )
    min_drop = np.where(
        controlled, params["min_separability_drop"], params["min_separability_drop_uncontrolled"]
    )
    out = np.minimum(sep - min_sep, drop - min_drop)
    excess = sep - np.maximum(sign * (2 * np.where(controlled, fresh, 0.5) - 1), 0.0)
    return np.where(controlled, np.minimum(out, excess - min_drop), out)


def intervention_group(attr: str) -> str:
    """Attributes moved by the same intervention describe one artifact (red, redness, saturation: a tint)."""

    moves = intervention_for_attribute(attr)
    return moves[0] if moves else attr


#: With at most this many catalogue-free features, all of them get bootstrap intervals.
_TEST_ALL_BELOW = 32

#: Screened features grouped at most (the strongest); a correlation matrix of this many columns stays cheap.
_MAX_GROUPED = 512


def _group(
    features: list[str], x: np.ndarray, y: np.ndarray, order: list[int], params: dict[str, Any]
) -> list[list[int]]:
    """Screened features (indices ``order``, strongest first) grouped into artifacts.

    The connected components of a graph on the features, with an edge between two features A and B of
    the training pairs ``x`` (P, F) with labels ``y`` (P,) (missing values at the median) when

    - they belong to the same attribute or intervention (``intervention_group``: redness and saturation), or
    - |r(A, B)| >= ``group_correlation`` (Pearson: the same region's mean and max), or
    - the pairs that carry A's label association carry B's: r(A, B) >= ``group_overlap`` x r(A, y) x r(B, y)
      (and r(A, B) > 2 / sqrt(P), above noise). Two noisy indicators of one artifact on the positive pairs
      (the four corners of a faint watermark) correlate about as much as their shared cause, the label,
      implies: a ratio near 1. Artifacts on different pairs (a tint on some positives, a stamp on others)
      correlate less, or negatively.

    Components are ordered by their strongest feature, features within one by strength. Only the
    ``_MAX_GROUPED`` strongest features are grouped.
    """
    order = order[:_MAX_GROUPED]
    if not order:
        return []
    v = x[:, order]
    med = np.nanmedian(np.where(np.isfinite(v), v, np.nan), axis=0)
    v = np.nan_to_num(np.where(np.isfinite(v), v, med))
    sd = v.std(axis=0)
    z = np.where(sd > 0, (v - v.mean(axis=0)) / np.where(sd > 0, sd, 1.0), 0.0)
    yc = (y - y.mean()) / (y.std() or 1.0)
    r = z.T @ z / len(z)
    r_y = z.T @ yc / len(z)
    linked = np.abs(r) >= float(params["group_correlation"])
    linked |= (r >= float(params["group_overlap"]) * np.outer(r_y, r_y)) & (r > 2 / np.sqrt(len(z)))
    family = [intervention_group(features[j].rpartition(":")[0]) for j in order]
    linked |= np.equal.outer(np.array(family, dtype=object), np.array(family, dtype=object))
    root = list(range(len(order)))

    def find(k: int) -> int:
        while root[k] != k:
            root[k] = root[root[k]]
            k = root[k]
        return k

    for a_, b_ in zip(*np.nonzero(np.triu(linked, 1)), strict=True):
        ra, rb = find(int(a_)), find(int(b_))
        if ra != rb:
            root[max(ra, rb)] = min(ra, rb)  # the stronger feature (earlier in order) stays the root
    groups: dict[int, list[int]] = {}
    for k in range(len(order)):
        groups.setdefault(find(k), []).append(order[k])
    return list(groups.values())


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


PAIR_SAMPLE: Artifact[PairSample] = Artifact(
    "leakage.pair_sample", _pair_sample, "per split, the sampled pairs and the items they use"
)
ITEM_ATTRIBUTES: Artifact[dict[str, pd.DataFrame]] = Artifact(
    "leakage.item_attributes", _item_attributes, "per split, one row of attributes per sampled pair's item"
)
INPUT_LAYOUT: Artifact[Layout] = Artifact(
    "leakage.input_layout", _layout, "the input kind and the catalogue-free columns it gets"
)
ATTRIBUTE_SIGNAL: Artifact[AttributeAUCs] = Artifact(
    "leakage.attribute_signal",
    _measure_aucs,
    "pair-feature AUCs per split, with bootstrap draws and controls",
)
