"""The data model: ``Items``, ``Pairs``, ``Episodes`` and ``Split``, with constructors for what users have.

``Items`` are the unique inputs of one split. ``Pairs`` (verification protocol) and ``Episodes`` (n-way
identification protocol) are index arrays into those items, so every input is embedded once however many
pairs or episodes use it. Nothing here copies or modifies the user's tensors except where a loader is read
(``from_loader``), whose batches are materialised once, de-duplicated by content hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from .errors import InputError
from .validation import (
    check_binary_labels,
    check_finite,
    check_index_array,
    check_labels,
    check_positive_int,
    check_same_length,
)

__all__ = [
    "Items",
    "Pairs",
    "Episodes",
    "Split",
    "make_pairs",
    "make_episodes",
    "pairs_from_episodes",
    "stratified_pair_indices",
    "labels_from_pairs",
    "as_split",
]


def _to_tensor(x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach()
    return torch.as_tensor(np.asarray(x))


def hash_rows(batch: torch.Tensor) -> list[str]:
    """Content hash of each row of ``batch`` (shape (B, ...)): dtype-independent, shape-aware."""
    arr = np.ascontiguousarray(batch.detach().cpu().to(torch.float32).numpy())
    shape = repr(arr.shape[1:]).encode()
    return [hashlib.blake2b(row.tobytes() + shape, digest_size=16).hexdigest() for row in arr]


class Items:
    """The unique inputs of one split.

    Parameters
    ----------
    inputs : torch.Tensor (N, ...), numpy.ndarray (N, ...), an indexable sequence of N tensors, or None
        The raw inputs. Sequences are read lazily, a batch at a time (a ``Dataset`` returning tensors
        works). ``None`` is allowed only for embeddings-only splits (``Split.from_embeddings``).
    labels : array-like (N,), optional
        Identity/class ids. Unlocks retrieval metrics, episodes from labels and identity overlap.
    attributes : pandas.DataFrame (N rows), optional
        Known per-item nuisance attributes (scanner id, lighting, camera...), categorical or numeric.
    ids : array-like (N,), optional
        The user's item identifiers, echoed in reports; defaults to 0..N-1.
    """

    def __init__(
        self,
        inputs: Any,
        labels: Any = None,
        attributes: pd.DataFrame | None = None,
        ids: Any = None,
        *,
        n: int | None = None,
    ):
        if inputs is None and n is None:
            raise InputError("Items needs inputs (a tensor, an array or a sequence of tensors).")
        if inputs is not None and not hasattr(inputs, "__getitem__"):
            raise InputError(
                f"Items inputs must be indexable (tensor, ndarray or sequence); got {type(inputs).__name__}. "
                "For a loader of pairs use Pairs.from_loader."
            )
        self.inputs = inputs
        self._n = len(inputs) if inputs is not None else int(n)
        if self._n == 0:
            raise InputError("Items is empty: a split needs at least one item.")
        self.labels = None if labels is None else check_labels(labels, name="labels", n=self._n)
        if attributes is not None:
            if not isinstance(attributes, pd.DataFrame):
                raise InputError(
                    f"attributes must be a pandas DataFrame with one row per item; got {type(attributes).__name__}."
                )
            check_same_length(items=range(self._n), attributes=attributes)
            attributes = attributes.reset_index(drop=True)
        self.attributes = attributes
        self.ids = np.arange(self._n) if ids is None else np.asarray(ids).reshape(-1)
        check_same_length(items=range(self._n), ids=self.ids)
        self._hashes: np.ndarray | None = None

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        shape = tuple(self.item_shape) if self.has_inputs else "embeddings only"
        return f"Items(n={self._n}, item_shape={shape}, labels={'yes' if self.labels is not None else 'no'})"

    @property
    def has_inputs(self) -> bool:
        return self.inputs is not None

    @property
    def item_shape(self) -> tuple[int, ...]:
        return tuple(self.get_batch(np.array([0])).shape[1:])

    def get_batch(self, indices: np.ndarray) -> torch.Tensor:
        """Inputs of ``indices`` (shape (B,)) as a new tensor (B, ...) on the CPU.

        The user's dtype is kept (float64 becomes float32); consumers that need floats convert.
        """
        if self.inputs is None:
            raise InputError("These items carry embeddings only; raw inputs are not available.")
        indices = np.asarray(indices, dtype=np.int64)
        src = self.inputs
        if isinstance(src, torch.Tensor):
            batch = src[torch.from_numpy(indices).to(src.device)].detach().cpu()
        elif isinstance(src, np.ndarray):
            batch = torch.from_numpy(np.array(src[indices]))
        else:
            rows = []
            for i in indices:
                row = src[int(i)]
                if isinstance(row, (tuple, list)) and len(row) >= 1 and not isinstance(row[0], (int, float)):
                    row = row[0]  # a (x, label) dataset
                rows.append(_to_tensor(row))
            try:
                batch = torch.stack(rows)
            except RuntimeError as exc:
                raise InputError(
                    f"Items {indices[:5].tolist()}... have different shapes and cannot be batched: {exc}"
                ) from exc
        # float64 (numpy's default) becomes float32, what models expect; integer inputs (token ids,
        # uint8 images) keep their dtype so the user's encoder receives what it was written for
        return batch.to(torch.float32) if batch.dtype == torch.float64 else batch

    def iter_batches(self, batch_size: int) -> Iterable[tuple[np.ndarray, torch.Tensor]]:
        """Yield ``(indices (B,), inputs (B, ...))`` over all items in order."""
        for start in range(0, self._n, batch_size):
            idx = np.arange(start, min(start + batch_size, self._n))
            yield idx, self.get_batch(idx)

    def content_hashes(self, batch_size: int = 512) -> np.ndarray:
        """Content hash per item (N,) of str; computed once and memoised."""
        if self._hashes is None:
            out: list[str] = []
            for _, batch in self.iter_batches(batch_size):
                out.extend(hash_rows(batch))
            self._hashes = np.array(out, dtype=object)
        return self._hashes

    def raw_dtype(self) -> str:
        """The dtype of the user's inputs before gapdiag converts them to float32."""
        src = self.inputs
        if isinstance(src, (torch.Tensor, np.ndarray)):
            return str(src.dtype).replace("torch.", "")
        first = src[0]
        if isinstance(first, (tuple, list)):
            first = first[0]
        return str(_to_tensor(first).dtype).replace("torch.", "")

    @classmethod
    def from_dataset(
        cls, dataset: Sequence, *, attributes: pd.DataFrame | None = None, ids: Any = None
    ) -> Items:
        """Items from a dataset of ``(x, label)`` rows, read lazily.

        Labels come from ``dataset.targets`` or ``dataset.labels`` when present, otherwise from one read
        of every row. Pairs and episodes are then generated with :func:`make_pairs` / :func:`make_episodes`.
        """
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise InputError("Items.from_dataset needs an indexable dataset of (x, label) rows with len().")
        labels = getattr(dataset, "targets", None)
        if labels is None:
            labels = getattr(dataset, "labels", None)
        if labels is None:
            labels = []
            for i in range(len(dataset)):
                row = dataset[i]
                if not isinstance(row, (tuple, list)) or len(row) < 2:
                    raise InputError(f"dataset row {i} is not an (x, label) pair; got {type(row).__name__}.")
                labels.append(int(row[1]))
        return cls(_FirstOfRows(dataset), labels=np.asarray(labels), attributes=attributes, ids=ids)


