"""The preprocessing probe (GD305): a validation loader that skips normalization is a fail; natural
differences between splits (other digits, training-only augmentation) are not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gapdiag
from gapdiag import Severity
from gapdiag.data import Items, Split, make_episodes, make_pairs
from gapdiag.demo import colour_distortion
from gapdiag.digits import SiameseCNN, load_digits_images, split_by_classes, split_by_items, train_on_pairs
from gapdiag.model import SiameseModel


def _audit(model, train, val, config=None):
    return gapdiag.audit(model, train, val, probes=["preprocessing"], config=config, progress=False)


@pytest.fixture(scope="module")
def normalized_model():
    """A model trained on normalized digits ((x - mean) / std of the training pixels)."""
    images, labels = load_digits_images()
    part = split_by_items(labels, seed=0)
    train_x = images[part.train]
    mean, std = train_x.mean(), train_x.std()
    norm = (train_x - mean) / std
    items = Items(norm, labels=labels[part.train])
    pairs = make_pairs(items, n_pairs=1500, seed=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = SiameseCNN()
    train_on_pairs(net, norm[pairs.left], norm[pairs.right], pairs.label, epochs=4, seed=0)
    return {
        "model": SiameseModel(net),
        "train": Split("train", items, pairs=pairs),
        "images": images,
        "labels": labels,
        "val_idx": part.val,
        "mean": mean,
        "std": std,
    }


def _val(x, labels):
    items = Items(x, labels=labels)
    return Split("val", items, episodes=make_episodes(items, n_way=10, n_episodes=300, seed=1))


def test_unnormalized_val_inputs_fail_gd305(normalized_model):
    nm = normalized_model
    raw_val = nm["images"][nm["val_idx"]]  # the val loader forgot Normalize
    report = _audit(nm["model"], nm["train"], _val(raw_val, nm["labels"][nm["val_idx"]]))
    [f] = report.by_code("GD305")
    assert f.severity == Severity.FAIL
    assert "different scale" in f.message and "Normalize" in f.message
    ch = f.evidence["channels"][0]
    assert ch["std_ratio"]["ci_high"] < 0.5  # raw digits have std ~0.38 against 1 after normalization
    assert f.evidence["worst_coverage"]["outside"]["value"] > 0.9
    assert f.figures == ["preprocessing_channels", "preprocessing_items"]
    # and the same val loader with Normalize applied is clean
    fixed = (raw_val - nm["mean"]) / nm["std"]
    assert "GD305" not in _audit(nm["model"], nm["train"], _val(fixed, nm["labels"][nm["val_idx"]])).codes()


def test_channel_statistics_match_numpy(normalized_model):
    nm = normalized_model
    raw_val = nm["images"][nm["val_idx"]]
    every_item = {"probes": {"preprocessing": {"max_items": 10_000}}}
    val = _val(raw_val, nm["labels"][nm["val_idx"]])
    m = _audit(nm["model"], nm["train"], val, config=every_item).result("preprocessing").metrics
    # every item is read (training: every item of a dissimilar pair), so the pooled statistics are those of
    # every pixel of them
    assert m["val"]["n_items_read"] == raw_val.shape[0]
    pairs = nm["train"].pairs
    dissimilar = np.unique(np.concatenate([pairs.left[pairs.label == 0], pairs.right[pairs.label == 0]]))
    assert m["train"]["n_items_read"] == dissimilar.size < len(nm["train"].items)
    assert m["train"]["items_from"] == "items of dissimilar pairs"
    x = raw_val.double().numpy()
    assert m["val"]["channel_mean"][0] == pytest.approx(x.mean(), abs=1e-9)
    assert m["val"]["channel_std"][0] == pytest.approx(x.std(), abs=1e-9)
    assert (m["val"]["min"], m["val"]["max"]) == (pytest.approx(x.min()), pytest.approx(x.max()))
    train_x = nm["train"].items.inputs[dissimilar].double().numpy()
    shift = (x.mean() - train_x.mean()) / train_x.std()
    assert m["channels"][0]["mean_shift"].value == pytest.approx(shift, rel=1e-6)
    assert m["channels"][0]["std_ratio"].value == pytest.approx(x.std() / train_x.std(), rel=1e-6)
    assert m["train"]["shape"] == [1, 8, 8] and m["val"]["dtype"] == "float32"


def _untrained(channels):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return SiameseModel(SiameseCNN(in_channels=channels))


def _splits(train_x, train_y, val_x, val_y):
    ti, vi = Items(train_x, labels=train_y), Items(val_x, labels=val_y)
    return (
        Split("train", ti, pairs=make_pairs(ti, n_pairs=500, seed=0)),
        Split("val", vi, pairs=make_pairs(vi, n_pairs=500, seed=1)),
    )


def _half_colour_distorted(x, rng):
    """Training-only augmentation on half the items: the demo's shared colour cast."""
    x = x.clone()
    h = x.shape[0] // 4
    a, b = colour_distortion(torch.stack([x[:h], x[h : 2 * h]]), rng, strength=0.8)
    x[:h], x[h : 2 * h] = a, b
    return x


