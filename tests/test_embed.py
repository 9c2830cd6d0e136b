import numpy as np
import pytest
import torch
from torch import nn

import gapdiag
from gapdiag import Items, Pairs, SiameseModel, Split
from gapdiag.data import make_episodes


class CountingNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(16, 4)
        self.rows = 0
        self.calls = 0

    def encode(self, x):
        self.calls += 1
        self.rows += x.shape[0]
        return self.lin(x.flatten(1))


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 1, 4, 4, generator=g)
    labels = np.arange(40) % 5
    # training pairs from a loader: every item appears in several pairs and in both positions
    rng = np.random.default_rng(0)
    left, right = rng.integers(0, 30, 300), rng.integers(0, 30, 300)
    lab = (labels[left] == labels[right]).astype(int)
    batches = [
        (x[left[s : s + 50]], x[right[s : s + 50]], torch.tensor(lab[s : s + 50])) for s in range(0, 300, 50)
    ]
    train = Pairs.from_loader(batches)
    # the validation items include 5 items that also occur in training
    val_items = Items(x[25:40], labels=labels[25:40])
    val = Split("val", val_items, episodes=make_episodes(val_items, n_way=3, n_episodes=30))
    return train, val


def test_each_unique_item_is_embedded_exactly_once():
    train, val = _data()
    net = CountingNet()
    # probes that only read the embedding pass (the mode and reliance probes embed bounded samples of their own)
    readers = ["protocol_mismatch", "memorization", "class_gap", "geometry"]
    config = {"probes": {"class_gap": {"umap": False}}}
    report = gapdiag.audit(
        SiameseModel(net, batch_size=7), train, val, probes=readers, config=config, progress=False
    )
    n_unique = len({*train.items.content_hashes(), *val.items.content_hashes()})
    assert report.meta["embedding"]["probe_sample_items_embedded"] == 0
    assert report.meta["embedding"]["unique_items_embedded"] == n_unique
    assert net.rows == n_unique
    assert n_unique < len(train.items) + len(val.items)  # the shared items were embedded once


def test_second_identical_audit_reuses_the_cache(tmp_path):
    train, val = _data()
    net = CountingNet()
    cfg = (
        {"cache_dir": str(tmp_path), "probes": ["protocol_mismatch"]}
        if "protocol_mismatch" in gapdiag.registered_probes()
        else {"cache_dir": str(tmp_path)}
    )
    first = gapdiag.audit(SiameseModel(net), train, val, config=cfg, progress=False)
    calls_after_first = net.calls
    assert not first.meta["embedding"]["from_cache"] and calls_after_first > 0
    second = gapdiag.audit(SiameseModel(net), train, val, config=cfg, progress=False)
    assert second.meta["embedding"]["from_cache"]
    # only the preflight batch (at most two items per split) is embedded, to check the model and the cache
    n_preflight = second.meta["embedding"]["unique_items_embedded"]
    assert 0 < n_preflight <= 4
    probe_rows = second.meta["embedding"]["probe_sample_items_embedded"]
    assert (
        net.rows
        - first.meta["embedding"]["unique_items_embedded"]
        - first.meta["embedding"]["probe_sample_items_embedded"]
        == probe_rows + n_preflight
    )
    # a changed model is a different cache key
    with torch.no_grad():
        net.lin.bias.add_(1.0)
    third = gapdiag.audit(SiameseModel(net), train, val, config=cfg, progress=False)
    assert not third.meta["embedding"]["from_cache"]


def test_precomputed_embeddings_need_no_model():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(6), 10)
    emb = rng.normal(size=(60, 8)) + labels[:, None]
    train = Split.from_embeddings(
        emb,
        labels,
        name="train",
        pairs=(np.arange(30), np.arange(30, 60), (labels[:30] == labels[30:]).astype(int)),
    )
    val = Split.from_embeddings(emb + 0.1, labels, name="val")
    report = gapdiag.audit(None, train, val, progress=False)
    assert report.meta["embedding"]["unique_items_embedded"] == 0
    skipped = [r for r in report.results if r.status == "skipped"]
    assert all(r.reason for r in skipped)


def _cache_audit(net, train, val, cache_dir, **kw):
    cfg = {"cache_dir": str(cache_dir), "probes": ["protocol_mismatch"]}
    return gapdiag.audit(SiameseModel(net, **kw), train, val, config=cfg, progress=False)


