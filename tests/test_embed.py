import numpy as np
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
    assert second.meta["embedding"]["unique_items_embedded"] == 0
    probe_rows = second.meta["embedding"]["probe_sample_items_embedded"]
    assert (
        net.rows
        - first.meta["embedding"]["unique_items_embedded"]
        - first.meta["embedding"]["probe_sample_items_embedded"]
        == probe_rows
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
