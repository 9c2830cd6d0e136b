"""Figures that read: nothing clipped, legends off the data, readable text on coloured cells, safe colours."""

import numpy as np
import pytest

from gapdiag.probes.base import FigureSpec
from gapdiag.report.figures import KINDS, draw, text_colour
from gapdiag.report.palette import SPLIT

_LONG = "a rather long label that says exactly what the axis measures, with its unit and direction (95% CI)"


def _outside(spec: FigureSpec) -> list[str]:
    """Text artists whose drawn extent leaves the canvas (1 px of slack)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    fig = draw(spec)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    width, height = fig.bbox.width, fig.bbox.height
    skipped = _undrawn_tick_labels(fig)
    out = []
    for t in fig.findobj(Text):
        if not t.get_visible() or not t.get_text().strip() or id(t) in skipped:
            continue
        box = t.get_window_extent(renderer)
        if box.x0 < -1 or box.y0 < -1 or box.x1 > width + 1 or box.y1 > height + 1:
            out.append(f"{spec.id}: {t.get_text()!r} at {box.bounds} outside {width}x{height}")
    return out


def _undrawn_tick_labels(fig) -> set[int]:
    """matplotlib keeps label objects for ticks outside the view limits (and for axes switched off) but does
    not draw them: they are not text a reader sees."""
    out = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            slack = (hi - lo) * 1e-6
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not ax.axison or not (lo - slack <= tick.get_loc() <= hi + slack):
                    out.update({id(tick.label1), id(tick.label2)})
    return out


def _synthetic() -> list[FigureSpec]:
    rng = np.random.default_rng(0)
    img = rng.random((8, 8, 3))
    groups = [f"attribute {i} (agreement, higher = positive)" for i in range(12)]
    ser = {"value": rng.random(12).tolist(), "low": [0.1] * 12, "high": [0.99] * 12}
    return [
        FigureSpec("hbars", "bars", _LONG, {"groups": groups, "series": {"train": ser, "val": ser}, "ref": 0.5,
                   "ref_label": "no signal (0.5)", "ylabel": _LONG, "horizontal": True, "ylim": [0, 1]}),
        FigureSpec("vbars", "bars", "t", {"groups": groups[:6], "series": {"train": ser | {"value": ser["value"][:6],
                   "low": None, "high": None}}, "ylabel": _LONG}),
        FigureSpec("hist", "hist", _LONG, {"panels": [{"title": _LONG, "series": {"similar pairs": rng.normal(size=50),
                   "dissimilar pairs": rng.normal(size=50)}, "vlines": {"train-tuned threshold": 0.1}}] * 3,
                   "xlabel": _LONG}),
        FigureSpec("lines", "lines", "t", {"series": {"train": {"x": [0, 1], "y": [0, 1]}}, "diagonal": True,
                   "xlabel": _LONG, "ylabel": _LONG, "vlines": {"threshold": 0.5}}),
        FigureSpec("heat", "heatmap", "t", {"rows": ["train", "val"], "cols": ["pairwise accuracy", "balanced accuracy",
                   "ROC-AUC", "10-way top-1"], "values": [[1, 0.9, 0.5, 0.1], [0.0, -0.5, -1, 0.3]],
                   "annotations": [["1.00 [1.00, 1.00]\nchance 0.50 (yours)"] * 4] * 2, "vmin": -1, "vmax": 1,
                   "cmap": "RdYlGn", "cbar": "lift over chance (0 = chance, 1 = perfect)"}),
        FigureSpec("scatter", "scatter", "t", {"panels": [{"title": "by split", "x": [0, 1], "y": [1, 0],
                   "groups": ["train", "val"]}] * 2}),
        FigureSpec("images", "images", "t", {"rows": [{"caption": _LONG, "images": [img] * 8}] * 3}),
        FigureSpec("overlay", "overlay", _LONG, {"image": img[:, :, 0], "row_edges": [0, 4, 8], "col_edges": [0, 4, 8],
                   "panels": [{"title": "training pairs", "values": [[0.9, 0.1], [0.2, 0.5]]},
                              {"title": "validation pairs", "values": [[0.1, 0.0], [0.1, 0.2]]}],
                   "outline": [[0, 4, 0, 4]], "vmin": 0, "vmax": 1, "cbar": _LONG}),
    ]  # fmt: skip


def test_every_kind_is_covered_by_the_synthetic_figures():
    assert {s.kind for s in _synthetic()} == set(KINDS)


@pytest.mark.parametrize("spec", _synthetic(), ids=lambda s: s.id)
def test_long_labels_titles_and_legends_stay_inside_the_canvas(spec):
    assert _outside(spec) == []


def test_legends_sit_outside_the_axes():
    fig = draw(_synthetic()[0])
    assert not [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert fig.legends  # one figure-level legend, below the plot


def test_heatmap_text_contrasts_with_its_cell():
    from matplotlib.colors import to_rgba

    def contrast(a, b):
        def lum(c):
            rgb = np.asarray(to_rgba(c)[:3])
            lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
            return float(lin @ [0.2126, 0.7152, 0.0722])

        hi, lo = sorted((lum(a), lum(b)), reverse=True)
        return (hi + 0.05) / (lo + 0.05)

    fig = draw(_synthetic()[4])
    ax = fig.axes[0]
    image = ax.images[0]
    assert image.cmap.name == "RdBu"  # RdYlGn is swapped for a colour-blind-safe map
    values = np.asarray(image.get_array())
    for t in ax.texts:
        c, r = (round(v) for v in t.get_position())
        cell = image.cmap(image.norm(values[r, c]))
        assert contrast(t.get_color(), cell) >= 4.5, (t.get_text(), values[r, c])
    assert text_colour((1.0, 1.0, 0.8)) == "k" and text_colour((0.1, 0.1, 0.4)) == "w"


def test_train_and_val_keep_their_colours():
    from matplotlib.colors import to_hex

    fig = draw(_synthetic()[0])
    bars = {
        c.get_label(): to_hex(c.patches[0].get_facecolor())
        for c in fig.axes[0].containers
        if hasattr(c, "patches")
    }
    assert bars == {"train": SPLIT["train"].lower(), "val": SPLIT["val"].lower()}


@pytest.mark.xdist_group("demo")
def test_every_figure_of_the_demo_and_of_a_planted_fault_audit_keeps_its_text_inside(demo, planted_report):
    report = demo[0]
    specs = [s for rep in (report, planted_report) for r in rep.results for s in r.figures]
    assert {s.kind for s in specs} >= {"bars", "hist", "images", "heatmap", "scatter", "lines"}
    problems = [p for s in specs for p in _outside(s)]
    assert problems == []
