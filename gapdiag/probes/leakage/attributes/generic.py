"""Catalogue-free detectors: per-item statistics that find an artifact nobody named.

A scanner's stamp in a corner, a watermark, padding length, a source-system field: the catalogue of named
attributes (brightness, tint, ...) misses them, or sees them only through stand-ins. These detectors
describe *where* an item's values sit, whatever they show, chosen from the kind of input
(:func:`gapdiag.modality.input_kind`):

- **images** (B, C, H, W): a grid of regions (cells of about 4 pixels a side for small images, at most
  ``max_attributes`` statistics in all), and per region and channel the mean, spread (std), minimum and
  maximum. A marker, stamp, border, vignette or watermark moves the statistics of the regions it covers;
- **1-D signals** (B, L) or (B, C, L): segments of positions (up to 8) with the same four statistics, and
  up to 4 frequency bands (log of the mean power of the real FFT, the mean removed): a device's offset, a
  click at one place, a noise floor;
- **token-id sequences** (B, L) integers: length (positions not holding the pad id), padding (positions
  holding it), distinct tokens, and per pair the token overlap of the two items (Jaccard index of their
  token sets);
- **feature rows** (B, D): each feature's value (integer-valued features with at most
  ``CATEGORICAL_MAX_INTEGER_LEVELS`` levels in training are categories, compared by equality).

Every column is a :class:`GenericColumn` that says in words where it lives ("the top-left 4x4 pixels
(rows 0-3, columns 0-3)") and which registered intervention moves it, with the parameters bound to its
place, so GD101 can localize a found artifact and GD102 can transplant it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from ....errors import InputError
from ....modality import input_kind
from .registry import CATEGORICAL_MAX_INTEGER_LEVELS, as_tensor_batch

__all__ = [
    "GenericColumn",
    "Layout",
    "make_layout",
    "generic_values",
    "compute_generic",
    "categorize_generic",
    "pair_level_features",
    "merge_bound",
    "rect_words",
]

STATS = ("mean", "std", "min", "max")
_RGB = ("red", "green", "blue")
_MAX_SEGMENTS = 8
_MAX_BANDS = 4
_MIN_CELL = 4  # pixels a side of a region, where the image allows

# per statistic: (what it is, "higher" words, "lower" words) for a place P
# How region_transplant moves each statistic: a level ('mean') moves means and extremes without the source's
# own content; a spread (a texture, a noise pattern, a fine watermark) has no level to move, so the source's
# difference from the reference goes in point by point ('add'); the control transplant carries the same
# content without the artifact.
_TRANSPLANT_MODE = {"mean": "mean", "std": "add", "min": "mean", "max": "mean"}

_STAT_WORDS = {
    "mean": ("mean", "brighter in {p}", "darker in {p}"),
    "std": ("spread (std)", "more varied in {p}", "more uniform in {p}"),
    "min": ("minimum", "higher in the darkest value of {p}", "lower in the darkest value of {p}"),
    "max": ("maximum", "higher in the brightest value of {p}", "lower in the brightest value of {p}"),
}


@dataclass(frozen=True)
class GenericColumn:
    """One catalogue-free column: what it measures, where, in words, and the intervention that moves it.

    Attributes
    ----------
    name : str
        Column name in the attribute table, e.g. ``region_r0-3_c0-3_red_max``.
    detector : {"region", "segment", "band", "sequence", "feature", "pair"}
    place : str
        Where it lives, in words ("the top-left 4x4 pixels (rows 0-3, columns 0-3)", "sequence length").
    plain : str
        A short plain name for messages ("maximum of the top-left 4x4 pixels, red channel").
    more, less : str
        How positive pairs differ when the pair level is higher / lower ("brighter in ...").
    intervention : str or None
        The registered intervention that moves it (None: nothing can, e.g. token overlap).
    bound : Mapping[str, Any]
        Intervention parameters bound to the place (``{"boxes": ((r0, r1, c0, c1),)}`` for an image region,
        ``((start, stop),)`` for a signal segment, end-exclusive).
    cell : tuple of int
        The grid cell (i, j) of a region, (k,) of a segment or band, () otherwise.
    """

    name: str
    detector: str
    place: str
    plain: str
    more: str
    less: str
    intervention: str | None = None
    bound: Mapping[str, Any] = field(default_factory=dict)
    cell: tuple[int, ...] = ()

    @property
    def description(self) -> str:
        return f"{self.plain} (a catalogue-free {self.detector} statistic)"


@dataclass(frozen=True)
class Layout:
    """Which catalogue-free columns an audit computes, decided once from the first training batch.

    ``kind`` is the input kind; ``columns`` the per-item columns in order; ``pair_columns`` the pair-level
    ones (token overlap); ``row_edges``/``col_edges`` the region grid of images (pixel boundaries, length
    g+1); ``channels`` the channel names; ``pad_id`` the pad token of sequences; ``notes`` what was left out.
    """

    kind: str
    item_shape: tuple[int, ...]
    columns: dict[str, GenericColumn]
    pair_columns: dict[str, GenericColumn] = field(default_factory=dict)
    row_edges: tuple[int, ...] = ()
    col_edges: tuple[int, ...] = ()
    channels: tuple[str, ...] = ()
    pad_id: int = 0
    notes: tuple[str, ...] = ()

    @property
    def all_columns(self) -> dict[str, GenericColumn]:
        return {**self.columns, **self.pair_columns}

    def region_cells(self, names: Sequence[str]) -> list[tuple[int, int]]:
        """The grid cells (i, j) of the region columns among ``names``, sorted, without repeats."""
        cells = {
            self.columns[n].cell for n in names if n in self.columns and self.columns[n].detector == "region"
        }
        return sorted(cells)

    def cells_words(self, cells: Sequence[tuple[int, int]]) -> str:
        """Where a set of grid cells lies, in words: one rectangle when they fill one, else a list."""
        if not cells:
            return ""
        h, w = self.item_shape[-2], self.item_shape[-1]
        rows = sorted({i for i, _ in cells})
        cols = sorted({j for _, j in cells})
        box = (
            self.row_edges[rows[0]],
            self.row_edges[rows[-1] + 1],
            self.col_edges[cols[0]],
            self.col_edges[cols[-1] + 1],
        )
        if (
            len(cells) == len(rows) * len(cols)
            and rows == list(range(rows[0], rows[-1] + 1))
            and cols == list(range(cols[0], cols[-1] + 1))
        ):
            return rect_words(*box, h, w)
        parts = [rect_words(*self._cell_box(c), h, w) for c in cells[:4]]
        more = f" and {len(cells) - 4} more" if len(cells) > 4 else ""
        return f"{len(cells)} separate regions: " + "; ".join(parts) + more

    def _cell_box(self, cell: tuple[int, int]) -> tuple[int, int, int, int]:
        i, j = cell
        return self.row_edges[i], self.row_edges[i + 1], self.col_edges[j], self.col_edges[j + 1]


def rect_words(r0: int, r1: int, c0: int, c1: int, h: int, w: int) -> str:
    """A pixel rectangle (rows r0..r1-1, columns c0..c1-1) of an h x w image in words.

    >>> rect_words(0, 4, 0, 4, 16, 16)
    'the top-left 4x4 pixels (rows 0-3, columns 0-3)'
    """
    if (r0, r1, c0, c1) == (0, h, 0, w):
        return f"the whole image ({h}x{w} pixels)"
    vert = "top" if r0 == 0 and r1 < h else "bottom" if r1 == h and r0 > 0 else ""
    horiz = "left" if c0 == 0 and c1 < w else "right" if c1 == w and c0 > 0 else ""
    where = "-".join(p for p in (vert, horiz) if p)
    size = f"{r1 - r0}x{c1 - c0} pixels"
    rows = f"rows {r0}-{r1 - 1}" if r1 - r0 < h else "all rows"
    cols = f"columns {c0}-{c1 - 1}" if c1 - c0 < w else "all columns"
    if where:
        return f"the {where} {size} ({rows}, {cols})"
    return f"the {size} at {rows}, {cols}"


# --------------------------------------------------------------------------------------------------
# Choosing the columns
# --------------------------------------------------------------------------------------------------


def make_layout(
    first: Any,
    *,
    declared: str = "auto",
    pad_id: int = 0,
    max_attributes: int = 192,
    feature_names: Sequence[str] = (),
) -> Layout:
    """The catalogue-free columns for items like ``first``.

    Parameters
    ----------
    first : Tensor (B, ...)
        A batch of training items in the user's dtype (token ids must still be integers).
    declared : str
        ``"auto"`` or an input kind (see :func:`gapdiag.modality.input_kind`).
    pad_id : int
        The pad token of token-id sequences.
    max_attributes : int
        Bound on the per-item statistics (the image grid and the per-feature columns are sized to it).
    feature_names : sequence of str
        Names of the columns of feature rows, in order (default ``input_feature_<j>``).

    Returns
    -------
    Layout
    """
    x = as_tensor_batch(first, "the first training batch")
    kind = input_kind(x, declared=declared)
    builders: dict[str, Callable[..., Layout]] = {
        "image": _image_layout,
        "signal": _signal_layout,
        "sequence": _sequence_layout,
        "tabular": _tabular_layout,
    }
    if kind not in builders:
        return Layout(
            kind,
            tuple(x.shape[1:]),
            {},
            notes=(f"inputs of shape {tuple(x.shape[1:])}: no catalogue-free detector",),
        )
    return builders[kind](
        x, pad_id=int(pad_id), max_attributes=int(max_attributes), names=tuple(feature_names)
    )


def _edges(n: int, parts: int) -> tuple[int, ...]:
    return tuple(int(v) for v in np.round(np.linspace(0, n, parts + 1)))


def _channel_names(c: int) -> tuple[str, ...]:
    if c == 1:
        return ("",)
    return _RGB if c == 3 else tuple(f"channel {k}" for k in range(c))


def _image_layout(x: torch.Tensor, *, max_attributes: int, **_: Any) -> Layout:
    c = 1 if x.ndim == 3 else int(x.shape[1])
    h, w = int(x.shape[-2]), int(x.shape[-1])
    cap = max(1, int(np.sqrt(max_attributes / (c * len(STATS)))))
    gr, gc = max(1, min(h // _MIN_CELL, cap)), max(1, min(w // _MIN_CELL, cap))
    rows, cols = _edges(h, gr), _edges(w, gc)
    channels = _channel_names(c)
    columns = {}
    for i in range(gr):
        for j in range(gc):
            r0, r1, c0, c1 = rows[i], rows[i + 1], cols[j], cols[j + 1]
            place = rect_words(r0, r1, c0, c1, h, w)
            for ch in channels:
                for stat in STATS:
                    what, more, less = _STAT_WORDS[stat]
                    tag = f"_{ch.replace(' ', '')}" if ch else ""
                    name = f"region_r{r0}-{r1 - 1}_c{c0}-{c1 - 1}{tag}_{stat}"
                    suffix = f", {ch} channel" if ch else ""
                    columns[name] = GenericColumn(
                        name,
                        "region",
                        place,
                        f"{what} of {place}{suffix}",
                        more.format(p=place) + suffix,
                        less.format(p=place) + suffix,
                        "region_transplant",
                        {"boxes": ((r0, r1, c0, c1),), "mode": _TRANSPLANT_MODE[stat]},
                        (i, j),
                    )
    return Layout("image", tuple(x.shape[1:]), columns, row_edges=rows, col_edges=cols, channels=channels)


def _signal_layout(x: torch.Tensor, **_: Any) -> Layout:
    c = 1 if x.ndim == 2 else int(x.shape[1])
    n = int(x.shape[-1])
    segs = _edges(n, max(1, min(_MAX_SEGMENTS, n // 8)))
    n_freq = n // 2  # rfft bins 1..n//2 (the mean, bin 0, is left out)
    bands = _edges(n_freq, max(1, min(_MAX_BANDS, n_freq)))
    channels = _channel_names(c) if c != 3 else tuple(f"channel {k}" for k in range(3))
    columns = {}
    for ch in channels:
        tag, suffix = (f"_{ch.replace(' ', '')}", f", {ch}") if ch else ("", "")
        for k in range(len(segs) - 1):
            a, b = segs[k], segs[k + 1]
            place = f"positions {a}-{b - 1} of {n}"
            for stat in STATS:
                what = _STAT_WORDS[stat][0]
                name = f"segment_p{a}-{b - 1}{tag}_{stat}"
                columns[name] = GenericColumn(
                    name,
                    "segment",
                    place,
                    f"{what} of {place}{suffix}",
                    f"higher in the {what} of {place}{suffix}",
                    f"lower in the {what} of {place}{suffix}",
                    "region_transplant",
                    {"boxes": ((a, b),), "mode": _TRANSPLANT_MODE[stat]},
                    (k,),
                )
        for k in range(len(bands) - 1):
            f0, f1 = bands[k] + 1, bands[k + 1] + 1
            place = f"frequency band {f0}-{f1 - 1} (cycles per item)"
            name = f"band_f{f0}-{f1 - 1}{tag}_power"
            columns[name] = GenericColumn(
                name,
                "band",
                place,
                f"power in {place}{suffix}",
                f"stronger in {place}{suffix}",
                f"weaker in {place}{suffix}",
                "band_transplant",
                {"band": (f0, f1)},
                (k,),
            )
    return Layout("signal", tuple(x.shape[1:]), columns, channels=channels)


# Tokens tracked per item: those whose share of the sampled training items is between these bounds (a
# token in nearly every item, or in almost none, cannot tell pairs apart), the most variable first. A marker
# token shared by the items of positive pairs is one of them: it sits in about half the training items.
_MAX_TRACKED_TOKENS = 8
_TRACKED_SHARE = (0.05, 0.95)


def _tracked_tokens(x: torch.Tensor, pad_id: int) -> tuple[int, ...]:
    """Token ids (at most ``_MAX_TRACKED_TOKENS``) worth tracking per item, from sampled items x (B, L)."""
    ids, inverse = torch.unique(x, return_inverse=True)
    rows = torch.arange(x.shape[0]).unsqueeze(1).expand_as(x)
    present = torch.zeros(x.shape[0], ids.numel(), dtype=torch.bool)
    present[rows.reshape(-1), inverse.reshape(-1)] = True
    share = present.double().mean(0)
    keep = (share >= _TRACKED_SHARE[0]) & (share <= _TRACKED_SHARE[1]) & (ids != pad_id)
    variance = torch.where(keep, share * (1 - share), torch.full_like(share, -1.0))
    order = torch.argsort(variance, descending=True, stable=True)[:_MAX_TRACKED_TOKENS]
    return tuple(sorted(int(ids[i]) for i in order if keep[i]))


def _sequence_layout(x: torch.Tensor, *, pad_id: int, **_: Any) -> Layout:
    bound = {"pad_id": pad_id}
    spec = (
        ("seq_length", f"sequence length (tokens other than the pad id {pad_id})", "longer", "shorter"),
        ("seq_padding", f"padding (positions holding the pad id {pad_id})", "more padded", "less padded"),
        ("seq_distinct_tokens", "distinct tokens", "richer in distinct tokens", "poorer in distinct tokens"),
    )
    columns = {
        n: GenericColumn(n, "sequence", words, words, more, less, "sequence_length", bound)
        for n, words, more, less in spec
    }
    for token in _tracked_tokens(x, pad_id) if x.ndim == 2 and not torch.is_floating_point(x) else ():
        words = f"occurrences of token {token}"
        columns[f"seq_token_{token}"] = GenericColumn(
            f"seq_token_{token}",
            "sequence",
            words,
            words,
            f"richer in token {token}",
            f"poorer in token {token}",
            "token_count",
            {"token": token, "pad_id": pad_id},
        )
    overlap = "token overlap of the two items (Jaccard index of their token sets, pad id left out)"
    pair = {
        "seq_token_overlap": GenericColumn(
            "seq_token_overlap", "pair", overlap, overlap, "sharing more tokens", "sharing fewer tokens"
        )
    }
    return Layout("sequence", tuple(x.shape[1:]), columns, pair_columns=pair, pad_id=pad_id)


_NAME_OK = re.compile(r"[^0-9A-Za-z_.\-]+")


def _tabular_layout(x: torch.Tensor, *, max_attributes: int, names: tuple[str, ...], **_: Any) -> Layout:
    d = int(x.shape[1])
    if names and len(names) != d:
        raise InputError(
            f"probes.shortcut.feature_names has {len(names)} names but the feature rows have {d} columns; "
            "give one name per column, in order, or none."
        )
    keep = min(d, max_attributes)
    columns = {}
    for j in range(keep):
        label = names[j] if names else ""
        name = _NAME_OK.sub("_", label) if label else f"input_feature_{j}"
        place = f"input feature {j} ({label!r})" if label else f"input feature {j}"
        columns[name] = GenericColumn(
            name,
            "feature",
            place,
            place,
            f"higher in {place}",
            f"lower in {place}",
            "feature_value",
            {"indices": (j,)},
            (j,),
        )
    notes = (
        ()
        if keep == d
        else (f"only the first {keep} of {d} input features were checked (max_generic_attributes)",)
    )
    return Layout("tabular", tuple(x.shape[1:]), columns, notes=notes)


# --------------------------------------------------------------------------------------------------
# Computing the columns
# --------------------------------------------------------------------------------------------------


def _four_stats(v: torch.Tensor) -> dict[str, torch.Tensor]:
    """(B, C, n) -> the statistics over the last axis, each (B, C)."""
    # numpy's two-pass std: torch's single-threaded std over short rows is about 3x slower
    std = torch.from_numpy(np.std(v.numpy(), axis=-1))
    return {"mean": v.mean(-1), "std": std, "min": v.amin(-1), "max": v.amax(-1)}


def generic_values(layout: Layout, batch: Any) -> dict[str, np.ndarray]:
    """The layout's per-item columns on one batch (B, ...) -> {column: ndarray (B,) float64}."""
    raw = as_tensor_batch(batch, "a batch of items")
    if layout.kind == "sequence":
        return _sequence_values(layout, raw)
    x = raw.to(torch.float64)
    if layout.kind == "image":
        x = x.unsqueeze(1) if x.ndim == 3 else x
        return _region_values(layout, x)
    if layout.kind == "signal":
        return _signal_values(layout, x.unsqueeze(1) if x.ndim == 2 else x)
    if layout.kind == "tabular":
        return {name: x[:, col.cell[0]].numpy() for name, col in layout.columns.items()}
    return {}


