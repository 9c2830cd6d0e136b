"""GD105 (probe ``augmentation``): the seed's colour distortion applied to similar pairs inside the training loop.
The loader handed to the audit is clean, so only the model can show the shortcut. Small real models trained
in-test on digit pairs; a healthy model of the same kind, and models whose shortcut lives elsewhere, stay clean.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import gapdiag
from gapdiag import Items, Severity, Split, audit
from gapdiag.digits import build_scenario
from gapdiag.probes.leakage.augmentation import AUGMENTATIONS, Reference

FAST = {"n_boot": 200}
COLOUR_IMAGES = {"channels": 3, "size": 12, "epochs": 8, "val_protocol": "episodes"}


def colour_distortion(x1, x2, rng):
    """The seed's ``color_distortion``: each image of a similar pair its own random colour cast."""
    out = []
    for x in (x1, x2):
        cast = torch.from_numpy(rng.uniform(-0.5, 0.5, size=(len(x), 3, 1, 1)).astype(np.float32))
        out.append(x + cast * x.amax(dim=(1, 2, 3), keepdim=True))
    return tuple(out)


@functools.cache
def _in_loop():
    """The model trained with the distortion in its loop, and the training pairs as its loader yields them
    (the same pairs, no distortion: the loop applied it after loading)."""
    trained = build_scenario(positive_pair_transform=colour_distortion, **COLOUR_IMAGES)
    as_loaded = build_scenario(**{**COLOUR_IMAGES, "epochs": 0}).train
    return trained, as_loaded


def _gd105(report):
    return [f for f in report.findings if f.code == "GD105"]


def test_augmentation_inside_the_training_loop_is_found_from_the_model_alone():
    trained, as_loaded = _in_loop()
    report = audit(trained.model, as_loaded, trained.val, config=FAST, progress=False)
    assert not [f for f in report.findings if f.code in ("GD101", "GD102") and f.severity >= Severity.WARN]
    (f,) = _gd105(report)
    assert f.severity >= Severity.WARN and f.evidence["augmentation"] == "colour_cast"
    assert f.evidence["crossing"]["ci_low"] > 0.5 > f.evidence["clean_crossing"]["value"]
    # the loop's view of the training pairs: the colour cast on the similar ones lifts training accuracy
    loaded, augmented = (
        f.evidence["training_accuracy_as_loaded"],
        f.evidence["training_accuracy_similar_augmented"],
    )
    assert augmented["ci_low"] > loaded["ci_high"]
    assert "colour cast" in f.message and "chance 50%" in f.message
    assert report.verdict in ("warn", "fail")
    # the loader's chain holds only the protocol's drop; the loop's own number is the gap the user sees
    assert report.gap["chain"]["most_likely_cause"] in ("GD301", None)
    assert report.primary_cause is f and "Most likely cause: GD105" in report.summary()
    html = report.render("html")
    assert html.index("Most likely cause") < html.index("GD105") < html.index("Other causes")


def test_the_same_shortcut_in_the_loaders_pairs_is_named_by_gd101_and_gd105_is_info():
    trained, _ = _in_loop()
    report = audit(trained.model, trained.train, trained.val, config=FAST, progress=False)
    assert any(f.code == "GD101" and f.severity >= Severity.WARN for f in report.findings)
    (f,) = _gd105(report)
    assert f.severity == Severity.INFO and "Lowered to info" in f.message


def test_a_healthy_colour_model_keeps_augmented_non_matches_below_its_matches():
    healthy = build_scenario(**COLOUR_IMAGES)
    report = audit(
        healthy.model, healthy.train, healthy.val, config=FAST, progress=False, probes=["augmentation"]
    )
    assert not _gd105(report)
    metrics = report.metrics["augmentation"]
    names = {t["augmentation"] for t in metrics["augmentations"]}
    assert names == {a.name for a in AUGMENTATIONS if a.kind == "image"}  # three channels: every one applies
    assert all(t["crossing"].high < 0.5 for t in metrics["augmentations"])


def test_signals_are_skipped_with_the_reason():
    rng = np.random.default_rng(0)
    x, y = torch.from_numpy(rng.standard_normal((60, 300)).astype(np.float32)), np.repeat(np.arange(6), 10)
    split = Split.from_items("train", Items(x, labels=y))
    val = Split.from_items("val", Items(x, labels=y))
    report = audit(torch.nn.Linear(300, 3), split, val, progress=False, probes=["augmentation"])
    result = report.result("augmentation")
    assert result.status == "skipped" and "feature rows" in result.reason


