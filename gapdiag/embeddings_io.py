"""Reading precomputed embeddings for ``gapdiag audit-embeddings`` (npz, npy folders, parquet; never pickles).

A split is one of:

- an ``.npz`` file with keys ``embeddings`` (N, d) required, ``labels`` (N,), pairs ``left``, ``right``,
  ``pair_label`` (P,), episodes ``anchor`` (E,), ``candidates`` (E, n), ``correct`` (E,);
- a folder of ``.npy`` files with the same names (``embeddings.npy``, ``labels.npy``, ...): the
  embeddings are memory-mapped, so a split larger than memory is read as it is used;
- a ``.parquet`` file or a folder of parquet shards (read with pyarrow in batches): one row per item, the
  embedding in a list column ``embedding`` (or columns ``emb_0 .. emb_{d-1}``), a ``label`` column, and
  optionally ``item`` (the item's row, so shards may come in any order). The layout ``gapdiag embed``
  writes, ``items/`` shards plus optional ``pairs/`` (``left``, ``right``, ``label``) and ``episodes/``
  (``anchor``, ``candidates``, ``correct``) folders, is read as well.

Without pairs or episodes, both are generated from the labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .data import Split
from .errors import InputError

__all__ = ["load_embedding_split"]

_NPZ_KEYS = {"embeddings", "labels", "left", "right", "pair_label", "anchor", "candidates", "correct"}
_BATCH_ROWS = 1 << 16


def load_embedding_split(path: str | Path, *, name: str) -> Split:
    """Load one split of precomputed embeddings from ``path`` (see the module docstring for layouts)."""
    p = Path(path)
    if p.is_dir():
        if (p / "embeddings.npy").is_file():
            return _from_arrays(_npy_folder(p), p.name + "/", name)
        shards = _shards(p / "items") or _shards(p)
        if shards:
            return _from_parquet(shards, p, name)
        raise InputError(
            f"The {name} folder {str(p)!r} holds neither embeddings.npy nor parquet shards; pass a folder "
            "written by `gapdiag embed`, a folder of .npy arrays (embeddings.npy, labels.npy, ...), or a file."
        )
    if not p.is_file():
        raise InputError(f"The {name} embeddings file {str(p)!r} does not exist.")
    if p.suffix == ".npz":
        return _from_arrays(_npz(p), p.name, name)
    if p.suffix == ".parquet":
        return _from_parquet([p], p.parent, name)
    if p.suffix == ".npy":
        raise InputError(
            f"{p.name}: a lone .npy has no labels; put it in a folder as embeddings.npy next to labels.npy "
            "(and optional left.npy, right.npy, pair_label.npy) and pass the folder."
        )
    raise InputError(f"{p.name}: unsupported file type {p.suffix!r}; use .npz, .parquet or a folder.")


def _npz(p: Path) -> dict[str, np.ndarray]:
    try:
        data = np.load(p, allow_pickle=False)
        return {k: data[k] for k in data.files}
    except Exception as exc:  # a corrupt or pickled file: say which, never unpickle
        raise InputError(
            f"{p.name}: cannot read as npz without pickle ({type(exc).__name__}: {exc})."
        ) from None


def _npy_folder(p: Path) -> dict[str, np.ndarray]:
    """The folder's ``<key>.npy`` arrays; ``embeddings.npy`` memory-mapped (read-only, read on use)."""
    unknown = sorted(f.stem for f in p.glob("*.npy") if f.stem not in _NPZ_KEYS)
    if unknown:
        raise InputError(
            f"{p.name}: unknown arrays {', '.join(unknown)}; expected some of {', '.join(sorted(_NPZ_KEYS))}."
        )
    out = {}
    for f in sorted(p.glob("*.npy")):
        try:
            out[f.stem] = np.load(f, allow_pickle=False, mmap_mode="r" if f.stem == "embeddings" else None)
        except Exception as exc:
            raise InputError(
                f"{f}: cannot read as .npy without pickle ({type(exc).__name__}: {exc})."
            ) from None
    return out


def _from_arrays(data: dict[str, np.ndarray], where: str, name: str) -> Split:
    keys = set(data)
    if "embeddings" not in keys:
        raise InputError(f"{where}: no 'embeddings' array; found {', '.join(sorted(keys)) or 'nothing'}.")
    unknown = keys - _NPZ_KEYS
    if unknown:
        raise InputError(
            f"{where}: unknown arrays {', '.join(sorted(unknown))}; expected some of {', '.join(sorted(_NPZ_KEYS))}."
        )
    pairs = _group(data, ("left", "right", "pair_label"), where)
    episodes = _group(data, ("anchor", "candidates", "correct"), where)
    labels = data.get("labels")
    if pairs is None and episodes is None and labels is None:
        raise InputError(
            f"{where}: give labels, pairs (left, right, pair_label) or episodes (anchor, candidates, correct)."
        )
    split = Split.from_embeddings(data["embeddings"], labels, name=name, pairs=pairs, episodes=episodes)
    return _with_generated(split) if pairs is None and episodes is None else split


