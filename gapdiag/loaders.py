"""Reading what users already have: loader batches and dataset rows of pairs, episodes or labelled items.

Every reader returns plain arrays (unique inputs, labels, index arrays), so ``gapdiag.data`` builds its
objects from them. Identical inputs are de-duplicated by content hash, so each is embedded once.

The layouts understood (:data:`LAYOUTS`) are told apart by the *shape* of a batch, never by guessing
from values: a row whose first element is itself a pair of inputs is a pair, so a dataset of pair rows is
never read as ``(x, label)`` items with a same/different target taken for a class label.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .errors import GapdiagError, InputError
from .validation import as_numpy, check_binary_labels, check_finite

__all__ = [
    "LAYOUTS",
    "PAIRS",
    "TRIPLETS",
    "EPISODES",
    "ITEMS",
    "to_tensor",
    "hash_rows",
    "layout_of",
    "read_pair_batches",
    "read_episode_batches",
    "read_item_batches",
    "rows_as_batches",
]

PAIRS, TRIPLETS, EPISODES, ITEMS = "pairs", "triplets", "episodes", "items"

#: What a batch (or a dataset row) may look like, in the words of every error message.
LAYOUTS = (
    "pairs: (x1, x2, label), ((x1, x2), label), or with identity labels (x1, x2, label, y1, y2) / "
    "((x1, x2), label, (y1, y2)); label 1 = similar, 0 = dissimilar",
    "episodes: (anchor, candidates, correct_index), optionally followed by (anchor_label, candidate_labels); "
    "candidates (B, n, ...) or a list of n inputs",
    "triplets: (anchor, positive, negative), three inputs of one shape, as a triplet loss reads them: each "
    "gives the similar pair (anchor, positive) and the dissimilar pair (anchor, negative)",
    "labelled items: (x, label) with label the identity/class id",
)


def _layouts_text() -> str:
    return "; ".join(LAYOUTS)


def to_tensor(x: Any) -> torch.Tensor:
    """A detached tensor of ``x`` (a tensor, an array or a nested list of numbers); ``InputError`` otherwise."""
    if isinstance(x, torch.Tensor):
        if x.device.type == "meta":
            raise InputError(
                "A batch holds a tensor on the 'meta' device, which has no values; load the data."
            )
        return x.detach()
    arr = as_numpy(x, name=f"a {type(x).__name__} in a batch")
    if arr.dtype.kind not in "biuf":
        raise InputError(
            f"A batch holds a {type(x).__name__} of dtype {arr.dtype}; inputs must be numeric tensors or arrays."
        )
    return torch.as_tensor(arr)


@contextlib.contextmanager
def _reading(where: str) -> Iterator[None]:
    """Turn any failure while reading the user's batch ``where`` into an ``InputError`` naming it."""
    try:
        yield
    except GapdiagError:
        raise
    except Exception as exc:  # the user's batch structure: shapes that do not stack, odd types
        raise InputError(
            f"{where} cannot be read ({type(exc).__name__}: {exc}); gapdiag understands {_layouts_text()}."
        ) from None


def hash_rows(batch: torch.Tensor) -> list[str]:
    """Content hash of each row of ``batch`` (shape (B, ...)): dtype-independent, shape-aware.

    128-bit XXH3 of the row's float32 bytes, seeded by the row shape: a content identity (duplicates,
    cache keys), not a cryptographic digest; it hashes at memory speed (7x blake2b on 3x32x32 images).
    """
    import xxhash

    arr = np.ascontiguousarray(batch.detach().cpu().to(torch.float32).numpy())
    seed = xxhash.xxh64_intdigest(repr(arr.shape[1:]).encode())
    return [xxhash.xxh3_128_hexdigest(row, seed=seed) for row in arr.reshape(len(arr), -1)]


def _is_pair_of_inputs(x: Any) -> bool:
    return isinstance(x, (tuple, list)) and len(x) == 2 and not isinstance(x[0], (int, float, str))


def _same_shape(x: Any, like: torch.Tensor) -> bool:
    """Whether ``x`` is an input batch shaped like ``like`` (a triplet's negative), not a (B,) label vector."""
    try:
        return tuple(to_tensor(x).shape) == tuple(like.shape)
    except (GapdiagError, TypeError, ValueError):
        return False


