"""The single embedding pass: every unique item of every split is embedded once per audit.

Items are keyed by content hash across splits, so an input that occurs in both train and val (or twice
in one split) costs one encoder call. With a cache directory, the result is stored under a key built from
the model's fingerprint and the items' hashes, and an identical second audit makes no encoder call.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ._io import atomic_write_bytes
from .data import Split
from .errors import EncoderError, InputError
from .model import SiameseModel

__all__ = ["EmbeddingPass", "embed_splits"]


@dataclass
class EmbeddingPass:
    """Embeddings per split name, each (N_split, d) float32, plus bookkeeping for the report."""

    embeddings: dict[str, np.ndarray]
    n_unique: int
    n_encoded: int
    from_cache: bool
    cache_file: str | None = None


def _progress(total: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="item", leave=False)


def embed_splits(
    model: SiameseModel | None,
    splits: list[Split],
    *,
    batch_size: int | None = None,
    progress: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> EmbeddingPass:
    """Embed every unique item of ``splits`` once.

    Splits that carry precomputed embeddings are taken as they are. Returns an :class:`EmbeddingPass`
    whose ``embeddings[split.name]`` has one row per item of that split.
    """
    out: dict[str, np.ndarray] = {s.name: s.embeddings for s in splits if s.embeddings is not None}
    todo = [s for s in splits if s.embeddings is None]
    if not todo:
        return EmbeddingPass(out, 0, 0, False)
    if model is None:
        raise EncoderError(
            f"Split {todo[0].name!r} has raw inputs but no model was given; pass a SiameseModel or precomputed embeddings."
        )
    # content hash -> row in the unique table; each split keeps a row index per item
    unique_rows: dict[str, int] = {}
    sources: list[tuple[Split, int]] = []
    split_rows: dict[str, np.ndarray] = {}
    for split in todo:
        hashes = split.items.content_hashes()
        rows = np.empty(len(hashes), dtype=np.int64)
        for i, h in enumerate(hashes):
            r = unique_rows.get(h)
            if r is None:
                r = unique_rows[h] = len(sources)
                sources.append((split, i))
            rows[i] = r
        split_rows[split.name] = rows

    cache_file = None
    if cache_dir is not None:
        key = hashlib.blake2b(digest_size=16)
        key.update(model.fingerprint().encode())
        for h in unique_rows:
            key.update(h.encode())
        cache_file = Path(cache_dir) / f"embeddings-{key.hexdigest()}.npy"
        if cache_file.exists():
            table = np.load(cache_file, allow_pickle=False)
            if table.shape[0] == len(sources):
                for name, rows in split_rows.items():
                    out[name] = table[rows]
                return EmbeddingPass(out, len(sources), 0, True, str(cache_file))

    table = _encode_unique(model, sources, batch_size or model.batch_size, progress)
    for name, rows in split_rows.items():
        out[name] = table[rows]
    if cache_file is not None:
        buf = io.BytesIO()
        np.save(buf, table, allow_pickle=False)
        atomic_write_bytes(cache_file, buf.getvalue())
    return EmbeddingPass(
        out, len(sources), len(sources), False, None if cache_file is None else str(cache_file)
    )


def _encode_unique(
    model: SiameseModel, sources: list[tuple[Split, int]], batch_size: int, progress: bool
) -> np.ndarray:
    table: np.ndarray | None = None
    bar = _progress(len(sources), progress, "gapdiag: embedding")
    try:
        with model.frozen("eval") as module:
            start = 0
            batch_no = 0
            while start < len(sources):
                # one batch never mixes splits, so items are fetched with one get_batch call
                split = sources[start][0]
                stop = start
                while stop < len(sources) and stop - start < batch_size and sources[stop][0] is split:
                    stop += 1
                idx = np.array([sources[j][1] for j in range(start, stop)])
                x = split.items.get_batch(idx)
                _check_finite_inputs(x, idx, split.name)
                emb = model.embed_batch(
                    module,
                    x,
                    where=f"batch {batch_no} of split {split.name!r} (items {int(idx[0])}..{int(idx[-1])})",
                )
                if table is None:
                    table = np.empty((len(sources), emb.shape[1]), dtype=np.float32)
                elif emb.shape[1] != table.shape[1]:
                    raise EncoderError(
                        f"The encoder returned {emb.shape[1]}-dim embeddings on batch {batch_no}, {table.shape[1]}-dim before."
                    )
                table[start:stop] = emb
                bar.update(stop - start)
                start = stop
                batch_no += 1
    finally:
        bar.close()
    assert table is not None
    return table


def _check_finite_inputs(x: torch.Tensor, idx: np.ndarray, split: str) -> None:
    """Name the first item with NaN or inf before the encoder turns it into an unexplained NaN embedding."""
    if not torch.is_floating_point(x):
        return
    flat = x.reshape(x.shape[0], -1)
    # One float64 sum per item finds any NaN or inf (a sum of finite float32 values cannot overflow
    # float64) in one single-threaded read, without an elementwise mask of the whole batch.
    if np.isfinite(flat.detach().cpu().numpy().sum(axis=1, dtype=np.float64)).all():
        return
    bad = ~torch.isfinite(flat).all(dim=1)
    if bool(bad.any()):
        first = int(idx[int(torch.nonzero(bad)[0])])
        raise InputError(
            f"Item {first} of split {split!r} contains NaN or inf ({int(bad.sum())} such item(s) in its batch). "
            "Repair or drop those inputs before auditing."
        )