class _FirstOfRows:
    """A lazy view of ``dataset[i][0]``: the inputs of an ``(x, label)`` dataset."""

    def __init__(self, dataset: Sequence):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[i][0]


class Pairs:
    """Verification pairs: ``left`` (P,), ``right`` (P,) index ``items``; ``label`` (P,) is 1 = similar."""

    def __init__(self, items: Items, left: Any, right: Any, label: Any):
        if not isinstance(items, Items):
            raise InputError(f"Pairs needs an Items object as first argument; got {type(items).__name__}.")
        self.items = items
        self.left = check_index_array(left, name="left", n_items=len(items))
        self.right = check_index_array(right, name="right", n_items=len(items))
        self.label = check_binary_labels(label, name="label")
        check_same_length(left=self.left, right=self.right, label=self.label)
        if self.left.size == 0:
            raise InputError("Pairs is empty: give at least one pair.")

    def __len__(self) -> int:
        return int(self.left.size)

    def __repr__(self) -> str:
        return f"Pairs(n={len(self)}, positives={int(self.label.sum())}, items={len(self.items)})"

    @property
    def positive_ratio(self) -> float:
        return float(self.label.mean())

    @classmethod
    def from_loader(cls, loader: Iterable, *, attributes: pd.DataFrame | None = None) -> Pairs:
        """Pairs from an iterable of ``(x1, x2, label)`` batches: the shape of a Siamese training loop.

        ``x1`` and ``x2`` are (B, ...) tensors or arrays, ``label`` (B,) of 0/1. A batch may carry two more
        entries ``(x1, x2, label, y1, y2)``: the identity labels of both sides. Identical inputs are
        de-duplicated by content hash, so each distinct input becomes one item and is embedded once.
        """
        store = _DedupStore()
        left, right, labels = [], [], []
        for b, batch in enumerate(loader):
            if not isinstance(batch, (tuple, list)) or len(batch) not in (3, 5):
                raise InputError(
                    f"Pairs.from_loader: batch {b} must be (x1, x2, label) or (x1, x2, label, y1, y2); "
                    f"got {type(batch).__name__} of length {len(batch) if hasattr(batch, '__len__') else '?'}."
                )
            x1, x2 = _to_tensor(batch[0]), _to_tensor(batch[1])
            lab = check_binary_labels(batch[2], name=f"label of batch {b}")
            if not (len(x1) == len(x2) == len(lab)):
                raise InputError(
                    f"Pairs.from_loader: batch {b} has {len(x1)}, {len(x2)} and {len(lab)} rows for x1, x2, label."
                )
            y1 = y2 = None
            if len(batch) == 5:
                y1, y2 = (
                    np.asarray(_to_tensor(batch[3])).reshape(-1),
                    np.asarray(_to_tensor(batch[4])).reshape(-1),
                )
            left.append(store.add(x1, y1, where=f"batch {b} x1"))
            right.append(store.add(x2, y2, where=f"batch {b} x2"))
            labels.append(lab)
        if not left:
            raise InputError("Pairs.from_loader: the loader yielded no batches.")
        items = store.items(attributes)
        return cls(items, np.concatenate(left), np.concatenate(right), np.concatenate(labels))

    @classmethod
    def from_labels(
        cls, items: Items, *, n_pairs: int | None = None, positive_ratio: float = 0.5, seed: int = 0
    ) -> Pairs:
        """Balanced random pairs generated from ``items.labels``; see :func:`make_pairs`."""
        return make_pairs(items, n_pairs=n_pairs, positive_ratio=positive_ratio, seed=seed)