def _ndim(x: Any) -> int:
    return to_tensor(x).dim()


def layout_of(batch: Any, *, where: str) -> str:
    """Which layout a batch or dataset row has: :data:`PAIRS`, :data:`TRIPLETS`, :data:`EPISODES` or :data:`ITEMS`.

    Raises ``InputError`` naming the layouts understood when the batch fits none of them (a dict, a bare
    tensor, a tuple of the wrong length, two inputs of different shapes).
    """
    if isinstance(batch, dict):
        raise InputError(
            f"{where} is a dict (keys {', '.join(map(str, list(batch)[:6]))}); gapdiag reads tuples. Turn "
            f"each batch into a tuple, e.g. ((b['x1'], b['x2'], b['label']) for b in loader). Layouts: "
            f"{_layouts_text()}."
        )
    if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3, 5):
        got = type(batch).__name__ + (f" of length {len(batch)}" if hasattr(batch, "__len__") else "")
        raise InputError(f"{where} is a {got}; gapdiag understands {_layouts_text()}.")
    first, second = batch[0], batch[1]
    if _is_pair_of_inputs(first):
        if len(batch) == 5:
            raise InputError(
                f"{where}: a nested pair ((x1, x2), ...) has 2 or 3 entries; layouts: {_layouts_text()}."
            )
        return PAIRS
    if len(batch) == 2:
        return ITEMS
    if isinstance(second, (list, tuple)):
        return EPISODES
    a, b = to_tensor(first), to_tensor(second)
    if b.dim() == a.dim() + 1:
        return EPISODES
    if tuple(a.shape) == tuple(b.shape):
        # a third entry shaped like the inputs is a negative; a pair's label is one value per row
        return TRIPLETS if len(batch) == 3 and a.dim() >= 1 and _same_shape(batch[2], a) else PAIRS
    raise InputError(
        f"{where}: the first two entries have shapes {tuple(a.shape)} and {tuple(b.shape)}, which fit neither "
        f"a pair (same shape) nor an episode (candidates one dimension more); layouts: {_layouts_text()}."
    )


@dataclass
class ReadItems:
    """Unique inputs read from a loader: ``inputs`` (N, ...), ``labels`` (N,) or None when any is missing."""

    inputs: torch.Tensor
    labels: np.ndarray | None


class _DedupStore:
    """Accumulates loader batches into unique items keyed by content hash."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.rows: list[torch.Tensor] = []
        self.labels: list[Any] = []
        self.shape: tuple | None = None

    def add(self, batch: torch.Tensor, labels: np.ndarray | None, *, where: str) -> np.ndarray:
        """Row (into the unique items) of each input of ``batch`` (B, ...) -> (B,) int64."""
        if self.shape is not None and tuple(batch.shape[1:]) != self.shape:
            raise InputError(
                f"{where}: inputs of shape {tuple(batch.shape[1:])}, earlier inputs {self.shape}; all inputs must "
                "share a shape."
            )
        self.shape = tuple(batch.shape[1:])
        check_finite(batch.reshape(len(batch), -1).float().numpy(), name=f"inputs of {where}")
        out = np.empty(len(batch), dtype=np.int64)
        for i, h in enumerate(hash_rows(batch)):
            pos = self.index.get(h)
            if pos is None:
                pos = self.index[h] = len(self.rows)
                self.rows.append(batch[i].clone())
                self.labels.append(None if labels is None else labels[i])
            out[i] = pos
        return out

    def read(self) -> ReadItems:
        labels = None if any(v is None for v in self.labels) else np.asarray(self.labels)
        return ReadItems(torch.stack(self.rows), labels)


def _flat_pair_batch(batch: Any, where: str) -> tuple[Any, ...]:
    """``(x1, x2, label[, y1, y2])`` from any pair layout."""
    if _is_pair_of_inputs(batch[0]):
        (x1, x2), label = batch[0], batch[1]
        if len(batch) == 3:
            if not _is_pair_of_inputs(batch[2]):
                raise InputError(
                    f"{where}: ((x1, x2), label, ...) takes the identity labels as a pair (y1, y2)."
                )
            return (x1, x2, label, *batch[2])
        return (x1, x2, label)
    return tuple(batch)


def _labels_of(values: Any) -> np.ndarray:
    """Identity labels of a batch (B,): numbers or strings, checked later by ``check_labels``."""
    return as_numpy(values, name="the identity labels of a batch").reshape(-1)


def _triplet_pairs(batch: Any, store: _DedupStore, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two pairs of each triplet of an ``(anchor, positive, negative)`` batch (B rows each): ``left`` (2B,),
    ``right`` (2B,) and ``label`` (2B,), the similar pairs first."""
    anchor, positive, negative = (to_tensor(x) for x in batch)
    if not (len(anchor) == len(positive) == len(negative)):
        raise InputError(
            f"{where} has {len(anchor)}, {len(positive)} and {len(negative)} rows for anchor, positive and negative."
        )
    a = store.add(anchor, None, where=f"{where} anchor")
    p = store.add(positive, None, where=f"{where} positive")
    n = store.add(negative, None, where=f"{where} negative")
    label = np.r_[np.ones(len(a), dtype=np.int64), np.zeros(len(a), dtype=np.int64)]
    return np.r_[a, a], np.r_[p, n], label


