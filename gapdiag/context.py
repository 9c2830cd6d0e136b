"""``AuditContext``: read-only inputs of an audit plus memoised shared artifacts.

Probes get everything through the context: the splits, the embeddings of the single pass, oriented pair
and episode scores, derived pairs/episodes, attributes, neighbour graphs, seeded random generators. Each
shared artifact is computed once, the first time a probe asks for it.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np

from .config import Config
from .data import Episodes, Pairs, Split, labels_from_pairs, make_episodes, make_pairs, pairs_from_episodes
from .errors import InputError, ProbeDefinitionError
from .model import SiameseModel, euclidean_distance
from .scoring import Scorer
from .stats import Estimate

if TYPE_CHECKING:
    from .neighbors import NeighbourGraph

__all__ = ["AuditContext", "Artifact", "REQUIREMENTS", "named_rng"]

T = TypeVar("T")
_ARTIFACT_NAMES: dict[str, str] = {}


@dataclass(frozen=True)
class Reading:
    """gapdiag's reading of the score: ``scorer`` orients raw scores (higher = more similar) for the analysis;
    ``declared_auc`` is the training pairs' AUC read as the user declared (``kind``); ``reversed`` says whether
    gapdiag reads it the other way; ``split`` names the pairs that decided it."""

    scorer: Scorer
    declared_auc: Estimate
    reversed: bool
    split: str


def named_rng(seed: int, name: str) -> np.random.Generator:
    """The random stream ``name`` of an audit with ``seed``: the only way gapdiag derives randomness."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


@dataclass(frozen=True, eq=False)
class Artifact(Generic[T]):
    """A shared measurement, declared once and computed at most once per audit: ``ctx.artifact(spec)``.

    A probe family declares its shared work as a module-level ``Artifact`` (for example the attribute signal
    that GD101 and GD102 both read) in a non-probe module that both probes import; no probe imports
    another probe. ``compute(ctx) -> T`` runs the first time any probe asks; the result is shared, read-only.
    """

    name: str
    compute: Callable[[AuditContext], T]
    description: str

    def __post_init__(self) -> None:
        owner = f"{self.compute.__module__}.{self.compute.__qualname__}"
        if _ARTIFACT_NAMES.setdefault(self.name, owner) != owner:
            raise ProbeDefinitionError(
                f"Artifact {self.name!r} is declared twice ({_ARTIFACT_NAMES[self.name]}, {owner})."
            )


# Memory bound of one neighbour graph (int64 indices + float32 distances): deeper needs are searched by
# the probe that has them, block by block.
_GRAPH_BYTES = 512 << 20

# What a probe can declare in ``requires`` and what each means.
REQUIREMENTS: dict[str, str] = {
    "model": "a model to embed new inputs with (not available for precomputed embeddings)",
    "train_inputs": "raw training inputs",
    "val_inputs": "raw validation inputs",
    "train_labels": "identity labels on the training items (pass (x1, x2, label, y1, y2) batches or Items(..., labels=...))",
    "val_labels": "identity labels on the validation items (pass them with the batches, or Items(..., labels=...))",
    "train_pairs": "training pairs as the user gave them",
    "val_pairs": "validation pairs as the user gave them",
    "train_episodes": "training episodes as the user gave them",
    "val_episodes": "validation episodes as the user gave them",
    "train_pairs_any": "training pairs, given or derived from episodes or labels",
    "val_pairs_any": "validation pairs, given or derived from episodes or labels",
    "train_episodes_any": "training episodes, given or derived from labels or the positive-pair graph",
    "val_episodes_any": "validation episodes, given or derived from labels",
    "train_identities": "training identities, from labels or from the graph of positive pairs",
    "val_identities": "validation identities, from labels or from the graph of positive (or anchor-correct) pairs",
}