class Episodes:
    """n-way identification episodes.

    ``anchor`` (E,) indexes ``items``; ``candidates`` (E, n) indexes ``items``; ``correct`` (E,) is the
    position (0..n-1) of the true match within each candidates row.
    """

    def __init__(self, items: Items, anchor: Any, candidates: Any, correct: Any):
        if not isinstance(items, Items):
            raise InputError(f"Episodes needs an Items object as first argument; got {type(items).__name__}.")
        self.items = items
        self.anchor = check_index_array(anchor, name="anchor", n_items=len(items))
        self.candidates = check_index_array(candidates, name="candidates", n_items=len(items), ndim=2)
        self.correct = check_index_array(correct, name="correct", n_items=10**12)
        check_same_length(anchor=self.anchor, candidates=self.candidates, correct=self.correct)
        if self.anchor.size == 0:
            raise InputError("Episodes is empty: give at least one episode.")
        n_way = self.candidates.shape[1]
        if n_way < 2:
            raise InputError(f"Episodes need at least 2 candidates per episode; got {n_way}.")
        if self.correct.max() >= n_way:
            e = int(np.flatnonzero(self.correct >= n_way)[0])
            raise InputError(
                f"correct[{e}] = {int(self.correct[e])} is out of range for {n_way} candidates (valid 0..{n_way - 1}). "
                "correct is the position of the true match within the candidates row, not an item index."
            )

    def __len__(self) -> int:
        return int(self.anchor.size)

    def __repr__(self) -> str:
        return f"Episodes(n={len(self)}, n_way={self.n_way}, items={len(self.items)})"

    @property
    def n_way(self) -> int:
        return int(self.candidates.shape[1])

    @classmethod
    def from_loader(cls, loader: Iterable, *, attributes: pd.DataFrame | None = None) -> Episodes:
        """Episodes from an iterable of ``(anchor, candidates, correct_index)``.

        ``anchor`` is (B, ...) or one unbatched item; ``candidates`` is (B, n, ...), a list of n tensors
        of shape (B, ...) (what a DataLoader's default collate gives), or a list of n unbatched items;
        ``correct_index`` is (B,) or an int. A batch may carry two more entries: the anchor labels (B,)
        and the candidate labels (B, n). Inputs are de-duplicated by content hash.
        """
        store = _DedupStore()
        anchors, cands, corrects = [], [], []
        n_way = None
        for b, batch in enumerate(loader):
            if not isinstance(batch, (tuple, list)) or len(batch) not in (3, 5):
                raise InputError(
                    f"Episodes.from_loader: batch {b} must be (anchor, candidates, correct_index[, anchor_labels, candidate_labels])."
                )
            anchor, candidates, correct = batch[0], batch[1], batch[2]
            correct_arr = np.asarray(_to_tensor(correct)).reshape(-1)
            cand, a = _episode_batch(
                anchor, candidates, unbatched=np.ndim(np.asarray(_to_tensor(correct))) == 0
            )
            if a.shape[0] != cand.shape[0] or cand.shape[0] != correct_arr.size:
                raise InputError(
                    f"Episodes.from_loader: batch {b} has {a.shape[0]} anchors, {cand.shape[0]} candidate rows "
                    f"and {correct_arr.size} correct indices; they must match."
                )
            if n_way is not None and cand.shape[1] != n_way:
                raise InputError(
                    f"Episodes.from_loader: batch {b} has {cand.shape[1]} candidates per episode, earlier batches {n_way}."
                )
            n_way = cand.shape[1]
            ya = yc = None
            if len(batch) == 5:
                ya = np.asarray(_to_tensor(batch[3])).reshape(-1)
                yc = np.asarray(_to_tensor(batch[4])).reshape(-1)
            anchors.append(store.add(a, ya, where=f"batch {b} anchor"))
            flat = cand.reshape(cand.shape[0] * n_way, *cand.shape[2:])
            cands.append(store.add(flat, yc, where=f"batch {b} candidates").reshape(-1, n_way))
            corrects.append(correct_arr)
        if not anchors:
            raise InputError("Episodes.from_loader: the loader yielded no batches.")
        items = store.items(attributes)
        return cls(items, np.concatenate(anchors), np.concatenate(cands), np.concatenate(corrects))

    @classmethod
    def from_labels(
        cls, items: Items, *, n_way: int = 10, n_episodes: int | None = None, seed: int = 0
    ) -> Episodes:
        """Random n-way episodes generated from ``items.labels``; see :func:`make_episodes`."""
        return make_episodes(items, n_way=n_way, n_episodes=n_episodes, seed=seed)


