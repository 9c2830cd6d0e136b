"""Draws :class:`~gapdiag.probes.base.FigureSpec` data with matplotlib (Agg, no global pyplot state).

Each kind has one drawing function; ``to_png(spec)`` returns PNG bytes. matplotlib is imported here only,
when a figure is drawn.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np

from ..probes.base import FigureSpec

__all__ = ["to_png", "KINDS"]

_PALETTE = [
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]


def _new_figure(width: float = 6.4, height: float = 3.6):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=96, layout="constrained")


def _bars(fig, data: dict[str, Any]) -> None:
    ax = fig.subplots()
    groups = list(data["groups"])
    series = data["series"]
    horizontal = bool(data.get("horizontal"))
    width = 0.8 / max(len(series), 1)
    pos = np.arange(len(groups))
    for i, (name, s) in enumerate(series.items()):
        vals = np.array(s["value"], dtype=float)
        err = None
        if s.get("low") is not None and s.get("high") is not None:
            lo, hi = np.array(s["low"], dtype=float), np.array(s["high"], dtype=float)
            err = np.vstack([np.clip(vals - lo, 0, None), np.clip(hi - vals, 0, None)])
        offs = pos + (i - (len(series) - 1) / 2) * width
        if horizontal:
            ax.barh(offs, vals, height=width, xerr=err, label=name, color=_PALETTE[i % 10], capsize=2)
        else:
            ax.bar(offs, vals, width=width, yerr=err, label=name, color=_PALETTE[i % 10], capsize=2)
    ref = data.get("ref")
    if ref is not None:
        (ax.axvline if horizontal else ax.axhline)(
            ref, color="k", ls="--", lw=1, label=data.get("ref_label", "reference")
        )
    if horizontal:
        ax.set_yticks(pos, groups, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(data.get("ylabel", ""))
    else:
        ax.set_xticks(
            pos,
            groups,
            rotation=30 if len(groups) > 4 else 0,
            ha="right" if len(groups) > 4 else "center",
            fontsize=8,
        )
        ax.set_ylabel(data.get("ylabel", ""))
    if data.get("ylim"):
        (ax.set_xlim if horizontal else ax.set_ylim)(*data["ylim"])
    ax.legend(fontsize=7)


def _hist(fig, data: dict[str, Any]) -> None:
    panels = data["panels"]
    axes = np.atleast_1d(fig.subplots(1, len(panels), sharey=False))
    for ax, panel in zip(axes, panels):
        all_vals = np.concatenate(
            [np.asarray(v, dtype=float) for v in panel["series"].values() if len(v)] or [np.zeros(1)]
        )
        bins = np.histogram_bin_edges(all_vals, bins=40)
        for i, (name, vals) in enumerate(panel["series"].items()):
            if len(vals):
                ax.hist(
                    np.asarray(vals, dtype=float),
                    bins=bins,
                    alpha=0.55,
                    density=True,
                    label=name,
                    color=_PALETTE[i % 10],
                )
        for j, (name, x) in enumerate((panel.get("vlines") or {}).items()):
            if x is not None:
                ax.axvline(
                    x, color=["k", "#555", "#999"][j % 3], ls=["--", ":", "-."][j % 3], lw=1.2, label=name
                )
        ax.set_title(panel.get("title", ""), fontsize=9)
        ax.set_xlabel(data.get("xlabel", ""), fontsize=8)
        ax.legend(fontsize=6)


def _lines(fig, data: dict[str, Any]) -> None:
    ax = fig.subplots()
    for i, (name, s) in enumerate(data["series"].items()):
        ax.plot(s["x"], s["y"], label=name, color=_PALETTE[i % 10], lw=1.5)
    if data.get("diagonal"):
        ax.plot([0, 1], [0, 1], color="#999", ls=":", lw=1, label="chance")
    for name, x in (data.get("vlines") or {}).items():
        ax.axvline(x, color="k", ls="--", lw=1, label=name)
    if data.get("logx"):
        ax.set_xscale("log")
    ax.set_xlabel(data.get("xlabel", ""))
    ax.set_ylabel(data.get("ylabel", ""))
    ax.legend(fontsize=7)


def _heatmap(fig, data: dict[str, Any]) -> None:
    ax = fig.subplots()
    values = np.array(data["values"], dtype=float)
    im = ax.imshow(
        values, cmap=data.get("cmap", "viridis"), vmin=data.get("vmin"), vmax=data.get("vmax"), aspect="auto"
    )
    ax.set_xticks(range(len(data["cols"])), data["cols"], fontsize=8)
    ax.set_yticks(range(len(data["rows"])), data["rows"], fontsize=8)
    notes = data.get("annotations")
    for r in range(values.shape[0]):
        for c in range(values.shape[1]):
            text = notes[r][c] if notes else f"{values[r, c]:.2f}"
            light = np.isfinite(values[r, c]) and values[r, c] < np.nanmean(values)
            ax.text(c, r, text, ha="center", va="center", fontsize=8, color="w" if light else "k")
    fig.colorbar(im, ax=ax, label=data.get("cbar", ""))


def _overlay(fig, data: dict[str, Any]) -> None:
    """Per panel, a grid of values drawn over one image, with outlined boxes (pixel coordinates)."""
    from matplotlib.patches import Rectangle

    image = np.clip(np.asarray(data["image"], dtype=float), 0, 1)
    rows, cols = np.asarray(data["row_edges"], float), np.asarray(data["col_edges"], float)
    h, w = rows[-1], cols[-1]
    panels = data["panels"]
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    mesh = None
    for ax, panel in zip(axes, panels):
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1, extent=(0, w, h, 0))
        values = np.asarray(panel["values"], dtype=float)
        mesh = ax.pcolormesh(
            cols, rows, values, cmap="magma", vmin=data.get("vmin"), vmax=data.get("vmax"), alpha=0.55
        )
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                ax.text(
                    (cols[j] + cols[j + 1]) / 2, (rows[i] + rows[i + 1]) / 2, f"{values[i, j]:.2f}",
                    ha="center", va="center", fontsize=7, color="w" if values[i, j] < 0.5 else "k",
                )  # fmt: skip
        for r0, r1, c0, c1 in data.get("outline") or []:
            ax.add_patch(Rectangle((c0, r0), c1 - c0, r1 - r0, fill=False, edgecolor="#00e5ff", lw=2))
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        ax.set_title(panel.get("title", ""), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if mesh is not None:
        fig.colorbar(mesh, ax=list(axes), label=data.get("cbar", ""), shrink=0.8)


def _scatter(fig, data: dict[str, Any]) -> None:
    panels = data["panels"]
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, panel in zip(axes, panels):
        groups = np.asarray(panel["groups"]).astype(str)
        x, y = np.asarray(panel["x"], float), np.asarray(panel["y"], float)
        names = list(dict.fromkeys(groups.tolist()))
        for i, g in enumerate(names[:20]):
            m = groups == g
            ax.scatter(
                x[m], y[m], s=4, alpha=0.7, color=_PALETTE[i % 10], label=g if len(names) <= 12 else None
            )
        ax.set_title(panel.get("title", ""), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if len(names) <= 12:
            ax.legend(fontsize=6, markerscale=2)


def _images(fig, data: dict[str, Any]) -> None:
    rows = data["rows"]
    n_cols = max(len(r["images"]) for r in rows)
    axes = np.array(fig.subplots(len(rows), n_cols, squeeze=False))
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(row["images"]):
                img = np.clip(np.asarray(row["images"][c], dtype=float), 0, 1)
                ax.imshow(
                    img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest"
                )
        axes[r, 0].set_title(row.get("caption", ""), fontsize=7, loc="left")


KINDS: dict[str, Callable] = {
    "bars": _bars,
    "hist": _hist,
    "lines": _lines,
    "heatmap": _heatmap,
    "scatter": _scatter,
    "images": _images,
    "overlay": _overlay,
}


def to_png(spec: FigureSpec) -> bytes:
    """Draw ``spec`` and return PNG bytes (with a fixed-metadata PNG so reruns give the same bytes)."""
    if spec.kind not in KINDS:
        raise ValueError(f"Unknown figure kind {spec.kind!r}; known: {', '.join(KINDS)}")
    width = (
        3.2 * len(spec.data.get("panels", [0])) + 1.5 if spec.kind in ("hist", "scatter", "overlay") else 6.4
    )
    height = 3.6
    if spec.kind == "images":
        rows = spec.data["rows"]
        n_cols = max(len(r["images"]) for r in rows)
        width, height = min(1.2 * n_cols + 0.5, 9.0), 1.3 * len(rows) + 0.3
    if spec.kind == "bars" and spec.data.get("horizontal"):
        height = max(2.5, 0.28 * len(spec.data["groups"]) + 1.2)
    fig = _new_figure(width, height)
    KINDS[spec.kind](fig, spec.data)
    if spec.title:
        fig.suptitle(spec.title, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()