class AuditContext:
    """Everything a probe may read. Do not mutate what it returns: artifacts are shared between probes."""

    def __init__(
        self,
        splits: dict[str, Split],
        embeddings: dict[str, np.ndarray],
        *,
        model: SiameseModel | None,
        scorer: Scorer,
        config: Config,
    ):
        self.splits = splits
        self._embeddings = embeddings
        self.model = model
        self.scorer = scorer
        self.config = config
        self._memo: dict[Any, Any] = {}
        # probes may run side by side (audit's ``workers``): each memo key is computed under its own lock
        self._key_locks: dict[Any, threading.RLock] = {}
        self._key_locks_guard = threading.Lock()
        self._neighbour_depth: dict[str, int] = {}
        self.extra_items_encoded = 0

    # -- basics ---------------------------------------------------------------------------------------
    @property
    def train(self) -> Split:
        return self.splits["train"]

    @property
    def val(self) -> Split:
        return self.splits["val"]

    def embeddings(self, split: str) -> np.ndarray:
        """Embeddings (N_split, d) float32 of the split's items, from the single embedding pass."""
        return self._embeddings[split]

    def rng(self, name: str) -> np.random.Generator:
        """A generator seeded from the audit seed and ``name``: independent of the order probes run in."""
        return named_rng(int(self.config.seed), name)

    def memo(self, key: Any, compute: Callable[[], Any]) -> Any:
        """Compute ``compute()`` once per ``key`` and share it between probes.

        Safe for probes running side by side: the first to ask computes, the others wait for its result. A
        compute that raises stores nothing (the next caller tries again and gets the same error).
        """
        if key in self._memo:
            return self._memo[key]
        with self._key_lock(key):
            if key not in self._memo:
                self._memo[key] = compute()
            return self._memo[key]

    def _key_lock(self, key: Any) -> threading.RLock:
        # re-entrant: an artifact that (wrongly) needs itself recurses as it would in one thread, not deadlock
        with self._key_locks_guard:
            return self._key_locks.setdefault(key, threading.RLock())

    def artifact(self, spec: Artifact[T]) -> T:
        """The shared measurement ``spec``, computed on first use and memoised for the rest of the audit."""
        return self.memo(("artifact", spec.name), lambda: spec.compute(self))

    def option(self, key: str) -> Any:
        return self.config.options[key]

    # -- requirements ---------------------------------------------------------------------------------
    def missing(self, requires: frozenset[str] | set[str]) -> str:
        """'' when every requirement is met, else a sentence naming what is missing and why."""
        reasons = []
        for req in sorted(requires):
            if req not in REQUIREMENTS:
                raise InputError(f"Unknown probe requirement {req!r}; known: {', '.join(REQUIREMENTS)}.")
            if not self.has(req):
                reasons.append(REQUIREMENTS[req])
        if not reasons:
            return ""
        hint = ""
        if any("raw" in r for r in reasons) and not all(s.items.has_inputs for s in self.splits.values()):
            hint = " (the audit was given precomputed embeddings)"
        return "needs " + "; ".join(reasons) + hint

    def has(self, req: str) -> bool:
        if req == "model":
            return self.model is not None
        split, _, what = req.partition("_")
        s = self.splits.get(split)
        if s is None:
            return False
        if what == "inputs":
            return s.items.has_inputs
        if what == "labels":
            return s.items.labels is not None
        if what == "pairs":
            return s.pairs is not None
        if what == "episodes":
            return s.episodes is not None
        if what == "pairs_any":
            return self.pairs(split) is not None
        if what == "episodes_any":
            return self.episodes(split) is not None
        if what == "identities":
            return self.identities(split) is not None
        return False

    # -- derived protocol objects ---------------------------------------------------------------------
    def identities(self, split: str) -> np.ndarray | None:
        """Identity per item (N,): labels, else connected components of positive pairs, else None."""

        def compute() -> np.ndarray | None:
            s = self.splits[split]
            if s.items.labels is not None:
                return s.items.labels
            pairs = s.pairs if s.pairs is not None else self.pairs(split)
            if pairs is not None and pairs.label.any():
                return labels_from_pairs(pairs)
            return None

        return self.memo(("identities", split), compute)

    def identities_origin(self, split: str) -> str:
        s = self.splits[split]
        if s.items.labels is not None:
            return "labels"
        return "connected components of " + (
            "positive pairs" if s.pairs is not None else "anchor-correct pairs of the episodes"
        )

    def pairs(self, split: str) -> Pairs | None:
        """The split's pairs: given, else derived from its episodes, else generated from labels."""

        def compute() -> tuple[Pairs | None, str]:
            s = self.splits[split]
            if s.pairs is not None:
                return s.pairs, "given"
            if s.episodes is not None:
                return pairs_from_episodes(
                    s.episodes
                ), "from episodes (anchor-correct similar, anchor-other dissimilar)"
            if s.items.labels is not None:
                counts = np.unique(s.items.labels, return_counts=True)[1]
                if counts.size >= 2 and counts.max() >= 2:  # a similar and a dissimilar pair can be formed
                    return make_pairs(s.items, seed=self.rng(f"pairs.{split}")), "generated from labels"
                return None, "unavailable (labels need two identities and one with two items)"
            return None, "unavailable"

        return self.memo(("pairs", split), compute)[0]

    def pairs_origin(self, split: str) -> str:
        self.pairs(split)
        return self._memo[("pairs", split)][1]

    def n_way(self) -> int:
        """n of generated episodes, the one rule: the config's ``n_way``, else the n of the episodes the user
        gave (validation first, then training), else 10."""
        if self.option("n_way") is not None:
            return int(self.option("n_way"))
        for split in ("val", "train"):
            if self.splits[split].episodes is not None:
                return self.splits[split].episodes.n_way
        return 10

    def episodes(self, split: str) -> Episodes | None:
        """The split's episodes: given, else from labels, else from the positive-pair graph."""

        def compute() -> tuple[Episodes | None, str]:
            s = self.splits[split]
            if s.episodes is not None:
                return s.episodes, "given"
            ids = self.identities(split)
            if ids is None:
                return None, "unavailable"
            n_classes = np.unique(ids).size
            n_way = min(self.n_way(), n_classes)
            if n_way < 2 or not np.any(np.bincount(np.unique(ids, return_inverse=True)[1]) >= 2):
                return None, "unavailable"
            origin = f"generated from {self.identities_origin(split)}"
            if n_way < self.n_way():
                origin += f" (only {n_classes} identities, so {n_way}-way)"
            return make_episodes(s.items, n_way=n_way, seed=self.rng(f"episodes.{split}"), labels=ids), origin

        return self.memo(("episodes", split), compute)[0]

    def episodes_origin(self, split: str) -> str:
        self.episodes(split)
        return self._memo[("episodes", split)][1]

    # -- scores ---------------------------------------------------------------------------------------
    def raw_scores(
        self, split: str, left: np.ndarray, right: np.ndarray, *, other_split: str | None = None
    ) -> np.ndarray:
        """The user's raw score for item pairs (P,) of ``split`` (right side from ``other_split`` if given)."""
        emb_l = self.embeddings(split)
        emb_r = self.embeddings(other_split or split)
        return self.raw_scores_of(emb_l[left], emb_r[right])

    def raw_scores_of(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The user's raw score on embedding rows (P, d) and (P, d) -> (P,)."""
        if self.model is not None:
            return self.model.raw_scores(a, b)
        import torch

        return euclidean_distance(torch.from_numpy(a), torch.from_numpy(b)).double().numpy()

    def raw_pair_scores(self, split: str) -> np.ndarray:
        """The user's raw scores (P,) of ``self.pairs(split)``."""

        def compute() -> np.ndarray:
            p = self.pairs(split)
            return self.raw_scores(split, p.left, p.right)

        return self.memo(("raw_pair_scores", split), compute)

    def raw_episode_scores(self, split: str) -> np.ndarray:
        """The user's raw scores (E, n) of each anchor against its candidates in ``self.episodes(split)``."""

        def compute() -> np.ndarray:
            e = self.episodes(split)
            left = np.repeat(e.anchor, e.n_way)
            return self.raw_scores(split, left, e.candidates.reshape(-1)).reshape(len(e), e.n_way)

        return self.memo(("raw_episode_scores", split), compute)

    def reading(self) -> Reading:
        """How gapdiag reads the score for its analysis: as declared by ``kind``, or reversed when the
        training pairs show the declared reading is inverted (their AUC read as declared has its whole CI
        below ``0.5 - direction_margin``). The user's own validation number is still read as declared."""

        def compute() -> Reading:
            from .stats import delong_auc

            split = self.separable_split()
            p = self.pairs(split)
            level = float(self.option("ci_level"))
            declared = self.scorer.orient(self.raw_pair_scores(split))
            y = p.label.astype(bool)
            if y.all() or not y.any():
                return Reading(self.scorer, Estimate.unknown(len(p), level), False, split)
            auc = delong_auc(declared, y, level)  # every pair, every probe waits for it: no resampling
            inverted = bool(np.isfinite(auc.high) and auc.below(0.5 - float(self.option("direction_margin"))))
            return Reading(self.scorer.reversed() if inverted else self.scorer, auc, inverted, split)

        return self.memo("reading", compute)

    def pair_scores(self, split: str) -> np.ndarray:
        """Scores (P,) of ``self.pairs(split)`` in gapdiag's reading: higher = more similar (see :meth:`reading`)."""
        return self.memo(
            ("pair_scores", split), lambda: self.reading().scorer.orient(self.raw_pair_scores(split))
        )

    def episode_scores(self, split: str) -> np.ndarray:
        """Scores (E, n) of anchor vs each candidate of ``self.episodes(split)``, in gapdiag's reading."""
        return self.memo(
            ("episode_scores", split), lambda: self.reading().scorer.orient(self.raw_episode_scores(split))
        )

    def separable_split(self) -> str:
        """The split whose pairs decide the threshold and the reading: training, unless its pairs are missing
        or all of one kind (then validation). An ``InputError`` when neither has similar and dissimilar pairs."""
        for split in ("train", "val"):
            p = self.pairs(split)
            if p is not None and p.label.any() and not p.label.all():
                return split
        raise InputError(
            "Neither split has both similar and dissimilar pairs, so no decision threshold can be measured. Give "
            "training or validation pairs of both kinds, or identity labels with at least two identities."
        )

    def decision_threshold(self) -> tuple[float, str]:
        """The pairwise decision threshold on the oriented scale and where it comes from.

        The user's ``threshold`` option (raw scale) if given, else the threshold that maximizes accuracy on
        the training pairs the user gave (balanced accuracy on pairs derived from episodes or labels).
        """

        def compute() -> tuple[float, str]:
            user = self.option("threshold")
            if user is not None:
                return float(self.reading().scorer.orient(np.asarray(float(user)))), "given by the user"
            from .metrics import best_threshold

            split = self.separable_split()
            p = self.pairs(split)
            # Pairs the user gave: the threshold that maximizes their accuracy, as their own tuning would.
            # Derived pairs (1 similar to n-1 dissimilar from episodes) would push a plain-accuracy threshold
            # to "always dissimilar"; balanced accuracy keeps it meaningful.
            balanced = self.pairs_origin(split) != "given"
            threshold = float(best_threshold(self.pair_scores(split), p.label, balanced=balanced)[0])
            where = "training" if split == "train" else "validation (the training pairs are all of one kind)"
            rule = "maximum balanced accuracy, the pairs being derived" if balanced else "maximum accuracy"
            return threshold, f"tuned on {where} pairs ({rule})"

        return self.memo("decision_threshold", compute)

    def neighbour_metric(self, *, n_pairs: int = 256) -> str:
        """The embedding distance, "euclidean" or "cosine", that ranks pairs like the user's own score.

        Scores ``n_pairs`` random training item pairs with the user's score and with both distances and keeps
        the one with the higher Spearman correlation (ties, e.g. unit-norm embeddings, give "euclidean").
        Memoised on the context.
        """

        def compute() -> str:
            from scipy.stats import spearmanr

            emb = self.embeddings("train")
            n = emb.shape[0]
            if n < 3:
                return "euclidean"
            rng = self.rng("neighbour_metric")
            a, b = rng.integers(0, n, n_pairs), rng.integers(0, n, n_pairs)
            keep = a != b
            a, b = a[keep], b[keep]
            user = self.reading().scorer.orient(self.raw_scores_of(emb[a], emb[b]))
            x, y = emb[a].astype(np.float64), emb[b].astype(np.float64)
            euc = -np.linalg.norm(x - y, axis=1)
            norms = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)
            if np.any(norms == 0) or np.ptp(user) == 0:
                return "euclidean"
            cos = (x * y).sum(axis=1) / norms
            r_euc = spearmanr(user, euc).statistic
            r_cos = spearmanr(user, cos).statistic
            return "cosine" if np.nan_to_num(r_cos) > np.nan_to_num(r_euc) + 1e-9 else "euclidean"

        return self.memo("neighbour_metric", compute)

    def label_overlap(self) -> dict[str, Any]:
        """Whether validation identities occur in training, by label (the numbers of GD104, for messages).

        Returns ``{"known": bool, "share_identities", "share_items", "n_val_identities", "setting", "words"}``;
        ``setting`` is "closed" (every val identity seen), "open" (none seen), "mixed", or "unknown" (labels
        missing on a split: pseudo-identities from pair graphs cannot be matched across splits).
        """
        tl, vl = self.train.items.labels, self.val.items.labels
        if tl is None or vl is None:
            return {
                "known": False,
                "setting": "unknown",
                "words": "whether validation identities occur in training is unknown (labels missing; see GD104)",
            }
        val_ids = np.unique(vl)
        seen_ids = np.isin(val_ids, np.unique(tl))
        share_ids = float(seen_ids.mean())
        share_items = float(np.isin(vl, tl).mean())
        n_seen, n_all = int(seen_ids.sum()), int(val_ids.size)
        if n_seen == n_all:
            setting, words = (
                "closed",
                f"all {n_all} validation identities also occur in training (closed set)",
            )
        elif n_seen == 0:
            setting, words = (
                "open",
                f"none of the {n_all} validation identities occurs in training (open set)",
            )
        else:
            setting = "mixed"
            words = f"{n_seen} of {n_all} validation identities ({share_items:.0%} of val items) occur in training"
        return {
            "known": True,
            "setting": setting,
            "share_identities": share_ids,
            "share_items": share_items,
            "n_val_identities": n_all,
            "words": words,
        }

    # -- neighbours -----------------------------------------------------------------------------------
    def declare_neighbours(self, split: str, k: int, *, database: str | None = None) -> None:
        """Record, before probes run, that one needs ``k`` neighbours per item of ``split`` (in ``database``).

        Each graph (a split in itself, or one split's items among another's) is then built once, as deep
        as the deepest declared need (within a memory bound), and every probe reads it through
        :meth:`neighbour_graph` or :meth:`cross_neighbours`.
        """
        key = (split, database or split)
        if k > 0:
            self._neighbour_depth[key] = max(self._neighbour_depth.get(key, 0), int(k))

    def neighbour_depth(self, split: str, database: str | None = None) -> int:
        """The deepest neighbour need declared for ``split`` in ``database`` (0 when none was)."""
        return self._neighbour_depth.get((split, database or split), 0)

    def neighbour_queries(self, split: str, database: str | None = None) -> np.ndarray:
        """Rows (m,) of ``split`` that query a neighbour search against all of ``database`` (default: itself).

        Every row while ``n_queries x n_database x d`` multiply-adds fit the ``neighbour_budget`` option
        (the search is exact); beyond it a seeded uniform sample of as many rows as the budget allows
        (at least 2000), so numbers from the graph become estimates whose intervals include the
        sampling. The same rows for every probe and every call.
        """

        def compute() -> np.ndarray:
            from .sampling import budgeted_queries

            n_db, d = self.embeddings(database or split).shape
            return budgeted_queries(
                self.embeddings(split).shape[0],
                n_db * d,
                float(self.option("neighbour_budget")),
                self.rng(f"neighbour_queries.{split}.{database or split}"),
            )

        return self.memo(("neighbour_queries", split, database or split), compute)

    def neighbour_graph(self, split: str, k: int | None = None) -> NeighbourGraph:
        """The split's self-excluded kNN graph (queries of :meth:`neighbour_queries` against all items).

        Built once per split in the metric of :meth:`neighbour_metric`, ``max(k, declared depth)`` deep
        (the declared depth bounded so the graph stays under ``_GRAPH_BYTES``); asking deeper than it was
        built rebuilds it deeper. Returns the graph cut to ``k`` neighbours per row (``None``: as built).
        """
        n = self.embeddings(split).shape[0]
        if n < 2:
            raise InputError(f"The {split} split has {n} item(s); a neighbour graph needs at least 2.")
        with self._key_lock(("neighbour_graph", split)):
            return self._self_graph(split, n, k)

    def _self_graph(self, split: str, n: int, k: int | None) -> NeighbourGraph:
        from .neighbors import NeighbourGraph, self_knn_blocks

        graph = self._memo.get(("neighbour_graph", split))
        if k is None and graph is not None:
            return graph
        k = min(int(k or 1), n - 1)
        if graph is None or graph.k < k:
            rows = self.neighbour_queries(split)
            per_row = _GRAPH_BYTES // (12 * max(1, rows.size))
            depth = min(n - 1, max(k, min(self.neighbour_depth(split), per_row)))
            idx = np.empty((rows.size, depth), dtype=np.int64)
            dist = np.empty((rows.size, depth), dtype=np.float32)
            done = 0
            for block, i, d in self_knn_blocks(
                self.embeddings(split), depth, rows=rows, metric=self.neighbour_metric()
            ):
                idx[done : done + block.size], dist[done : done + block.size] = i, d
                done += block.size
            graph = NeighbourGraph(rows, idx, dist, self.neighbour_metric(), n, n)
            self._memo[("neighbour_graph", split)] = graph
        return graph.head(k)

    def cross_neighbours(self, split: str, database: str, k: int | None = None) -> NeighbourGraph:
        """k nearest ``database`` items of the :meth:`neighbour_queries` rows of ``split`` (None: as built).

        Built once, ``max(k, declared depth)`` deep, like :meth:`neighbour_graph`.
        """
        with self._key_lock(("cross_neighbours", split, database)):
            return self._cross_graph(split, database, k)

    def _cross_graph(self, split: str, database: str, k: int | None) -> NeighbourGraph:
        from .neighbors import NeighbourGraph, knn

        graph = self._memo.get(("cross_neighbours", split, database))
        if k is None and graph is not None:
            return graph
        db = self.embeddings(database)
        k = min(int(k or 1), db.shape[0])
        if graph is None or graph.k < k:
            rows = self.neighbour_queries(split, database)
            emb = self.embeddings(split)
            queries = emb if rows.size == emb.shape[0] else emb[rows]
            depth = min(db.shape[0], max(k, self.neighbour_depth(split, database)))
            idx, dist = knn(queries, db, depth, metric=self.neighbour_metric())
            graph = NeighbourGraph(rows, idx, dist, self.neighbour_metric(), emb.shape[0], db.shape[0])
            self._memo[("cross_neighbours", split, database)] = graph
        return graph.head(k)

    def embed_new(self, x, *, mode: str = "eval") -> np.ndarray:
        """Embed new inputs (B, ...) that probes build themselves (counterfactuals, mode checks) -> (B, d)."""
        if self.model is None:
            raise InputError("This probe needs the model to embed new inputs, and the audit has none.")
        from ._threads import exclusive

        with exclusive():  # the model's lock: the count and the call in one turn
            self.extra_items_encoded += int(x.shape[0])
            return self.model.embed(x, mode=mode)