def _episode_batch(anchor: Any, candidates: Any, *, unbatched: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalise one loader row to candidates (B, n, ...) and anchors (B, ...).

    A scalar ``correct_index`` marks one unbatched episode (anchor item, list of n candidate items);
    otherwise candidates are (B, n, ...) or a DataLoader's collate of n tensors of (B, ...).
    """
    a = _to_tensor(anchor)
    if unbatched:
        parts = torch.stack([_to_tensor(c) for c in candidates])
        return parts.unsqueeze(0), a.unsqueeze(0)
    if isinstance(candidates, (list, tuple)):
        return torch.stack([_to_tensor(c) for c in candidates], dim=1), a
    return _to_tensor(candidates), a


class _DedupStore:
    """Accumulates loader batches into unique items keyed by content hash."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.rows: list[torch.Tensor] = []
        self.labels: list[Any] = []
        self.shape: tuple | None = None

    def add(self, batch: torch.Tensor, labels: np.ndarray | None, *, where: str) -> np.ndarray:
        if self.shape is not None and tuple(batch.shape[1:]) != self.shape:
            raise InputError(
                f"{where}: inputs of shape {tuple(batch.shape[1:])}, earlier inputs {self.shape}; all inputs must share a shape."
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

    def items(self, attributes: pd.DataFrame | None) -> Items:
        labels = None if any(v is None for v in self.labels) else np.asarray(self.labels)
        return Items(torch.stack(self.rows), labels=labels, attributes=attributes)


def _class_layout(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Items grouped by class: (order, class_of_item, start_of_class, count_of_class)."""
    _, cls = np.unique(labels, return_inverse=True)
    order = np.argsort(cls, kind="stable")
    counts = np.bincount(cls)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return order, cls, starts, counts


def _require_labels(items: Items, what: str) -> np.ndarray:
    if items.labels is None:
        raise InputError(f"{what} needs identity labels on the items; pass Items(..., labels=...).")
    return items.labels


def make_pairs(
    items: Items, *, n_pairs: int | None = None, positive_ratio: float = 0.5, seed: int = 0
) -> Pairs:
    """Generate verification pairs from identity labels, deterministically for a given ``seed``.

    Rule: ``round(n_pairs * positive_ratio)`` positives, each an item drawn uniformly from the items whose
    class has at least two members, paired with a different item of the same class drawn uniformly; the
    rest negatives, each an item drawn uniformly paired with an item drawn uniformly from the other
    classes. ``n_pairs`` defaults to ``min(2 * N, 20000)``. Duplicate pairs may occur.
    """
    labels = _require_labels(items, "make_pairs")
    n = len(items)
    n_pairs = min(2 * n, 20000) if n_pairs is None else check_positive_int(n_pairs, name="n_pairs")
    if not 0.0 <= positive_ratio <= 1.0:
        raise InputError(f"positive_ratio must lie in [0, 1]; got {positive_ratio}.")
    order, cls, starts, counts = _class_layout(labels)
    if counts.size < 2:
        raise InputError(
            "make_pairs needs at least two classes to form dissimilar pairs; the labels hold one."
        )
    rng = np.random.default_rng(seed)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - starts[cls[order]]
    n_pos = int(round(n_pairs * positive_ratio))
    eligible = np.flatnonzero(counts[cls] >= 2)
    if n_pos and eligible.size == 0:
        raise InputError("make_pairs: no class has two items, so no similar pair can be formed.")
    a = eligible[rng.integers(0, eligible.size, n_pos)] if n_pos else np.empty(0, np.int64)
    c = cls[a]
    offset = 1 + np.floor(rng.random(n_pos) * (counts[c] - 1)).astype(np.int64)
    b = order[starts[c] + (rank[a] + offset) % counts[c]]
    n_neg = n_pairs - n_pos
    a2 = rng.integers(0, n, n_neg)
    c2 = cls[a2]
    # an item of another class: skip over the anchor's class block in the class-sorted order
    u = np.floor(rng.random(n_neg) * (n - counts[c2])).astype(np.int64)
    b2 = order[np.where(u < starts[c2], u, u + counts[c2])]
    left = np.concatenate([a, a2])
    right = np.concatenate([b, b2])
    label = np.concatenate([np.ones(n_pos, np.int8), np.zeros(n_neg, np.int8)])
    perm = rng.permutation(n_pairs)
    return Pairs(items, left[perm], right[perm], label[perm])


def make_episodes(
    items: Items,
    *,
    n_way: int = 10,
    n_episodes: int | None = None,
    seed: int = 0,
    labels: np.ndarray | None = None,
) -> Episodes:
    """Generate n-way identification episodes from identity labels, deterministically for ``seed``.

    Rule: each anchor is drawn uniformly from items whose class has at least two members; the true
    match is another item of its class drawn uniformly; the ``n_way - 1`` distractors are one item each
    of ``n_way - 1`` distinct other classes drawn uniformly (so needs ``n_way`` classes); the true match
    is put at a uniformly drawn position. ``n_episodes`` defaults to ``min(N, 5000)``. ``labels``
    overrides ``items.labels`` (used for pseudo-identities from the graph of positive pairs).
    """
    labels = _require_labels(items, "make_episodes") if labels is None else np.asarray(labels)
    n = len(items)
    n_way = check_positive_int(n_way, name="n_way", minimum=2)
    n_episodes = min(n, 5000) if n_episodes is None else check_positive_int(n_episodes, name="n_episodes")
    order, cls, starts, counts = _class_layout(labels)
    n_classes = counts.size
    if n_classes < n_way:
        raise InputError(
            f"{n_way}-way episodes need {n_way} classes with items; the labels hold {n_classes}. Lower n_way."
        )
    eligible = np.flatnonzero(counts[cls] >= 2)
    if eligible.size == 0:
        raise InputError("make_episodes: no class has two items, so no anchor has a true match.")
    rng = np.random.default_rng(seed)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - starts[cls[order]]
    anchor = eligible[rng.integers(0, eligible.size, n_episodes)]
    c = cls[anchor]
    offset = 1 + np.floor(rng.random(n_episodes) * (counts[c] - 1)).astype(np.int64)
    match = order[starts[c] + (rank[anchor] + offset) % counts[c]]
    other = np.sort(_other_classes(rng, c, n_classes, n_way - 1), axis=1)
    pick = np.floor(rng.random(other.shape) * counts[other]).astype(np.int64)
    distractors = order[starts[other] + pick]
    correct = rng.integers(0, n_way, n_episodes)
    candidates = np.empty((n_episodes, n_way), dtype=np.int64)
    mask = np.ones((n_episodes, n_way), dtype=bool)
    mask[np.arange(n_episodes), correct] = False
    candidates[mask] = distractors.ravel()
    candidates[np.arange(n_episodes), correct] = match
    return Episodes(items, anchor, candidates, correct)


def _other_classes(rng: np.random.Generator, c: np.ndarray, n_classes: int, m: int) -> np.ndarray:
    """``m`` distinct classes per row (E, m), none equal to the row's class ``c`` (E,), uniformly drawn.

    Few classes: the ``m`` smallest of one random key per class. Many classes (an (E, n_classes) key
    matrix would take gigabytes): ``m`` uniform draws among the other classes, rows with a repeat drawn
    again, which leaves every set of ``m`` distinct classes equally likely.
    """
    e = c.size
    if e * n_classes <= 1 << 22:
        keys = rng.random((e, n_classes))
        keys[np.arange(e), c] = np.inf
        if m < n_classes:
            return np.argpartition(keys, m - 1, axis=1)[:, :m]
        return np.argsort(keys, axis=1)[:, :m]
    out = rng.integers(0, n_classes - 1, (e, m))
    out += out >= c[:, None]
    redo = np.arange(e)
    while redo.size:
        srt = np.sort(out[redo], axis=1)
        redo = redo[(srt[:, 1:] == srt[:, :-1]).any(axis=1)]
        fresh = rng.integers(0, n_classes - 1, (redo.size, m))
        out[redo] = fresh + (fresh >= c[redo, None])
    return out


def stratified_pair_indices(label: np.ndarray, max_pairs: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of at most ``max_pairs`` pairs (labels (P,)): up to half positives, negatives fill the rest.

    All pairs when they fit; drawn without replacement otherwise (bounded samples for costly probes).
    """
    pos, neg = np.flatnonzero(label == 1), np.flatnonzero(label == 0)
    if pos.size + neg.size <= max_pairs:
        return np.arange(label.size)
    n_pos = min(pos.size, max_pairs // 2)
    n_neg = min(neg.size, max_pairs - n_pos)
    n_pos = min(pos.size, max_pairs - n_neg)
    take = np.concatenate([rng.choice(pos, n_pos, replace=False), rng.choice(neg, n_neg, replace=False)])
    return np.sort(take)


def pairs_from_episodes(episodes: Episodes) -> Pairs:
    """Verification pairs implied by episodes: anchor-correct = similar, anchor-other = dissimilar.

    Gives E positives and E * (n - 1) negatives, in episode order (shapes (E * n,)).
    """
    n_way = episodes.n_way
    left = np.repeat(episodes.anchor, n_way)
    right = episodes.candidates.reshape(-1)
    label = (np.tile(np.arange(n_way), len(episodes)) == np.repeat(episodes.correct, n_way)).astype(np.int8)
    return Pairs(episodes.items, left, right, label)


def labels_from_pairs(pairs: Pairs) -> np.ndarray:
    """Pseudo identity labels (N,): connected components of the graph of positive pairs.

    Items in no positive pair are their own component. Used when the training split has pairs but no labels.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(pairs.items)
    pos = pairs.label == 1
    graph = coo_matrix((np.ones(int(pos.sum())), (pairs.left[pos], pairs.right[pos])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    return comp.astype(np.int64)


class Split:
    """One split of an audit (typically ``"train"`` or ``"val"``): items plus the pairs and/or episodes
    that the user evaluates on it. ``embeddings`` (N, d) may be given instead of a model pass.
    """

    def __init__(
        self,
        name: str,
        items: Items,
        pairs: Pairs | None = None,
        episodes: Episodes | None = None,
        *,
        embeddings: Any = None,
    ):
        if not isinstance(name, str) or not name:
            raise InputError(f"Split name must be a non-empty string; got {name!r}.")
        if not isinstance(items, Items):
            raise InputError(f"Split {name!r}: items must be an Items object; got {type(items).__name__}.")
        for what, obj in (("pairs", pairs), ("episodes", episodes)):
            if obj is not None and obj.items is not items:
                raise InputError(
                    f"Split {name!r}: the {what} index a different Items object than the split's items. "
                    f"Build {what} on the same Items (e.g. Split(name, pairs.items, pairs, episodes))."
                )
        self.name = name
        self.items = items
        self.pairs = pairs
        self.episodes = episodes
        if embeddings is not None:
            emb = np.asarray(
                embeddings.detach().cpu() if hasattr(embeddings, "detach") else embeddings, dtype=np.float32
            )
            if emb.ndim != 2 or emb.shape[0] != len(items):
                raise InputError(
                    f"Split {name!r}: embeddings must have shape ({len(items)}, d); got {emb.shape}."
                )
            check_finite(emb, name=f"embeddings of split {name!r}")
            embeddings = emb
        self.embeddings = embeddings

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"Split({self.name!r}, items={len(self.items)}, pairs={len(self.pairs) if self.pairs else 0}, episodes={len(self.episodes) if self.episodes else 0})"

    @classmethod
    def from_embeddings(
        cls,
        embeddings: Any,
        labels: Any = None,
        *,
        name: str = "val",
        pairs: tuple[Any, Any, Any] | None = None,
        episodes: tuple[Any, Any, Any] | None = None,
        attributes: pd.DataFrame | None = None,
    ) -> Split:
        """A split of precomputed embeddings (N, d) from any framework.

        ``pairs`` is ``(left, right, label)`` and ``episodes`` ``(anchor, candidates, correct)`` index arrays.
        Probes that need raw inputs are skipped with a reason.
        """
        n = len(embeddings)
        items = Items(None, labels=labels, attributes=attributes, n=n)
        p = Pairs(items, *pairs) if pairs is not None else None
        e = Episodes(items, *episodes) if episodes is not None else None
        return cls(name, items, p, e, embeddings=embeddings)

    @classmethod
    def from_items(
        cls,
        name: str,
        items: Items,
        *,
        n_pairs: int | None = None,
        n_way: int = 10,
        n_episodes: int | None = None,
        seed: int = 0,
    ) -> Split:
        """A split whose pairs and episodes are generated from ``items.labels`` (seeded)."""
        _require_labels(items, f"Split {name!r} from items")
        n_classes = np.unique(items.labels).size
        if n_classes < 2:
            raise InputError(
                f"Split {name!r}: the labels hold one class; pairs and episodes need at least two."
            )
        pairs = make_pairs(items, n_pairs=n_pairs, seed=seed)
        episodes = make_episodes(items, n_way=min(n_way, n_classes), n_episodes=n_episodes, seed=seed + 1)
        return cls(name, items, pairs, episodes)


def as_split(obj: Any, name: str, *, seed: int = 0, n_way: int = 10) -> Split:
    """Wrap what ``audit()`` was given into a ``Split`` named ``name``.

    Accepts a Split, Pairs, Episodes, Items, or a loader (any iterable) of pair or episode batches, read
    with :meth:`Pairs.from_loader` or :meth:`Episodes.from_loader`.
    """
    if isinstance(obj, Split):
        return obj
    if isinstance(obj, Pairs):
        return Split(name, obj.items, pairs=obj)
    if isinstance(obj, Episodes):
        return Split(name, obj.items, episodes=obj)
    if isinstance(obj, Items):
        return Split.from_items(name, obj, n_way=n_way, seed=seed)
    if isinstance(obj, (str, bytes, dict, np.ndarray, torch.Tensor)):
        raise InputError(
            f"The {name} split must be a Split, Pairs, Episodes, Items, a loader of pair, episode or (x, label) "
            f"batches, or a dataset of (x, label) rows; got {type(obj).__name__}."
        )
    if hasattr(obj, "__iter__"):
        return _from_iterable(obj, name, seed=seed, n_way=n_way)
    if hasattr(obj, "__getitem__") and hasattr(obj, "__len__"):  # a map-style dataset
        if len(obj) == 0:
            raise InputError(f"The {name} dataset is empty.")
        first = obj[0]
        if isinstance(first, (tuple, list)) and len(first) == 2:  # (x, label) rows, read lazily
            return Split.from_items(name, Items.from_dataset(obj), n_way=n_way, seed=seed)
        return _from_iterable(_rows_as_batches(obj), name, seed=seed, n_way=n_way)
    raise InputError(
        f"The {name} split must be a Split, Pairs, Episodes, Items, a loader of pair, episode or (x, label) "
        f"batches, or a dataset of (x, label) rows; got {type(obj).__name__}."
    )


def _rows_as_batches(dataset: Any, batch_size: int = 256):
    """Rows of a map-style pair or episode dataset as loader batches.

    Pair rows ``(x1, x2, label[, y1, y2])`` are stacked into batches; episode rows ``(anchor, candidates,
    correct[, ...])`` are passed one by one, as unbatched episodes with a scalar ``correct``.
    """
    first = dataset[0]
    episode_rows = (
        isinstance(first, (tuple, list))
        and len(first) >= 3
        and (
            isinstance(first[1], (list, tuple))
            or _to_tensor(first[1]).dim() == _to_tensor(first[0]).dim() + 1
        )
    )
    if episode_rows:
        for i in range(len(dataset)):
            yield dataset[i]
        return
    for start in range(0, len(dataset), batch_size):
        rows = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        yield tuple(torch.stack([_to_tensor(v) for v in field]) for field in zip(*rows))


def _from_iterable(loader: Any, name: str, *, seed: int, n_way: int) -> Split:
    """A split from a loader, whose kind is told by its first batch.

    ``(x1, x2, label[, y1, y2])`` with ``x2`` shaped like ``x1`` is a pair loader; ``(anchor, candidates,
    correct[, ...])`` with candidates a list or one dimension more than the anchor is an episode loader;
    ``(x, label)`` batches are labelled items, from which pairs and episodes are generated.
    """
    import itertools

    it = iter(loader)
    try:
        first = next(it)
    except StopIteration:
        raise InputError(f"The {name} loader yielded no batches.") from None
    batches = itertools.chain([first], it)
    if isinstance(first, (tuple, list)) and len(first) == 2:
        xs, ys = zip(*((_to_tensor(x), np.asarray(_to_tensor(y)).reshape(-1)) for x, y in batches))
        items = Items(torch.cat(xs), labels=np.concatenate(ys))
        check_finite(
            items.inputs.reshape(len(items), -1).float().numpy(), name=f"inputs of the {name} loader"
        )
        return Split.from_items(name, items, n_way=n_way, seed=seed)
    if not isinstance(first, (tuple, list)) or len(first) not in (3, 5):
        raise InputError(
            f"The {name} loader's batches must be (x1, x2, label) pairs or (anchor, candidates, correct_index) "
            f"episodes; the first batch is a {type(first).__name__}"
            + (f" of length {len(first)}." if hasattr(first, "__len__") else ".")
        )
    second = first[1]
    is_episodes = isinstance(second, (list, tuple)) or np.ndim(np.asarray(_to_tensor(first[2]))) == 0
    if not is_episodes:
        a, b = _to_tensor(first[0]), _to_tensor(second)
        is_episodes = b.dim() == a.dim() + 1
    if is_episodes:
        episodes = Episodes.from_loader(batches)
        return Split(name, episodes.items, episodes=episodes)
    pairs = Pairs.from_loader(batches)
    return Split(name, pairs.items, pairs=pairs)
