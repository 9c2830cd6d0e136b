"""The data model: ``Items``, ``Pairs``, ``Episodes`` and ``Split``, with constructors for what users have.

``Items`` are the unique inputs of one split. ``Pairs`` (verification protocol) and ``Episodes`` (n-way
identification protocol) are index arrays into those items, so every input is embedded once however many
pairs or episodes use it. Nothing here copies or modifies the user's tensors except where a loader is read
(``from_loader``), whose batches are materialised once, de-duplicated by content hash.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from .errors import InputError
from .loaders import (
    EPISODES,
    ITEMS,
    LAYOUTS,
    hash_rows,
    layout_of,
    read_episode_batches,
    read_item_batches,
    read_pair_batches,
    rows_as_batches,
    to_tensor,
)
from .sampling import episode_indices, pair_indices, positive_pair_components, stratified_pair_indices
from .validation import (
    as_numpy,
    check_binary_labels,
    check_embeddings,
    check_index_array,
    check_labels,
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
        if inputs is not None and (
            not hasattr(inputs, "__getitem__")
            or not hasattr(inputs, "__len__")
            or isinstance(inputs, (str, bytes))
        ):
            raise InputError(
                f"Items inputs must be indexable (tensor, ndarray or sequence); got {type(inputs).__name__}. "
                "For a loader of pairs use Pairs.from_loader."
            )
        self.inputs = inputs
        self._n = _length(inputs) if inputs is not None else int(n)
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
        self.ids = np.arange(self._n) if ids is None else as_numpy(ids, name="ids").reshape(-1)
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
                rows.append(to_tensor(row))
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
        return str(to_tensor(first).dtype).replace("torch.", "")

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
                labels.append(_one_label(row[1], i))
        return cls(_FirstOfRows(dataset), labels=labels, attributes=attributes, ids=ids)


def _one_label(value: Any, row: int) -> Any:
    """The label of dataset row ``row``: a number or a string (a one-element tensor or array is unwrapped)."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        if value.size == 1 if isinstance(value, np.ndarray) else value.numel() == 1:
            return value.item() if isinstance(value, np.ndarray) else value.detach().cpu().item()
        raise InputError(
            f"dataset row {row}: the label must be one identity id; got shape {tuple(value.shape)}. Rows are (x, label)."
        )
    return value


def _length(inputs: Any) -> int:
    """The number of items of ``inputs``; a 0-d array or tensor holds none that can be indexed."""
    try:
        return len(inputs)
    except TypeError:
        raise InputError(
            f"Items inputs must hold one row per item; got a {type(inputs).__name__} without rows "
            f"(shape {tuple(getattr(inputs, 'shape', ()))})."
        ) from None


class _FirstOfRows:
    """A lazy view of ``dataset[i][0]``: the inputs of an ``(x, label)`` dataset."""

    def __init__(self, dataset: Sequence):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[i][0]


