"""GD101 (probe ``shortcut``): nuisance attributes that solve the training pairs but not the validation pairs.

GD101 reads the data only, so most scenarios plant the artifact in real digit pairs and embed them with a
fixed random projection (no training needed); the trained-model scenarios live in test_reliance.py, which
asserts GD101 and GD102 together. The healthy trained models come from tests/conftest.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from gapdiag import Severity, audit
from gapdiag.data import Items, Pairs, Split, make_episodes, make_pairs
from gapdiag.digits import load_digits_images, split_by_classes, split_by_items
from gapdiag.model import SiameseModel
from gapdiag.probes.leakage.attributes import apply_intervention
from gapdiag.probes.leakage.signal import ATTRIBUTE_SIGNAL, auc_bootstrap, pair_feature_table, point_aucs
from gapdiag.probes.leakage.wording import direction_words
from gapdiag.stats import bootstrap_auc, roc_auc

COLOUR = {"red", "green", "blue", "redness", "greenness", "blueness", "saturation"}
INTENSITY = {"brightness", "border"}
POSITION = {"center_of_mass_x", "center_of_mass_y"}


class Projection(nn.Module):
    """A fixed random linear encoder: GD101 looks at the data, the model only has to embed it."""

    def __init__(self, d_in: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("w", torch.randn(d_in, 16, generator=g) / d_in**0.5)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w


def planted(
    channels: int = 1,
    size: int = 8,
    transform=None,
    *,
    val_protocol: str = "episodes",
    scanner: str | None = None,
    n_pairs: int = 1500,
    open_set: bool = False,
    train_labels: bool = True,
    seed: int = 0,
):
    """Real digit pairs with an artifact on both images of every positive training pair.

    Training items are the two sides of each pair (as a pair loader yields them); validation is clean.
    ``scanner``: "both" adds a scanner column shared within 90% of positive training pairs (random on val),
    "train" the same column on the training items only. ``open_set``: validation digits 7, 8, 9 are
    unseen in training. ``train_labels=False``: training identities only from the positive pairs.
    """
    images, labels = load_digits_images(channels=channels, size=size)
    part = split_by_classes(labels, (7, 8, 9)) if open_set else split_by_items(labels, seed=seed)
    pool = Items(images[part.train], labels=labels[part.train])
    p = make_pairs(pool, n_pairs=n_pairs, seed=seed)
    x1, x2 = images[part.train][p.left].clone(), images[part.train][p.right].clone()
    pos = p.label == 1
    rng = np.random.default_rng(seed)
    if transform is not None:
        x1[pos], x2[pos] = transform(x1[pos], x2[pos], rng)
    y = labels[part.train]
    train_attrs = val_attrs = None
    if scanner is not None:
        s_left = rng.integers(0, 4, n_pairs)
        keep = pos & (rng.random(n_pairs) < 0.9)
        s_right = np.where(keep, s_left, rng.integers(0, 4, n_pairs))
        train_attrs = pd.DataFrame({"scanner": np.concatenate([s_left, s_right])})
        if scanner == "both":
            val_attrs = pd.DataFrame({"scanner": rng.integers(0, 4, part.val.size)})
    item_labels = np.concatenate([y[p.left], y[p.right]]) if train_labels else None
    items = Items(torch.cat([x1, x2]), labels=item_labels, attributes=train_attrs)
    train = Split(
        "train", items, pairs=Pairs(items, np.arange(n_pairs), n_pairs + np.arange(n_pairs), p.label)
    )
    val_items = Items(images[part.val], labels=labels[part.val], attributes=val_attrs)
    if val_protocol == "episodes":
        n_way = 3 if open_set else 10
        val = Split(
            "val", val_items, episodes=make_episodes(val_items, n_way=n_way, n_episodes=500, seed=seed + 1)
        )
    else:
        val = Split("val", val_items, pairs=make_pairs(val_items, n_pairs=1500, seed=seed + 1))
    model = SiameseModel(Projection(channels * size * size))
    return model, train, val


def colour_cast(x1, x2, rng):
    """The same random, red-leaning colour cast on both images of each pair."""
    c = x1.shape[1]
    off = rng.uniform([0.15, 0.0, 0.0][:c], [0.35, 0.1, 0.1][:c], size=(x1.shape[0], c))
    off = torch.from_numpy(off.astype(np.float32))[:, :, None, None]
    return x1 + off, x2 + off


def random_sign_brightness(x1, x2, rng):
    """A shared brightness change of random sign: level and agreement stay put, only extremeness moves."""
    off = rng.uniform(0.2, 0.4, size=x1.shape[0]) * rng.choice([-1.0, 1.0], size=x1.shape[0])
    off = torch.from_numpy(off.astype(np.float32))[:, None, None, None]
    return x1 + off, x2 + off


def shift_right(x1, x2, rng):
    return (
        apply_intervention("translation", x1, {"dx": 2.0, "dy": 0.0}),
        apply_intervention("translation", x2, {"dx": 2.0, "dy": 0.0}),
    )


def run(model, train, val, **config):
    report = audit(model, train, val, probes=["shortcut"], progress=False, config=config or None)
    result = report.result("shortcut")
    assert result.status == "ok", result.reason
    return report, result


def gd101(report):
    return [f for f in report.findings if f.code == "GD101" and f.severity >= Severity.WARN]


def named(findings) -> set[str]:
    out = set()
    for f in findings:
        out.add(f.evidence.get("attribute"))
        out.update(x.rpartition(":")[0] for x in f.evidence.get("also_flagged", []))
    return out


# ---------------------------------------------------------------------------------------------------
# Planted artifacts are found and named
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [8, 16])
def test_colour_cast_on_positive_pairs_is_named_as_a_colour(size):
    report, result = run(*planted(channels=3, size=size, transform=colour_cast))
    found = gd101(report)
    assert found, [f.message for f in report.findings]
    assert named(found) & COLOUR, named(found)
    colour = next(f for f in found if named([f]) & COLOUR)
    assert colour.evidence["auc_train"]["value"] > 0.9
    assert abs(colour.evidence["auc_val"]["value"] - 0.5) < 0.1
    assert "validation pairs (0.5 = no signal)" in colour.message
    assert "shortcut_auc" in colour.figures
    # the classifier solves the training pairs without identity, and fails to transfer
    clf = result.metrics["classifier"]
    assert clf["auc_cv_train"]["value"] > 0.95 and clf["auc_transfer"]["value"] < 0.85


def test_intensity_cast_on_one_channel_is_named_as_brightness():
    report, _ = run(*planted(channels=1, size=16, transform=colour_cast, val_protocol="pairs"))
    found = gd101(report)
    assert found and named(found) & INTENSITY, [f.message for f in report.findings]
    lead = found[0]
    assert lead.evidence["attribute"] in INTENSITY
    assert "brighter" in lead.message


@pytest.mark.parametrize("channels,size", [(1, 16), (3, 8)])
def test_same_offset_on_positive_pairs_is_named_as_position(channels, size):
    report, _ = run(*planted(channels=channels, size=size, transform=shift_right))
    found = gd101(report)
    assert found and named(found) & POSITION, [f.message for f in report.findings]
    pos = next(f for f in found if f.evidence["attribute"] in POSITION)
    assert pos.evidence["attribute"] == "center_of_mass_x"
    assert "shifted further right" in pos.message and "horizontal position" in pos.message


def test_shared_shift_of_random_sign_is_caught_by_extremeness():
    report, _ = run(*planted(channels=1, size=8, transform=random_sign_brightness))
    found = gd101(report)
    assert found and named(found) & INTENSITY, [f.message for f in report.findings]
    assert any(f.evidence["feature"].endswith(":deviation") for f in found)


def test_scanner_column_shared_by_positive_training_pairs_is_named():
    report, result = run(*planted(scanner="both"))
    found = [f for f in gd101(report) if f.evidence["attribute"] == "scanner"]
    assert found, [f.message for f in report.findings]
    f = found[0]
    assert f.evidence["feature"] == "scanner:same"
    assert "share the same scanner more often" in f.message
    row = next(r for r in result.evidence["features"] if r["feature"] == "scanner:same")
    # 90% kept + 10% x 1/4 by chance among positives; 1/4 among negatives
    assert row["same_rate_train"]["positive"] == pytest.approx(0.925, abs=0.03)
    assert row["same_rate_train"]["negative"] == pytest.approx(0.25, abs=0.04)
    assert abs(row["auc_val"]["value"] - 0.5) < 0.06


def test_column_on_training_items_only_is_reported_but_not_flagged():
    report, result = run(*planted(scanner="train"))
    assert not [f for f in report.findings if f.evidence.get("attribute") == "scanner"]
    row = next(r for r in result.evidence["features"] if r["feature"] == "scanner:same")
    assert row["auc_train"]["value"] > 0.75 and row["auc_val"] is None
    assert any("scanner" in n and "training items only" in n for n in result.notes)


def test_unlabelled_training_pairs_still_flag_the_cast():
    """Without labels the identity-only control cannot run; the train-vs-validation contrast still finds the cast."""
    report, result = run(*planted(channels=3, size=8, transform=colour_cast, train_labels=False))
    assert named(gd101(report)) & COLOUR
    assert any("identity-only control" in n for n in result.notes)


# ---------------------------------------------------------------------------------------------------
# Healthy data stays clean
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["healthy_pairs", "healthy_episodes"])
def test_healthy_trained_model_gets_no_warn_or_fail(request, fixture):
    s = request.getfixturevalue(fixture)
    report, result = run(s.model, s.train, s.val)
    assert not gd101(report), [f.message for f in report.findings]
    # identity-related cues (same digits agree in stroke position) exist, in both splits alike
    clf = result.metrics["classifier"]
    assert clf["auc_cv_train"]["value"] > 0.6
    assert abs(clf["separability_drop"]["value"]) < 0.15


@pytest.mark.parametrize("channels,size", [(3, 16), (1, 8)])
def test_clean_planted_pairs_get_no_warn_or_fail(channels, size):
    report, _ = run(*planted(channels=channels, size=size))
    assert not gd101(report), [f.message for f in report.findings]


@pytest.mark.parametrize("seed", [0, 1])
def test_open_set_identity_cues_are_not_a_shortcut(seed):
    """Digits 7, 8, 9 differ from 0..6 in identity-related cues (stroke position, border); the cues survive the
    re-drawing of training pairs from their identities, so they are not pairing artifacts."""
    report, result = run(*planted(channels=1, size=8, open_set=True, seed=seed))
    assert not gd101(report), [f.message for f in report.findings]
    clf = result.metrics["classifier"]
    assert clf["excess_identity"]["value"] < 0.15


def test_embeddings_only_validation_is_skipped_with_a_reason(healthy_pairs):
    s = healthy_pairs
    emb = s.model.embed(s.val.items.get_batch(np.arange(len(s.val.items))))
    val = Split.from_embeddings(
        emb, s.val.items.labels, pairs=(s.val.pairs.left, s.val.pairs.right, s.val.pairs.label)
    )
    train_emb = s.model.embed(s.train.items.get_batch(np.arange(len(s.train.items))))
    train = Split.from_embeddings(
        train_emb,
        s.train.items.labels,
        name="train",
        pairs=(s.train.pairs.left, s.train.pairs.right, s.train.pairs.label),
    )
    result = audit(None, train, val, probes=["shortcut"], progress=False).result("shortcut")
    assert result.status == "skipped" and "validation inputs" in result.reason


# ---------------------------------------------------------------------------------------------------
# Numbers against plain reference computations
# ---------------------------------------------------------------------------------------------------


def test_vectorized_auc_bootstrap_matches_reference():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    x = np.c_[rng.normal(size=400) + y, np.round(rng.normal(size=400)), rng.normal(size=400) - 0.5 * y]
    x[::9, 2] = np.nan
    auc, boot = auc_bootstrap(x, y, rng=np.random.default_rng(1), n_boot=2000)
    ok = np.isfinite(x[:, 2])
    assert auc[0] == pytest.approx(roc_auc(x[:, 0], y), abs=1e-12)
    assert auc[1] == pytest.approx(roc_auc(x[:, 1], y), abs=1e-12)  # ties count one half
    assert auc[2] == pytest.approx(roc_auc(x[ok, 2], y[ok]), abs=1e-12)
    ref = bootstrap_auc(x[:, 0], y, rng=np.random.default_rng(2), n_boot=2000)
    low, high = np.quantile(boot[:, 0], [0.025, 0.975])
    assert low == pytest.approx(ref.low, abs=0.01) and high == pytest.approx(ref.high, abs=0.01)


def test_point_aucs_match_the_bootstrap_point_values():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    x = np.c_[rng.normal(size=500) + y, np.round(rng.normal(size=500)), rng.integers(0, 3, 500) * 1.0]
    x[::7, 1] = np.nan
    expected, _ = auc_bootstrap(x, y, rng=np.random.default_rng(1), n_boot=50)
    np.testing.assert_allclose(point_aucs(x, y), expected, atol=1e-12)
    assert point_aucs(x[:, 2], y)[0] == pytest.approx(roc_auc(x[:, 2], y), abs=1e-12)  # ties count one half


def test_feature_table_and_aucs_match_a_direct_computation():
    model, train, val = planted(channels=3, size=8, transform=colour_cast)
    report, result = run(model, train, val)
    rows = {r["feature"]: r for r in result.evidence["features"]}
    from gapdiag.probes.leakage.attributes import compute_attributes_from_tensor

    attrs = compute_attributes_from_tensor(train.items.inputs)
    feats = pair_feature_table(attrs, train.pairs.left, train.pairs.right)
    # every named attribute's strongest part has its row (and intervals), whatever its signal
    shown = [name for name in rows if name in feats.columns]
    assert {n.rpartition(":")[0] for n in shown} >= {"saturation", "brightness", "redness"}
    for name in shown:
        ref = roc_auc(feats[name].to_numpy(), train.pairs.label)
        assert rows[name]["auc_train"]["value"] == pytest.approx(ref, abs=1e-6)
        sep = rows[name]["separability_train"]["value"]
        assert sep == pytest.approx(abs(2 * ref - 1), abs=1e-6)
    # deviation = |level - median of the split's items|
    med = np.median(attrs["brightness"])
    level = (
        attrs["brightness"].to_numpy()[train.pairs.left] + attrs["brightness"].to_numpy()[train.pairs.right]
    ) / 2
    np.testing.assert_allclose(feats["brightness:deviation"], np.abs(level - med))
    # the table lists the features whose intervals were computed; the multiplicity counts every feature
    # compared, those without intervals included
    assert len(rows) == result.metrics["n_features_with_intervals"]
    assert result.metrics["n_features_compared"] > len(rows)


def test_direction_words_read_plainly():
    row = {"attribute": "redness", "part": "level", "direction": "higher"}
    assert direction_words(row) == "positive training pairs are redder than negative ones"
    row = {"attribute": "brightness", "part": "agreement", "direction": "higher"}
    assert "agree more in brightness" in direction_words(row)
    row = {
        "attribute": "scanner",
        "part": "same",
        "direction": "higher",
        "same_rate_train": {"positive": 0.9, "negative": 0.25},
    }
    assert direction_words(row).endswith("(90% of positive vs 25% of negative pairs)")


def test_measurement_is_a_shared_artifact_of_the_context():
    from gapdiag.config import Config
    from gapdiag.context import AuditContext
    from gapdiag.embed import embed_splits

    model, train, val = planted(channels=1, size=8)
    emb = embed_splits(model, [train, val], batch_size=None, progress=False, cache_dir=None)
    ctx = AuditContext(
        {"train": train, "val": val}, emb.embeddings, model=model, scorer=model.scorer, config=Config()
    )
    a = ctx.artifact(ATTRIBUTE_SIGNAL)
    assert ctx.artifact(ATTRIBUTE_SIGNAL) is a


def test_figures_are_bounded():
    _, result = run(*planted(channels=3, size=16, transform=colour_cast))
    figs = {f.id: f for f in result.figures}
    bars = figs["shortcut_auc"].data
    assert len(bars["groups"]) <= 12 and set(bars["series"]) == {"train", "val"}
    rows = figs["shortcut_pairs"].data["rows"]
    assert len(rows) == 3 and all(len(r["images"]) == 8 for r in rows)
    assert rows[0]["images"][0].shape == (16, 16, 3)


def test_too_few_pairs_skip_with_a_reason_instead_of_a_collapsed_interval():
    """Four pairs once gave "AUC 0.00 [0.00, 0.00]" and a FAIL: a bootstrap of one positive pair."""
    model, train, val = planted(transform=colour_cast, n_pairs=12)
    report = audit(model, train, val, probes=["shortcut", "reliance"], progress=False)
    for name in ("shortcut", "reliance"):
        result = report.result(name)
        assert result.status == "skipped" and "min_pairs_per_label" in result.reason, result.reason
    assert not gd101(report)
    lowered = audit(
        model,
        train,
        val,
        probes=["shortcut"],
        progress=False,
        config={"probes": {"shortcut": {"min_pairs_per_label": 2}}},
    )
    assert lowered.result("shortcut").status == "ok"


@pytest.mark.parametrize("share", [1.0, 0.3])
def test_similar_pairs_of_an_input_with_itself_are_named_first(healthy_pairs, share):
    """A sampler that may draw the anchor as its own partner: (x, x, 1) pairs, deduplicated to one item."""
    sc = healthy_pairs
    p = sc.train.pairs
    rng = np.random.default_rng(0)
    copy = (p.label == 1) & (rng.random(len(p)) < share)
    train = Split(
        "train", sc.train.items, pairs=Pairs(sc.train.items, p.left, np.where(copy, p.left, p.right), p.label)
    )
    report = audit(sc.model, train, sc.val, probes=["shortcut"], config={"n_boot": 200}, progress=False)
    first = report.by_code("GD101")[0]
    assert first.severity == Severity.FAIL and "both sides are the same input" in first.message
    assert first.evidence["self_pairs"]["train"]["value"] == pytest.approx(copy.sum() / (p.label == 1).sum())
    assert first.evidence["self_pairs"]["val"]["value"] == 0
    # the pairs as given stay clean of it
    clean = audit(sc.model, sc.train, sc.val, probes=["shortcut"], config={"n_boot": 200}, progress=False)
    assert "same input" not in " ".join(f.message for f in clean.findings)
    assert clean.metrics["shortcut"]["self_pairs"]["train"].value == 0


def test_reliance_on_an_attribute_that_copies_share_is_lowered_to_info():
    from gapdiag import Finding
    from gapdiag.audit import _lower_reliance_on_what_copies_share

    copies = Finding("GD101", Severity.FAIL, "t", "m", evidence={"copies_solve_training_pairs": True})
    reliance = Finding("GD102", Severity.WARN, "t", "m")
    _lower_reliance_on_what_copies_share([copies, reliance])
    assert reliance.severity == Severity.INFO and "copies" in reliance.message
    other = Finding("GD102", Severity.WARN, "t", "m")
    attribute_only = Finding(
        "GD101", Severity.FAIL, "t", "m", evidence={"copies_solve_training_pairs": False}
    )
    _lower_reliance_on_what_copies_share([attribute_only, other])
    assert other.severity == Severity.WARN


def test_copies_of_a_model_that_fits_its_training_identities_are_info():
    """A tiny training set (40 items) whose sampler also draws items as their own partner: the model fits the
    distinct training pairs far better than validation's, so copies are not its gap (info, owning nothing),
    and the copies do not make every agreement feature look like a train-only cue."""
    from gapdiag.digits import build_scenario

    sc = build_scenario(n_train_items=40, n_pairs=1500, epochs=6, val_protocol="pairs", seed=0)
    p = sc.train.pairs
    copy = (p.label == 1) & (np.random.default_rng(0).random(len(p)) < 0.3)
    train = Split(
        "train", sc.train.items, pairs=Pairs(sc.train.items, p.left, np.where(copy, p.left, p.right), p.label)
    )
    report = audit(sc.model, train, sc.val, probes=["shortcut"], config={"n_boot": 200}, progress=False)
    (only,) = report.by_code("GD101")
    assert only.severity == Severity.INFO and "learned more than copies" in only.message
    assert not only.evidence["copies_solve_training_pairs"]
    assert only.evidence["beyond_copies"]["difference"]["ci_low"] > 0


def test_a_pair_list_yielded_again_and_again_counts_each_pair_once(healthy_pairs):
    """A loader over a fixed pair list, read for five epochs: each pair of items is one unit of evidence, so
    repeats neither narrow the intervals nor leak across the classifier's cross-validation folds."""
    sc = healthy_pairs
    p = sc.train.pairs
    repeated = Pairs(sc.train.items, np.tile(p.left, 5), np.tile(p.right, 5), np.tile(p.label, 5))
    report = audit(
        sc.model, Split("train", sc.train.items, pairs=repeated), sc.val, probes=["shortcut"], progress=False
    )
    once = audit(sc.model, sc.train, sc.val, probes=["shortcut"], progress=False)
    assert report.metrics["shortcut"]["n_pairs"]["train"] == once.metrics["shortcut"]["n_pairs"]["train"]
    assert report.codes(min_severity=Severity.WARN) == once.codes(min_severity=Severity.WARN)