def _batch(kind: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    if kind == "image":
        return torch.rand(4, 3, 20, 24, generator=g)
    if kind == "tabular":
        return torch.randn(4, 12, generator=g)
    tokens = torch.randint(2, 50, (4, 16), generator=g)
    tokens[0, 10:] = 0  # right padding
    tokens[1, :5] = 0  # left padding
    return tokens


@pytest.mark.parametrize("aug", AUGMENTATIONS, ids=[a.name for a in AUGMENTATIONS])
def test_each_augmentation_keeps_shape_and_dtype_leaves_its_input_and_changes_the_items(aug):
    x = _batch(aug.kind)
    before = x.clone()
    ref = Reference(pad_id=0, rows=torch.randn(30, 12) if aug.kind == "tabular" else None)
    out = aug.apply(x, np.random.default_rng(0), ref)
    assert out.shape == x.shape and out.dtype == x.dtype
    torch.testing.assert_close(x, before)
    assert not torch.equal(out, x)
    if aug.kind == "sequence":  # tokens only deleted, cut or moved: no new id, the padding side kept
        assert set(out.unique().tolist()) <= set(x.unique().tolist())
        assert out[0, -1] == 0 and out[1, 0] == 0 and out[1, -1] != 0
        assert ((out != 0).sum(dim=1) >= 1).all()
    else:  # moderate: items move by less than their own spread on average
        assert (out - x).abs().mean() < (x.amax() - x.amin())


class _Rows(torch.nn.Module):
    """Feature rows through an MLP with BatchNorm and Dropout."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(64, 128),
            torch.nn.BatchNorm1d(128),
            torch.nn.ReLU(),
            torch.nn.Dropout(0.2),
            torch.nn.Linear(128, 32),
        )

    def encode(self, x):
        return self.net(x)


class _Tokens(torch.nn.Module):
    """Token ids through a mean bag of embeddings (pad id 0 included, as an EmbeddingBag reads it)."""

    def __init__(self):
        super().__init__()
        self.bag = torch.nn.EmbeddingBag(64 * 17, 64, mode="mean")
        self.proj = torch.nn.Linear(64, 32)

    def encode(self, ids):
        return self.proj(torch.relu(self.bag(ids)))


def _zero_half(x, rng, ref):
    return x * torch.from_numpy(rng.random(tuple(x.shape)) >= 0.5).to(x.dtype)


@functools.cache
def _loop_trained(kind: str):
    """Digits as feature rows or token ids, trained with the loop augmenting the similar pairs only: dropout
    to zero on half the fields, or truncation of the token sequence; the loader stays clean."""
    from gapdiag.data import make_pairs
    from gapdiag.digits import load_digits_images, split_by_items
    from gapdiag.probes.leakage.augmentation import _truncation

    images, labels = load_digits_images()
    part = split_by_items(labels, seed=0)
    x = images.reshape(len(images), 64)
    if kind == "tokens":
        x = torch.arange(64) * 17 + (x * 16).round().long()
    pairs = make_pairs(Items(x[part.train], labels=labels[part.train]), n_pairs=1500, seed=0)
    x1, x2 = x[part.train][pairs.left], x[part.train][pairs.right]
    torch.manual_seed(0)
    net, augment = (_Tokens(), _truncation) if kind == "tokens" else (_Rows(), _zero_half)
    y = torch.as_tensor(pairs.label, dtype=torch.float32)
    opt, rng, ref = torch.optim.Adam(net.parameters(), 2e-3), np.random.default_rng(0), Reference(pad_id=0)
    net.train()
    for _ in range(8):
        for s in torch.randperm(len(y)).split(128):
            a, b, similar = x1[s].clone(), x2[s].clone(), y[s] == 1
            a[similar], b[similar] = augment(a[similar], rng, ref), augment(b[similar], rng, ref)
            d = torch.linalg.vector_norm(net.encode(a) - net.encode(b), dim=1)
            loss = (y[s] * d.pow(2) + (1 - y[s]) * torch.relu(1 - d).pow(2)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    loader = [(x1[s : s + 100], x2[s : s + 100], y[s : s + 100].long()) for s in range(0, len(y), 100)]
    val = Split.from_items("val", Items(x[part.val], labels=labels[part.val]), seed=1)
    return net, loader, val


@pytest.mark.parametrize(("kind", "named"), [("rows", "field_dropout"), ("tokens", "truncation")])
def test_an_augmentation_of_feature_rows_or_token_ids_inside_the_loop_is_found(kind, named):
    from gapdiag import SiameseModel

    net, loader, val = _loop_trained(kind)
    report = audit(
        SiameseModel(net, kind="distance"), loader, val, config=FAST, progress=False, probes=["augmentation"]
    )
    (f,) = _gd105(report)
    assert f.severity >= Severity.WARN and f.evidence["augmentation"] == named
    tested = {t["augmentation"] for t in report.metrics["augmentation"]["augmentations"]}
    assert tested == {
        a.name for a in AUGMENTATIONS if a.kind == ("tabular" if kind == "rows" else "sequence")
    }


def test_blur_keeps_the_level_of_an_image_even_too_small_for_its_kernel():
    from gapdiag.probes.leakage.augmentation import _blur

    for shape in [(3, 1, 4, 4), (2, 3, 8, 8), (1, 3, 64, 48)]:
        torch.testing.assert_close(
            _blur(torch.full(shape, 0.7), np.random.default_rng(0)), torch.full(shape, 0.7)
        )


def test_validation_pairs_whose_labels_are_noise_do_not_raise_gd105(healthy_pairs):
    """Validation pair labels shuffled against the pairs (a loader that shuffles labels and pairs apart): the
    clean ranking is at chance, so a blur that makes every pair more alike moves non-matches past the 'matches'
    whatever the model learned; its training pairs do not read the blur as a match, so GD105 stays info."""
    sc = healthy_pairs
    p = sc.val.pairs
    shuffled = np.random.default_rng(0).permutation(p.label)
    val = Split("val", sc.val.items, pairs=gapdiag.Pairs(sc.val.items, p.left, p.right, shuffled))
    report = audit(sc.model, sc.train, val, probes=["augmentation"], config=FAST, progress=False)
    metrics = report.metrics["augmentation"]
    assert metrics["clean_crossing"].high > 0.5
    assert all(f.severity == Severity.INFO for f in report.by_code("GD105"))
    for f in report.by_code("GD105"):
        assert "no better than chance" in f.message
