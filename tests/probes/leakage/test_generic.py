"""Units of the catalogue-free detectors: input kinds, per-item statistics, place words, the interventions
that move them, and the grouping of features into artifacts. Reference computations are plain loops."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gapdiag.errors import InputError
from gapdiag.modality import input_kind
from gapdiag.probes.leakage import attributes as A
from gapdiag.probes.leakage.attributes.generic import (
    categorize_generic,
    compute_generic,
    generic_values,
    make_layout,
    merge_bound,
    pair_level_features,
    rect_words,
)
from gapdiag.probes.leakage.counterfactual import place_mask, transplant

G = torch.Generator().manual_seed(0)


@pytest.mark.parametrize(
    "x,kind",
    [
        (torch.rand(4, 3, 8, 8), "image"),
        (torch.rand(4, 16, 16), "image"),
        (torch.randint(0, 50, (4, 20)), "sequence"),
        (torch.randn(4, 9), "tabular"),
        (torch.zeros(4, 9, dtype=torch.bool), "tabular"),
        (torch.randn(4, 200), "signal"),
        (torch.randn(4, 2, 300), "signal"),
        (torch.randn(4), "other"),
    ],
)
def test_input_kind_reads_shape_and_dtype(x, kind):
    assert input_kind(x) == kind


def test_declared_input_kind_is_checked_against_the_shape():
    assert input_kind(torch.randn(4, 200), declared="tabular") == "tabular"
    with pytest.raises(InputError, match="declared 'image'"):
        input_kind(torch.randn(4, 200), declared="image")
    with pytest.raises(InputError, match="not a kind"):
        input_kind(torch.randn(4, 200), declared="pictures")


def test_rect_words_name_corners_edges_and_the_whole_image():
    assert rect_words(0, 4, 0, 4, 16, 16) == "the top-left 4x4 pixels (rows 0-3, columns 0-3)"
    assert rect_words(12, 16, 4, 8, 16, 16) == "the bottom 4x4 pixels (rows 12-15, columns 4-7)"
    assert rect_words(4, 8, 4, 8, 16, 16) == "the 4x4 pixels at rows 4-7, columns 4-7"
    assert rect_words(0, 4, 0, 16, 16, 16) == "the top 4x16 pixels (rows 0-3, all columns)"
    assert rect_words(0, 16, 0, 16, 16, 16) == "the whole image (16x16 pixels)"


def test_region_statistics_match_a_loop_over_cells():
    x = torch.rand(5, 3, 16, 16, generator=G)
    layout = make_layout(x)
    assert layout.row_edges == (0, 4, 8, 12, 16) and len(layout.columns) == 16 * 3 * 4
    values = generic_values(layout, x)
    cell = x[:, 1, 4:8, 8:12].reshape(5, -1).double()
    np.testing.assert_allclose(values["region_r4-7_c8-11_green_max"], cell.amax(1).numpy())
    np.testing.assert_allclose(values["region_r4-7_c8-11_green_std"], cell.std(1, correction=0).numpy())
    col = layout.columns["region_r0-3_c0-3_red_mean"]
    assert col.cell == (0, 0) and col.intervention == "region_transplant"
    assert col.bound == {"boxes": ((0, 4, 0, 4),), "mode": "mean"}  # a level moves as a level
    assert layout.columns["region_r0-3_c0-3_red_std"].bound["mode"] == "add"  # a spread, point by point
    assert layout.cells_words([(0, 0), (0, 1)]) == "the top-left 4x8 pixels (rows 0-3, columns 0-7)"
    assert layout.cells_words([(0, 0), (3, 3)]).startswith("2 separate regions: the top-left")


def test_image_grid_is_sized_to_the_image_and_the_budget():
    assert make_layout(torch.rand(2, 1, 8, 8)).row_edges == (0, 4, 8)  # cells of >= 4 pixels
    big = make_layout(torch.rand(2, 3, 224, 224), max_attributes=192)
    assert len(big.row_edges) - 1 == 4 and len(big.columns) <= 192  # 4 x 4 cells x 3 channels x 4 statistics


def test_sequence_attributes_and_token_overlap():
    x = torch.tensor([[5, 6, 6, 7, 0, 0], [5, 9, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    layout = make_layout(x)
    assert layout.kind == "sequence" and layout.pad_id == 0
    v = generic_values(layout, x)
    np.testing.assert_array_equal(v["seq_length"], [4, 2, 0])
    np.testing.assert_array_equal(v["seq_padding"], [2, 4, 6])
    np.testing.assert_array_equal(v["seq_distinct_tokens"], [3, 2, 0])
    pairs = pair_level_features(
        layout, lambda idx: x[torch.from_numpy(idx)], np.array([0, 0, 2]), np.array([1, 0, 1])
    )
    # {5, 6, 7} vs {5, 9}: 1 shared of 4; identical: 1; empty vs {5, 9}: 0
    np.testing.assert_allclose(pairs["seq_token_overlap:pair"], [0.25, 1.0, 0.0])


def test_signal_segments_and_bands():
    t = torch.arange(128, dtype=torch.float64)
    x = torch.stack([torch.sin(2 * np.pi * 3 * t / 128), torch.sin(2 * np.pi * 40 * t / 128)]).float()
    layout = make_layout(torch.randn(2, 128))
    v = generic_values(layout, x)
    bands = [n for n in layout.columns if n.startswith("band_")]
    assert bands == ["band_f1-16_power", "band_f17-32_power", "band_f33-48_power", "band_f49-64_power"]
    assert np.argmax([v[b][0] for b in bands]) == 0 and np.argmax([v[b][1] for b in bands]) == 2
    np.testing.assert_allclose(v["segment_p0-15_max"], x[:, :16].amax(1).numpy(), rtol=1e-6)


def test_feature_columns_with_few_integer_levels_become_categories():
    x = torch.tensor(
        np.c_[np.random.default_rng(0).normal(size=(30, 2)), np.arange(30) % 3], dtype=torch.float32
    )
    layout = make_layout(x, feature_names=["a", "b", "system"])
    frames = {"train": compute_generic(layout, lambda idx: x[torch.from_numpy(idx)], 30)}
    frames["val"] = frames["train"].copy()
    out = categorize_generic(layout, frames)
    assert [str(out["train"][c].dtype) for c in ("a", "b", "system")] == ["float64", "float64", "category"]
    assert str(out["val"]["system"].dtype) == "category"
    with pytest.raises(InputError, match="feature_names has 2 names"):
        make_layout(x, feature_names=["a", "b"])


def test_merge_bound_unions_places():
    merged = merge_bound(
        [{"boxes": ((0, 4, 0, 4),)}, {"boxes": ((0, 4, 0, 4), (4, 8, 0, 4))}, {"band": (1, 5)}]
    )
    assert merged == {"boxes": ((0, 4, 0, 4), (4, 8, 0, 4)), "band": (1, 5)}
    assert merge_bound([{"band": (5, 9)}, {"band": (1, 3)}]) == {"band": (1, 9)}


# ---------------------------------------------------------------------------------------------------
# Interventions of the catalogue-free columns
# ---------------------------------------------------------------------------------------------------


def test_region_transplant_modes():
    x = torch.zeros(2, 1, 8, 8)
    src = torch.zeros(1, 1, 8, 8)
    src[0, 0, :2, :2] = 1.0
    src[0, 0, 0, 0] = 3.0
    ref = torch.full((4, 1, 8, 8), 0.5)
    params = A.fit_intervention("region_transplant", src, ref, bound={"boxes": ((0, 2, 0, 2),)})
    mean = A.apply_intervention("region_transplant", x, params)
    # the place's mean difference from the reference, (3 + 1 + 1 + 1) / 4 - 0.5 = 1, added to the box only
    torch.testing.assert_close(mean[:, :, :2, :2], torch.ones(2, 1, 2, 2))
    assert mean[:, :, 2:, :].abs().sum() == 0 and mean[:, :, :, 2:].abs().sum() == 0
    add = A.apply_intervention("region_transplant", x, {**params, "mode": "add"})
    torch.testing.assert_close(add[0, 0, :2, :2], src[0, 0, :2, :2] - 0.5)
    paste = A.apply_intervention("region_transplant", x + 7, {**params, "mode": "paste"})
    torch.testing.assert_close(paste[0, 0, :2, :2], src[0, 0, :2, :2])
    mask = np.zeros((8, 8), bool)
    mask[0, 0] = True
    only = A.apply_intervention("region_transplant", x, {**params, "mode": "add", "mask": mask})
    assert only[0, 0, 0, 0] == 2.5 and only.abs().sum() == 2 * 2.5


def test_sequence_length_cuts_or_extends_with_own_tokens():
    x = torch.tensor([[5, 6, 7, 8, 0, 0, 0, 0], [0, 0, 0, 0, 0, 3, 4, 5]])  # right and left padding
    out = A.apply_intervention("sequence_length", x, {"length": 2}).long()
    assert out[0].tolist() == [5, 6, 0, 0, 0, 0, 0, 0] and out[1].tolist() == [0, 0, 0, 0, 0, 0, 3, 4]
    longer = A.apply_intervention("sequence_length", x, {"length": 6}, rng=0).long()
    assert (longer[0] != 0).sum() == 6 and set(longer[0, 4:6].tolist()) <= {5, 6, 7, 8}
    assert longer[1, :2].tolist() == [0, 0] and set(longer[1, 2:].tolist()) <= {3, 4, 5}
    src = torch.tensor([[1, 2, 3, 0, 0, 0, 0, 0]])
    assert A.fit_intervention("sequence_length", src, x, bound={"pad_id": 0}) == {"pad_id": 0, "length": 3}


def test_token_count_adds_or_removes_one_token_and_leaves_pads_alone():
    x = torch.tensor([[5, 6, 7, 8, 0, 0], [9, 9, 9, 4, 0, 0]])
    src = torch.tensor([[9, 1, 9, 0, 0, 0]])
    params = A.fit_intervention("token_count", src, x, bound={"token": 9, "pad_id": 0})
    assert params == {"token": 9, "pad_id": 0, "count": 2}
    out = A.apply_intervention("token_count", x, params, rng=0).long()
    assert ((out == 9).sum(1)).tolist() == [2, 2]
    assert (out[:, 4:] == 0).all()  # padding is never turned into a token
    assert set(out[1, :4].tolist()) <= {9, 4}  # a removed marker is replaced by the sequence's own tokens


def test_a_sequence_layout_tracks_a_marker_token_in_half_the_items():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 500, (400, 12), generator=g)
    x[::2, 0] = 777  # a marker in every other item
    x[:, -1] = 3  # a token in every item tells nothing
    tracked = {c.bound.get("token") for c in make_layout(x).columns.values()}
    assert 777 in tracked and 3 not in tracked
    values = generic_values(make_layout(x), x[:4])
    assert values["seq_token_777"].tolist() == [1.0, 0.0, 1.0, 0.0]


def test_per_side_transplant_moves_each_side_from_the_same_side_of_its_source():
    targets = (torch.randn(4, 5, generator=G), torch.randn(4, 5, generator=G))
    sources = (
        torch.tensor([[0, 0, 0, 0, 1.0], [0, 0, 0, 0, 2.0]]),
        torch.tensor([[0, 0, 0, 0, 3.0], [0, 0, 0, 0, 4.0]]),
    )
    assign = np.array([0, 1, 1, 0])
    left, right, ok = transplant(
        "feature_value",
        targets,
        sources,
        targets[0],
        assign,
        rng=np.random.default_rng(0),
        bound={"indices": (4,)},
    )
    assert ok.all()
    assert left[:, 4].tolist() == [1.0, 2.0, 2.0, 1.0] and right[:, 4].tolist() == [3.0, 4.0, 4.0, 3.0]
    torch.testing.assert_close(left[:, :4], targets[0][:, :4])


def test_transplanted_token_ids_keep_their_dtype():
    targets = (torch.tensor([[4, 5, 6, 0]]), torch.tensor([[7, 0, 0, 0]]))
    sources = (torch.tensor([[1, 2, 0, 0]]), torch.tensor([[3, 3, 0, 0]]))
    left, right, _ = transplant(
        "sequence_length",
        targets,
        sources,
        targets[0],
        np.array([0]),
        rng=np.random.default_rng(0),
        bound={"pad_id": 0},
    )
    assert left.dtype == torch.int64 and left.tolist() == [[4, 5, 0, 0]]
    assert (right != 0).sum() == 2 and right[0, 0] == 7


def test_place_mask_keeps_the_pixels_where_positive_and_negative_items_differ():
    rng = torch.Generator().manual_seed(1)
    neg = torch.rand(200, 1, 8, 8, generator=rng)
    pos = torch.rand(200, 1, 8, 8, generator=rng)
    pos[:, :, 1, :] += 0.5  # a faint line on row 1
    mask = place_mask("region_transplant", {"boxes": ((0, 4, 0, 8),)}, pos, neg, level=0.95)
    assert mask.shape == (8, 8) and mask[1].all() and mask.sum() == 8
    assert place_mask("tint", {}, pos, neg, level=0.95) is None


def test_generic_columns_describe_themselves_in_the_attribute_table():
    x = torch.rand(6, 1, 8, 8, generator=G)
    frame = compute_generic(make_layout(x), lambda idx: x[torch.from_numpy(idx)], 6)
    text = A.describe_attribute("region_r0-3_c4-7_max", table=frame)
    assert text.startswith("maximum of the top-right 4x4 pixels (rows 0-3, columns 4-7)") and text.endswith(
        "numeric"
    )
    assert isinstance(frame, pd.DataFrame) and len(frame) == 6


def test_band_transplant_gives_the_source_items_power_in_the_band_and_keeps_the_rest():
    t = torch.arange(64, dtype=torch.float32) / 64
    x = torch.sin(2 * np.pi * 3 * t).repeat(2, 1)
    src = (torch.sin(2 * np.pi * 3 * t) + 0.5 * torch.sin(2 * np.pi * 20 * t)).unsqueeze(0)
    params = A.fit_intervention("band_transplant", src, x, bound={"band": (17, 33)})
    out = A.apply_intervention("band_transplant", x, params)
    spec_out, spec_src = torch.fft.rfft(out).abs(), torch.fft.rfft(src).abs()
    torch.testing.assert_close(spec_out[:, 17:33], spec_src.expand(2, -1)[:, 17:33], atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(spec_out[:, :17], torch.fft.rfft(x).abs()[:, :17], atol=1e-3, rtol=1e-3)