def _with_generated(split: Split) -> Split:
    """Pairs and episodes generated from labels for an embeddings-only split."""
    generated = Split.from_items(split.name, split.items)
    return Split(split.name, split.items, generated.pairs, generated.episodes, embeddings=split.embeddings)


def _group(data: dict[str, Any], names: tuple[str, str, str], where: str):
    present = [k for k in names if k in data]
    if not present:
        return None
    if len(present) != 3:
        missing = [k for k in names if k not in data]
        raise InputError(f"{where}: has {', '.join(present)} but not {', '.join(missing)}; give all three.")
    return tuple(np.asarray(data[k]) for k in names)


# -- parquet ------------------------------------------------------------------------------------------
def _shards(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.parquet")) if folder.is_dir() else []


def _dataset(files: list[Path]):
    try:
        import pyarrow.dataset as ds
    except ImportError:
        raise InputError("Reading parquet needs pyarrow: pip install 'gapdiag[parquet]'.") from None
    return ds.dataset([str(f) for f in files], format="parquet")


def _embedding_columns(names: list[str], where: str) -> list[str]:
    if "embedding" in names:
        return ["embedding"]
    cols = sorted((c for c in names if c.startswith("emb_") and c[4:].isdigit()), key=lambda c: int(c[4:]))
    if not cols:
        raise InputError(f"{where}: no 'embedding' column and no emb_0.. columns; found {', '.join(names)}.")
    return cols


def _from_parquet(files: list[Path], folder: Path, name: str) -> Split:
    """Items from parquet shards, read in batches of 65,536 rows into one (N, d) float32 array."""
    dataset = _dataset(files)
    names = dataset.schema.names
    where = f"{folder.name}/ ({len(files)} parquet file(s))"
    if "label" not in names:
        raise InputError(
            f"{where}: a parquet split needs a 'label' column (pairs and episodes are generated from it)."
        )
    emb_cols = _embedding_columns(names, where)
    n = dataset.count_rows()
    if n == 0:
        raise InputError(f"{where}: the shards hold no rows.")
    emb: np.ndarray | None = None
    label: np.ndarray | None = None
    seen = np.zeros(n, dtype=bool)
    done = 0
    columns = emb_cols + ["label"] + (["item"] if "item" in names else [])
    for batch in dataset.to_batches(columns=columns, batch_size=_BATCH_ROWS):
        block, lab = _batch_embeddings(batch, emb_cols, where), _column(batch, "label")
        if emb is None:
            emb = np.empty((n, block.shape[1]), dtype=np.float32)
            label = np.empty(n, dtype=lab.dtype if lab.dtype != object else object)
        elif block.shape[1] != emb.shape[1]:
            raise InputError(
                f"{where}: embeddings of dimension {emb.shape[1]} and {block.shape[1]} are mixed."
            )
        # rows go where their ``item`` says (shards may come in any order), without a second copy
        at = np.arange(done, done + len(batch)) if "item" not in names else _item_rows(batch, n, where)
        if seen[at].any():
            raise InputError(f"{where}: the 'item' column numbers some rows twice; each item needs one row.")
        seen[at] = True
        emb[at], label[at] = block, lab
        done += len(batch)
    if not seen.all():
        raise InputError(f"{where}: the 'item' column must number the {n} rows 0..{n - 1}, each once.")
    pairs = _parquet_group(folder / "pairs", ("left", "right", "label"))
    episodes = _parquet_group(folder / "episodes", ("anchor", "candidates", "correct"))
    split = Split.from_embeddings(emb, label, name=name, pairs=pairs, episodes=episodes)
    return _with_generated(split) if pairs is None and episodes is None else split


def _column(batch, name: str) -> np.ndarray:
    return batch.column(name).to_numpy(zero_copy_only=False)


def _batch_embeddings(batch, cols: list[str], where: str) -> np.ndarray:
    """One record batch's embeddings as (rows, d) float32."""
    if cols == ["embedding"]:
        col = batch.column("embedding")
        flat = col.flatten().to_numpy(zero_copy_only=False)
        if len(batch) and flat.size % len(batch):
            raise InputError(f"{where}: the 'embedding' lists do not all have the same length.")
        return flat.reshape(len(batch), -1).astype(np.float32, copy=False)
    return np.column_stack([_column(batch, c) for c in cols]).astype(np.float32, copy=False)


def _item_rows(batch, n: int, where: str) -> np.ndarray:
    rows = np.asarray(_column(batch, "item"), dtype=np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        raise InputError(f"{where}: the 'item' column must number the {n} rows 0..{n - 1}, each once.")
    return rows


def _parquet_group(folder: Path, names: tuple[str, str, str]):
    """Pairs or episodes from a folder of parquet shards, as index arrays, or None when absent."""
    files = _shards(folder)
    if not files:
        return None
    table = _dataset(files).to_table(columns=list(names))
    out = []
    for c in names:
        col = table.column(c).combine_chunks()
        if c == "candidates":
            out.append(np.asarray(col.flatten().to_numpy(zero_copy_only=False)).reshape(len(table), -1))
        else:
            out.append(col.to_numpy(zero_copy_only=False))
    return tuple(out)
