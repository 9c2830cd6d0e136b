"""Draws :class:`~gapdiag.probes.base.FigureSpec` data with matplotlib (Agg, no global pyplot state).

Each kind has one drawing function; ``draw(spec)`` returns the matplotlib Figure, ``to_png(spec)`` its PNG
bytes. matplotlib is imported here only, when a figure is drawn. Figures read at a glance: colour-blind-safe
colours (Okabe-Ito; train and validation always the same two), legends outside the data, long labels wrapped
so nothing is clipped, and text on coloured cells in black or white by the cell's luminance.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np

from ..probes.base import FigureSpec
from .palette import SERIES, SPLIT

__all__ = ["draw", "to_png", "KINDS", "text_colour"]

# Colour maps that red-green colour-blind readers cannot read, and the safe map drawn instead.
_SAFE_CMAPS = {"RdYlGn": "RdBu", "RdYlGn_r": "RdBu_r", "RdYlBu": "RdBu", "RdYlBu_r": "RdBu_r",
               "jet": "viridis", "rainbow": "viridis", "hsv": "twilight", "Spectral": "PuOr"}  # fmt: skip
_DPI = 96


def _new_figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=_DPI, layout="constrained")


def _wrap(text: Any, chars: int) -> str:
    """Wrap a label so it fits: ``chars`` characters a line."""
    return "\n".join(textwrap.wrap(str(text), max(int(chars), 8))) if text else ""


def _chars(fig, fontsize: float, share: float = 1.0) -> int:
    """How many characters of ``fontsize`` fit in ``share`` of the figure's width (a conservative 0.6 em)."""
    return int(fig.get_figwidth() * share * 72 / (fontsize * 0.6))


def _height_chars(fig, fontsize: float) -> int:
    """How many characters of a vertical label fit along 80% of the figure's height."""
    return int(fig.get_figheight() * 0.8 * 72 / (fontsize * 0.6))


def _colour(name: str, i: int) -> str:
    """Train and validation keep their colours in every figure; other series follow the palette."""
    key = str(name).split(" ", 1)[0].lower()
    return SPLIT.get(key, SPLIT["val"] if key == "validation" else SERIES[i % len(SERIES)])


