"""Inline SVG for the HTML report: the embedding map, whose points name themselves on hover (SVG ``<title>``,
no JavaScript), and a tiny PNG encoder for the thumbnails it places on the map.

Reads the ``class_gap_embedding_map`` figure's data (coordinates and per-point metadata measured by the
probe); draws only. Every string from the user (ids, identity labels) is escaped.
"""

from __future__ import annotations

import base64
import struct
import zlib
from dataclasses import dataclass
from html import escape
from typing import Any

import numpy as np

from .palette import IDENTITY, SPLIT

__all__ = ["EmbeddingMap", "embedding_map", "png_uri"]

_W, _H, _PAD = 360.0, 280.0, 12.0
_MAX_LEGEND = 20


def png_uri(image: Any) -> str:
    """A (H, W) or (H, W, 3) array in [0, 1] as a ``data:image/png`` URI (8-bit, no metadata: same bytes per run)."""
    a = np.clip(np.asarray(image, dtype=float), 0, 1)
    a = np.round(a * 255).astype(np.uint8)
    colour = 2 if a.ndim == 3 else 0
    h, w = a.shape[:2]
    raw = b"".join(b"\x00" + a[r].tobytes() for r in range(h))

    def chunk(tag: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)
        )

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


@dataclass
class EmbeddingMap:
    """The map as two SVG panels (by split, by identity), their legends, and what is highlighted."""

    by_split: str
    by_identity: str
    split_legend: list[tuple[str, str]]
    identity_legend: list[tuple[str, str]]
    n_points: int
    n_named: int
    n_named_shown: int


def _scale(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    span = float(v.max() - v.min()) or 1.0
    return lo + (v - v.min()) / span * (hi - lo)


def _marker(x: float, y: float, colour: str, split: str, title: str, ring: bool) -> str:
    shape = (
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.6"'
        if split == "train"
        else f'<rect x="{x - 2.4:.1f}" y="{y - 2.4:.1f}" width="4.8" height="4.8"'
    )
    stroke = ' stroke="#000" stroke-width="1.6"' if ring else ""
    return f'{shape} fill="{colour}"{stroke}><title>{escape(title)}</title></{shape.split()[0][1:]}>'


def _panel(points: list[tuple[float, float, str, str, str, bool]], extra: str, label: str) -> str:
    body = "".join(_marker(*p) for p in points if not p[5]) + "".join(_marker(*p) for p in points if p[5])
    return (
        f'<svg class="map" viewBox="0 0 {_W:.0f} {_H:.0f}" role="img" aria-label="{escape(label)}">'
        f'<rect width="{_W:.0f}" height="{_H:.0f}" fill="#fff"/>{body}{extra}</svg>'
    )


def _thumbs(meta: dict[str, Any], xs: np.ndarray, ys: np.ndarray, titles: list[str]) -> str:
    out = []
    size = 22.0
    for t in meta.get("thumbnails") or []:
        p = int(t["point"])
        x = min(max(xs[p] - size / 2, 0), _W - size)
        y = min(max(ys[p] - size - 3, 0), _H - size)
        out.append(
            f'<image href="{png_uri(t["image"])}" x="{x:.1f}" y="{y:.1f}" width="{size:.0f}" '
            f'height="{size:.0f}" class="thumb"><title>{escape(titles[p])}</title></image>'
        )
    return "".join(out)


def embedding_map(data: dict[str, Any], named: dict[tuple[str, int], list[str]]) -> EmbeddingMap | None:
    """Build the map from the figure's data; ``named`` maps (split, row) to the codes of findings naming it."""
    meta = data.get("points")
    panel = (data.get("panels") or [None])[0]
    if not meta or not panel or not len(panel.get("x") or []):
        return None
    xs = _scale(np.asarray(panel["x"], dtype=float), _PAD, _W - _PAD)
    ys = _scale(-np.asarray(panel["y"], dtype=float), _PAD, _H - _PAD)
    splits, rows, ids, idents = meta["split"], meta["row"], meta["id"], meta["identity"]
    names = list(dict.fromkeys(sorted(set(idents), key=_natural)))
    colour = {n: IDENTITY[i % len(IDENTITY)] for i, n in enumerate(names)}
    titles, split_pts, ident_pts = [], [], []
    for i, (s, r, item_id, ident) in enumerate(zip(splits, rows, ids, idents)):
        codes = named.get((s, int(r)), [])
        title = f"{s} item {r} (id {item_id}), identity {ident}" + (
            f"; named by {', '.join(codes)}" if codes else ""
        )
        titles.append(title)
        split_pts.append((xs[i], ys[i], SPLIT.get(s, "#777"), s, title, bool(codes)))
        ident_pts.append((xs[i], ys[i], colour[ident], s, title, bool(codes)))
    n_named = sum(1 for key in named if key[0] in ("train", "val"))
    return EmbeddingMap(
        by_split=_panel(split_pts, "", "embedding map coloured by split"),
        by_identity=_panel(ident_pts, _thumbs(meta, xs, ys, titles), "embedding map coloured by identity"),
        split_legend=[(s, SPLIT[s]) for s in ("train", "val") if s in splits],
        identity_legend=[(n, colour[n]) for n in names[:_MAX_LEGEND]],
        n_points=len(splits),
        n_named=n_named,
        n_named_shown=sum(1 for p in split_pts if p[5]),
    )


def _natural(text: str) -> tuple:
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)
