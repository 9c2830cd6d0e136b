"""The single embedding pass: every unique item of every split is embedded once per audit.

Items are keyed by content hash and dtype across splits (:func:`item_keys`), so an input that occurs in
both train and val (or twice in one split) costs one encoder call, while equal values of different dtypes
(uint8 and float32 images) stay apart, since the encoder may treat them differently. Rows the preflight
check already embedded (``SiameseModel.preflight_rows``) are not embedded again.

With a cache directory, the table of unique embeddings is stored under a key built from everything the
embeddings depend on: the model's weights, buffers, extra state and encoder code
(:meth:`SiameseModel.embedding_key`) and every item's key (content, dtype and shape). A cached table is
used only when it is valid: a 2-D float32 array of the right size and width, finite, that agrees with the
rows the preflight check embedded afresh; otherwise it is recomputed and replaced.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ._io import atomic_write_bytes
from .data import Split
from .errors import EncoderError, GapdiagError, InputError
from .loaders import hash_rows
from .model import SiameseModel

__all__ = ["EmbeddingPass", "embed_splits", "item_keys", "batch_keys", "check_finite_inputs", "read_items"]


@dataclass
class EmbeddingPass:
    """Embeddings per split name, each (N_split, d) float32, plus bookkeeping for the report.

    ``n_encoded`` counts the unique items the encoder embedded in this audit (preflight rows included);
    ``cache_note`` says why a cache file was not used, when it was not.
    """

    embeddings: dict[str, np.ndarray]
    n_unique: int
    n_encoded: int
    from_cache: bool
    cache_file: str | None = None
    cache_note: str = ""


def _progress(total: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="item", leave=False)


def batch_keys(batch: torch.Tensor) -> list[str]:
    """Key of each input of ``batch`` (B, ...) as the encoder receives it: dtype, shape and content."""
    dtype = str(batch.dtype).replace("torch.", "")
    return [f"{dtype}:{h}" for h in hash_rows(batch)]


def item_keys(split: Split) -> np.ndarray:
    """Key (N,) of object of each item of ``split``: the dtype its batches have, and its content hash."""
    dtype = str(read_items(split, np.array([0])).dtype).replace("torch.", "")
    try:
        hashes = split.items.content_hashes()
    except GapdiagError:
        raise
    except Exception as exc:  # the user's dataset, read in full for the first time
        raise InputError(
            f"Reading the items of the {split.name} split failed ({type(exc).__name__}: {exc}). Each item must "
            "be a numeric tensor or array of one shape."
        ) from None
    return np.array([f"{dtype}:{h}" for h in hashes], dtype=object)


def read_items(split: Split, idx: np.ndarray, *, role: str | None = None) -> torch.Tensor:
    """``split.items.get_batch(idx)`` with any failure of the user's dataset turned into ``InputError``.

    Returns the inputs (B, ...) of the items ``idx`` (B,).
    """
    name = role or split.name
    shown = ", ".join(str(int(i)) for i in idx[:4]) + ("..." if len(idx) > 4 else "")
    try:
        x = split.items.get_batch(idx)
    except GapdiagError as exc:
        raise type(exc)(f"Reading items {shown} of the {name} split: {exc}") from None
    except Exception as exc:  # the user's dataset: a dict row, a string, mixed shapes, a meta tensor
        raise InputError(
            f"Reading items {shown} of the {name} split failed ({type(exc).__name__}: {exc}). Each item must be "
            "a numeric tensor or array of one shape (a dataset may return (x, label) rows)."
        ) from None
    if x.device.type == "meta":
        raise InputError(
            f"The {name} split's inputs are on the 'meta' device and hold no values; load them first."
        )
    return x


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
    # item key -> row in the unique table; each split keeps a row index per item
    unique_rows: dict[str, int] = {}
    sources: list[tuple[Split, int]] = []
    split_rows: dict[str, np.ndarray] = {}
    for split in todo:
        keys = item_keys(split)
        rows = np.empty(len(keys), dtype=np.int64)
        for i, k in enumerate(keys):
            r = unique_rows.get(k)
            if r is None:
                r = unique_rows[k] = len(sources)
                sources.append((split, i))
            rows[i] = r
        split_rows[split.name] = rows
    keys = list(unique_rows)
    known = {k: model.preflight_rows[k] for k in keys if k in model.preflight_rows}

    cache_file, note, table = _cache_path(model, keys, cache_dir), "", None
    if cache_file is not None and cache_file.exists():
        table, note = _load_cache(cache_file, keys, known)
    elif cache_dir is not None and cache_file is None:
        note = "the model's state or encoder code cannot be hashed, so embeddings are not cached"
        warnings.warn(f"gapdiag: {note}.", stacklevel=2)
    from_cache = table is not None
    if table is None:
        table = _encode_unique(model, sources, keys, known, batch_size or model.batch_size, progress)
        if cache_file is not None:
            buf = io.BytesIO()
            np.save(buf, table, allow_pickle=False)
            atomic_write_bytes(cache_file, buf.getvalue())
    for name, rows in split_rows.items():
        out[name] = table[rows]
    n_encoded = len(known) if from_cache else len(sources)
    return EmbeddingPass(
        out, len(sources), n_encoded, from_cache, None if cache_file is None else str(cache_file), note
    )


def _cache_path(model: SiameseModel, keys: list[str], cache_dir: str | os.PathLike | None) -> Path | None:
    """The cache file for these unique items and this model, or None (no cache, or the model unhashable)."""
    if cache_dir is None:
        return None
    model_key = model.embedding_key()
    if model_key is None:
        return None
    key = hashlib.blake2b(model_key.encode(), digest_size=16)
    for k in keys:
        key.update(k.encode())
    return Path(cache_dir) / f"embeddings-{key.hexdigest()}.npy"


def _load_cache(path: Path, keys: list[str], known: dict[str, np.ndarray]) -> tuple[np.ndarray | None, str]:
    """A cached table (N_unique, d) if it is valid, else ``(None, why not)``.

    Valid: a readable float32 .npy (memory-mapped first, so a header that claims more than the file holds is
    refused before anything is allocated) of N_unique rows, of the width the preflight rows have, finite, and
    equal (to float tolerance) to the rows the preflight check embedded afresh.
    """
    try:
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
        table = np.array(mapped)
    except Exception as exc:  # a truncated or foreign file is just a cache miss
        return None, f"cache file unreadable ({type(exc).__name__}); recomputed"
    width = next(iter(known.values())).shape[0] if known else None
    if table.ndim != 2 or table.dtype != np.float32 or table.shape[0] != len(keys) or table.shape[1] == 0:
        return None, f"cache file has shape {table.shape} and dtype {table.dtype}; recomputed"
    if width is not None and table.shape[1] != width:
        return None, f"cache file has {table.shape[1]}-dim rows, the model gives {width}; recomputed"
    if not np.all(np.isfinite(table)):
        return None, "cache file holds NaN or inf; recomputed"
    for row, k in enumerate(keys):
        fresh = known.get(k)
        if fresh is not None and not np.allclose(
            table[row], fresh, rtol=1e-3, atol=1e-5 * (1 + np.abs(fresh).max())
        ):
            return None, "cache file disagrees with the model's embeddings of a preflight batch; recomputed"
    return table, ""


def _runs(pending: list[int], sources: list[tuple[Split, int]], batch_size: int):
    """Consecutive positions of ``pending`` in batches of at most ``batch_size`` that never mix splits."""
    start = 0
    while start < len(pending):
        split = sources[pending[start]][0]
        stop = start
        while stop < len(pending) and stop - start < batch_size and sources[pending[stop]][0] is split:
            stop += 1
        yield split, pending[start:stop]
        start = stop


def _encode_unique(
    model: SiameseModel,
    sources: list[tuple[Split, int]],
    keys: list[str],
    known: dict[str, np.ndarray],
    batch_size: int,
    progress: bool,
) -> np.ndarray:
    """Embed the unique items (N_unique,) not in ``known`` -> the full table (N_unique, d) float32."""
    table: np.ndarray | None = None
    if known:
        first = next(iter(known.values()))
        table = np.empty((len(sources), first.shape[0]), dtype=np.float32)
        for row, k in enumerate(keys):
            if k in known:
                table[row] = known[k]
    pending = [row for row, k in enumerate(keys) if k not in known]
    bar = _progress(len(sources), progress, "gapdiag: embedding")
    bar.update(len(sources) - len(pending))
    try:
        with model.frozen("eval") as module:
            for batch_no, (split, rows) in enumerate(_runs(pending, sources, batch_size)):
                idx = np.array([sources[j][1] for j in rows])
                x = read_items(split, idx)
                check_finite_inputs(x, idx, split.name)
                emb = model.embed_batch(
                    module,
                    x,
                    where=f"batch {batch_no} of split {split.name!r} (items {int(idx[0])}..{int(idx[-1])})",
                )
                if table is None:
                    table = np.empty((len(sources), emb.shape[1]), dtype=np.float32)
                elif emb.shape[1] != table.shape[1]:
                    raise EncoderError(
                        f"The encoder returned {emb.shape[1]}-dim embeddings on batch {batch_no} of split "
                        f"{split.name!r}, {table.shape[1]}-dim before; every input needs the same width."
                    )
                table[rows] = emb
                bar.update(len(rows))
    finally:
        bar.close()
    if table is None:  # pragma: no cover - there is always at least one unique item
        raise InputError("No item to embed.")
    return table


def check_finite_inputs(x: torch.Tensor, idx: np.ndarray, split: str) -> None:
    """Name the first item with NaN or inf before the encoder turns it into an unexplained NaN embedding."""
    if not torch.is_floating_point(x):
        return
    bad = ~torch.isfinite(x.reshape(x.shape[0], -1)).all(dim=1)
    if bool(bad.any()):
        first = int(idx[int(torch.nonzero(bad)[0])])
        raise InputError(
            f"Item {first} of split {split!r} contains NaN or inf ({int(bad.sum())} such item(s) in its batch). "
            "Repair or drop those inputs before auditing."
        )
