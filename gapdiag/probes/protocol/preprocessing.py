"""The preprocessing probe: do the two splits' inputs come through the same preprocessing? (GD305)"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ...findings.finding import Finding, Severity
from ...stats import Estimate, bootstrap_chunk, estimate_from_draws, wilson
from ..base import FigureSpec, Measurement, Probe
from ..registry import register_probe
from .columns import column_order, column_scales, reordered
from .lengths import capped_side, length_check, length_message
from .orientation import explained_by_a_slip, orientation, orientation_figure

if TYPE_CHECKING:
    from ...context import AuditContext
    from ...data import Items

__all__ = ["PreprocessingProbe"]

FIG_CHANNELS = "preprocessing_channels"
FIG_ITEMS = "preprocessing_items"
FIG_ORIENTATION = "preprocessing_orientation"
_FEATURES = ("mean", "std", "min", "max")
_READ_BATCH = 256
_PICTURE_SIDE = 16  # items are compared in orientation as 16 x 16 averages: layout, not detail


def _channel_layout(shape: tuple[int, ...]) -> tuple[str, int]:
    """How to find channels in one item of ``shape``: ("first", C), ("last", C) or ("none", 1).

    4-D batches (B, C, H, W) are channels-first unless the last axis looks like channels (1, 3 or 4) and the
    first does not ((B, H, W, C)); anything else is treated as one channel.
    """
    if len(shape) == 3:
        if shape[0] in (1, 3, 4) or shape[-1] not in (1, 3, 4):
            return "first", int(shape[0])
        return "last", int(shape[-1])
    return "none", 1


def _item_features(
    items: Items, idx: np.ndarray, layout: str, pad_id: int | None = None, keep_rows: bool = False
) -> dict[str, np.ndarray]:
    """Per-item, per-channel statistics (n, C) of the items ``idx``: mean, std, min, max, mean of squares;
    for images also ``"picture"`` (n, C, g, g'): each item average-pooled to at most :data:`_PICTURE_SIDE`;
    for token-id sequences (``pad_id`` given) also ``"length"`` (n,): the tokens other than ``pad_id``; for
    feature rows (``keep_rows``) also ``"rows"`` (n, D), the values themselves."""
    import torch

    parts: dict[str, list[np.ndarray]] = {k: [] for k in (*_FEATURES, "sq", "picture", "length", "rows")}
    for start in range(0, idx.size, _READ_BATCH):
        batch = items.get_batch(idx[start : start + _READ_BATCH])
        x = batch.to(dtype=torch.float64).numpy()
        picture = _picture(batch, layout)
        if picture is not None:
            parts["picture"].append(picture)
        if pad_id is not None and x.ndim == 2:
            parts["length"].append((x != float(pad_id)).sum(axis=1))
        if keep_rows and x.ndim == 2:
            parts["rows"].append(x)
        b = x.shape[0]
        if layout == "first":
            f = x.reshape(b, x.shape[1], -1)
        elif layout == "last":
            f = np.moveaxis(x, -1, 1).reshape(b, x.shape[-1], -1)
        else:
            f = x.reshape(b, 1, -1)
        parts["mean"].append(f.mean(axis=2))
        parts["std"].append(f.std(axis=2))
        parts["min"].append(f.min(axis=2))
        parts["max"].append(f.max(axis=2))
        parts["sq"].append((f * f).mean(axis=2))
    return {k: np.concatenate(v) for k, v in parts.items() if v}


def _role_neutral_items(split: Any, min_items: int) -> tuple[np.ndarray, str]:
    """Item indices (sorted) to read a split's statistics from, and where they come from: the items of its given
    dissimilar pairs when there are at least ``min_items`` of them, else all items. An artifact put on similar
    pairs (a frame, a marker token, a shared tint) makes new inputs that only similar pairs hold; a loader slip
    reaches dissimilar pairs too."""
    pool = np.flatnonzero(split.pairs.members(0)) if split.pairs is not None else np.empty(0, dtype=np.int64)
    if pool.size >= min_items:
        return pool, "items of dissimilar pairs"
    return np.arange(len(split.items)), "all items"


def _picture(batch: Any, layout: str) -> np.ndarray | None:
    """Image batches (B, C, H, W), (B, H, W, C) or (B, H, W) pooled to (B, C, <= 16, <= 16) float64; None
    for other items. Average pooling commutes with flips (and, on square images, with transposition), so the
    orientation check can transform the small copies instead of the items."""
    import torch
    import torch.nn.functional as F

    from ...modality import is_image_like

    x = batch if layout != "last" or batch.ndim != 4 else batch.permute(0, 3, 1, 2)
    if not is_image_like(x):
        return None
    x = x.unsqueeze(1) if x.ndim == 3 else x
    side = (min(_PICTURE_SIDE, x.shape[-2]), min(_PICTURE_SIDE, x.shape[-1]))
    # pooled in the batch's own float precision (no second float64 copy of a large batch), kept in float64
    x = x if x.dtype in (torch.float32, torch.float64) else x.to(torch.float32)
    return F.adaptive_avg_pool2d(x, side).to(torch.float64).numpy()


def _pooled(mean: np.ndarray, sq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pooled channel mean and std from per-item means and mean squares (every item has the same size).

    ``mean`` and ``sq`` have shape (..., n, C); returns two arrays of shape (..., C).
    """
    m = mean.mean(axis=-2)
    var = np.maximum(sq.mean(axis=-2) - m * m, 0.0)
    return m, np.sqrt(var)


def _draws(
    feat: dict[str, np.ndarray], rng: np.random.Generator, n_boot: int
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap draws over items of the pooled channel mean and std, each (n_boot, C)."""
    n = feat["mean"].shape[0]
    ms, ss = [], []
    chunk = bootstrap_chunk(n * feat["mean"].shape[1])
    for s in range(0, n_boot, chunk):
        idx = rng.integers(0, n, size=(min(chunk, n_boot - s), n))
        m, sd = _pooled(feat["mean"][idx], feat["sq"][idx])
        ms.append(m)
        ss.append(sd)
    return np.concatenate(ms), np.concatenate(ss)


def _r(x: float) -> float | None:
    return None if not np.isfinite(x) else float(round(float(x), 6))


@register_probe
class PreprocessingProbe(Probe):
    """Per-split input statistics, and whether validation inputs went through the training preprocessing.

    What it measures
    ----------------
    On a seeded sample of at most ``max_items`` items per split (training: of the items of dissimilar pairs when
    its pairs are given, because a slip in a loader touches every item whatever its pair role, while an
    artifact put on similar training pairs, GD101's business, only touches theirs): the item shape, the raw dtype
    (``Items.raw_dtype()``), the value range, and per channel (axis 1 of (C, H, W) items; the last axis of
    (H, W, C); one channel otherwise) the pooled mean and standard deviation, plus four per-item
    statistics per channel (the item's mean, std, min and max).

    Two measurements decide, and both must agree before a fail, because a preprocessing mismatch is a
    global change of scale that *every* validation item carries, while training-only augmentation (colour
    jitter, random brightness) moves the pooled statistics without leaving validation items outside what
    training looks like:

    1. **Scale** per channel: the shift of the validation mean in training standard deviations
       ``(mean_val - mean_train) / std_train`` (0 = same) and the ratio ``std_val / std_train`` (1 = same),
       each with a 95% bootstrap CI (train and val items resampled independently, so the interval is the
       spread expected from sampling alone). Large: ``|shift| >= max_mean_shift`` or the ratio outside
       ``[1 / max_std_ratio, max_std_ratio]``, with the CI excluding 0 (shift) or 1 (ratio).
    2. **Coverage**: the share of validation items whose per-item statistic lies outside the range of the
       training items (their ``coverage_quantile`` to ``1 - coverage_quantile`` quantiles, widened by
       ``range_tolerance`` training standard deviations), for the statistic and channel where it is
       largest; Wilson CI. Healthy splits give about 0; expected under no shift is at most
       ``2 * coverage_quantile``. Large: ``>= min_outside_share`` with the CI above ``2 * coverage_quantile``.

    **Orientation** (image items of one shape): the mean validation item against the mean training item,
    both as 16 x 16 averages per channel, before and after undoing each flip, half or quarter turn,
    transposition, zoom about the centre (a crop of another size) and (3 channels) channel reversal. The
    layout difference is the RMS over cells of the mean items' difference in training standard deviations,
    less what sampling alone gives; an undo *explains* the share of its square that it removes. Bootstrap
    CIs over the items of both splits. Unseen classes make the mean items differ too, but no flip, turn or
    zoom lines them up.

    **Token ids** (integer sequences; ``pad_id`` from ``[probes.shortcut]``): ids are categories, so scale and
    coverage are not judged; the lengths are (tokens other than the pad id): each split's longest, the
    share of the other split's sequences beyond it (Wilson CI) and the share of its own at exactly that
    length, where a cut piles them.

    **Feature rows** (at most 64 columns): each validation column is matched to the training column it
    resembles most, by its mean and spread and by its correlations with the other columns; the tables'
    difference (means and spreads scale-free, plus correlations; 0 = alike) with the columns as given,
    and the share of it that the matched order removes, bootstrap CIs over rows.

    GD305 ``fail``: item shapes differ, or token-id sequences of one split are cut (at least
    ``min_beyond_longest`` of the other split's sequences are longer than its longest, CI above half of
    that), or scale and coverage are both large, or the layout difference is at
    least ``min_layout_rms`` (CI above 0) and one undo explains at least ``min_explained`` of it (CI above
    50%), or the feature tables differ by at least ``min_column_difference`` and another column order
    explains as much. ``warn``: only the raw dtype
    kind differs (integer vs floating point: one split was probably not converted/scaled like the other).
    """

    name = "preprocessing"
    concurrent = True
    family = "protocol"
    codes = ("GD305",)
    requires = frozenset({"train_inputs", "val_inputs"})
    defaults = {
        # items read per split (seeded sample): enough for 1% quantiles and tight pooled statistics
        "max_items": 1000,
        # items of dissimilar pairs needed to read a split's statistics from them alone (else all its items)
        "min_neutral_items": 50,
        # half a training std of mean shift; digits of disjoint classes or training-only augmentation stay
        # below, a skipped Normalize (e.g. ImageNet mean/std) lands well above in the std ratio
        "max_mean_shift": 0.5,
        # a 1.5x change of contrast is a different scale, not sampling; a skipped Normalize is ~0.25-0.4x
        "max_std_ratio": 1.5,
        # at least half of the validation items look like no training item
        "min_outside_share": 0.5,
        "coverage_quantile": 0.01,
        "range_tolerance": 0.25,
        # orientation: the mean validation item differs from the mean training item by at least this many
        # training standard deviations per cell (RMS; the same preprocessing gives about 0) ...
        "min_layout_rms": 0.1,
        # ... and undoing one flip, turn, transposition, zoom or channel reversal removes at least this share of
        # the squared difference (unseen classes give under 30% for digits: none of their difference is a flip)
        "min_explained": 0.75,
        # token ids: a tenth of one split's sequences longer than the other split's longest is a cut (a
        # tokenizer's max_length), not sampling
        "min_beyond_longest": 0.1,
        # feature rows: the tables differ by at least this much in column means, spreads and correlations
        # (0 = alike; sampling alone gives about 0.05 on 1000 rows), and an order of the columns explains at
        # least min_explained of it
        "min_column_difference": 0.05,
    }
    description = (
        "Per-split shape, dtype, range and per-channel mean/std; a val loader preprocessed differently."
    )

    def _sample(self, ctx: AuditContext, split: str) -> tuple[np.ndarray, str]:
        """The seeded sample of at most ``max_items`` item indices (sorted) of ``split``, and what it is drawn
        from (training: the items of dissimilar pairs, see :func:`_role_neutral_items`)."""
        n = len(ctx.splits[split].items)
        pool, drawn_from = (
            _role_neutral_items(ctx.splits[split], int(self.params["min_neutral_items"]))
            if split == "train"
            else (np.arange(n), "all items")
        )
        k = min(pool.size, int(self.params["max_items"]))
        rng = ctx.rng(f"preprocessing.sample.{split}")
        return (pool if k == pool.size else np.sort(rng.choice(pool, size=k, replace=False))), drawn_from

    def _measure(self, ctx: AuditContext) -> Measurement:
        n_boot = int(ctx.option("n_boot"))
        level = float(ctx.option("ci_level"))
        per_split: dict[str, dict[str, Any]] = {}
        feats: dict[str, dict[str, np.ndarray]] = {}
        shapes = {s: tuple(ctx.splits[s].items.item_shape) for s in ("train", "val")}
        layouts = {s: _channel_layout(shapes[s]) for s in ("train", "val")}
        comparable = shapes["train"] == shapes["val"]
        # with different shapes, channels may not line up: compare all values as one channel
        if not comparable and layouts["train"][1] != layouts["val"][1]:
            layouts = {s: ("none", 1) for s in ("train", "val")}
        kind = _input_layout(ctx)
        pad_id = int(kind.pad_id) if kind.kind == "sequence" else None
        for split in ("train", "val"):
            items = ctx.splits[split].items
            n = len(items)
            idx, drawn_from = self._sample(ctx, split)
            k = idx.size
            f = _item_features(items, idx, layouts[split][0], pad_id, keep_rows=kind.kind == "tabular")
            feats[split] = f
            mean, std = _pooled(f["mean"], f["sq"])
            per_split[split] = {
                "shape": list(shapes[split]),
                "dtype": items.raw_dtype(),
                "n_items_read": int(k),
                "n_items": int(n),
                "items_from": drawn_from,
                "min": float(f["min"].min()),
                "max": float(f["max"].max()),
                "channel_mean": mean.tolist(),
                "channel_std": std.tolist(),
            }

        mt_draw, st_draw = _draws(feats["train"], ctx.rng("preprocessing.boot.train"), n_boot)
        mv_draw, sv_draw = _draws(feats["val"], ctx.rng("preprocessing.boot.val"), n_boot)
        mt = np.asarray(per_split["train"]["channel_mean"])
        st = np.asarray(per_split["train"]["channel_std"])
        mv = np.asarray(per_split["val"]["channel_mean"])
        sv = np.asarray(per_split["val"]["channel_std"])
        tiny = 1e-12 * np.maximum(1.0, np.abs(mt))

        def safe(d: np.ndarray) -> np.ndarray:
            return np.maximum(d, tiny)

        n_pair = min(feats["train"]["mean"].shape[0], feats["val"]["mean"].shape[0])
        channels = []
        for c in range(mt.size):
            shift = estimate_from_draws(
                (mv[c] - mt[c]) / safe(st)[c],
                (mv_draw[:, c] - mt_draw[:, c]) / safe(st_draw)[:, c],
                n_pair,
                level,
            )
            both_const = st[c] <= tiny[c] and sv[c] <= tiny[c]
            ratio = (
                Estimate(1.0, 1.0, 1.0, n_pair, level)
                if both_const
                else estimate_from_draws(
                    sv[c] / safe(st)[c], sv_draw[:, c] / safe(st_draw)[:, c], n_pair, level
                )
            )
            channels.append({"channel": c, "mean_shift": shift, "std_ratio": ratio})

        coverage = self._coverage(feats, st, level)
        worst = max(coverage, key=lambda r: r["outside"].value)

        metrics = {
            "train": per_split["train"],
            "val": per_split["val"],
            "same_shape": comparable,
            "dtype_kind_differs": _kind(per_split["train"]["dtype"]) != _kind(per_split["val"]["dtype"]),
            "channel_layout": layouts["train"][0],
            "channels": channels,
            "coverage": coverage,
            "worst_coverage": worst,
        }
        figures = self._figures(per_split, mt_draw, st_draw, mv_draw, sv_draw, feats, worst, level)
        _kind_checks(ctx, feats, comparable, metrics, figures)
        return Measurement(metrics=metrics, figures=figures)

    def _coverage(
        self, feats: dict[str, dict[str, np.ndarray]], st: np.ndarray, level: float
    ) -> list[dict[str, Any]]:
        """Validation items outside the range of training items, per statistic and channel (Wilson CIs)."""
        q = float(self.params["coverage_quantile"])
        tol = float(self.params["range_tolerance"]) * st
        coverage = []
        for feat in _FEATURES:
            lo = np.quantile(feats["train"][feat], q, axis=0) - tol
            hi = np.quantile(feats["train"][feat], 1 - q, axis=0) + tol
            v = feats["val"][feat]
            out = (v < lo) | (v > hi)
            for c in range(out.shape[1]):
                coverage.append(
                    {
                        "statistic": feat,
                        "channel": c,
                        "outside": wilson(int(out[:, c].sum()), out.shape[0], level),
                        "train_range": [float(lo[c]), float(hi[c])],
                    }
                )
        return coverage

    @staticmethod
    def _figures(per_split, mt_draw, st_draw, mv_draw, sv_draw, feats, worst, level) -> list[FigureSpec]:
        alpha = (1 - level) / 2
        groups, series = (
            [],
            {"train": {"value": [], "low": [], "high": []}, "val": {"value": [], "low": [], "high": []}},
        )
        n_ch = len(per_split["train"]["channel_mean"])
        for c in range(n_ch):
            for stat, draws in (("mean", (mt_draw, mv_draw)), ("std", (st_draw, sv_draw))):
                groups.append(f"ch{c} {stat}")
                for split, d in zip(("train", "val"), draws):
                    series[split]["value"].append(float(per_split[split][f"channel_{stat}"][c]))
                    series[split]["low"].append(float(np.quantile(d[:, c], alpha)))
                    series[split]["high"].append(float(np.quantile(d[:, c], 1 - alpha)))
        feat, c = worst["statistic"], worst["channel"]
        return [
            FigureSpec(
                FIG_CHANNELS,
                "bars",
                "Per-channel input statistics",
                {"groups": groups, "series": series, "ref": None, "ylabel": "value", "horizontal": False},
                caption=f"Pooled mean and std of the input values per channel, {level:.0%} bootstrap CI over items.",
            ),
            FigureSpec(
                FIG_ITEMS,
                "hist",
                f"Per-item {feat} of channel {c}",
                {
                    "panels": [
                        {
                            "title": f"item {feat}, channel {c}",
                            "series": {
                                "train": np.round(feats["train"][feat][:, c], 5).tolist(),
                                "val": np.round(feats["val"][feat][:, c], 5).tolist(),
                            },
                            "vlines": {
                                "train range (low)": worst["train_range"][0],
                                "train range (high)": worst["train_range"][1],
                            },
                        }
                    ],
                    "xlabel": f"per-item {feat}",
                },
                caption="The statistic where validation items fall outside the training items' range most often.",
            ),
        ]

    def _judge(self, m: Measurement) -> list[Finding]:
        mt = m.metrics
        tr, va = mt["train"], mt["val"]
        facts = (
            f"Training items: shape {tuple(tr['shape'])}, dtype {tr['dtype']}, values in [{tr['min']:.3g}, "
            f"{tr['max']:.3g}]; validation items: shape {tuple(va['shape'])}, dtype {va['dtype']}, values in "
            f"[{va['min']:.3g}, {va['max']:.3g}]."
        )
        evidence = {
            "train": tr,
            "val": va,
            "channels": [
                {
                    "channel": c["channel"],
                    "mean_shift": c["mean_shift"].to_dict(),
                    "std_ratio": c["std_ratio"].to_dict(),
                }
                for c in mt["channels"]
            ],
            "worst_coverage": {**mt["worst_coverage"], "outside": mt["worst_coverage"]["outside"].to_dict()},
        }
        figs = [FIG_CHANNELS, FIG_ITEMS]
        if not mt["same_shape"]:
            how = "padded to another length" if "lengths" in mt else "resize, crop or channel order"
            return [
                self.finding(
                    "GD305",
                    Severity.FAIL,
                    f"The splits' items have different shapes, so the model sees differently prepared inputs "
                    f"({how}). {facts}",
                    evidence=evidence,
                    figures=figs,
                )
            ]
        if "lengths" in mt:  # token ids are categories: their scale means nothing, their lengths do
            return self._cut(mt["lengths"], evidence)
        # a channel reversal also moves channel scales: the undo that lines the splits up is the better name
        turned = self._turned(mt.get("orientation"), facts, evidence, figs)
        if turned is None:
            turned = self._reordered(mt.get("columns"), facts, evidence, figs)
        if turned is not None:
            return [turned]
        scaled = self._scaled(mt, facts, evidence, figs)
        if scaled is not None:
            return [scaled]
        if mt["dtype_kind_differs"]:
            return [
                self.finding(
                    "GD305",
                    Severity.WARN,
                    f"The splits' raw inputs have different dtypes ({tr['dtype']} vs {va['dtype']}): one was "
                    f"probably converted differently (e.g. ToTensor's /255 on one side only), although the values "
                    f"gapdiag sees are on a similar scale. {facts}",
                    evidence=evidence,
                    figures=figs,
                )
            ]
        return []

    def _scaled(
        self, mt: dict[str, Any], facts: str, evidence: dict[str, Any], figs: list[str]
    ) -> Finding | None:
        """GD305 fail when a channel's scale moved and most validation items lie outside the training range."""
        p = self.params
        ratio_max = float(p["max_std_ratio"])
        large = []
        for c in mt["channels"]:
            shift, ratio = c["mean_shift"], c["std_ratio"]
            if abs(shift.value) >= p["max_mean_shift"] and shift.excludes(0.0):
                large.append((c["channel"], "shift", shift, ratio))
            elif (ratio.value >= ratio_max or ratio.value <= 1.0 / ratio_max) and ratio.excludes(1.0):
                large.append((c["channel"], "ratio", shift, ratio))
        worst = mt["worst_coverage"]
        outside = worst["outside"]
        q = float(p["coverage_quantile"])
        uncovered = outside.value >= p["min_outside_share"] and outside.above(2 * q)
        if large and uncovered:
            ch, _, shift, ratio = max(
                large, key=lambda t: abs(t[2].value) + abs(np.log(max(t[3].value, 1e-12)))
            )
            where = (
                f"in channel {ch} the validation mean is shifted by {shift:.2f} training standard deviations and "
                f"the standard deviation ratio val/train is {ratio:.2f}"
            )
            of_items = f"{worst['statistic']} (channel {worst['channel']})"
            scales = mt.get("column_scales")
            if scales and scales["top"]:  # feature rows: the columns say more than the one pooled "channel"
                where = _moved_columns(scales, float(p["max_mean_shift"]), ratio_max)
                of_items = f"{worst['statistic']} over its columns"
                evidence = {
                    **evidence,
                    "column_scales": [
                        {k: (v.to_dict() if isinstance(v, Estimate) else v) for k, v in c.items()}
                        for c in scales["top"]
                    ],
                }
            message = (
                f"Validation inputs are on a different scale than training inputs: {where} (same preprocessing: "
                f"0 and 1). {outside.value:.0%} "
                f"[{outside.low:.0%}, {outside.high:.0%}] of {outside.n} validation items have a per-item "
                f"{of_items} outside the range of the training items, so "
                f"this is not training-side augmentation. {facts} A validation loader that skips (or repeats) "
                f"Normalize or the /255 scaling gives exactly this. (fail: |shift| >= {p['max_mean_shift']:g} or "
                f"ratio outside [{1 / ratio_max:.2f}, {ratio_max:g}], and >= {p['min_outside_share']:.0%} of "
                f"validation items outside the training range.)"
            )
            return self.finding("GD305", Severity.FAIL, message, evidence=evidence, figures=figs)
        return None

    def _cut(self, lengths: dict[str, Any], evidence: dict[str, Any]) -> list[Finding]:
        """GD305 fail when one split's sequences are cut shorter than a real share of the other's."""
        capped = capped_side(lengths, float(self.params["min_beyond_longest"]))
        if capped is None:
            return []
        level = lengths["train"]["other_beyond"].level
        message = length_message(lengths, capped, f"{level:.0%} CIs")
        evidence = {**evidence, "lengths": _lengths_evidence(lengths)}
        return [self.finding("GD305", Severity.FAIL, message, evidence=evidence, figures=[FIG_ITEMS])]

    def _reordered(
        self, columns: dict[str, Any] | None, facts: str, evidence: dict[str, Any], figs: list[str]
    ) -> Finding | None:
        """GD305 fail when validation feature columns line up with training ones only in another order."""
        p = self.params
        if not reordered(columns, p):
            return None
        assert columns is not None
        diff, explained, moved = columns["difference"], columns["explained"], columns["moved"]
        pairs = ", ".join(f"{i} like {j}" for i, j in list(zip(moved, columns["to"]))[:6])
        message = (
            f"Validation feature columns look like training columns in another order: {len(moved)} of "
            f"{columns['n_columns']} validation columns resemble another training column more than their own "
            f"(validation column {pairs}{', ...' if len(moved) > 6 else ''}), and that order removes "
            f"{explained.value:.0%} [{explained.low:.0%}, {explained.high:.0%}] of the difference between the "
            f"tables' column means, spreads and correlations ({diff:.2f} as given; 0 = alike; "
            f"{explained.level:.0%} bootstrap CI over {explained.n} rows). {facts} A validation table whose "
            f"columns come in another order (a DataFrame's column order, a column dropped or inserted upstream) "
            f"gives exactly this. (fail: a difference >= {p['min_column_difference']:g} that the order explains "
            f">= {p['min_explained']:.0%}, its CI above 50%.)"
        )
        summary = {
            "moved": moved,
            "to": columns["to"],
            "difference": diff.to_dict(),
            "explained": explained.to_dict(),
        }
        return self.finding(
            "GD305", Severity.FAIL, message, evidence={**evidence, "columns": summary}, figures=figs
        )

    def _turned(
        self, orientation: dict[str, Any] | None, facts: str, evidence: dict[str, Any], figs: list[str]
    ) -> Finding | None:
        """GD305 fail when validation items line up with training items only once a slip is undone."""
        p = self.params
        if not explained_by_a_slip(orientation, p):
            return None
        assert orientation is not None
        rms, explained, best = orientation["identity_rms"], orientation["explained"], orientation["best"]
        message = (
            f"Validation inputs look like training inputs {best}: the mean validation item differs from the mean "
            f"training item by {rms:.2f} training standard deviations per cell (RMS over 16 x 16 averages; 0 = "
            f"the same layout), and undoing that removes {explained.value:.0%} [{explained.low:.0%}, "
            f"{explained.high:.0%}] of the squared difference ({orientation['n_val']} validation and "
            f"{orientation['n_train']} training items; {explained.level:.0%} bootstrap CI). {facts} A validation "
            f"loader that swaps height and width, flips, turns or crops images differently, or reads BGR as RGB "
            f"gives exactly this; validation classes unseen in training differ from training in layout too, but "
            f"no such undo lines them up. (fail: a difference >= {p['min_layout_rms']:g} that the undo explains >= "
            f"{p['min_explained']:.0%}, its CI above 50%.)"
        )
        evidence = {
            **evidence,
            "orientation": {
                "undo": best,
                "identity_rms": rms.to_dict(),
                "explained": explained.to_dict(),
                "rms_after_undo": orientation["rms"],
            },
        }
        return self.finding(
            "GD305", Severity.FAIL, message, evidence=evidence, figures=[*figs, FIG_ORIENTATION]
        )


def _kind_checks(
    ctx: AuditContext, feats: dict[str, dict[str, np.ndarray]], comparable: bool, metrics: dict, figures: list
) -> None:
    """The checks of one input kind, into ``metrics`` and ``figures``: token-id lengths, feature-row column
    order, image orientation."""
    n_boot, level = int(ctx.option("n_boot")), float(ctx.option("ci_level"))
    if "length" in feats["train"] and "length" in feats["val"]:
        lengths = feats["train"]["length"], feats["val"]["length"]
        rng = ctx.rng("preprocessing.lengths")
        metrics["lengths"] = length_check(*lengths, rng=rng, n_boot=n_boot, level=level)
    if comparable and "rows" in feats["train"] and "rows" in feats["val"]:
        rows = feats["train"]["rows"], feats["val"]["rows"]
        metrics["columns"] = column_order(*rows, ctx.rng("preprocessing.columns"), n_boot, level)
        metrics["column_scales"] = column_scales(*rows, ctx.rng("preprocessing.column_scales"), n_boot, level)
    if comparable and "picture" in feats["train"] and "picture" in feats["val"]:
        pictures = feats["train"]["picture"], feats["val"]["picture"]
        metrics["orientation"] = orientation(*pictures, ctx.rng("preprocessing.orientation"), n_boot, level)
        figures.append(orientation_figure(*pictures, metrics["orientation"]["best"], FIG_ORIENTATION))


def _moved_columns(scales: dict[str, Any], max_shift: float, ratio_max: float) -> str:
    """In words: how many feature columns moved beyond the scale limits (point values of
    :func:`~gapdiag.probes.protocol.columns.column_scales`), and the strongest of them with their CIs."""
    moved = (np.abs(scales["median_shift"]) >= max_shift) | (
        np.abs(np.log(scales["iqr_ratio"])) >= np.log(ratio_max)
    )
    shown = [c for c in scales["top"] if moved[c["column"]]] or scales["top"][:1]
    return (
        f"{int(moved.sum())} of {int(np.isfinite(scales['median_shift']).sum())} feature columns with a spread "
        "moved by at least the limits below (point values, in medians and interquartile ranges); the most moved: "
        + "; ".join(
            f"column {c['column']}: median shifted by {c['median_shift']:.2f} training IQRs, IQR ratio val/train "
            f"{c['iqr_ratio']:.2f}"
            for c in shown
        )
    )


def _input_layout(ctx: AuditContext) -> Any:
    """The input kind (and pad id) the leakage probes decided from the first training items."""
    from ..leakage.signal import INPUT_LAYOUT

    return ctx.artifact(INPUT_LAYOUT)


def _lengths_evidence(lengths: dict[str, Any]) -> dict[str, Any]:
    return {
        split: {k: (v.to_dict() if isinstance(v, Estimate) else v) for k, v in entry.items()}
        for split, entry in lengths.items()
    }


def _kind(dtype: str) -> str:
    d = dtype.lower()
    if "bool" in d:
        return "bool"
    if "int" in d:
        return "int"
    if "float" in d or "half" in d or "double" in d:
        return "float"
    return d
