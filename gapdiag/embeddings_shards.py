"""A folder of parquet shards as one split of precomputed embeddings, read with pyarrow in batches.

Memory stays at the (N, d) float32 result plus one batch of 65,536 rows, so a split of millions of items
never passes through pandas. Rows are placed by their ``item`` column when it exists (Ray and other
engines write shards in any order). Used by :func:`gapdiag.embeddings_io.load_embedding_split`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import Split
from .errors import InputError

__all__ = ["shards", "from_parquet_shards"]

_BATCH_ROWS = 1 << 16


def shards(folder: Path) -> list[Path]:
    """The ``*.parquet`` files directly in ``folder``, sorted (none when it is not a folder)."""
    return sorted(folder.glob("*.parquet")) if folder.is_dir() else []


def _dataset(files: list[Path], where: str):
    try:
        import pyarrow.dataset as ds
    except ImportError:
        raise InputError("Reading parquet needs pyarrow: pip install 'gapdiag[parquet]'.") from None
    try:
        return ds.dataset([str(f) for f in files], format="parquet")
    except Exception as exc:  # pyarrow's errors on a corrupt, truncated or mismatched shard
        raise InputError(
            f"{where}: not a readable set of parquet shards ({type(exc).__name__}: {exc})."
        ) from None


def _embedding_columns(schema, where: str) -> list[str]:
    import pyarrow as pa

    names = schema.names
    if "embedding" in names:
        t = schema.field("embedding").type
        if not (pa.types.is_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_large_list(t)) or not (
            pa.types.is_floating(t.value_type) or pa.types.is_integer(t.value_type)
        ):
            raise InputError(
                f"{where}: column 'embedding' must hold one list of d numbers per row; it holds {t}."
            )
        return ["embedding"]
    cols = sorted((c for c in names if c.startswith("emb_") and c[4:].isdigit()), key=lambda c: int(c[4:]))
    if not cols:
        raise InputError(f"{where}: no 'embedding' column and no emb_0.. columns; found {', '.join(names)}.")
    for c in cols:
        t = schema.field(c).type
        if not (pa.types.is_floating(t) or pa.types.is_integer(t)):
            raise InputError(
                f"{where}: embedding column {c!r} has dtype {t}; embedding columns must hold numbers."
            )
    return cols


def from_parquet_shards(files: list[Path], folder: Path, name: str) -> Split:
    """Items (and the ``pairs/``, ``episodes/`` folders next to them, if any) from parquet shards."""
    where = f"{folder.name}/ ({len(files)} parquet file(s))"
    dataset = _dataset(files, where)
    names = dataset.schema.names
    if "label" not in names:
        raise InputError(
            f"{where}: a parquet split needs a 'label' column (pairs and episodes are generated from it)."
        )
    emb_cols = _embedding_columns(dataset.schema, where)
    try:
        emb, label = _read_items(dataset, emb_cols, "item" in names, where)
    except InputError:
        raise
    except Exception as exc:  # a shard that breaks while being read
        raise InputError(
            f"{where}: not a readable set of parquet shards ({type(exc).__name__}: {exc})."
        ) from None
    pairs = _group(folder / "pairs", ("left", "right", "label"))
    episodes = _group(folder / "episodes", ("anchor", "candidates", "correct"))
    return Split.from_embeddings(emb, label, name=name, pairs=pairs, episodes=episodes)


def _read_items(dataset, emb_cols: list[str], has_item: bool, where: str) -> tuple[np.ndarray, np.ndarray]:
    n = dataset.count_rows()
    if n == 0:
        raise InputError(f"{where}: the shards hold no rows.")
    emb: np.ndarray | None = None
    label: np.ndarray | None = None
    seen = np.zeros(n, dtype=bool)
    done = 0
    columns = emb_cols + ["label"] + (["item"] if has_item else [])
    for batch in dataset.to_batches(columns=columns, batch_size=_BATCH_ROWS):
        block, lab = _batch_embeddings(batch, emb_cols, where), _column(batch, "label")
        if emb is None:
            emb = np.empty((n, block.shape[1]), dtype=np.float32)
            label = np.empty(n, dtype=lab.dtype)
        elif block.shape[1] != emb.shape[1]:
            raise InputError(
                f"{where}: embeddings of dimension {emb.shape[1]} and {block.shape[1]} are mixed."
            )
        # rows go where their ``item`` says (shards may come in any order), without a second copy
        at = _item_rows(batch, n, where) if has_item else np.arange(done, done + len(batch))
        if seen[at].any():
            raise InputError(f"{where}: the 'item' column numbers some rows twice; each item needs one row.")
        seen[at] = True
        emb[at], label[at] = block, lab
        done += len(batch)
    if not seen.all():
        raise InputError(f"{where}: the 'item' column must number the {n} rows 0..{n - 1}, each once.")
    return emb, label


def _column(batch, name: str) -> np.ndarray:
    return batch.column(name).to_numpy(zero_copy_only=False)


def _batch_embeddings(batch, cols: list[str], where: str) -> np.ndarray:
    """One record batch's embeddings as (rows, d) float32."""
    if cols == ["embedding"]:
        col = batch.column("embedding")
        lengths = (
            col.value_lengths().to_numpy(zero_copy_only=False) if hasattr(col, "value_lengths") else None
        )
        if lengths is not None and lengths.size and (lengths != lengths[0]).any():
            raise InputError(
                f"{where}: column 'embedding' must hold one list of d numbers per row, the same d for every row."
            )
        flat = col.flatten().to_numpy(zero_copy_only=False)
        return flat.reshape(len(batch), -1).astype(np.float32, copy=False)
    return np.column_stack([_column(batch, c) for c in cols]).astype(np.float32, copy=False)


def _item_rows(batch, n: int, where: str) -> np.ndarray:
    rows = np.asarray(_column(batch, "item"), dtype=np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        raise InputError(f"{where}: the 'item' column must number the {n} rows 0..{n - 1}, each once.")
    return rows


def _group(folder: Path, names: tuple[str, str, str]):
    """Pairs or episodes from a folder of parquet shards, as index arrays, or None when absent."""
    files = shards(folder)
    if not files:
        return None
    table = _dataset(files, f"{folder.parent.name}/{folder.name}/").to_table(columns=list(names))
    out = []
    for c in names:
        col = table.column(c).combine_chunks()
        if c == "candidates":
            out.append(np.asarray(col.flatten().to_numpy(zero_copy_only=False)).reshape(len(table), -1))
        else:
            out.append(col.to_numpy(zero_copy_only=False))
    return tuple(out)
