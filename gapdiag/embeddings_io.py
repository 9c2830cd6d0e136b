"""Reading precomputed embeddings for ``gapdiag audit-embeddings`` (npz or parquet; never pickles).

``.npz`` keys: ``embeddings`` (N, d) required; optional ``labels`` (N,); optional pairs ``left``,
``right``, ``pair_label`` (P,); optional episodes ``anchor`` (E,), ``candidates`` (E, n), ``correct`` (E,).

``.parquet`` (needs pyarrow): one row per item, embedding columns named ``emb_0 .. emb_{d-1}`` or one
list column ``embedding``, and an optional ``label`` column. Pairs and episodes are then generated from
the labels.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ._io import MAX_ARRAY_BYTES, read_npz
from .data import Split
from .errors import InputError

__all__ = ["load_embedding_split"]

_NPZ_KEYS = {"embeddings", "labels", "left", "right", "pair_label", "anchor", "candidates", "correct"}


def load_embedding_split(path: str | Path, *, name: str) -> Split:
    """Load one split of precomputed embeddings from ``path`` (see the module docstring for layouts)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"The {name} embeddings file {str(p)!r} does not exist.")
    if p.suffix == ".npz":
        return _from_npz(p, name)
    if p.suffix == ".parquet":
        return _from_parquet(p, name)
    raise InputError(f"{p.name}: unsupported file type {p.suffix!r}; use .npz or .parquet.")


def _from_npz(p: Path, name: str) -> Split:
    data = read_npz(p)  # no pickle, sizes checked before decompressing, corrupt files named
    keys = set(data)
    if "embeddings" not in keys:
        raise InputError(f"{p.name}: no 'embeddings' array; found {', '.join(sorted(keys)) or 'nothing'}.")
    unknown = keys - _NPZ_KEYS
    if unknown:
        raise InputError(
            f"{p.name}: unknown arrays {', '.join(sorted(unknown))}; expected some of {', '.join(sorted(_NPZ_KEYS))}."
        )
    pairs = _group(data, keys, ("left", "right", "pair_label"), p)
    episodes = _group(data, keys, ("anchor", "candidates", "correct"), p)
    labels = data["labels"] if "labels" in keys else None
    if pairs is None and episodes is None and labels is None:
        raise InputError(
            f"{p.name}: give labels, pairs (left, right, pair_label) or episodes (anchor, candidates, correct)."
        )
    split = Split.from_embeddings(data["embeddings"], labels, name=name, pairs=pairs, episodes=episodes)
    if pairs is None and episodes is None:
        return _with_generated(split)
    return split


def _with_generated(split: Split) -> Split:
    """Pairs and episodes generated from labels for an embeddings-only split."""
    generated = Split.from_items(split.name, split.items)
    return Split(split.name, split.items, generated.pairs, generated.episodes, embeddings=split.embeddings)


def _group(data, keys: set[str], names: tuple[str, str, str], p: Path):
    present = [k for k in names if k in keys]
    if not present:
        return None
    if len(present) != 3:
        missing = [k for k in names if k not in keys]
        raise InputError(f"{p.name}: has {', '.join(present)} but not {', '.join(missing)}; give all three.")
    return tuple(data[k] for k in names)


def _from_parquet(p: Path, name: str) -> Split:
    frame = _read_parquet(p)
    if "embedding" in frame.columns:
        emb = _embedding_column(frame["embedding"], p)
    else:
        cols = [c for c in frame.columns if re.fullmatch(r"emb_\d+", str(c))]
        cols.sort(key=lambda c: int(str(c)[4:]))
        if not cols:
            raise InputError(f"{p.name}: no 'embedding' column and no emb_0.. columns.")
        bad = [
            c
            for c in cols
            if not pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])
        ]
        if bad:
            raise InputError(
                f"{p.name}: embedding column {bad[0]!r} has dtype {frame[bad[0]].dtype}; embedding columns must "
                "hold numbers (float)."
            )
        emb = frame[cols].to_numpy(dtype=np.float32)
    labels = frame["label"].to_numpy() if "label" in frame.columns else None
    if labels is None:
        raise InputError(
            f"{p.name}: a parquet split needs a 'label' column (pairs and episodes are generated from it)."
        )
    return _with_generated(Split.from_embeddings(emb, labels, name=name))


def _read_parquet(p: Path) -> pd.DataFrame:
    """The table of ``p``, its declared uncompressed size checked first; read errors become ``InputError``."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError("Reading parquet needs pyarrow: pip install 'gapdiag[parquet]'.") from None
    try:
        meta = pq.ParquetFile(p).metadata
        size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        if size > MAX_ARRAY_BYTES:
            raise InputError(
                f"{p.name}: declares {size / 2**30:.1f} GiB of data, over the {MAX_ARRAY_BYTES / 2**30:.0f} GiB "
                "a split may load at once; split it into shards."
            )
        return pq.read_table(p).to_pandas()
    except InputError:
        raise
    except Exception as exc:  # pyarrow's errors (ArrowInvalid, OSError...) on a corrupt or truncated file
        raise InputError(f"{p.name}: not a readable parquet file ({type(exc).__name__}: {exc}).") from None


def _embedding_column(column: pd.Series, p: Path) -> np.ndarray:
    """A list column of embeddings (N rows of d numbers) -> (N, d) float32."""
    try:
        rows = [np.asarray(v, dtype=np.float32).reshape(-1) for v in column.to_numpy()]
        return np.stack(rows) if rows else np.empty((0, 0), np.float32)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"{p.name}: column 'embedding' must hold one list of d numbers per row, the same d for every row "
            f"({type(exc).__name__}: {exc})."
        ) from None
