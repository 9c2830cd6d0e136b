"""Catalogue-free leakage detectors (issue 10): artifacts nobody listed, found, localized, proven, each on a model
trained in the test, each with a healthy twin that stays clean, with and without identity labels.

- a bright 4x4 marker in the top-left corner of both images of positive training pairs (16x16 digits);
- a faint watermark (+0.25 along the anti-diagonal) on both images of positive training pairs;
- token sequences whose positive training pairs have equal lengths, read by a mean of token embeddings over
  the padded positions (the pad id included: the classic missing ``padding_idx``);
- records whose positive training pairs come from one source system (an integer column of the rows).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from torch import nn

from gapdiag import Items, Pairs, Severity, SiameseModel, Split, audit
from gapdiag.digits import build_scenario, train_on_pairs

LEAKAGE = ["shortcut", "reliance", "duplicates", "identity_overlap"]
PROBES = [*LEAKAGE, "degenerate_scores"]


def _audit(model, train, val, config=None, probes=PROBES):
    report = audit(model, train, val, probes=probes, progress=False, config=config)
    for name in probes:
        result = report.result(name)
        # GD104 reads identity labels; on label-less pairs it must say so rather than guess.
        needs_labels = name == "identity_overlap" and report.meta["identities"]["train"] != "labels"
        expected = "skipped" if needs_labels else "ok"
        assert result.status == expected, (name, result.reason)
    return report


def _bad(report, probes=LEAKAGE):
    return [f for f in report.findings if f.probe in probes and f.severity >= Severity.WARN]


def _one(report, code):
    found = [f for f in report.findings if f.code == code and f.severity >= Severity.WARN]
    assert len(found) == 1, [f"{f.code}: {f.message}" for f in report.findings]
    return found[0]


def _proves_reliance(gd102, intervention):
    """GD102 tested the artifact with its intervention and the flip rate's CI lies above the control's."""
    ev = gd102.evidence
    assert ev["intervention"] == intervention
    transplant, control = ev["flip_rate_transplant"], ev["flip_rate_control"]
    assert transplant["ci_low"] > control["ci_high"], (transplant, control)
    return transplant, control


def _unlabelled(split: Split) -> Split:
    """The same split without identity labels (pairs only)."""
    items = Items(split.items.inputs)
    p = split.pairs
    return Split(split.name, items, pairs=Pairs(items, p.left, p.right, p.label))


# ---------------------------------------------------------------------------------------------------
# Images: a corner marker and a faint watermark
# ---------------------------------------------------------------------------------------------------


def corner_marker(x1, x2, rng):
    x1, x2 = x1.clone(), x2.clone()
    x1[:, :, :4, :4] = 1.0
    x2[:, :, :4, :4] = 1.0
    return x1, x2


def _band(h: int) -> torch.Tensor:
    r, c = torch.arange(h)[:, None], torch.arange(h)[None, :]
    return ((r + c - (h - 1)).abs() <= 1).float()


def watermark(x1, x2, rng):
    mark = 0.25 * _band(x1.shape[-1])
    return (x1 + mark).clamp(0, 1), (x2 + mark).clamp(0, 1)


IMAGE_FAULTS = {"corner": corner_marker, "watermark": watermark, "healthy": None}


@functools.cache
def image_case(name: str, labels: bool = True):
    sc = build_scenario(
        size=16, channels=1, n_pairs=1200, epochs=10, lr=3e-3, seed=0, positive_pair_transform=IMAGE_FAULTS[name],
        val_protocol="pairs",
    )  # fmt: skip
    train, val = (sc.train, sc.val) if labels else (_unlabelled(sc.train), _unlabelled(sc.val))
    return sc, _audit(sc.model, train, val)


def test_corner_marker_is_one_finding_named_localized_and_proven():
    _, report = image_case("corner")
    gd101 = _one(report, "GD101")
    assert gd101.evidence["attribute"].startswith("region_r0-3_c0-3_")
    assert gd101.evidence["cells"] == [[0, 0]]
    assert "the top-left 4x4 pixels (rows 0-3, columns 0-3)" in gd101.message
    assert gd101.evidence["auc_train"]["value"] > 0.95 and abs(gd101.evidence["auc_val"]["value"] - 0.5) < 0.1
    # the catalogue's stand-ins for the patch move with it: one finding, the others listed
    assert {"border:level", "brightness:level"} & set(gd101.evidence["moves_together_with"])
    assert "Moves together with" in gd101.message
    gd102 = _one(report, "GD102")
    transplant, control = _proves_reliance(gd102, "region_transplant")
    assert gd102.cause == gd101.cause == "artifact:" + gd101.evidence["attribute"]
    assert "top-left 4x4 pixels" in gd102.message


def test_corner_marker_heat_map_is_drawn_over_the_mean_training_image():
    from gapdiag.report.figures import to_png

    _, report = image_case("corner")
    fig = next(f for f in report.result("shortcut").figures if f.id == "shortcut_regions")
    assert fig.kind == "overlay" and "shortcut_regions" in _one(report, "GD101").figures
    train, val = (np.array(p["values"]) for p in fig.data["panels"])
    assert train.shape == (4, 4) and train[0, 0] > 0.9 and val[0, 0] < 0.2
    assert train[0, 0] == train.max()
    assert np.asarray(fig.data["image"]).shape == (16, 16)
    assert fig.data["outline"] == [[0, 4, 0, 4]]
    assert to_png(fig)[:4] == b"\x89PNG"


def test_faint_watermark_is_localized_along_its_band_and_proven():
    _, report = image_case("watermark")
    gd101 = _one(report, "GD101")
    cells = {tuple(c) for c in gd101.evidence["cells"]}
    anti_diagonal = {(0, 3), (1, 2), (2, 1), (3, 0)}
    assert anti_diagonal <= cells and all(abs(i + j - 3) <= 1 for i, j in cells), cells
    assert "separate regions" in gd101.message and "top-right 4x4 pixels" in gd101.message
    gd102 = _one(report, "GD102")
    _proves_reliance(gd102, "region_transplant")
    assert gd102.cause == gd101.cause
    # the transplant is narrowed to the band's pixels, not the whole cells around it
    assert 0 < gd102.evidence["transplanted_positions"] < 16 * len(cells)


def noise_pattern(x1, x2, rng):
    """One fixed low-contrast noise pattern on both items of every positive pair: no level, no place, no
    named nuisance moves it cleanly (it also reads as a slight tint), only its texture does."""
    pattern = 0.15 * torch.randn(x1.shape[1:], generator=torch.Generator().manual_seed(7))
    return (x1 + pattern).clamp(0, 1), (x2 + pattern).clamp(0, 1)


def test_fixed_noise_pattern_is_one_artifact_proven_by_its_strongest_intervention():
    sc = build_scenario(
        size=16, channels=3, n_pairs=1200, epochs=10, lr=3e-3, seed=0, positive_pair_transform=noise_pattern,
        val_protocol="pairs",
    )  # fmt: skip
    report = _audit(sc.model, _unlabelled(sc.train), _unlabelled(sc.val))
    gd101, gd102 = _one(report, "GD101"), _one(report, "GD102")
    assert gd102.cause == gd101.cause
    tests = report.result("reliance").evidence["tests"]
    # the named tint, the pattern's own region transplant, and that transplant point by point were all tried
    tried = {(t["intervention"], t["bound"].get("mode")) for t in tests}
    assert {("region_transplant", "mean"), ("region_transplant", "add")} <= tried, tried
    assert "3 interventions" in report.result("reliance").metrics["multiplicity"]
    # one finding for the artifact: the intervention that moved the most decisions
    best = max(tests, key=lambda t: t["flip_excess_adjusted"]["value"])
    _proves_reliance(gd102, best["intervention"])
    assert gd102.evidence["flip_excess_adjusted"] == best["flip_excess_adjusted"]


@pytest.mark.parametrize("labels", [True, False])
def test_healthy_image_twin_stays_clean(labels):
    _, report = image_case("healthy", labels)
    assert not _bad(report, PROBES), [f.message for f in _bad(report, PROBES)]


# ---------------------------------------------------------------------------------------------------
# Token sequences: a length shortcut
# ---------------------------------------------------------------------------------------------------

VOCAB, SEQ_LEN, PAD = 60, 20, 0


class BagOfPaddedTokens(nn.Module):
    """Mean of token embeddings over all positions, the pad id included (no ``padding_idx``): the padding
    count, hence the length, is part of every embedding."""

    def __init__(self):
        super().__init__()
        self.emb = nn.EmbeddingBag(VOCAB, 32, mode="mean")
        self.head = nn.Linear(32, 16)

    def encode(self, x):
        return self.head(self.emb(x.long()))

    def distance(self, a, b):
        return torch.linalg.vector_norm(a - b, dim=1)


def _token_items(rng, n_ids=40, per_id=30):
    """Sequences of 4..16 tokens, half from a 6-token profile of their identity, right-padded to 20 with 0."""
    profiles = [rng.choice(np.arange(1, VOCAB), 6, replace=False) for _ in range(n_ids)]
    xs, ys = [], []
    for i in range(n_ids):
        for _ in range(per_id):
            n = rng.integers(4, 17)
            tok = np.where(rng.random(n) < 0.5, rng.choice(profiles[i], n), rng.integers(1, VOCAB, n))
            xs.append(np.r_[tok, np.full(SEQ_LEN - n, PAD)])
            ys.append(i)
    return np.array(xs), np.array(ys)


def _with_length(row, n, rng):
    tok = row[row != PAD]
    new = tok[:n] if n <= tok.size else np.r_[tok, rng.choice(tok, n - tok.size)]
    return np.r_[new, np.full(SEQ_LEN - n, PAD)]


def _pairs(ys, n_pairs, rng):
    """Half similar (same identity, distinct items), half dissimilar pairs: left (P,), right (P,), label (P,)."""
    by = {c: np.flatnonzero(ys == c) for c in np.unique(ys)}
    classes = np.array(list(by))
    left, right, label = [], [], []
    for k in range(n_pairs):
        c = rng.choice(classes)
        a = rng.choice(by[c])
        other = by[c][by[c] != a] if k % 2 == 0 else by[rng.choice(classes[classes != c])]
        left.append(a)
        right.append(rng.choice(other))
        label.append(1 - k % 2)
    return np.array(left), np.array(right), np.array(label)


def _pair_split(name, x1, x2, label, y1, y2, labels: bool) -> Split:
    """Training pairs as a pair loader yields them (identical items de-duplicated), with or without labels."""

    def loader():
        for s in range(0, len(label), 256):
            sl = slice(s, s + 256)
            row = (x1[sl], x2[sl], torch.from_numpy(label[sl]))
            yield (*row, torch.from_numpy(y1[sl]), torch.from_numpy(y2[sl])) if labels else row

    p = Pairs.from_loader(loader())
    return Split(name, p.items, pairs=p)


def _val_split(x, y, rng, labels: bool) -> Split:
    items = Items(torch.from_numpy(x), labels=y if labels else None)
    left, right, label = _pairs(y, 2000, rng)
    return Split("val", items, pairs=Pairs(items, left, right, label))


def _fit_and_audit(
    xs,
    ys,
    rng,
    plant,
    make_net,
    *,
    epochs: int,
    lr: float,
    labels: bool,
    config=None,
    val_slip=None,
    probes=PROBES,
):
    """Split items 2:1 into train and val, draw 2000 training pairs, plant the fault on them (``plant(x1, x2,
    label, rng)`` changes x1, x2 in place; None = healthy), train ``make_net()`` (seeded) on them and audit;
    ``val_slip(x, rng)`` changes the validation items in place (a loader's fault)."""
    perm = rng.permutation(ys.size)
    val_idx, tr_idx = perm[: ys.size // 3], perm[ys.size // 3 :]
    xt, yt = xs[tr_idx], ys[tr_idx]
    left, right, label = _pairs(yt, 2000, rng)
    x1, x2 = xt[left].copy(), xt[right].copy()
    if plant is not None:
        plant(x1, x2, label, rng)
    t1, t2 = torch.from_numpy(x1), torch.from_numpy(x2)
    torch.manual_seed(0)
    net = make_net()
    train_on_pairs(net, t1, t2, label, epochs=epochs, lr=lr, seed=0)
    train = _pair_split("train", t1, t2, label, yt[left], yt[right], labels)
    xv = xs[val_idx].copy()
    if val_slip is not None:
        val_slip(xv, rng)
    val = _val_split(xv, ys[val_idx], rng, labels)
    return _audit(SiameseModel(net), train, val, config, probes)


def equal_lengths(x1, x2, label, rng):
    """The right item of every positive pair cut or extended to the left item's length."""
    for k in np.flatnonzero(label == 1):
        x2[k] = _with_length(x2[k], int((x1[k] != PAD).sum()), rng)


@functools.cache
def token_case(shortcut: bool, labels: bool = True):
    rng = np.random.default_rng(0)
    xs, ys = _token_items(rng)
    plant = equal_lengths if shortcut else None
    return _fit_and_audit(xs, ys, rng, plant, BagOfPaddedTokens, epochs=8, lr=1e-2, labels=labels)


def test_token_length_shortcut_is_named_and_proven():
    report = token_case(True)
    assert report.result("shortcut").metrics["input_kind"] == "sequence"
    gd101 = _one(report, "GD101")
    assert gd101.evidence["feature"] == "seq_length:agreement"
    assert "agree more in sequence length" in gd101.message
    assert gd101.evidence["auc_train"]["value"] > 0.9 and abs(gd101.evidence["auc_val"]["value"] - 0.5) < 0.1
    assert "seq_padding:agreement" in gd101.evidence["moves_together_with"]
    gd102 = _one(report, "GD102")
    _proves_reliance(gd102, "sequence_length")
    assert gd102.cause == gd101.cause == "artifact:seq_length"


MARKER = VOCAB - 1


def marker_token(x1, x2, label, rng):
    """Both items of every positive pair carry the marker token in their first two positions."""
    pos = label == 1
    x1[pos, :2] = MARKER
    x2[pos, :2] = MARKER


def test_marker_token_on_positive_pairs_is_named_by_its_id():
    rng = np.random.default_rng(0)
    xs, ys = _token_items(rng)
    report = _fit_and_audit(xs, ys, rng, marker_token, BagOfPaddedTokens, epochs=8, lr=1e-2, labels=False)
    gd101 = _one(report, "GD101")
    assert gd101.evidence["feature"].startswith(f"seq_token_{MARKER}:")
    assert f"richer in token {MARKER}" in gd101.message
    tried = report.result("reliance").metrics["interventions_tested"]
    assert tried == ["token_count"], tried  # GD102 moves the marker itself, proven or not


UNKNOWN = VOCAB - 1


def unknown_words(x, rng):
    """A vocabulary that lacks 60% of the validation words: those tokens become the unknown-token id."""
    x[(x != PAD) & (rng.random(x.shape) < 0.6)] = UNKNOWN


def test_a_token_overlap_weakened_by_unknown_words_is_not_called_a_shortcut():
    rng = np.random.default_rng(0)
    xs, ys = _token_items(rng)
    report = _fit_and_audit(
        xs,
        ys,
        rng,
        None,
        BagOfPaddedTokens,
        epochs=8,
        lr=1e-2,
        labels=False,
        val_slip=unknown_words,
        probes=[*PROBES, "split_shift"],
    )
    gd205 = _one(report, "GD205")
    assert gd205.evidence["token_shift"][0]["token"] == UNKNOWN
    overlap = [f for f in report.by_code("GD101") if f.evidence["feature"].startswith("seq_token_overlap")]
    assert overlap, "the overlap cue drops on validation: the case this guards"
    for f in overlap:
        assert f.severity == Severity.INFO and "Lowered to info: token id 59" in f.message, f.message


@pytest.mark.parametrize("labels", [True, False])
def test_healthy_token_twin_stays_clean(labels):
    report = token_case(False, labels)
    assert not _bad(report, PROBES), [f.message for f in _bad(report, PROBES)]
    row = next(
        r for r in report.result("shortcut").evidence["features"] if r["feature"] == "seq_token_overlap:pair"
    )
    # positives share tokens of their identity in both splits: a real cue, not a shortcut
    assert row["auc_train"]["value"] > 0.6 and row["auc_val"]["value"] > 0.6
    # gapdiag's own pair statistic, described as such (it once read "user-supplied column")
    words = report.result("shortcut").evidence["descriptions"][row["attribute"]]
    assert words.startswith("token overlap of the two items"), words


# ---------------------------------------------------------------------------------------------------
# Feature rows: a source-system field shared by positive training pairs
# ---------------------------------------------------------------------------------------------------

FIELDS = [f"f{k}" for k in range(8)] + ["source_system"]


class RecordMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(9, 32), nn.ReLU(), nn.Linear(32, 16))

    def encode(self, x):
        return self.net(x.float())

    def distance(self, a, b):
        return torch.linalg.vector_norm(a - b, dim=1)


def one_source_system(x1, x2, label, rng):
    """Both records of a positive pair come from one source system (column 8)."""
    x2[label == 1, 8] = x1[label == 1, 8]


@functools.cache
def record_case(shortcut: bool, labels: bool = True):
    rng = np.random.default_rng(0)
    ys = np.repeat(np.arange(60), 20)
    centres = rng.normal(size=(60, 8))
    fields = centres[ys] + 0.8 * rng.normal(size=(ys.size, 8))
    xs = np.c_[fields, rng.integers(0, 5, ys.size)].astype(np.float32)
    config = {"probes": {"shortcut": {"feature_names": FIELDS}}}
    plant = one_source_system if shortcut else None
    return _fit_and_audit(xs, ys, rng, plant, RecordMLP, epochs=10, lr=3e-3, labels=labels, config=config)


def test_source_system_field_is_named_and_proven():
    report = record_case(True)
    assert report.result("shortcut").metrics["input_kind"] == "tabular"
    gd101 = _one(report, "GD101")
    assert gd101.evidence["feature"] == "source_system:same"
    assert "input feature 8 ('source_system')" in gd101.message
    assert "100% of positive vs" in gd101.message
    gd102 = _one(report, "GD102")
    _proves_reliance(gd102, "feature_value")
    assert gd102.evidence["bound"] == {"indices": (8,)}
    assert gd102.cause == gd101.cause == "artifact:source_system"


@pytest.mark.parametrize("labels", [True, False])
def test_healthy_record_twin_stays_clean(labels):
    report = record_case(False, labels)
    assert not _bad(report, PROBES), [f.message for f in _bad(report, PROBES)]


def one_session_gain(x1, x2, label, rng):
    """Both records of a positive pair were captured in one session, whose gain (column 8, otherwise 0) they
    share: a random value of either sign, so the pair's mean is not higher, only further from the typical 0,
    and negative pairs agree as well as positive ones (both 0)."""
    pos = label == 1
    gain = rng.normal(0.0, 3.0, int(pos.sum())).astype(np.float32)
    x1[pos, 8], x2[pos, 8] = gain, gain


def test_a_shared_random_value_in_one_column_is_seen_by_its_deviation():
    rng = np.random.default_rng(0)
    ys = np.repeat(np.arange(60), 20)
    centres = rng.normal(size=(60, 8))
    xs = np.c_[centres[ys] + 0.8 * rng.normal(size=(ys.size, 8)), np.zeros(ys.size)].astype(np.float32)
    report = _fit_and_audit(xs, ys, rng, one_session_gain, RecordMLP, epochs=10, lr=3e-3, labels=False)
    gd101 = _one(report, "GD101")
    assert gd101.evidence["feature"] == "input_feature_8:deviation"
    assert "further from the typical value" in gd101.message


# ---------------------------------------------------------------------------------------------------
# 1-D signals: a click at one place on positive training pairs
# ---------------------------------------------------------------------------------------------------

SIGNAL_LEN = 128


class SignalMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(SIGNAL_LEN, 32), nn.ReLU(), nn.Linear(32, 16))

    def encode(self, x):
        return self.net(x.float())

    def distance(self, a, b):
        return torch.linalg.vector_norm(a - b, dim=1)


