"""GD105 (probe ``augmentation``): the seed's colour distortion applied to similar pairs inside the training loop.
The loader handed to the audit is clean, so only the model can show the shortcut. Small real models trained
in-test on digit pairs; a healthy model of the same kind, and models whose shortcut lives elsewhere, stay clean.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from gapdiag import Items, Severity, Split, audit
from gapdiag.digits import build_scenario
from gapdiag.probes.leakage.augmentation import AUGMENTATIONS

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
    assert names == {a.name for a in AUGMENTATIONS}  # three channels: every augmentation applies
    assert all(t["crossing"].high < 0.5 for t in metrics["augmentations"])


def test_feature_rows_are_skipped_with_the_reason():
    rng = np.random.default_rng(0)
    x, y = torch.from_numpy(rng.standard_normal((60, 5)).astype(np.float32)), np.repeat(np.arange(6), 10)
    split = Split.from_items("train", Items(x, labels=y))
    report = audit(
        torch.nn.Linear(5, 3),
        split,
        Split.from_items("val", Items(x, labels=y)),
        progress=False,
        probes=["augmentation"],
    )
    result = report.result("augmentation")
    assert result.status == "skipped" and "images" in result.reason


@pytest.mark.parametrize("aug", AUGMENTATIONS, ids=[a.name for a in AUGMENTATIONS])
def test_each_augmentation_keeps_shape_and_dtype_leaves_its_input_and_changes_the_image(aug):
    x = torch.rand(4, 3, 20, 24)
    before = x.clone()
    out = aug.apply(x, np.random.default_rng(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    torch.testing.assert_close(x, before)
    assert not torch.equal(out, x)
    # moderate: the image moves by less than its own value range on average
    assert (out - x).abs().mean() < (x.amax() - x.amin())