CASES = {
    # name: (channels, size, partition, train transform, val transform, expected severity or None)
    "same preprocessing": (1, 8, "items", None, None, None),
    "unseen classes": (3, 16, "classes", None, None, None),
    "training-only colour augmentation": (3, 16, "items", "distort", None, None),
    "mild contrast change": (1, 8, "items", None, lambda v: v * 0.85, None),
    "val in [0, 255]": (3, 8, "items", None, lambda v: v * 255, Severity.FAIL),
    "val normalized, train raw": (1, 16, "items", None, lambda v: (v - 0.3) / 0.38, Severity.FAIL),
    "val at half contrast": (3, 16, "items", None, lambda v: v * 0.5, Severity.FAIL),
    "val resized": (1, 8, "items", None, "resize", Severity.FAIL),
    "val as uint8 of the same values": (1, 8, "items", None, "uint8", Severity.WARN),
    # orientation: a slip in the validation loader, and classes that differ without any slip
    "val transposed": (1, 16, "items", None, lambda v: v.transpose(-1, -2), Severity.FAIL),
    "val flipped left-right, 28 x 28 RGB": (3, 28, "items", None, lambda v: v.flip(-1), Severity.FAIL),
    "unseen classes, val turned": (
        1,
        16,
        "classes",
        None,
        lambda v: torch.rot90(v, 1, (-2, -1)),
        Severity.FAIL,
    ),
    "unseen 6 and 9 (a half turn apart)": (1, 16, (6, 9), None, None, None),
    "unseen 0, 1 and 8 (symmetric digits)": (1, 16, (0, 1, 8), None, None, None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_planted_and_natural_differences(case):
    channels, size, partition, train_tf, val_tf, expected = CASES[case]
    images, labels = load_digits_images(channels=channels, size=size)
    if partition == "items":
        part = split_by_items(labels)
    else:
        part = split_by_classes(labels, *(() if partition == "classes" else (partition,)))
    tx, vx = images[part.train], images[part.val]
    if train_tf == "distort":
        tx = _half_colour_distorted(tx, np.random.default_rng(0))
    if val_tf == "resize":
        vx = load_digits_images(channels=channels, size=16)[0][part.val]
    elif val_tf == "uint8":
        tx = (tx * 16).round()
        vx = (vx * 16).round().to(torch.uint8)
    elif val_tf is not None:
        vx = val_tf(vx)
    train, val = _splits(tx, labels[part.train], vx, labels[part.val])
    report = _audit(_untrained(channels), train, val)
    found = report.by_code("GD305")
    if expected is None:
        assert not found, found[0].message
    else:
        assert found and found[0].severity == expected, [f.message for f in found]


ORANGE = torch.tensor([1.0, 0.6, 0.2]).view(1, 3, 1, 1)  # strokes in a colour whose channels differ
SLIPS = {
    # name: (what the validation loader did to (N, C, H, W) items, the words that name it)
    "height and width swapped": (lambda v: v.transpose(-1, -2), "transposed (height and width swapped)"),
    "quarter turn": (lambda v: torch.rot90(v, -1, (-2, -1)), "rotated by 90 degrees clockwise"),
    "BGR read as RGB": (lambda v: v.flip(1), "in reversed channel order (BGR for RGB)"),
    "BGR and a half turn": (
        lambda v: v.flip(1).flip(-1).flip(-2),
        "reversed channel order (BGR for RGB) and rotated by 180",
    ),
    "upside down, not square": (lambda v: v[..., :12].flip(-2), "flipped upside down"),
}


@pytest.mark.parametrize("slip", list(SLIPS))
def test_a_slip_in_the_validation_loader_is_named_and_undoing_it_is_clean(slip):
    undo_shape, words = SLIPS[slip]
    images, labels = load_digits_images(channels=3, size=16)
    images = images * ORANGE
    part = split_by_items(labels)
    square = "not square" not in slip
    tx = images[part.train] if square else images[part.train][..., :12]
    vx = images[part.val]
    train, val = _splits(tx, labels[part.train], undo_shape(vx), labels[part.val])
    [f] = _audit(_untrained(3), train, val).by_code("GD305")
    assert f.severity == Severity.FAIL and words in f.message, f.message
    # the fail needs a CI above 0.5; these slips explain far more (0.87 for the smallest, the 16x12 flip)
    assert f.evidence["orientation"]["explained"]["ci_low"] > 0.8
    assert "preprocessing_orientation" in f.figures
    # the same items without the slip: nothing to undo
    clean = _splits(tx, labels[part.train], vx if square else vx[..., :12], labels[part.val])
    m = _audit(_untrained(3), *clean).result("preprocessing").metrics
    assert not _audit(_untrained(3), *clean).by_code("GD305")
    assert m["orientation"]["identity_rms"].high < 0.1


def test_channels_last_items_are_turned_back_like_channels_first():
    images, labels = load_digits_images(channels=3, size=16)
    images = (images * ORANGE).permute(0, 2, 3, 1)  # (N, H, W, C), as read from image files
    part = split_by_items(labels)
    train, val = _splits(images[part.train], labels[part.train], images[part.val].flip(1), labels[part.val])

    class ChannelsLast(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = _untrained(3).module

        def encode(self, x):
            return self.net.encode(x.permute(0, 3, 1, 2))

    [f] = _audit(SiameseModel(ChannelsLast()), train, val).by_code("GD305")
    assert "flipped upside down" in f.message, f.message


def test_without_raw_inputs_the_probe_is_skipped(normalized_model):
    nm = normalized_model
    emb = nm["model"].embed(nm["train"].items.get_batch(np.arange(len(nm["train"].items))))
    t = nm["train"]
    train = Split.from_embeddings(
        emb, t.items.labels, name="train", pairs=(t.pairs.left, t.pairs.right, t.pairs.label)
    )
    val = Split.from_embeddings(emb, t.items.labels, name="val")
    result = gapdiag.audit(None, train, val, probes=["preprocessing"], progress=False).result("preprocessing")
    assert result.status == "skipped" and "raw" in result.reason


class _TokenBag(torch.nn.Module):
    """An (untrained) bag of token embeddings; pad id 0 contributes nothing."""

    def __init__(self, vocab: int = 64 * 17 + 2):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.bag = torch.nn.EmbeddingBag(vocab, 16, mode="sum", padding_idx=0)

    def encode(self, ids):
        return self.bag(ids)


def _digit_tokens():
    """8x8 digits as right-padded token ids (N, 64): one token per inked pixel (position and grey level)."""
    images, labels = load_digits_images()
    levels = (images.reshape(len(images), 64) * 16).round().long()
    ids = torch.arange(64) * 17 + levels + 1
    tokens = torch.zeros_like(ids)
    for i in range(len(ids)):
        inked = ids[i][levels[i] > 0]
        tokens[i, : inked.numel()] = inked
    return tokens, labels


@pytest.mark.parametrize(
    "loader, words",
    [
        ("same tokenizer", None),
        ("val truncated at 20", "Validation sequences are never longer than 20 tokens"),
        ("val padded with id 1", "of validation sequences are longer than any training sequence"),
        (
            "train truncated at 24",
            "of validation sequences are longer than any training sequence (24 tokens)",
        ),
    ],
)
def test_token_ids_are_compared_by_length_not_by_scale(loader, words):
    tokens, labels = _digit_tokens()
    part = split_by_items(labels)
    tx, vx = tokens[part.train].clone(), tokens[part.val].clone()
    if loader == "val truncated at 20":
        vx[:, 20:] = 0
    elif loader == "val padded with id 1":
        vx[vx == 0] = 1
    elif loader == "train truncated at 24":
        tx[:, 24:] = 0
    train, val = _splits(tx, labels[part.train], vx, labels[part.val])
    report = _audit(SiameseModel(_TokenBag()), train, val)
    found = report.by_code("GD305")
    lengths = report.result("preprocessing").metrics["lengths"]
    if words is None:
        assert not found, found[0].message
        assert lengths["val"]["other_beyond"].high < 0.05 and lengths["train"]["other_beyond"].high < 0.05
    else:
        [f] = found
        assert f.severity == Severity.FAIL and words in f.message, f.message
        assert "Normalize" not in f.message and "lengths" in f.evidence


def test_a_marker_token_on_similar_training_pairs_is_not_taken_for_a_validation_tokenizer_cut():
    """Every digit pixel is a token (position * 17 + grey level), so id 0, the blank top-left pixel, is in every
    sequence and is read as the pad id. A "same scanner" marker that replaces it on similar training pairs
    makes those sequences one token longer than any validation sequence, with the same loader for both:
    GD305 must not call that a validation tokenizer cut (the marker is GD101's business)."""
    images, labels = load_digits_images()
    tokens = torch.arange(64) * 17 + (images.reshape(len(images), 64) * 16).round().long()
    part = split_by_items(labels)
    pool = Items(tokens[part.train], labels=labels[part.train])
    p = make_pairs(pool, n_pairs=1000, seed=0)
    x1, x2 = pool.inputs[p.left].clone(), pool.inputs[p.right].clone()
    similar = torch.from_numpy(p.label == 1)
    x1[similar, 0] = x2[similar, 0] = 64 * 17
    batches = [
        (x1[s : s + 100], x2[s : s + 100], torch.from_numpy(p.label[s : s + 100]))
        for s in range(0, 1000, 100)
    ]
    train = gapdiag.Pairs.from_loader(batches)
    val_items = Items(tokens[part.val], labels=labels[part.val])
    val = Split("val", val_items, pairs=make_pairs(val_items, n_pairs=500, seed=1))
    model = SiameseModel(_TokenBag(vocab=64 * 17 + 1))
    report = _audit(model, train, val)
    assert not report.by_code("GD305"), report.by_code("GD305")[0].message
    assert report.result("preprocessing").metrics["train"]["items_from"] == "items of dissimilar pairs"
    # read from every training item (as before), the marked sequences looked like a validation cut
    everything = {"probes": {"preprocessing": {"min_neutral_items": 10**9}}}
    assert "never longer than 63 tokens" in _audit(model, train, val, everything).by_code("GD305")[0].message


class _RowNet(torch.nn.Module):
    """An (untrained) encoder of feature rows."""

    def __init__(self, d: int):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.net = torch.nn.Sequential(torch.nn.Linear(d, 16), torch.nn.ReLU(), torch.nn.Linear(16, 8))

    def encode(self, x):
        return self.net(x)


def _table(name: str, standardized: bool):
    from sklearn.datasets import load_breast_cancer, load_digits, load_wine

    x, y = {"cancer": load_breast_cancer, "wine": load_wine, "digits": load_digits}[name](return_X_y=True)
    if standardized:
        x = (x - x.mean(0)) / (x.std(0) + 1e-9)
    return torch.from_numpy(x.astype(np.float32)), y


COLUMN_CASES = {
    # name: (table, standardized, split, what the validation loader did to the columns, expected)
    "same columns": ("cancer", True, "items", None, None),
    "columns shuffled": (
        "cancer",
        True,
        "items",
        lambda v: v[:, torch.randperm(v.shape[1], generator=torch.Generator().manual_seed(5))],
        Severity.FAIL,
    ),
    "a column dropped upstream (all moved by one)": (
        "cancer",
        True,
        "items",
        lambda v: v.roll(1, dims=1),
        Severity.FAIL,
    ),
    "raw wine, two columns swapped": (
        "wine",
        False,
        "items",
        lambda v: v[:, [1, 0, *range(2, v.shape[1])]],
        Severity.FAIL,
    ),
    "standardized digit pixels, all moved by one (columns alike one by one)": (
        "digits",
        True,
        "items",
        lambda v: v.roll(1, dims=1),
        Severity.FAIL,
    ),
    "raw wine, stronger wines validate": ("wine", False, "shift", None, None),
    "raw digit pixels, other classes": ("digits", False, "classes", None, None),
}


@pytest.mark.parametrize("case", list(COLUMN_CASES))
def test_feature_columns_in_another_order_are_named_and_other_classes_are_not(case):
    table, standardized, split, reorder, expected = COLUMN_CASES[case]
    x, y = _table(table, standardized)
    if split == "items":
        order = np.random.default_rng(0).permutation(len(y))
        tr, va = order[: int(0.7 * len(y))], order[int(0.7 * len(y)) :]
    else:  # tables that differ, in the same column order: other classes, or another range of column 0
        first = (
            np.isin(y, np.unique(y)[: len(np.unique(y)) // 2])
            if split == "classes"
            else x[:, 0] < x[:, 0].median()
        )
        tr, va = np.flatnonzero(first), np.flatnonzero(~np.asarray(first))
    vx = x[va] if reorder is None else reorder(x[va]).contiguous()
    train, val = _splits(x[tr], y[tr], vx, y[va])
    report = _audit(SiameseModel(_RowNet(x.shape[1])), train, val)
    found = report.by_code("GD305")
    if expected is None:
        assert not found, found[0].message
    else:
        [f] = found
        assert f.severity == expected and "columns look like training columns in another order" in f.message
        assert f.evidence["columns"]["explained"]["ci_low"] > 0.5


def test_one_feature_column_in_other_units_is_named():
    """Validation's column 3 in grams where training has kilograms (x 1000): the column is named, alone."""
    x, y = _table("wine", False)
    order = np.random.default_rng(0).permutation(len(y))
    tr, va = order[:120], order[120:]
    vx = x[va].clone()
    vx[:, 3] *= 1000
    train, val = _splits(x[tr], y[tr], vx, y[va])
    [f] = _audit(SiameseModel(_RowNet(x.shape[1])), train, val).by_code("GD305")
    assert f.severity == Severity.FAIL and "1 of 13 feature columns with a spread moved" in f.message, (
        f.message
    )
    [column] = f.evidence["column_scales"][:1]
    assert column["column"] == 3 and column["iqr_ratio"]["ci_low"] > 100


@pytest.mark.parametrize(
    "crop, words",
    [
        (
            lambda v: F.interpolate(v[..., 4:24, 4:24], size=(28, 28), mode="bilinear"),
            "zoomed in by a factor of 1.43",
        ),
        (
            lambda v: F.pad(F.interpolate(v, size=(20, 20), mode="bilinear"), (4, 4, 4, 4)),
            "zoomed out by a factor of 1.43",
        ),
    ],
    ids=["a tighter crop", "padded"],
)
def test_a_validation_crop_of_another_size_is_named(crop, words):
    images, labels = load_digits_images(channels=1, size=28)
    part = split_by_items(labels)
    train, val = _splits(images[part.train], labels[part.train], crop(images[part.val]), labels[part.val])
    [f] = _audit(_untrained(1), train, val).by_code("GD305")
    assert f.severity == Severity.FAIL and words in f.message, f.message


def test_a_gd101_made_by_a_column_reorder_is_lowered_to_info_and_says_why():
    """Without identity labels, same-class pairs agree in a class-informative column in training, and in
    another column in validation once the columns are shuffled: a contrast of the slip, not an artifact."""
    x, y = _table("cancer", standardized=True)
    order = np.random.default_rng(0).permutation(len(y))
    tr, va = order[: int(0.7 * len(y))], order[int(0.7 * len(y)) :]
    shuffled = x[va][:, torch.randperm(x.shape[1], generator=torch.Generator().manual_seed(5))].contiguous()
    splits = []
    for name, items, labels, n, seed in (("train", x[tr], y[tr], 2000, 0), ("val", shuffled, y[va], 1500, 1)):
        p = make_pairs(Items(items, labels=labels), n_pairs=n, seed=seed)
        plain = Items(items)
        splits.append(Split(name, plain, pairs=gapdiag.Pairs(plain, p.left, p.right, p.label)))
    model = SiameseModel(_RowNet(x.shape[1]))
    report = gapdiag.audit(model, *splits, probes=["preprocessing", "shortcut"], progress=False)
    assert report.by_code("GD305")[0].severity == Severity.FAIL
    [gd101] = report.by_code("GD101")
    assert gd101.severity == Severity.INFO and "Lowered to info: GD305 found" in gd101.message


@pytest.mark.parametrize("slip", ["lengths", "columns", "orientation", None])
def test_a_gd101_contrast_that_a_validation_slip_creates_is_lowered(slip):
    """Validation texts cut at 6 tokens share fewer tokens with their partners than training's 17-token texts:
    a GD101 on the token overlap then measures the cut, not a shortcut of the training pairs."""
    from gapdiag.audit import _lower_contrasts_of_a_slip
    from gapdiag.findings.finding import Finding

    cut = Finding("GD305", Severity.FAIL, "t", "m", evidence={slip: {}} if slip else {"scale": {}})
    overlap = Finding("GD101", Severity.WARN, "t", "m", evidence={"feature": "seq_token_overlap"})
    _lower_contrasts_of_a_slip([cut, overlap])
    if slip is None:
        assert overlap.severity == Severity.WARN
    else:
        assert overlap.severity == Severity.INFO and "GD305 found the validation inputs" in overlap.message


@pytest.mark.parametrize("val_fill", ["training mean", "zero"])
def test_missing_values_filled_another_way_on_validation(val_fill):
    """A fifth of the cells missing in both splits: training fills them with the training column mean before
    standardizing; a validation loader that fills them with 0 in raw units is a preprocessing slip."""
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    missing = np.random.default_rng(0).random(x.shape) < 0.2
    order = np.random.default_rng(1).permutation(len(y))
    tr, va = order[:400], order[400:]
    mean = np.nanmean(np.where(missing, np.nan, x)[tr], axis=0)
    std = x[tr].std(axis=0) + 1e-9

    def loader(rows, fill):
        filled = np.where(missing[rows], fill, x[rows])
        return torch.from_numpy(((filled - mean) / std).astype(np.float32))

    vx = loader(va, mean if val_fill == "training mean" else 0.0)
    train, val = _splits(loader(tr, mean), y[tr], vx, y[va])
    found = _audit(SiameseModel(_RowNet(x.shape[1])), train, val).by_code("GD305")
    if val_fill == "training mean":
        assert not found, found[0].message
    else:
        [f] = found
        assert f.severity == Severity.FAIL and "feature columns with a spread moved" in f.message, f.message