class Pairs:
    """Verification pairs: ``left`` (P,), ``right`` (P,) index ``items``; ``label`` (P,) is 1 = similar.

    ``from_triplets`` (P,) bool marks the pairs gapdiag made from ``(anchor, positive, negative)`` triplets:
    their label comes from the layout, so the ``similar_label`` setting (the user's convention for pair
    labels) never flips it. None: no such pairs.
    """

    def __init__(self, items: Items, left: Any, right: Any, label: Any, *, from_triplets: Any = None):
        if not isinstance(items, Items):
            raise InputError(f"Pairs needs an Items object as first argument; got {type(items).__name__}.")
        self.items = items
        self.left = check_index_array(left, name="left", n_items=len(items))
        self.right = check_index_array(right, name="right", n_items=len(items))
        self.label = check_binary_labels(label, name="label")
        check_same_length(left=self.left, right=self.right, label=self.label)
        if self.left.size == 0:
            raise InputError("Pairs is empty: give at least one pair.")
        self.from_triplets = None
        if from_triplets is not None:
            self.from_triplets = np.asarray(from_triplets, dtype=bool).reshape(-1)
            check_same_length(label=self.label, from_triplets=self.from_triplets)

    def __len__(self) -> int:
        return int(self.left.size)

    def __repr__(self) -> str:
        return f"Pairs(n={len(self)}, positives={int(self.label.sum())}, items={len(self.items)})"

    @property
    def positive_ratio(self) -> float:
        return float(self.label.mean())

    def members(self, label: int) -> np.ndarray:
        """Mask (N,) bool over ``items``: the items that sit in at least one pair of ``label`` (1 similar, 0 not)."""
        m = self.label == label
        out = np.zeros(len(self.items), dtype=bool)
        out[self.left[m]] = out[self.right[m]] = True
        return out

    def same_identity(self, identities: Any) -> np.ndarray:
        """Mask (P,) bool: the pairs whose two items carry the same identity in ``identities`` (N,), one per item."""
        ids = np.asarray(identities)
        return ids[self.left] == ids[self.right]

    @classmethod
    def from_loader(cls, loader: Iterable, *, attributes: pd.DataFrame | None = None) -> Pairs:
        """Pairs from an iterable of pair batches: the shape of a Siamese training loop.

        Batches are ``(x1, x2, label)`` or ``((x1, x2), label)`` with ``x1``, ``x2`` (B, ...) tensors or
        arrays and ``label`` (B,) of 0/1 (1 = similar); ``(x1, x2, label, y1, y2)`` or ``((x1, x2), label,
        (y1, y2))`` also carry the identity labels of both sides. Identical inputs are de-duplicated by
        content hash, so each distinct input becomes one item and is embedded once.
        """
        read, left, right, label, from_triplets = read_pair_batches(loader)
        items = Items(read.inputs, labels=read.labels, attributes=attributes)
        return cls(items, left, right, label, from_triplets=from_triplets if from_triplets.any() else None)

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
        read, anchor, candidates, correct = read_episode_batches(loader)
        return cls(Items(read.inputs, labels=read.labels, attributes=attributes), anchor, candidates, correct)

    @classmethod
    def from_labels(
        cls, items: Items, *, n_way: int = 10, n_episodes: int | None = None, seed: int = 0
    ) -> Episodes:
        """Random n-way episodes generated from ``items.labels``; see :func:`make_episodes`."""
        return make_episodes(items, n_way=n_way, n_episodes=n_episodes, seed=seed)


def _require_labels(items: Items, what: str) -> np.ndarray:
    if items.labels is None:
        raise InputError(f"{what} needs identity labels on the items; pass Items(..., labels=...).")
    return items.labels


def make_pairs(
    items: Items,
    *,
    n_pairs: int | None = None,
    positive_ratio: float = 0.5,
    seed: int | np.random.Generator = 0,
) -> Pairs:
    """Verification pairs generated from ``items.labels``; the rule is :func:`gapdiag.sampling.pair_indices`."""
    labels = _require_labels(items, "make_pairs")
    return Pairs(items, *pair_indices(labels, n_pairs=n_pairs, positive_ratio=positive_ratio, rng=seed))


def make_episodes(
    items: Items,
    *,
    n_way: int = 10,
    n_episodes: int | None = None,
    seed: int | np.random.Generator = 0,
    labels: np.ndarray | None = None,
) -> Episodes:
    """n-way episodes generated from identity labels; the rule is :func:`gapdiag.sampling.episode_indices`.

    ``labels`` overrides ``items.labels`` (used for inferred groups from the graph of positive pairs).
    """
    labels = _require_labels(items, "make_episodes") if labels is None else np.asarray(labels)
    return Episodes(items, *episode_indices(labels, n_way=n_way, n_episodes=n_episodes, rng=seed))


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
    """Inferred groups (N,): connected components of the graph of positive pairs (not identities)."""
    return positive_pair_components(len(pairs.items), pairs.left, pairs.right, pairs.label)


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
            embeddings = check_embeddings(embeddings, name=f"embeddings of split {name!r}", n=len(items))
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
        embeddings = check_embeddings(embeddings, name=f"embeddings of split {name!r}")
        items = Items(None, labels=labels, attributes=attributes, n=embeddings.shape[0])
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
        pair_rng, episode_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
        pairs = make_pairs(items, n_pairs=n_pairs, seed=pair_rng)
        episodes = make_episodes(items, n_way=min(n_way, n_classes), n_episodes=n_episodes, seed=episode_rng)
        return cls(name, items, pairs, episodes)


