"""gapdiag embed: the embedding pass as a Ray Data job (and in-process), read back by audit-embeddings."""

import json

import numpy as np
import pytest
import torch

from gapdiag import Items, SiameseModel, Split
from gapdiag.digits import SiameseCNN, load_digits_images
from gapdiag.embed import embed_splits
from gapdiag.embed_job import embed_to_parquet
from gapdiag.embeddings_io import load_embedding_split
from gapdiag.errors import InputError


def _splits(n_train: int = 2000, n_val: int = 1000) -> tuple[SiameseModel, list[Split]]:
    images, labels = load_digits_images(channels=1, size=8)
    g = torch.Generator().manual_seed(0)
    reps = -(-(n_train + n_val) // len(images))
    x = images.repeat(reps, 1, 1, 1)[: n_train + n_val]
    x = (x + 0.05 * torch.randn(x.shape, generator=g)).contiguous()  # every item distinct
    y = np.tile(labels, reps)[: n_train + n_val]
    torch.manual_seed(0)
    model = SiameseModel(SiameseCNN(in_channels=1, embed_dim=16).eval(), batch_size=128)
    train = Split.from_items("train", Items(x[:n_train], labels=y[:n_train]))
    val = Split.from_items("val", Items(x[n_train:], labels=y[n_train:]), seed=1)
    return model, [train, val]


def _same_as_single_process(model, splits, out):
    reference = embed_splits(model, splits, progress=False).embeddings
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["items"] == {s.name: len(s) for s in splits} and manifest["dimension"] == 16
    for s in splits:
        back = load_embedding_split(out / s.name, name=s.name)
        np.testing.assert_array_equal(back.embeddings, reference[s.name])  # bit for bit
        np.testing.assert_array_equal(back.items.labels, s.items.labels)
        np.testing.assert_array_equal(back.pairs.left, s.pairs.left)
        np.testing.assert_array_equal(back.episodes.candidates, s.episodes.candidates)


def test_local_engine_writes_what_audit_embeddings_reads(tmp_path):
    model, splits = _splits(600, 300)
    embed_to_parquet(model, splits, tmp_path / "emb", engine="local")
    _same_as_single_process(model, splits, tmp_path / "emb")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray Data's own deprecated settings
def test_ray_job_on_two_cpus_equals_the_single_process_pass(tmp_path):
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'gapdiag[ray]')")
    model, splits = _splits()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        manifest = embed_to_parquet(model, splits, tmp_path / "emb", engine="ray", num_actors=2)
    finally:
        ray.shutdown()
    assert manifest["engine"] == "ray"
    assert len(list((tmp_path / "emb" / "train" / "items").glob("*.parquet"))) >= 1
    _same_as_single_process(model, splits, tmp_path / "emb")


def test_embed_refuses_a_folder_with_files(tmp_path):
    model, splits = _splits(300, 300)
    (tmp_path / "keep.txt").write_text("user data")
    with pytest.raises(InputError, match="never overwrites"):
        embed_to_parquet(model, splits, tmp_path, engine="local")
