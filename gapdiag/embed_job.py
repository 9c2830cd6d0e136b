"""The embedding pass as a job that writes parquet shards: on Ray Data for large data, or in this process.

``gapdiag embed`` runs the user's model over every item of every split and writes, per split::

    OUT/<split>/items/*.parquet      item (int64), content_hash (str), label (if any), embedding (list<float32>)
    OUT/<split>/pairs/pairs.parquet       left, right, label (int64, int64, int8)     when the split has pairs
    OUT/<split>/episodes/episodes.parquet anchor, candidates (list<int64>), correct    when it has episodes
    OUT/manifest.json                     model, dimension, items per split, engine, gapdiag version

``gapdiag audit-embeddings OUT/train OUT/val`` reads it back. With ``engine="ray"`` the batches are a Ray
dataset embedded by ``map_batches`` with a pool of actors (CPU or GPU per actor), each holding one copy
of the model; the shards are written by Ray, in parallel, wherever the cluster can write. Each batch is
the same run of consecutive items as in the single-process pass, so on the same hardware the
embeddings are equal bit for bit (``tests/test_embed_job.py`` checks it on a local Ray runtime).

Ray is imported only here, only when ``engine="ray"`` (``pip install 'gapdiag[ray]'``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ._io import atomic_write_bytes
from .data import Split
from .errors import InputError
from .model import SiameseModel

__all__ = ["embed_to_parquet", "ENGINES"]

ENGINES = ("ray", "local")
_ROWS_PER_SHARD = 1 << 16


class BatchEmbedder:
    """Ray Data actor (and the local engine's worker): one batch row ``{split, start, stop}`` -> item rows.

    Holds one model per actor (on the actor's GPU when it has one) and the splits' items, which it reads
    by index: a lazy dataset is read where the actor runs, never gathered on the driver. A Ray actor owns
    an unpickled copy of the model and puts it in eval mode once; the local engine passes the user's module
    from ``SiameseModel.frozen``, which restores it afterwards.
    """

    def __init__(self, model: SiameseModel, items: dict[str, Any], module: Any = None):
        self.model = model
        self.items = items
        self.module = module if module is not None else model.module.eval()

    def __call__(self, batch: dict[str, np.ndarray]):
        import pyarrow as pa

        tables = [
            self.embed(str(split), int(start), int(stop))
            for split, start, stop in zip(batch["split"], batch["start"], batch["stop"], strict=True)
        ]
        return pa.concat_tables(tables)

    def embed(self, split: str, start: int, stop: int):
        """The rows of items ``start..stop-1`` of ``split``: item, content_hash, label, embedding."""
        import pyarrow as pa
        import torch

        from .data import hash_rows

        items = self.items[split]
        idx = np.arange(start, stop)
        x = items.get_batch(idx)
        with torch.no_grad():
            emb = self.model.embed_batch(
                self.module, x, where=f"items {start}..{stop - 1} of split {split!r}"
            )
        columns = {
            "item": pa.array(idx, type=pa.int64()),
            "content_hash": pa.array(hash_rows(x), type=pa.string()),
        }
        if items.labels is not None:
            columns["label"] = pa.array(np.asarray(items.labels)[idx])
        flat = pa.array(np.ascontiguousarray(emb, dtype=np.float32).reshape(-1), type=pa.float32())
        columns["embedding"] = pa.FixedSizeListArray.from_arrays(flat, emb.shape[1])
        return pa.table(columns)


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(
            f"--out {str(out)!r} exists and is not an empty folder; gapdiag embed never overwrites files. "
            "Pass a new or empty folder."
        )


def embed_to_parquet(
    model: SiameseModel,
    splits: list[Split],
    out: str | os.PathLike,
    *,
    engine: str = "ray",
    batch_size: int | None = None,
    num_actors: int | None = None,
    cpus_per_actor: float = 1.0,
    gpus_per_actor: float = 0.0,
    ray_address: str | None = None,
) -> dict[str, Any]:
    """Embed every item of ``splits`` and write the parquet layout of the module docstring under ``out``.

    Parameters
    ----------
    model : SiameseModel
        The encoder; never changed (eval mode, no gradients, as in the audit).
    splits : list of Split
        Splits with raw inputs (``Items`` of a tensor, an array or a lazily loaded dataset).
    out : path
        A new or empty folder (a local path, or one every Ray worker can write).
    engine : {"ray", "local"}
        ``"ray"``: a Ray Data job (``map_batches`` over a pool of ``num_actors`` actors with
        ``cpus_per_actor`` CPUs and ``gpus_per_actor`` GPUs each), on the cluster at ``ray_address``, or
        a Ray runtime already started in this process, or a local one. ``"local"``: this process.
    batch_size : int, optional
        Items per encoder call (default: the model's own).

    Returns
    -------
    dict
        The manifest written to ``out/manifest.json``: model class and embedding key (the hash of its
        weights and encoder code, as the audit's cache uses), dimension, items per split, engine, batch size.
    """
    if engine not in ENGINES:
        raise InputError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}.")
    if not isinstance(model, SiameseModel):
        raise InputError(f"model must be a SiameseModel; got {type(model).__name__}.")
    for s in splits:
        if not s.items.has_inputs:
            raise InputError(f"Split {s.name!r} has no raw inputs to embed (it carries embeddings already).")
    out = Path(out)
    _check_out(out)
    batch_size = int(batch_size or model.batch_size)
    rows = {
        s.name: [
            (start, min(start + batch_size, len(s.items))) for start in range(0, len(s.items), batch_size)
        ]
        for s in splits
    }
    items = {s.name: s.items for s in splits}
    if engine == "ray":
        _run_ray(model, items, rows, out, num_actors, cpus_per_actor, gpus_per_actor, ray_address)
    else:
        _run_local(model, items, rows, out)
    for s in splits:
        _write_protocol(s, out / s.name)
    manifest = {
        "gapdiag_embed": 1,
        "model": {"class": type(model.module).__name__, "embedding_key": model.embedding_key()},
        "dimension": _dimension(out / splits[0].name / "items"),
        "items": {s.name: len(s.items) for s in splits},
        "engine": engine,
        "batch_size": batch_size,
    }
    atomic_write_bytes(out / "manifest.json", json.dumps(manifest, indent=2).encode())
    return manifest


def _run_local(model: SiameseModel, items: dict, rows: dict, out: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with model.frozen("eval") as module:  # the user's own module: restored bit for bit afterwards
        worker = BatchEmbedder(model, items, module)
        for split, ranges in rows.items():
            folder = out / split / "items"
            folder.mkdir(parents=True, exist_ok=True)
            pending, n_rows, shard = [], 0, 0
            for i, (start, stop) in enumerate(ranges):
                pending.append(worker.embed(split, start, stop))
                n_rows += stop - start
                if n_rows >= _ROWS_PER_SHARD or i == len(ranges) - 1:
                    pq.write_table(pa.concat_tables(pending), folder / f"part-{shard:05d}.parquet")
                    pending, n_rows, shard = [], 0, shard + 1


def _run_ray(
    model: SiameseModel,
    items: dict,
    rows: dict,
    out: Path,
    num_actors: int | None,
    cpus: float,
    gpus: float,
    address: str | None,
) -> None:
    try:
        import ray
    except ImportError:
        raise InputError(
            "engine='ray' needs Ray Data: pip install 'gapdiag[ray]' (or use --engine local)."
        ) from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    if num_actors is None:
        resource = "GPU" if gpus > 0 else "CPU"
        per = gpus if gpus > 0 else cpus
        num_actors = max(1, int(ray.cluster_resources().get(resource, 1) // max(per, 1e-9)))
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    for split, ranges in rows.items():
        batches = [{"split": split, "start": a, "stop": b} for a, b in ranges]
        ds = ray.data.from_items(batches, override_num_blocks=min(len(batches), 8 * num_actors))
        embedded = ds.map_batches(
            BatchEmbedder,
            fn_constructor_kwargs={"model": model, "items": {split: items[split]}},
            batch_size=1,  # one batch row = one encoder call on a fixed run of items
            batch_format="numpy",
            concurrency=num_actors,
            num_cpus=cpus,
            num_gpus=gpus,
        )
        (out / split).mkdir(parents=True, exist_ok=True)
        embedded.write_parquet(str((out / split / "items").resolve()), min_rows_per_file=_ROWS_PER_SHARD)


def _write_protocol(split: Split, folder: Path) -> None:
    """The split's pairs and episodes (index arrays into its items) as parquet next to its items."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if split.pairs is not None:
        (folder / "pairs").mkdir(parents=True, exist_ok=True)
        p = split.pairs
        table = pa.table(
            {
                "left": p.left.astype(np.int64),
                "right": p.right.astype(np.int64),
                "label": p.label.astype(np.int8),
            }
        )
        pq.write_table(table, folder / "pairs" / "pairs.parquet")
    if split.episodes is not None:
        (folder / "episodes").mkdir(parents=True, exist_ok=True)
        e = split.episodes
        cand = pa.FixedSizeListArray.from_arrays(pa.array(e.candidates.astype(np.int64).reshape(-1)), e.n_way)
        table = pa.table(
            {"anchor": e.anchor.astype(np.int64), "candidates": cand, "correct": e.correct.astype(np.int64)}
        )
        pq.write_table(table, folder / "episodes" / "episodes.parquet")


def _dimension(folder: Path) -> int:
    import pyarrow.parquet as pq

    first = sorted(folder.glob("*.parquet"))[0]
    return int(pq.read_schema(first).field("embedding").type.list_size)