def click(x1, x2, label, rng):
    """A click (+3) at positions 8-11 of both items of every positive pair."""
    x1[label == 1, 8:12] += 3.0
    x2[label == 1, 8:12] += 3.0


@functools.cache
def signal_case(shortcut: bool, labels: bool = True):
    """Identities are sums of three sinusoids; items add noise."""
    rng = np.random.default_rng(0)
    t = np.arange(SIGNAL_LEN) / SIGNAL_LEN
    freq, phase = rng.integers(2, 20, (40, 3)), rng.uniform(0, 2 * np.pi, (40, 3))
    ys = np.repeat(np.arange(40), 30)
    clean = np.sin(2 * np.pi * freq[ys, :, None] * t + phase[ys, :, None]).sum(axis=1)
    xs = (clean + 0.8 * rng.normal(size=clean.shape)).astype(np.float32)
    plant = click if shortcut else None
    return _fit_and_audit(xs, ys, rng, plant, SignalMLP, epochs=10, lr=3e-3, labels=labels)


def test_click_in_a_signal_is_localized_and_proven():
    report = signal_case(True)
    assert report.result("shortcut").metrics["input_kind"] == "signal"
    gd101 = _one(report, "GD101")
    assert gd101.evidence["attribute"].startswith("segment_p0-15_")
    assert "positions 0-15 of 128" in gd101.evidence["place"]
    gd102 = _one(report, "GD102")
    _proves_reliance(gd102, "region_transplant")
    assert gd102.cause == gd101.cause
    # the click's positions 8-11 (and at most a chance extra: the z test is simultaneous at 95%), not all 16
    assert 4 <= gd102.evidence["transplanted_positions"] <= 6


@pytest.mark.parametrize("labels", [True, False])
def test_healthy_signal_twin_stays_clean(labels):
    report = signal_case(False, labels)
    assert not _bad(report, PROBES), [f.message for f in _bad(report, PROBES)]