def _region_values(layout: Layout, x: torch.Tensor) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    rows, cols = layout.row_edges, layout.col_edges
    for i in range(len(rows) - 1):
        for j in range(len(cols) - 1):
            cell = x[:, :, rows[i] : rows[i + 1], cols[j] : cols[j + 1]].flatten(2)
            stats = {k: v.numpy() for k, v in _four_stats(cell).items()}
            out.update(_per_channel(layout, (i, j), stats))
    return out


def _per_channel(
    layout: Layout, cell: tuple[int, ...], stats: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Map statistics (B, C) of one cell onto the layout's column names, in the layout's order."""
    out = {}
    names = [
        n for n, col in layout.columns.items() if col.cell == cell and col.detector in ("region", "segment")
    ]
    per_stat = len(STATS)
    for k, name in enumerate(names):
        out[name] = stats[STATS[k % per_stat]][:, k // per_stat]
    return out


def _signal_values(layout: Layout, x: torch.Tensor) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    power = torch.fft.rfft(x - x.mean(-1, keepdim=True), dim=-1).abs().pow(2)  # (B, C, n//2 + 1)
    seg_cols = [col for col in layout.columns.values() if col.detector == "segment"]
    by_channel = len(layout.channels)
    n_seg = len(seg_cols) // (len(STATS) * by_channel)
    for k in range(n_seg):
        a, b = seg_cols[k * len(STATS)].bound["boxes"][0]
        stats = {s: v.numpy() for s, v in _four_stats(x[:, :, a:b]).items()}
        for c in range(by_channel):
            for s_i, stat in enumerate(STATS):
                out[seg_cols[(c * n_seg + k) * len(STATS) + s_i].name] = stats[stat][:, c]
    band_cols = [col for col in layout.columns.values() if col.detector == "band"]
    n_band = len(band_cols) // by_channel
    for c in range(by_channel):
        for k in range(n_band):
            col = band_cols[c * n_band + k]
            f0, f1 = col.bound["band"]
            out[col.name] = torch.log10(power[:, c, f0:f1].mean(-1) + 1e-12).numpy()
    return out


def _sequence_values(layout: Layout, x: torch.Tensor) -> dict[str, np.ndarray]:
    if x.ndim != 2:
        raise InputError(f"token-id sequences must be (B, L); got shape {tuple(x.shape)}.")
    pad_id = layout.pad_id
    real = x != pad_id
    srt = torch.where(real, x, torch.full_like(x, pad_id)).sort(dim=1).values
    changes = (srt[:, 1:] != srt[:, :-1]).sum(1) + 1
    has_pad = (~real).any(1)
    distinct = changes - has_pad.long()
    length = real.sum(1)
    out = {
        "seq_length": length.double().numpy(),
        "seq_padding": (~real).sum(1).double().numpy(),
        "seq_distinct_tokens": torch.where(length > 0, distinct, torch.zeros_like(distinct)).double().numpy(),
    }
    for name, col in layout.columns.items():
        if "token" in col.bound:
            out[name] = (x == int(col.bound["token"])).sum(1).double().numpy()
    return out


def compute_generic(
    layout: Layout, get_batch: Callable[[np.ndarray], Any], n_items: int, *, batch_size: int = 256
) -> pd.DataFrame:
    """The layout's per-item columns for ``n_items`` items read ``batch_size`` at a time -> (n_items, k) float64."""
    if not layout.columns:
        return pd.DataFrame(index=pd.RangeIndex(n_items))
    parts: dict[str, list[np.ndarray]] = {n: [] for n in layout.columns}
    for start in range(0, n_items, batch_size):
        idx = np.arange(start, min(start + batch_size, n_items), dtype=np.int64)
        batch = as_tensor_batch(get_batch(idx), f"the batch of items {start}..{idx[-1]}")
        if tuple(batch.shape[1:]) != layout.item_shape:
            raise InputError(
                f"items {start}..{idx[-1]} have shape {tuple(batch.shape[1:])} but the training items have "
                f"{layout.item_shape}; both splits need items of one shape for the catalogue-free detectors."
            )
        for name, values in generic_values(layout, batch).items():
            parts[name].append(values)
    frame = pd.DataFrame({n: np.concatenate(v) for n, v in parts.items()}, index=pd.RangeIndex(n_items))
    # pair columns (token overlap) live in the pair table, but their words belong with the others
    frame.attrs["descriptions"] = {n: c.description for n, c in layout.all_columns.items()}
    return frame


def categorize_generic(
    layout: Layout, frames: dict[str, pd.DataFrame], *, reference: str = "train"
) -> dict[str, pd.DataFrame]:
    """Feature-row columns that are categories in ``reference`` (integer values, few levels) become ``category``
    in every split, so pairs compare them by equality ("same source system") instead of by level."""
    if layout.kind != "tabular" or reference not in frames:
        return frames
    ref = frames[reference]
    cats = []
    for name in layout.columns:
        v = ref[name].to_numpy(dtype=np.float64)
        finite = v[np.isfinite(v)]
        if (
            finite.size
            and np.all(finite == np.round(finite))
            and np.unique(finite).size <= CATEGORICAL_MAX_INTEGER_LEVELS
        ):
            cats.append(name)
    out = {}
    for split, frame in frames.items():
        frame = frame.copy()
        for name in cats:
            if name in frame:
                frame[name] = pd.Categorical(frame[name].to_numpy())
        out[split] = frame
    return out


def pair_level_features(
    layout: Layout, get_batch: Callable[[np.ndarray], Any], left: np.ndarray, right: np.ndarray
) -> pd.DataFrame:
    """Pair-level columns of the layout (the token overlap of sequences) for pairs (left (P,), right (P,)).

    Returns a frame (P, k) float64 named ``<column>:pair``; empty when the layout has none.
    """
    if not layout.pair_columns:
        return pd.DataFrame(index=pd.RangeIndex(left.size))
    overlap = np.empty(left.size)
    for s in range(0, left.size, 512):
        a = as_tensor_batch(get_batch(left[s : s + 512]), "sequences").long()
        b = as_tensor_batch(get_batch(right[s : s + 512]), "sequences").long()
        overlap[s : s + 512] = _jaccard(a, b, layout.pad_id)
    return pd.DataFrame({"seq_token_overlap:pair": overlap}, index=pd.RangeIndex(left.size))


def _jaccard(a: torch.Tensor, b: torch.Tensor, pad_id: int) -> np.ndarray:
    """Jaccard index of the token sets of rows of a (P, L) and b (P, L), the pad id left out -> (P,).

    Token sets are boolean rows over the vocabulary seen, a bounded number of rows at a time.
    """
    vocab = int(max(a.max(), b.max(), pad_id)) + 1
    step = max(1, 4_000_000 // vocab)
    out = np.empty(a.shape[0])
    for s in range(0, a.shape[0], step):
        x, y = a[s : s + step].clamp(min=0), b[s : s + step].clamp(min=0)
        rows = torch.arange(x.shape[0]).unsqueeze(1)
        sa = torch.zeros(x.shape[0], vocab, dtype=torch.bool)
        sb = torch.zeros(x.shape[0], vocab, dtype=torch.bool)
        sa[rows.expand_as(x), x] = True
        sb[rows.expand_as(y), y] = True
        if pad_id >= 0:
            sa[:, pad_id] = sb[:, pad_id] = False
        inter = (sa & sb).sum(1).double()
        union = (sa | sb).sum(1).double()
        out[s : s + step] = torch.where(
            union > 0, inter / union.clamp(min=1), torch.zeros_like(union)
        ).numpy()
    return out


def merge_bound(bounds: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One parameter set for an intervention bound to several columns: the union of their places.

    ``boxes`` and ``indices`` are concatenated without repeats; a frequency ``band`` becomes the
    range covering all bands; any other parameter keeps its first value.
    """
    out: dict[str, Any] = {}
    for b in bounds:
        for key, value in b.items():
            if key in ("boxes", "indices"):
                out[key] = tuple(dict.fromkeys([*out.get(key, ()), *value]))
            elif key == "band" and key in out:
                out[key] = (min(out[key][0], value[0]), max(out[key][1], value[1]))
            else:
                out.setdefault(key, value)
    return out