def _legend(fig, axes) -> None:
    """One legend for the whole figure, below the plots, so it never covers data."""
    handles: dict[str, Any] = {}
    for ax in np.atleast_1d(axes):
        for h, label in zip(*ax.get_legend_handles_labels()):
            if label and not label.startswith("_"):
                handles.setdefault(label, h)
    if handles:
        width = max(len(label) for label in handles) + 4
        ncols = max(1, min(len(handles), _chars(fig, 7) // width))
        labels = [_wrap(label, _chars(fig, 7) - 6) for label in handles]
        fig.legend(
            list(handles.values()), labels, loc="outside lower center", ncols=ncols, fontsize=7, frameon=False
        )


def _bars(fig, data: dict[str, Any]) -> None:
    ax = fig.subplots()
    groups = list(data["groups"])
    series = data["series"]
    horizontal = bool(data.get("horizontal"))
    width = 0.8 / max(len(series), 1)
    pos = np.arange(len(groups))
    for i, (name, s) in enumerate(series.items()):
        vals = np.array([np.nan if v is None else v for v in s["value"]], dtype=float)
        err = None
        if s.get("low") is not None and s.get("high") is not None:
            lo = np.array([np.nan if v is None else v for v in s["low"]], dtype=float)
            hi = np.array([np.nan if v is None else v for v in s["high"]], dtype=float)
            err = np.nan_to_num(np.vstack([np.clip(vals - lo, 0, None), np.clip(hi - vals, 0, None)]))
        offs = pos + (i - (len(series) - 1) / 2) * width
        style = dict(label=name, color=_colour(name, i), capsize=2, error_kw={"elinewidth": 1})
        if horizontal:
            ax.barh(offs, vals, height=width, xerr=err, **style)
        else:
            ax.bar(offs, vals, width=width, yerr=err, **style)
    ref = data.get("ref")
    if ref is not None:
        (ax.axvline if horizontal else ax.axhline)(
            ref, color="k", ls="--", lw=1, label=data.get("ref_label", "reference")
        )
    label = _wrap(data.get("ylabel", ""), _chars(fig, 9, 0.7))
    if horizontal:
        ax.set_yticks(pos, [_wrap(g, 34) for g in groups], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(label, fontsize=9)
    else:
        tilt = len(groups) > 4
        ax.set_xticks(pos, [_wrap(g, 18) for g in groups], rotation=30 if tilt else 0,
                      ha="right" if tilt else "center", fontsize=8)  # fmt: skip
        ax.set_ylabel(_wrap(data.get("ylabel", ""), _height_chars(fig, 9)), fontsize=9)
    if data.get("ylim"):
        (ax.set_xlim if horizontal else ax.set_ylim)(*data["ylim"])
    _legend(fig, ax)


def _hist(fig, data: dict[str, Any]) -> None:
    panels = data["panels"]
    axes = np.atleast_1d(fig.subplots(1, len(panels), sharey=False))
    for ax, panel in zip(axes, panels):
        all_vals = np.concatenate(
            [np.asarray(v, dtype=float) for v in panel["series"].values() if len(v)] or [np.zeros(1)]
        )
        bins = np.histogram_bin_edges(all_vals[np.isfinite(all_vals)], bins=40)
        for i, (name, vals) in enumerate(panel["series"].items()):
            if len(vals):
                v = np.asarray(vals, dtype=float)
                ax.hist(
                    v[np.isfinite(v)], bins=bins, alpha=0.55, density=True, label=name, color=_colour(name, i)
                )
        for j, (name, x) in enumerate((panel.get("vlines") or {}).items()):
            if x is not None:
                ax.axvline(
                    x, color=["k", "#555", "#999"][j % 3], ls=["--", ":", "-."][j % 3], lw=1.2, label=name
                )
        ax.set_title(_wrap(panel.get("title", ""), _chars(fig, 9, 1 / len(panels))), fontsize=9)
        ax.set_xlabel(_wrap(data.get("xlabel", ""), _chars(fig, 8, 1 / len(panels))), fontsize=8)
        ax.tick_params(labelsize=7)
    _legend(fig, axes)


def _lines(fig, data: dict[str, Any]) -> None:
    ax = fig.subplots()
    for i, (name, s) in enumerate(data["series"].items()):
        ax.plot(s["x"], s["y"], label=name, color=_colour(name, i), lw=1.5)
    if data.get("diagonal"):
        ax.plot([0, 1], [0, 1], color="#999", ls=":", lw=1, label="chance")
    for name, x in (data.get("vlines") or {}).items():
        ax.axvline(x, color="k", ls="--", lw=1, label=name)
    if data.get("logx"):
        ax.set_xscale("log")
    ax.set_xlabel(_wrap(data.get("xlabel", ""), _chars(fig, 9, 0.85)), fontsize=9)
    ax.set_ylabel(_wrap(data.get("ylabel", ""), _height_chars(fig, 9)), fontsize=9)
    _legend(fig, ax)


def text_colour(rgba: Any) -> str:
    """Black on light colours, white on dark ones (WCAG relative luminance of the cell colour)."""
    rgb = np.asarray(rgba, dtype=float)[:3]
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    luminance = float(lin @ np.array([0.2126, 0.7152, 0.0722]))
    # the contrast ratio with black, (L + 0.05) / 0.05, beats white's, 1.05 / (L + 0.05), above L = 0.179
    return "k" if luminance > 0.179 else "w"


def _heatmap(fig, data: dict[str, Any]) -> None:
    ax = fig.subplots()
    values = np.array(data["values"], dtype=float)
    cmap = data.get("cmap", "viridis")
    im = ax.imshow(values, cmap=_SAFE_CMAPS.get(cmap, cmap), vmin=data.get("vmin"), vmax=data.get("vmax"),
                   aspect="auto")  # fmt: skip
    cols = len(data["cols"])
    ax.set_xticks(
        range(cols), [_wrap(c, _chars(fig, 8, 0.75 / max(cols, 1))) for c in data["cols"]], fontsize=8
    )
    ax.set_yticks(range(len(data["rows"])), data["rows"], fontsize=8)
    notes = data.get("annotations")
    for r in range(values.shape[0]):
        for c in range(values.shape[1]):
            text = notes[r][c] if notes else f"{values[r, c]:.2f}"
            colour = text_colour(im.cmap(im.norm(values[r, c]))) if np.isfinite(values[r, c]) else "k"
            ax.text(c, r, text, ha="center", va="center", fontsize=7.5, color=colour)
    fig.colorbar(im, ax=ax).set_label(_wrap(data.get("cbar", ""), 32), fontsize=8)


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
                    ha="center", va="center", fontsize=7, color=text_colour(mesh.cmap(mesh.norm(values[i, j]))),
                )  # fmt: skip
        for r0, r1, c0, c1 in data.get("outline") or []:
            ax.add_patch(Rectangle((c0, r0), c1 - c0, r1 - r0, fill=False, edgecolor="#00e5ff", lw=2))
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        ax.set_title(panel.get("title", ""), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if mesh is not None:
        fig.colorbar(mesh, ax=list(axes), shrink=0.8).set_label(_wrap(data.get("cbar", ""), 28), fontsize=8)


def _scatter(fig, data: dict[str, Any]) -> None:
    panels = data["panels"]
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, panel in zip(axes, panels):
        groups = np.asarray(panel["groups"]).astype(str)
        x, y = np.asarray(panel["x"], float), np.asarray(panel["y"], float)
        names = list(dict.fromkeys(groups.tolist()))
        for i, g in enumerate(names[:20]):
            m = groups == g
            ax.scatter(x[m], y[m], s=4, alpha=0.7, color=_colour(g, i), label=g if len(names) <= 12 else None)
        ax.set_title(_wrap(panel.get("title", ""), _chars(fig, 9, 1 / len(panels))), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    _legend(fig, axes)


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
        axes[r, 0].set_title(_wrap(row.get("caption", ""), _chars(fig, 7)), fontsize=7, loc="left")


KINDS: dict[str, Callable] = {
    "bars": _bars,
    "hist": _hist,
    "lines": _lines,
    "heatmap": _heatmap,
    "scatter": _scatter,
    "images": _images,
    "overlay": _overlay,
}


def _size(spec: FigureSpec) -> tuple[float, float]:
    if spec.kind in ("hist", "scatter", "overlay"):
        return 3.2 * len(spec.data.get("panels", [0])) + 1.5, 3.8
    if spec.kind == "images":
        rows = spec.data["rows"]
        n_cols = max(len(r["images"]) for r in rows)
        return min(1.2 * n_cols + 0.5, 9.0), 1.3 * len(rows) + 0.4
    if spec.kind == "bars" and spec.data.get("horizontal"):
        return 6.4, max(2.8, 0.3 * len(spec.data["groups"]) * max(1, len(spec.data["series"])) / 2 + 1.8)
    return 6.4, 3.8


def draw(spec: FigureSpec):
    """Draw ``spec`` into a new matplotlib Figure (not shown; no pyplot state)."""
    if spec.kind not in KINDS:
        raise ValueError(f"Unknown figure kind {spec.kind!r}; known: {', '.join(KINDS)}")
    fig = _new_figure(*_size(spec))
    KINDS[spec.kind](fig, spec.data)
    if spec.title:
        fig.suptitle(_wrap(spec.title, _chars(fig, 10)), fontsize=10)
    return fig


def to_png(spec: FigureSpec) -> bytes:
    """Draw ``spec`` and return PNG bytes (with a fixed-metadata PNG so reruns give the same bytes)."""
    buf = io.BytesIO()
    draw(spec).savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()
