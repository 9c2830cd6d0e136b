"""Scale: one shared neighbour graph per split, query-sampled estimates, streamed embedding inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gapdiag import Split, audit
from gapdiag import neighbors as nb
from gapdiag.cli import main
from gapdiag.embeddings_io import load_embedding_split
from gapdiag.errors import InputError
from gapdiag.metrics import retrieval_metrics
from gapdiag.neighbors import knn


def _classes(n: int, d: int = 8, n_classes: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    centres = rng.standard_normal((n_classes, d)) * 1.5
    return (centres[labels] + rng.standard_normal((n, d))).astype(np.float32), labels


# -- retrieval from a shared or sampled graph --------------------------------------------------------------
def test_shallow_graph_plus_deeper_search_equals_the_full_search():
    x, labels = _classes(1500)
    idx, _ = knn(x, x, 12, exclude_self=True)  # R is about 36: most queries need a deeper search
    a = retrieval_metrics(x, labels, knn_indices=idx, rng=1)
    b = retrieval_metrics(x, labels, rng=1)
    assert a.to_dict() == b.to_dict() and not a.estimated


def test_query_rows_give_the_mean_over_those_queries_and_an_interval_around_the_full_value():
    x, labels = _classes(4000, seed=2)
    full = retrieval_metrics(x, labels, n_boot=0)
    rows = np.sort(np.random.default_rng(3).choice(4000, 800, replace=False))
    idx, _ = knn(x, x, 10, exclude_self=True)
    part = retrieval_metrics(x, labels, query_rows=rows, knn_indices=idx[rows], rng=4, n_boot=300)
    assert part.estimated and part.n_queries == 800 and part.n_queries_total == 4000
    by_row = dict(zip(full.query_rows.tolist(), full.per_query["map_at_r"], strict=True))
    assert part.map_at_r.value == pytest.approx(np.mean([by_row[r] for r in rows]), abs=1e-12)
    assert part.map_at_r.low <= full.map_at_r.value <= part.map_at_r.high
    assert part.to_dict()["estimated"] is True and part.to_dict()["n_queries_total"] == 4000
    sampled = retrieval_metrics(x, labels, max_queries=800, rng=5, n_boot=0)
    assert sampled.n_queries == 800 and sampled.estimated


def test_query_rows_and_graph_rows_must_agree():
    x, labels = _classes(200)
    with pytest.raises(InputError, match="fewer than query_rows"):
        retrieval_metrics(x, labels, query_rows=np.arange(100), knn_indices=np.zeros((10, 10), int))
    with pytest.raises(InputError, match="not both"):
        retrieval_metrics(x, labels, query_rows=np.arange(10), max_queries=5)


# -- the audit's graphs --------------------------------------------------------------------------------------
def _embedding_splits(n_train: int = 2400, n_val: int = 900):
    xt, lt = _classes(n_train, seed=5)
    xv, lv = _classes(n_val, seed=6)
    return Split.from_embeddings(xt, lt, name="train"), Split.from_embeddings(xv, lv + 100, name="val")


def test_one_neighbour_graph_per_split_is_shared_by_every_probe(monkeypatch):
    calls = []
    original = nb.self_knn_blocks

    def counting(embeddings, k, **kw):
        calls.append((len(embeddings), k))
        yield from original(embeddings, k, **kw)

    monkeypatch.setattr(nb, "self_knn_blocks", counting)
    train, val = _embedding_splits()
    probes = ["class_gap", "geometry", "duplicates", "identity_overlap"]
    report = audit(None, train, val, config={"probes": probes}, progress=False)
    # one search per split, as deep as the deepest need: retrieval, hubness and near-duplicates read it
    assert sorted(n for n, _ in calls) == [900, 2400]
    assert "neighbour_graphs" in report.meta["timings"]
    assert all(r.status == "ok" for r in report.results)


def test_past_the_budget_numbers_are_estimates_from_a_query_sample():
    train, val = _embedding_splits(3000, 2500)
    config = {"probes": ["class_gap", "duplicates", "geometry"], "neighbour_budget": 1.0}
    report = audit(None, train, val, config=config, progress=False)
    by = {r.probe: r for r in report.results}
    assert all(r.status == "ok" for r in report.results), [r.reason for r in report.results]
    gap = by["class_gap"].metrics
    assert gap["train"]["estimated"] and gap["train"]["n_queries"] == 2000
    assert gap["train"]["n_queries_total"] == 3000 and gap["val"]["n_queries"] == 2000
    assert any("estimated from a seeded sample" in n for n in by["class_gap"].notes)
    dup = by["duplicates"].metrics
    assert dup["estimated"] and dup["n_val_items_checked"] == 2000 and dup["effect"] is None
    assert by["geometry"].metrics["train"]["n_items_hubness"] == 3000  # a subset of max_items_hubness
    again = audit(None, train, val, config=config, progress=False)
    assert json.dumps(again.to_dict()["probes"], default=str) == json.dumps(
        report.to_dict()["probes"], default=str
    )


# -- streamed inputs -------------------------------------------------------------------------------------
def test_npy_folder_is_memory_mapped(tmp_path):
    x, labels = _classes(500)
    (tmp_path / "train").mkdir()
    np.save(tmp_path / "train" / "embeddings.npy", x)
    np.save(tmp_path / "train" / "labels.npy", labels)
    split = load_embedding_split(tmp_path / "train", name="train")
    assert isinstance(split.embeddings, np.memmap) or isinstance(split.embeddings.base, np.memmap)
    np.testing.assert_array_equal(split.embeddings, x)
    assert split.pairs is not None and split.episodes is not None  # generated from the labels
    np.save(tmp_path / "train" / "weights.npy", x)
    with pytest.raises(InputError, match="unknown arrays weights"):
        load_embedding_split(tmp_path / "train", name="train")


def test_parquet_shards_in_any_order_are_read_by_item(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    x, labels = _classes(1000)
    folder = tmp_path / "val"
    folder.mkdir()
    order = np.random.default_rng(0).permutation(1000)
    for i, part in enumerate(np.array_split(order, 7)):
        emb = pa.FixedSizeListArray.from_arrays(pa.array(x[part].reshape(-1)), x.shape[1])
        pq.write_table(
            pa.table({"item": part, "label": labels[part], "embedding": emb}), folder / f"{i}.parquet"
        )
    split = load_embedding_split(folder, name="val")
    np.testing.assert_array_equal(split.embeddings, x)
    np.testing.assert_array_equal(split.items.labels, labels)
    pq.write_table(
        pa.table(
            {"item": [3], "label": [1], "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x[3]), 8)}
        ),
        folder / "dup.parquet",
    )
    with pytest.raises(InputError, match="numbers some rows twice|each once"):
        load_embedding_split(folder, name="val")


def test_cli_embed_local_then_audit_embeddings(tmp_path, monkeypatch):
    target = tmp_path / "scale_target.py"
    target.write_text(
        "import numpy as np, torch\n"
        "from gapdiag import Items, SiameseModel, Split\n"
        "from gapdiag.digits import SiameseCNN, load_digits_images\n"
        "def load():\n"
        "    x, y = load_digits_images()\n"
        "    torch.manual_seed(0)\n"
        "    model = SiameseModel(SiameseCNN(embed_dim=8).eval())\n"
        "    return model, Split.from_items('train', Items(x[:900], labels=y[:900])), "
        "Split.from_items('val', Items(x[900:1300], labels=y[900:1300]), seed=1)\n"
    )
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "emb"
    assert main(["embed", "scale_target:load", "--out", str(out), "--engine", "local"]) == 0
    assert json.loads((out / "manifest.json").read_text())["items"] == {"train": 900, "val": 400}
    code = main(
        [
            "audit-embeddings",
            str(out / "train"),
            str(out / "val"),
            "--out",
            str(tmp_path / "r"),
            "--format",
            "json",
            "--quiet",
            "--probes",
            "protocol_mismatch,class_gap",
        ]
    )
    assert code in (0, 1)
    assert (tmp_path / "r" / "report.json").is_file()