def as_split(obj: Any, name: str) -> Split:
    """Wrap what ``audit()`` was given for one role into a ``Split`` named ``name`` (the role).

    Accepts a Split (renamed to the role: roles come from argument positions, never from names), Pairs,
    Episodes, Items, a loader (any iterable) of pair, episode or ``(x, label)`` batches, or a map-style
    dataset of such rows (see :data:`gapdiag.loaders.LAYOUTS`). Items and ``(x, label)`` data carry no
    protocol of their own: the audit derives pairs and episodes from their labels.
    """
    if isinstance(obj, Split):
        return (
            obj
            if obj.name == name
            else Split(name, obj.items, obj.pairs, obj.episodes, embeddings=obj.embeddings)
        )
    if isinstance(obj, Pairs):
        return Split(name, obj.items, pairs=obj)
    if isinstance(obj, Episodes):
        return Split(name, obj.items, episodes=obj)
    if isinstance(obj, Items):
        return Split(name, obj)
    if isinstance(obj, (str, bytes, dict, np.ndarray, torch.Tensor)):
        raise InputError(
            f"The {name} split must be a Split, Pairs, Episodes, Items, a loader or a dataset; got "
            f"{type(obj).__name__}. Loaders and datasets may yield {'; '.join(LAYOUTS)}."
        )
    if hasattr(obj, "__getitem__") and hasattr(obj, "__len__") and not hasattr(obj, "__iter__"):
        return _from_dataset(obj, name)
    if hasattr(obj, "__getitem__") and hasattr(obj, "__len__") and _is_map_dataset(obj):
        return _from_dataset(obj, name)
    if hasattr(obj, "__iter__"):
        return _from_iterable(obj, name)
    raise InputError(
        f"The {name} split must be a Split, Pairs, Episodes, Items, a loader or a dataset; got "
        f"{type(obj).__name__}."
    )


def _is_map_dataset(obj: Any) -> bool:
    """A torch ``Dataset`` (or any sized, indexable object that is not a plain list or a loader)."""
    return not isinstance(obj, (list, tuple)) and not hasattr(obj, "batch_size")


def _from_dataset(dataset: Any, name: str) -> Split:
    if len(dataset) == 0:
        raise InputError(f"The {name} dataset is empty.")
    if layout_of(dataset[0], where=f"row 0 of the {name} dataset") == ITEMS:
        return Split(name, Items.from_dataset(dataset))  # (x, label) rows, read lazily
    return _from_iterable(rows_as_batches(dataset), name)


def _from_iterable(loader: Any, name: str) -> Split:
    """A split from a loader, whose layout is told by its first batch (:func:`gapdiag.loaders.layout_of`)."""
    import itertools

    it = iter(loader)
    try:
        first = next(it)
    except StopIteration:
        raise InputError(f"The {name} loader yielded no batches.") from None
    batches = itertools.chain([first], it)
    layout = layout_of(first, where=f"the first batch of the {name} loader")
    if layout == ITEMS:
        read = read_item_batches(batches, where=f"the {name} loader")
        return Split(name, Items(read.inputs, labels=read.labels))
    if layout == EPISODES:
        episodes = Episodes.from_loader(batches)
        return Split(name, episodes.items, episodes=episodes)
    pairs = Pairs.from_loader(batches)
    return Split(name, pairs.items, pairs=pairs)