def read_pair_batches(loader: Iterable) -> tuple[ReadItems, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pairs from an iterable of pair batches (any pair layout of :data:`LAYOUTS`, or triplets: each gives the
    similar pair (anchor, positive) and the dissimilar pair (anchor, negative)).

    Returns the unique items and ``left`` (P,), ``right`` (P,), ``label`` (P,) 0/1 and ``from_triplets`` (P,)
    bool: the pairs whose label gapdiag read from the triplet layout (1 = similar, whatever convention the
    user's pair labels follow).
    """
    store = _DedupStore()
    left, right, labels, from_triplets = [], [], [], []
    for b, raw in enumerate(loader):
        where = f"pair batch {b}"
        with _reading(where):
            layout = layout_of(raw, where=where)
            if layout not in (PAIRS, TRIPLETS):
                raise InputError(f"{where} is not a pair batch; layouts: {_layouts_text()}.")
            if layout == TRIPLETS:
                pairs = _triplet_pairs(raw, store, where)
                left.append(pairs[0])
                right.append(pairs[1])
                labels.append(pairs[2])
                from_triplets.append(np.ones(len(pairs[2]), dtype=bool))
                continue
            batch = _flat_pair_batch(raw, where)
            x1, x2 = to_tensor(batch[0]), to_tensor(batch[1])
            lab = check_binary_labels(batch[2], name=f"label of {where}")
            if not (len(x1) == len(x2) == len(lab)):
                raise InputError(
                    f"{where} has {len(x1)}, {len(x2)} and {len(lab)} rows for x1, x2 and label."
                )
            y1, y2 = (_labels_of(batch[3]), _labels_of(batch[4])) if len(batch) == 5 else (None, None)
            left.append(store.add(x1, y1, where=f"{where} x1"))
            right.append(store.add(x2, y2, where=f"{where} x2"))
            labels.append(lab)
            from_triplets.append(np.zeros(len(lab), dtype=bool))
    if not left:
        raise InputError("The pair loader yielded no batches.")
    with _reading("the pair loader's items"):
        read = store.read()
    return (
        read,
        np.concatenate(left),
        np.concatenate(right),
        np.concatenate(labels),
        np.concatenate(from_triplets),
    )


def _episode_batch(anchor: Any, candidates: Any, *, unbatched: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One loader row as candidates (B, n, ...) and anchors (B, ...).

    A scalar ``correct_index`` marks one unbatched episode (anchor item, list of n candidate items);
    otherwise candidates are (B, n, ...) or a DataLoader's collate of n tensors of (B, ...).
    """
    a = to_tensor(anchor)
    if unbatched:
        return torch.stack([to_tensor(c) for c in candidates]).unsqueeze(0), a.unsqueeze(0)
    if isinstance(candidates, (list, tuple)):
        return torch.stack([to_tensor(c) for c in candidates], dim=1), a
    return to_tensor(candidates), a


def read_episode_batches(loader: Iterable) -> tuple[ReadItems, np.ndarray, np.ndarray, np.ndarray]:
    """Episodes from an iterable of ``(anchor, candidates, correct_index[, anchor_labels, candidate_labels])``.

    Returns the unique items and ``anchor`` (E,), ``candidates`` (E, n), ``correct`` (E,).
    """
    store = _DedupStore()
    anchors, cands, corrects = [], [], []
    n_way = None
    for b, batch in enumerate(loader):
        where = f"episode batch {b}"
        with _reading(where):
            if layout_of(batch, where=where) != EPISODES:
                raise InputError(f"{where} is not an episode batch; layouts: {_layouts_text()}.")
            correct = np.asarray(to_tensor(batch[2]))
            cand, a = _episode_batch(batch[0], batch[1], unbatched=correct.ndim == 0)
            correct = correct.reshape(-1)
            if not (a.shape[0] == cand.shape[0] == correct.size):
                raise InputError(
                    f"{where} has {a.shape[0]} anchors, {cand.shape[0]} candidate rows and {correct.size} correct "
                    "indices; they must match."
                )
            if n_way is not None and cand.shape[1] != n_way:
                raise InputError(
                    f"{where} has {cand.shape[1]} candidates per episode, earlier batches {n_way}."
                )
            n_way = cand.shape[1]
            ya, yc = (_labels_of(batch[3]), _labels_of(batch[4])) if len(batch) == 5 else (None, None)
            anchors.append(store.add(a, ya, where=f"{where} anchor"))
            flat = cand.reshape(cand.shape[0] * n_way, *cand.shape[2:])
            cands.append(store.add(flat, yc, where=f"{where} candidates").reshape(-1, n_way))
            corrects.append(correct)
    if not anchors:
        raise InputError("The episode loader yielded no batches.")
    with _reading("the episode loader's items"):
        return store.read(), np.concatenate(anchors), np.concatenate(cands), np.concatenate(corrects)


def read_item_batches(loader: Iterable, *, where: str) -> ReadItems:
    """Labelled items from ``(x, label)`` batches, in order (not de-duplicated: they are the split's items)."""
    xs, ys = [], []
    for b, batch in enumerate(loader):
        with _reading(f"{where} batch {b}"):
            if layout_of(batch, where=f"{where} batch {b}") != ITEMS:
                raise InputError(f"{where} batch {b} is not an (x, label) batch; layouts: {_layouts_text()}.")
            xs.append(to_tensor(batch[0]))
            ys.append(_labels_of(batch[1]))
    if not xs:
        raise InputError(f"{where} yielded no batches.")
    with _reading(f"{where}'s inputs"):
        inputs, labels = torch.cat(xs), np.concatenate(ys)
        if len(inputs) != len(labels) or inputs.dim() < 1:
            raise InputError(
                f"{where} gave {len(inputs)} inputs and {len(labels)} labels; give one label per input."
            )
        check_finite(inputs.reshape(len(inputs), -1).float().numpy(), name=f"inputs of {where}")
    return ReadItems(inputs, labels)


def rows_as_batches(dataset: Any, batch_size: int = 256) -> Iterator[Any]:
    """Rows of a map-style pair, triplet or episode dataset as loader batches.

    Pair rows (any pair layout) are stacked into ``(x1, x2, label[, y1, y2])`` batches, triplet rows into
    ``(anchor, positive, negative)`` batches; episode rows are passed one by one, as unbatched episodes with a
    scalar ``correct``.
    """
    first = layout_of(dataset[0], where="dataset row 0")
    if first == EPISODES:
        for i in range(len(dataset)):
            yield dataset[i]
        return
    for start in range(0, len(dataset), batch_size):
        stop = min(start + batch_size, len(dataset))
        with _reading(f"dataset rows {start}..{stop - 1}"):
            rows = []
            for i in range(start, stop):
                if layout_of(dataset[i], where=f"dataset row {i}") != first:
                    raise InputError(
                        f"dataset row {i} is not a {first[:-1]} like row 0; layouts: {_layouts_text()}."
                    )
                rows.append(
                    tuple(dataset[i])
                    if first == TRIPLETS
                    else _flat_pair_batch(dataset[i], f"dataset row {i}")
                )
            if len({len(r) for r in rows}) > 1:
                raise InputError(
                    f"dataset rows {start}..{stop - 1} mix pairs with and without identity labels."
                )
            batch = tuple(torch.stack([to_tensor(v) for v in field]) for field in zip(*rows))
        yield batch
