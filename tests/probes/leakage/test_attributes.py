"""Tests of per-item attributes, pair features and the interventions that move the attributes.

Images are real: scikit-learn's digits (8x8, scaled to [0, 1]) as 1-channel, 3-channel (grey stacked)
and 28x28 (upsampled to 24x24 and padded by 2 pixels, like MNIST) batches.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from gapdiag.errors import ConfigError, InputError
from gapdiag.probes.leakage import attributes as A

N = 300


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    """(N, 8, 8) float32 digits in [0, 1]."""
    images = load_digits().images[:N] / 16.0
    return torch.tensor(images, dtype=torch.float32)


@pytest.fixture(scope="module")
def rgb(digits) -> torch.Tensor:
    """(N, 3, 8, 8): grey digits stacked to three channels."""
    return digits.unsqueeze(1).repeat(1, 3, 1, 1)


@pytest.fixture(scope="module")
def big(digits) -> torch.Tensor:
    """(N, 3, 28, 28): digits upsampled to 24x24 and padded by 2 zero pixels."""
    up = F.interpolate(digits.unsqueeze(1), size=(24, 24), mode="bilinear", align_corners=False)
    return F.pad(up, (2, 2, 2, 2)).repeat(1, 3, 1, 1)


def attrs(x: torch.Tensor) -> pd.DataFrame:
    return A.compute_attributes_from_tensor(x)


def moved(x: torch.Tensor, name: str, params=None, **kw) -> pd.DataFrame:
    """Per-item change of every attribute under an intervention, shape (B, n_columns)."""
    return attrs(A.apply_intervention(name, x, params, **kw)) - attrs(x)


# ---------------------------------------------------------------------------------------------------
# Attributes on different input shapes
# ---------------------------------------------------------------------------------------------------


def test_rgb_images_get_every_image_attribute(rgb):
    df = attrs(rgb)
    assert list(df.columns) == [
        "brightness",
        "red",
        "green",
        "blue",
        "redness",
        "greenness",
        "blueness",
        "saturation",
        "contrast",
        "sharpness",
        "center_of_mass_x",
        "center_of_mass_y",
        "border",
    ]
    assert len(df) == N and (df.dtypes == np.float64).all()
    # grey images: no colour cast at all
    np.testing.assert_allclose(df[["redness", "greenness", "blueness", "saturation"]], 0.0, atol=1e-7)
    assert df["center_of_mass_x"].between(0, 1).all() and df["center_of_mass_y"].between(0, 1).all()


def test_bhw_and_b1hw_give_the_same_attributes(digits):
    a, b = attrs(digits), attrs(digits.unsqueeze(1))
    pd.testing.assert_frame_equal(a, b)
    assert "red" not in a.columns and "redness" not in a.columns


def test_rgb_32x32_and_two_channel_images():
    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert "redness" in attrs(x).columns
    two = attrs(torch.rand(4, 2, 5, 9, generator=torch.Generator().manual_seed(1)))
    assert {"channel_0", "channel_1", "brightness"} <= set(two.columns)


def test_non_image_tensor_gets_generic_attributes_only():
    x = torch.arange(5 * 17, dtype=torch.float32).reshape(5, 17)
    df = attrs(x)
    assert list(df.columns) == ["mean", "std", "min", "max", "l2_norm"]
    np.testing.assert_allclose(df["mean"], x.mean(1).numpy(), rtol=1e-6)
    np.testing.assert_allclose(df["max"], x[:, -1].numpy())
    np.testing.assert_allclose(df["l2_norm"], x.norm(dim=1).numpy(), rtol=1e-6)


def test_center_of_mass_is_unchanged_by_normalization_with_negative_values(rgb):
    a, b = attrs(rgb), attrs((rgb - 0.5) / 0.3)
    np.testing.assert_allclose(a["center_of_mass_x"], b["center_of_mass_x"], atol=1e-5)
    np.testing.assert_allclose(a["center_of_mass_y"], b["center_of_mass_y"], atol=1e-5)


def test_batched_computation_equals_one_batch_and_uses_get_batch(rgb):
    calls = []

    def get_batch(idx):
        calls.append(len(idx))
        return rgb[torch.from_numpy(idx)]

    df = A.compute_attributes(get_batch, N, batch_size=64)
    assert calls == [64, 64, 64, 64, 44]
    pd.testing.assert_frame_equal(df, A.compute_attributes_from_tensor(rgb, batch_size=N), atol=1e-6)
    pd.testing.assert_frame_equal(df, A.compute_attributes(get_batch, N, batch_size=64))


def test_names_select_attributes_or_columns(rgb):
    df = A.compute_attributes_from_tensor(rgb, names=["sharpness", "redness", "center_of_mass"])
    assert list(df.columns) == ["redness", "sharpness", "center_of_mass_x", "center_of_mass_y"]


def test_unknown_or_inapplicable_names_raise(digits):
    with pytest.raises(InputError, match="unknown attribute 'shininess'"):
        A.compute_attributes_from_tensor(digits, names=["shininess"])
    with pytest.raises(InputError, match="RGB images"):
        A.compute_attributes_from_tensor(digits, names=["redness"])


def test_bad_batches_raise_input_error(rgb):
    with pytest.raises(InputError, match="returned 3 items"):
        A.compute_attributes(lambda idx: rgb[:3], 10)
    bad = rgb[:10].clone()
    bad[4, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN or inf"):
        A.compute_attributes_from_tensor(bad)
    with pytest.raises(InputError, match="n_items"):
        A.compute_attributes(lambda idx: rgb[idx], 0)


# ---------------------------------------------------------------------------------------------------
# Each intervention moves its attribute in the right direction, and leaves the others alone
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("images", ["rgb", "big"])
def test_red_tint_raises_redness_and_leaves_geometry_alone(images, request):
    x = request.getfixturevalue(images)
    d = moved(x, "tint", {"offset": (0.2, 0.0, 0.0)})
    np.testing.assert_allclose(d["redness"], 0.2, atol=1e-5)
    np.testing.assert_allclose(d["red"], 0.2, atol=1e-5)
    assert (d["saturation"] > 0.19).all()
    for col in ["center_of_mass_x", "center_of_mass_y", "contrast", "sharpness", "green"]:
        np.testing.assert_allclose(d[col], 0.0, atol=1e-5)


def test_tint_on_one_channel_images_is_a_brightness_change(digits):
    d = moved(digits, "tint", {"offset": (0.3, 0.0, 0.0)})
    np.testing.assert_allclose(d["brightness"], 0.1, atol=1e-5)


def test_channel_shift_changes_colour_but_not_brightness(rgb):
    d = moved(rgb, "channel_shift", {"offset": (0.3, 0.0, 0.0)})
    assert (d["redness"] > 0.29).all() and (d["blueness"] < 0).all()
    np.testing.assert_allclose(d["brightness"], 0.0, atol=1e-5)


@pytest.mark.parametrize("images", ["digits", "rgb", "big"])
def test_translation_right_raises_center_of_mass_x(images, request):
    x = request.getfixturevalue(images)
    d = moved(x, "translation", {"dx": 2, "dy": 0})
    assert (d["center_of_mass_x"] > 0).mean() > 0.95
    assert d["center_of_mass_y"].abs().mean() < 0.03  # edge pixels repeat, so y moves a little on 8x8
    down = moved(x, "translation", {"dx": 0, "dy": 2})
    assert (down["center_of_mass_y"] > 0).mean() > 0.95


def test_translation_of_padded_digits_is_exact(big):
    d = moved(big, "translation", {"dx": 2, "dy": -1})
    np.testing.assert_allclose(d["center_of_mass_x"], 2 / 27, atol=1e-5)
    np.testing.assert_allclose(d["center_of_mass_y"], -1 / 27, atol=1e-5)
    np.testing.assert_allclose(d["brightness"], 0.0, atol=1e-6)  # nothing fell off the edge


def test_translation_fill_modes_do_not_wrap_around():
    right = torch.zeros(1, 1, 4, 6)
    right[0, 0, :, -1] = 1.0  # a bright right edge leaves the image when shifted right...
    for fill in ("border", "zero"):
        assert A.apply_intervention("translation", right, {"dx": 2, "fill": fill}).sum() == 0  # ...no wrap
    assert A.apply_intervention("translation", right, {"dx": 2}).sum() == 0
    left = torch.zeros(1, 1, 4, 6)
    left[0, 0, :, 0] = 1.0  # a bright left edge: 'border' repeats it into the uncovered columns
    assert A.apply_intervention("translation", left, {"dx": 2, "fill": "border"})[0, 0, 0].tolist() == [
        1.0,
        1.0,
        1.0,
        0.0,
        0.0,
        0.0,
    ]
    zero = A.apply_intervention("translation", left, {"dx": 2, "fill": "zero"})
    assert zero[0, 0, 0].tolist() == [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    background = A.apply_intervention("translation", left + 0.5, {"dx": 2})  # ring median is 0.5
    assert background[0, 0, 0].tolist() == [0.5, 0.5, 1.5, 0.5, 0.5, 0.5]
    with pytest.raises(InputError, match="fill"):
        A.apply_intervention("translation", left, {"fill": "wrap"})


@pytest.mark.parametrize("images", ["digits", "rgb", "big"])
def test_blur_lowers_sharpness(images, request):
    x = request.getfixturevalue(images)
    d = moved(x, "blur", {"sigma": 1.0})
    assert (d["sharpness"] < 0).all()
    assert d["brightness"].abs().max() < 0.02


def test_brightness_and_contrast_move_their_attributes(rgb):
    b = moved(rgb, "brightness", {"delta": -0.1})
    np.testing.assert_allclose(b["brightness"], -0.1, atol=1e-5)
    np.testing.assert_allclose(b["border"], -0.1, atol=1e-5)
    np.testing.assert_allclose(b[["contrast", "sharpness", "center_of_mass_x"]], 0.0, atol=1e-5)
    c = moved(rgb, "contrast", {"ratio": 0.5})
    assert (c["contrast"] < 0).all()
    np.testing.assert_allclose(c[["brightness", "red", "redness"]], 0.0, atol=1e-5)


def test_generic_interventions_move_generic_attributes():
    x = torch.randn(8, 17, generator=torch.Generator().manual_seed(0))
    assert (moved(x, "brightness", {"delta": 1.0})["mean"] > 0.99).all()
    assert (moved(x, "scale", {"factor": 2.0})["l2_norm"] > 0).all()
    np.testing.assert_allclose(moved(x, "contrast", {"ratio": 2.0})["mean"], 0.0, atol=1e-5)


def test_each_intervention_moves_an_attribute_it_declares(rgb):
    """Catalogue interventions declare the attributes they move. The catalogue-free ones declare none: their
    place is bound at run time by the column GD101 flags (tested in test_catalogue_free.py)."""
    x17 = torch.randn(8, 17, generator=torch.Generator().manual_seed(0))
    for name in A.list_interventions():
        spec = A.get_intervention(name)
        if not spec.attributes:
            continue
        candidates = [x for x in (rgb[:20], x17) if spec.applies_to(x)]
        changes = [moved(x, name).abs().max() for x in candidates]
        declared = [d[[a for a in spec.attributes if a in d.index]] for d in changes]
        assert any(len(d) for d in declared), name
        assert max(d.max() for d in declared if len(d)) > 1e-3, name


# ---------------------------------------------------------------------------------------------------
# Interventions: contract
# ---------------------------------------------------------------------------------------------------

CONTRACT_BATCHES = {
    "grey (5, 8, 8)": lambda g: torch.rand(5, 8, 8, generator=g),
    "one channel (5, 1, 8, 8)": lambda g: torch.rand(5, 1, 8, 8, generator=g),
    "rgb (5, 3, 8, 8)": lambda g: torch.rand(5, 3, 8, 8, generator=g),
    "rgb (5, 3, 32, 32)": lambda g: torch.rand(5, 3, 32, 32, generator=g),
    "feature rows (5, 17)": lambda g: torch.randn(5, 17, generator=g),
    "signal (5, 100)": lambda g: torch.randn(5, 100, generator=g),
    "signal (5, 2, 100)": lambda g: torch.randn(5, 2, 100, generator=g),
    "token ids (5, 12)": lambda g: torch.randint(0, 9, (5, 12), generator=g),
}


@pytest.mark.parametrize("batch", list(CONTRACT_BATCHES))
def test_interventions_return_new_tensors_of_the_same_shape(batch):
    """Every intervention that applies to a kind of input (intended change: not every intervention applies
    to images now; token ids, signals and feature rows have their own)."""
    x = CONTRACT_BATCHES[batch](torch.Generator().manual_seed(0))
    before = x.clone()
    for name in A.list_interventions():
        if not A.get_intervention(name).applies_to(x):
            continue
        out = A.apply_intervention(name, x)
        assert out.shape == x.shape and out.data_ptr() != x.data_ptr(), name
        torch.testing.assert_close(x, before, rtol=0, atol=0)
        torch.testing.assert_close(A.apply_intervention(name, x, strength=0.0), x.float(), msg=name)


def test_every_intervention_applies_to_some_kind_of_input():
    g = torch.Generator().manual_seed(0)
    batches = [make(g) for make in CONTRACT_BATCHES.values()]
    for name in A.list_interventions():
        assert any(A.get_intervention(name).applies_to(x) for x in batches), name


def test_strength_scales_the_effect(rgb):
    one = moved(rgb, "tint", {"offset": (0.1, 0, 0)}, strength=1.0)["redness"]
    two = moved(rgb, "tint", {"offset": (0.1, 0, 0)}, strength=2.0)["redness"]
    np.testing.assert_allclose(two, 2 * one, atol=1e-5)


def test_unknown_parameter_raises_and_lists_valid_ones(rgb):
    with pytest.raises(InputError, match=r"no parameters \['offest'\].*\['offset'\]"):
        A.apply_intervention("tint", rgb, {"offest": (0.1, 0, 0)})
    with pytest.raises(InputError, match="3 channels"):
        A.apply_intervention("tint", rgb, {"offset": (0.1, 0.2)})
    with pytest.raises(InputError, match="image-like"):
        A.apply_intervention("blur", torch.zeros(3, 17))
    with pytest.raises(InputError, match="unknown intervention"):
        A.apply_intervention("sepia", rgb)


def test_user_intervention_that_modifies_its_input_is_rejected(rgb):
    @A.register_intervention("bad_inplace", attributes=("brightness",), description="adds in place")
    def bad(x, strength, rng, delta=0.1):
        return x.add_(delta)

    try:
        with pytest.raises(ConfigError, match="modified or returned its input"):
            A.apply_intervention("bad_inplace", rgb.clone())
    finally:
        A.unregister_intervention("bad_inplace")


def test_user_intervention_with_required_parameter_and_rng(rgb):
    @A.register_intervention("noise", attributes=("sharpness",), description="adds Gaussian noise")
    def noise(x, strength, rng, sigma):
        return x + strength * sigma * torch.from_numpy(rng.standard_normal(tuple(x.shape))).to(x.dtype)

    try:
        assert "noise" in A.intervention_for_attribute("sharpness")
        with pytest.raises(InputError, match=r"needs parameters \['sigma'\]"):
            A.apply_intervention("noise", rgb)
        a = A.apply_intervention("noise", rgb, {"sigma": 0.1}, rng=3)
        torch.testing.assert_close(a, A.apply_intervention("noise", rgb, {"sigma": 0.1}, rng=3))
        with pytest.raises(InputError, match="no estimator"):
            A.fit_intervention("noise", rgb, rgb)
    finally:
        A.unregister_intervention("noise")


def test_intervention_registry_rejects_duplicates_and_kwargs_sinks():
    with pytest.raises(ConfigError, match="already registered"):
        A.register_intervention("tint", description="again")(lambda x, s, r: x + 0)
    with pytest.raises(ConfigError, match=r"\*\*kwargs"):
        A.register_intervention("sink", description="swallows options")(lambda x, s, r, **kw: x + 0)
    with pytest.raises(ConfigError, match="x, strength, rng"):
        A.register_intervention("short", description="too few arguments")(lambda x: x + 0)
    assert "sink" not in A.list_interventions() and "short" not in A.list_interventions()


# ---------------------------------------------------------------------------------------------------
# Fitting interventions from data
# ---------------------------------------------------------------------------------------------------


def test_fit_tint_recovers_a_planted_offset(rgb):
    source = A.apply_intervention("tint", rgb[:150], {"offset": (0.3, 0.0, 0.0)})
    params = A.fit_intervention("tint", source, rgb[150:])
    np.testing.assert_allclose(params["offset"], (0.3, 0.0, 0.0), atol=0.03)
    shifted = A.fit_intervention("channel_shift", source, rgb[150:])["offset"]
    np.testing.assert_allclose(shifted, (0.2, -0.1, -0.1), atol=0.01)


def test_fitted_tint_transplants_the_redness(rgb):
    source = A.apply_intervention("tint", rgb[:150], {"offset": (0.3, 0.0, 0.0)})
    reference = rgb[150:]
    out = A.apply_intervention("tint", reference, A.fit_intervention("tint", source, reference))
    assert attrs(out)["redness"].mean() == pytest.approx(attrs(source)["redness"].mean(), abs=1e-5)


def test_fit_recovers_planted_brightness_contrast_translation_and_blur(rgb, big):
    ref = rgb[150:]
    src = A.apply_intervention("brightness", rgb[:150], {"delta": 0.2})
    assert A.fit_intervention("brightness", src, ref)["delta"] == pytest.approx(0.2, abs=0.03)
    src = A.apply_intervention("contrast", rgb[:150], {"ratio": 0.6})
    assert A.fit_intervention("contrast", src, ref)["ratio"] == pytest.approx(0.6, abs=0.05)
    src = A.apply_intervention("translation", big[:150], {"dx": 3, "dy": -2})
    fitted = A.fit_intervention("translation", src, big[150:])
    assert fitted["dx"] == pytest.approx(3, abs=0.5) and fitted["dy"] == pytest.approx(-2, abs=0.5)
    src = A.apply_intervention("blur", big[:150], {"sigma": 1.0})
    assert A.fit_intervention("blur", src, big[150:])["sigma"] == pytest.approx(1.0, abs=0.2)
    assert A.fit_intervention("blur", big[150:], src) == {"sigma": 0.0}  # a blur cannot sharpen


def test_fit_rejects_mismatched_channels(rgb, digits):
    with pytest.raises(InputError, match="channels"):
        A.fit_intervention("tint", rgb, digits)


# ---------------------------------------------------------------------------------------------------
# Mapping attributes to interventions
# ---------------------------------------------------------------------------------------------------


def test_intervention_for_attribute_mapping():
    assert A.intervention_for_attribute("redness") == ["tint", "channel_shift"]
    assert A.intervention_for_attribute("red:level") == ["tint", "channel_shift"]
    assert A.intervention_for_attribute("saturation")[0] == "tint"
    assert A.intervention_for_attribute("brightness") == ["brightness"]
    assert A.intervention_for_attribute("border") == ["brightness"]
    assert A.intervention_for_attribute("mean") == ["brightness"]
    assert A.intervention_for_attribute("contrast") == ["contrast"]
    assert A.intervention_for_attribute("center_of_mass_x:agreement") == ["translation"]
    assert A.intervention_for_attribute("sharpness") == ["blur"]
    assert A.intervention_for_attribute("scanner") == []


def test_every_builtin_image_attribute_has_an_intervention(rgb):
    for col in attrs(rgb[:4]).columns:
        assert A.intervention_for_attribute(col), col


# ---------------------------------------------------------------------------------------------------
# Pair features, user columns, descriptions
# ---------------------------------------------------------------------------------------------------


def test_pair_features_on_a_hand_made_example():
    attr = pd.DataFrame({"redness": [0.0, 0.2, 0.5], "scanner": ["a", "b", "a"]})
    pf = A.pair_features(attr, np.array([0, 0, 1]), np.array([1, 2, 2]))
    assert list(pf.columns) == ["redness:level", "redness:agreement", "scanner:same"]
    np.testing.assert_allclose(pf["redness:level"], [0.1, 0.25, 0.35])
    np.testing.assert_allclose(pf["redness:agreement"], [-0.2, -0.5, -0.3])
    np.testing.assert_array_equal(pf["scanner:same"], [0.0, 1.0, 0.0])


def test_pair_features_missing_values_give_nan():
    attr = pd.DataFrame({"v": [1.0, np.nan], "c": pd.Series(["x", None], dtype=object)})
    pf = A.pair_features(attr, np.array([0, 0]), np.array([0, 1]))
    assert pf.loc[0, "v:level"] == 1.0 and np.isnan(pf.loc[1, "v:agreement"])
    assert pf.loc[0, "c:same"] == 1.0 and np.isnan(pf.loc[1, "c:same"])


def test_pair_features_reject_bad_indices():
    attr = pd.DataFrame({"v": [1.0, 2.0]})
    with pytest.raises(InputError, match="valid indices 0..1"):
        A.pair_features(attr, np.array([0, 2]), np.array([1, 1]))
    with pytest.raises(InputError, match="same length"):
        A.pair_features(attr, np.array([0, 1]), np.array([1]))
    with pytest.raises(InputError, match="integer"):
        A.pair_features(attr, np.array([0.0]), np.array([1.0]))


def test_user_columns_flow_through_pair_features(rgb):
    computed = attrs(rgb[:6])
    user = pd.DataFrame(
        {
            "scanner": ["s1", "s2", "s1", "s1", "s2", "s3"],
            "exposure_ms": [10.0, 12.5, 10.0, 30.0, 12.5, 8.0],
            "site": [0, 1, 0, 1, 0, 1],  # integers with few levels: a category
        },
        index=list("abcdef"),  # matched by position, not by index
    )
    merged = A.merge_attributes(computed, user, descriptions={"scanner": "scanner that took the image"})
    assert list(merged.columns) == [*computed.columns, "scanner", "exposure_ms", "site"]
    assert A.attribute_kind("scanner", table=merged) == "categorical"
    assert A.attribute_kind("site", table=merged) == "categorical"
    assert A.attribute_kind("exposure_ms", table=merged) == "numeric"
    pf = A.pair_features(merged, np.array([0, 1, 3]), np.array([2, 4, 5]))
    np.testing.assert_array_equal(pf["scanner:same"], [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(pf["site:same"], [1.0, 0.0, 1.0])
    np.testing.assert_allclose(pf["exposure_ms:level"], [10.0, 12.5, 19.0])
    np.testing.assert_allclose(pf["exposure_ms:agreement"], [0.0, 0.0, -22.0])
    assert "scanner:level" not in pf.columns and "redness:agreement" in pf.columns
    assert A.describe_attribute("scanner", table=merged) == "scanner that took the image; categorical"
    assert A.describe_attribute("redness", table=merged) == A.describe_attribute("redness")
    assert "3 levels" in A.describe_attribute("scanner", table=_no_descriptions(merged))
    forced = A.merge_attributes(computed, user, numeric=["site"])
    assert "site:level" in A.pair_features(forced, np.array([0]), np.array([1])).columns


def _no_descriptions(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame.attrs = {}
    return frame


def test_merge_attributes_rejects_clashes_and_wrong_lengths(rgb):
    computed = attrs(rgb[:4])
    with pytest.raises(InputError, match="one row per item"):
        A.merge_attributes(computed, pd.DataFrame({"scanner": ["a"] * 3}))
    with pytest.raises(InputError, match="rename them"):
        A.merge_attributes(computed, pd.DataFrame({"brightness": [1.0] * 4}))
    with pytest.raises(InputError, match="not numbers"):
        A.merge_attributes(computed, pd.DataFrame({"scanner": list("abcd")}), numeric=["scanner"])
    with pytest.raises(InputError, match="descriptions name columns"):
        A.merge_attributes(computed, pd.DataFrame({"scanner": list("abcd")}), descriptions={"scaner": "x"})


def test_column_kind_rule():
    assert A.column_kind(pd.Series([True, False])) == "categorical"
    assert A.column_kind(pd.Series(["a", "b"])) == "categorical"
    assert A.column_kind(pd.Series([1, 2, 3])) == "categorical"
    assert A.column_kind(pd.Series(np.arange(100))) == "numeric"
    assert A.column_kind(pd.Series([0.0, 1.0])) == "numeric"
    with pytest.raises(InputError, match="neither numeric nor categorical"):
        A.column_kind(pd.Series(pd.to_datetime(["2020-01-01"]), name="when"))


def test_describe_attribute_uses_plain_words():
    assert A.describe_attribute("redness").startswith("redness (mean of the red channel minus")
    assert A.describe_attribute("redness").endswith("; numeric")
    assert "higher" not in A.describe_attribute("sharpness:level")
    assert "0 = identical" in A.describe_attribute("contrast:agreement")
    assert A.split_feature_name("scanner:same") == ("scanner", "same")
    with pytest.raises(InputError):
        A.describe_attribute("shininess")


# ---------------------------------------------------------------------------------------------------
# Attribute registry
# ---------------------------------------------------------------------------------------------------


def test_attribute_registry_rejects_duplicates():
    with pytest.raises(ConfigError, match="already registered"):
        A.register_attribute("contrast", description="again")(lambda x: x.mean())
    with pytest.raises(ConfigError, match="already registered .*color_cast"):
        A.register_attribute("redness", description="again")(lambda x: x.mean())
    with pytest.raises(ConfigError, match="':'"):
        A.register_attribute("a:b", description="colon")(lambda x: x.mean())
    with pytest.raises(ConfigError, match="kind"):
        A.register_attribute("odd", description="odd", kind="ordinal")


def test_user_attribute_is_computed_and_described(rgb):
    @A.register_attribute("top_half", applies_to="image", description="top half (mean of the upper rows)")
    def top_half(x):
        return x[:, :, : x.shape[2] // 2].mean(dim=(1, 2, 3))

    @A.register_attribute("is_dark", applies_to="image", kind="categorical", description="dark image")
    def is_dark(x):
        return (x.mean(dim=(1, 2, 3)) < 0.3).numpy()

    try:
        df = attrs(rgb[:10])
        assert {"top_half", "is_dark"} <= set(df.columns)
        assert isinstance(df["is_dark"].dtype, pd.CategoricalDtype)
        assert "is_dark:same" in A.pair_features(df, np.array([0]), np.array([1])).columns
        assert A.describe_attribute("top_half") == "top half (mean of the upper rows); numeric"
        with pytest.raises(ConfigError, match="already registered"):
            A.register_attribute("top_half", description="twice")(top_half)
        A.register_attribute("top_half", description="replaced", replace=True)(top_half)
        assert A.get_attribute("top_half").description == "replaced"
    finally:
        A.unregister_attribute("top_half")
        A.unregister_attribute("is_dark")
    assert "top_half" not in attrs(rgb[:2]).columns


def test_user_attribute_with_wrong_shape_raises_config_error(rgb):
    @A.register_attribute("broken", applies_to="image", description="returns one number per batch")
    def broken(x):
        return np.zeros(1)

    try:
        with pytest.raises(ConfigError, match=r"one value per item, shape \(10,\)"):
            attrs(rgb[:10])
    finally:
        A.unregister_attribute("broken")