def test_the_cache_key_covers_the_encoder_code(tmp_path):
    class Doubled(CountingNet):
        def encode(self, x):  # same weights, different code: different embeddings
            return 2 * super().encode(x)

    train, val = _data()
    net = CountingNet()
    _cache_audit(net, train, val, tmp_path)
    edited = Doubled()
    edited.load_state_dict(net.state_dict())
    report = _cache_audit(edited, train, val, tmp_path)
    assert not report.meta["embedding"]["from_cache"]
    assert len(list(tmp_path.glob("embeddings-*.npy"))) == 2


def test_the_cache_key_and_the_deduplication_keep_dtypes_apart(tmp_path):
    class DtypeAware(CountingNet):
        def encode(self, x):  # uint8 images are scaled, floats are taken as they are
            x = x.float() / 255 if x.dtype == torch.uint8 else x
            return super().encode(x)

    labels = np.arange(40) % 5
    pixels = torch.randint(0, 256, (40, 1, 4, 4), generator=torch.Generator().manual_seed(0))
    as_uint8 = Items(pixels.to(torch.uint8), labels=labels)
    as_float = Items(pixels.to(torch.float32), labels=labels)  # equal values, other dtype
    val = Split("val", as_float, episodes=make_episodes(as_float, n_way=3, n_episodes=20))
    train = Split("train", as_uint8, episodes=make_episodes(as_uint8, n_way=3, n_episodes=20))
    net = DtypeAware()
    report = gapdiag.audit(
        SiameseModel(net),
        train,
        val,
        probes=["protocol_mismatch"],
        config={"cache_dir": str(tmp_path)},
        progress=False,
    )
    assert report.meta["embedding"]["unique_items"] == 80  # not merged across dtypes
    first = next(tmp_path.glob("embeddings-*.npy"))
    table = np.load(first)
    assert not np.allclose(table[:40], table[40:])  # the encoder saw each dtype


def _corrupt(path, how):
    table = np.load(path)
    if how == "width":
        np.save(path, np.zeros((table.shape[0], table.shape[1] + 3), np.float32))
    elif how == "nan":
        table[3] = np.nan
        np.save(path, table)
    elif how == "dtype":
        np.save(path, table.astype(np.float64))
    elif how == "rows":
        np.save(path, table[:-1])
    elif how == "stale":
        np.save(path, table + 1.0)
    elif how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(b"not an array at all")


@pytest.mark.parametrize("how", ["width", "nan", "dtype", "rows", "stale", "truncated", "garbage"])
def test_an_invalid_cache_entry_is_recomputed_and_replaced(tmp_path, how):
    train, val = _data()
    net = CountingNet()
    first = _cache_audit(net, train, val, tmp_path)
    path = next(tmp_path.glob("embeddings-*.npy"))
    good = np.load(path)
    _corrupt(path, how)
    again = _cache_audit(net, train, val, tmp_path)
    assert not again.meta["embedding"]["from_cache"]
    assert np.array_equal(np.load(path), good)  # replaced by the recomputed table
    assert again.render("json") == first.render("json")  # the report is the one of valid embeddings


def test_a_module_with_extra_state_works_with_a_cache(tmp_path):
    class WithExtra(CountingNet):
        def __init__(self, version):
            super().__init__()
            self.version = version

        def get_extra_state(self):
            return {"version": self.version, "classes": ["a", "b"]}

        def set_extra_state(self, state):
            self.version = state["version"]

    train, val = _data()
    net = WithExtra(1)
    assert not _cache_audit(net, train, val, tmp_path).meta["embedding"]["from_cache"]
    assert _cache_audit(net, train, val, tmp_path).meta["embedding"]["from_cache"]
    net.version = 2  # extra state is part of the key
    assert not _cache_audit(net, train, val, tmp_path).meta["embedding"]["from_cache"]


def test_extra_state_that_cannot_be_hashed_disables_the_cache_with_a_warning(tmp_path):
    class Opaque(CountingNet):
        def get_extra_state(self):
            return object()

        def set_extra_state(self, state):
            pass

    train, val = _data()
    with pytest.warns(UserWarning, match="not cached"):
        report = _cache_audit(Opaque(), train, val, tmp_path)
    assert not report.meta["embedding"]["from_cache"] and not list(tmp_path.iterdir())
