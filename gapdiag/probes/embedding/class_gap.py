"""GD202 — class-level generalization gap: retrieval and cluster quality on validation vs training."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np
from threadpoolctl import threadpool_limits

from ..._threads import ignoring_warnings
from ...findings.finding import Finding, Severity
from ...metrics import cluster_metrics, per_class_retrieval, retrieval_metrics
from ...stats import Estimate, bootstrap_mean, estimate_from_draws, mean_bootstrap_draws
from ..base import FigureSpec, Measurement, Probe
from ..registry import register_probe

if TYPE_CHECKING:
    from ...context import AuditContext

__all__ = ["ClassGapProbe"]

# umap-learn's numba kernels are entered by one thread at a time: numba's default threading layer
# (workqueue) is not thread-safe, and probes run side by side
_UMAP_TURNS = threading.Lock()


def _chance(labels: np.ndarray, query_labels: np.ndarray) -> float:
    """Expected precision of a random ranking: mean over queries of (n_c - 1) / (n - 1)."""
    uniq, counts = np.unique(labels, return_counts=True)
    n_c = counts[np.searchsorted(uniq, query_labels)]
    return float(np.mean((n_c - 1) / (labels.size - 1)))


def _umap(x: np.ndarray, metric: str, *, seed: int, params: dict[str, Any]) -> np.ndarray:
    """2-D UMAP layout (m, 2) of the sampled embeddings ``x`` (m, d), from our own exact kNN lists.

    Handing umap-learn the neighbour lists (``precomputed_knn``, each row's own point first) skips its
    all-pairs distances through a per-pair Python callable (small data) or pynndescent (large), which
    cost more than the layout itself.
    """
    import umap  # noqa: PLC0415  (heavy, imported only when the figure is drawn)

    from ...neighbors import knn

    _cache_umap_compilation()

    k = int(min(params["umap_n_neighbors"], x.shape[0] - 1))
    idx, dist = knn(x, x, k, metric=metric)  # self included: distance 0, first
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=k,
        metric=metric,
        random_state=seed,
        n_jobs=1,  # a seed makes umap-learn single-threaded anyway; say so to keep it quiet
        n_epochs=int(params["umap_n_epochs"]),
        init="random" if x.shape[0] < 50 else "spectral",
        precomputed_knn=(idx, dist.astype(np.float32), None),
    )
    # "transform unavailable" without an NNDescent index: never used here
    with _UMAP_TURNS, ignoring_warnings(UserWarning, "precomputed_knn"):
        return reducer.fit_transform(x)


def _identity_sample(ids: np.ndarray, max_items: int, rng: np.random.Generator) -> np.ndarray:
    """Rows (sorted) of whole identities drawn in random order until ``max_items`` items are reached.

    k-means and the silhouette judge how the items of an identity group together, so a sample keeps
    identities whole: a uniform sample of 5,000 items from 10,000 identities would hold mostly single items.
    """
    if ids.size <= max_items:
        return np.arange(ids.size)
    uniq, inverse = np.unique(ids, return_inverse=True)
    counts = np.bincount(inverse.reshape(-1))
    order = rng.permutation(uniq.size)
    take = order[: max(2, int(np.searchsorted(np.cumsum(counts[order]), max_items, side="right")))]
    return np.flatnonzero(np.isin(inverse.reshape(-1), take))


def _cache_umap_compilation() -> None:
    """Let numba cache umap-learn's compiled functions on disk (numba's own cache, ``NUMBA_CACHE_DIR``).

    umap-learn compiles its numba functions on first use in every process without caching them: about
    10 s per audit on a 2-core machine, more than the rest of the probe. ``Dispatcher.enable_caching`` is
    what ``cache=True`` does; with it only the first audit on a machine compiles. Best effort: a umap or
    numba that does not allow it just compiles as before.
    """
    import importlib

    try:
        from numba.core.dispatcher import Dispatcher

        for name in ("umap.umap_", "umap.layouts", "umap.utils", "umap.spectral", "umap.distances"):
            for obj in vars(importlib.import_module(name)).values():
                if isinstance(obj, Dispatcher) and type(obj._cache).__name__ == "NullCache":
                    obj.enable_caching()
    except Exception:  # noqa: BLE001 - an optimization only
        return


def _point_meta(ctx: AuditContext, rows: dict[str, np.ndarray], xy: np.ndarray) -> dict:
    """Split, row, item id and identity of each mapped point (train rows first, then val), and thumbnails of
    up to 16 points spread over the map (farthest-point order) when the inputs are images."""
    split = [s for s in ("train", "val") for _ in range(rows[s].size)]
    row = [int(r) for s in ("train", "val") for r in rows[s]]
    ids = [_plain_id(ctx.splits[s].items.ids[r]) for s in ("train", "val") for r in rows[s]]
    identity = []
    for s in ("train", "val"):
        ids_s = ctx.identities(s)
        identity += (
            ["unknown"] * rows[s].size if ids_s is None else [str(v) for v in np.asarray(ids_s)[rows[s]]]
        )
    meta: dict[str, Any] = {"split": split, "row": row, "id": ids, "identity": identity}
    if not all(ctx.splits[s].items.has_inputs for s in ("train", "val")) or xy.shape[0] == 0:
        return meta
    from ...thumbnails import thumbnails  # noqa: PLC0415

    picks = [0]
    dist = np.linalg.norm(xy - xy[0], axis=1)
    while len(picks) < min(16, xy.shape[0]):
        picks.append(int(np.argmax(dist)))
        dist = np.minimum(dist, np.linalg.norm(xy - xy[picks[-1]], axis=1))
    images = []
    for p in picks:
        img = thumbnails(ctx.splits[split[p]].items.get_batch(np.array([row[p]])), max_side=32)
        if img is None:
            return meta
        images.append({"point": p, "image": img[0]})
    meta["thumbnails"] = images
    return meta


def _plain_id(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@register_probe
class ClassGapProbe(Probe):
    """GD202 — is retrieval on validation identities far below retrieval on training identities?

    **What it measures.** On each split's embeddings, leave-one-out retrieval with the split's identities
    (labels, or connected components of positive pairs): precision@1, R-precision, MAP@R and recall@k
    (pytorch-metric-learning definitions, self-match excluded, bootstrap CIs over queries; see
    :func:`gapdiag.metrics.retrieval_metrics`), and NMI/AMI of k-means plus a sampled silhouette
    (:func:`gapdiag.metrics.cluster_metrics`). The distance is the one that ranks pairs like the user's
    score (euclidean or cosine, see :func:`neighbour_metric`).

    **Decision statistic.** R-precision depends on how many identities a split has: with 3 identities a
    random ranking already scores about 1/3, with 7 about 1/7. Each split's R-precision is therefore
    read above its chance level ``c = mean over queries of (n_class - 1) / (n - 1)``:
    ``lift = (R-precision - c) / (1 - c)`` (0 = chance, 1 = perfect). The ratio ``lift_val / lift_train``
    (1 = no gap, lower = worse on validation) and the difference ``lift_train - lift_val`` carry
    bootstrap CIs over queries of both splits.

    **Codes.** GD202 warn when the ratio is below ``warn_ratio`` (fail below ``fail_ratio``) and the CI
    of the difference excludes 0. The message says whether validation identities are seen (closed set)
    or unseen (open set), from the share of validation labels that occur in training.

    **Figures.** A UMAP (umap-learn, seeded, at most ``umap_max_points`` points; PCA with a note when
    umap-learn is missing or fails) of train+val embeddings coloured by split and by identity; the
    validation identities with the lowest R-precision, with their CIs (and their training R-precision
    when the identity also occurs in training).
    """

    name = "class_gap"
    concurrent = True
    family = "embedding"
    codes = ("GD202",)
    # Real identity labels only: groups inferred from positive pairs are fragments of identities, and an
    # identity-level number on them, compared across splits, would be a number about gapdiag's guess.
    requires = frozenset({"train_labels", "val_labels"})
    defaults: dict[str, Any] = {
        "warn_ratio": 0.6,  # val/train R-precision above chance
        "fail_ratio": 0.3,
        "cluster_max_items": 5000,  # items per split (whole identities) for k-means NMI/AMI and the silhouette
        "n_worst_classes": 10,  # validation identities shown in the per-class figure
        "umap": True,  # draw the UMAP figure (umap-learn's first call compiles for ~10-20 s)
        "umap_max_points": 1000,  # points in the UMAP (half per split where possible); ~2 s after the JIT
        "umap_n_neighbors": 15,
        "umap_n_epochs": 200,  # optimisation epochs (umap-learn's default for small data is 500)
    }
    description = "Validation retrieval/cluster quality against training (GD202), UMAP of both splits."

    # -- measuring ----------------------------------------------------------------------------------
    def neighbours_needed(self, ctx: AuditContext) -> dict[str, int]:
        """R-precision needs each query's R nearest (R = the other items of its identity), recall@10 ten."""
        out = {}
        for split in ("train", "val"):
            ids = ctx.splits[split].items.labels
            if ids is not None and len(ids) > 1:
                largest = int(np.unique(np.asarray(ids), return_counts=True)[1].max())
                out[split] = min(len(ids) - 1, max(largest - 1, 10))
        return out

    def _measure(self, ctx: AuditContext) -> Measurement:
        n_boot, level = int(ctx.option("n_boot")), float(ctx.option("ci_level"))
        metric = ctx.neighbour_metric()
        metrics: dict[str, Any] = {"metric": metric, "identity_overlap": ctx.label_overlap()}
        notes: list[str] = []
        per_split: dict[str, dict[str, Any]] = {}
        for split in ("train", "val"):
            entry = self._split_entry(ctx, split, n_boot, level, notes)
            if entry is not None:
                per_split[split] = entry
        usable = len(per_split) == 2
        for split, entry in per_split.items():
            res = entry["retrieval"]
            metrics[split] = {
                **res.to_dict(),
                "chance_r_precision": round(entry["chance_r_precision"], 6),
                "identities_from": entry["identities_from"],
                "n_identities": entry["n_identities"],
                "n_items_evaluated": entry["n_items_evaluated"],
                **{
                    k: (v.to_dict() if isinstance(v, Estimate) else v)
                    for k, v in entry.get("cluster", {}).items()
                },
            }
            if res.estimated:
                notes.append(
                    f"{split}: retrieval estimated from a seeded sample of {res.n_queries} of "
                    f"{res.n_queries_total} queries, each against all {res.n_items} items (intervals include "
                    "the sampling)."
                )
        figures: list[FigureSpec] = []
        if usable:
            metrics.update(self._gap(per_split, ctx, n_boot, level))
            figures.append(self._worst_classes_figure(per_split, ctx, n_boot, level))
        metrics["measured"] = usable
        if self.params["umap"]:
            # small dense problems: BLAS threads only add contention (10-100x slower on a busy machine)
            with threadpool_limits(limits=1, user_api="blas"):
                fig, note = self._embedding_map(ctx, metric)
            if fig is not None:
                figures.append(fig)
            if note:
                notes.append(note)
        return Measurement(metrics=metrics, figures=figures, notes=notes)

    def _split_entry(
        self, ctx: AuditContext, split: str, n_boot: int, level: float, notes: list[str]
    ) -> dict[str, Any] | None:
        """Retrieval (from the split's shared neighbour graph) and cluster metrics of one split, or None."""
        ids = np.asarray(ctx.splits[split].items.labels)  # real identity labels only (see ``requires``)
        uniq, counts = np.unique(ids, return_counts=True)
        if uniq.size < 2 or not np.any(counts >= 2):
            notes.append(
                f"The {split} split has {uniq.size} identities and {int((counts >= 2).sum())} with two or more "
                "items; retrieval needs at least two identities and one with two items."
            )
            return None
        emb = ctx.embeddings(split)
        ctx.neighbour_graph(split, min(10, ids.size - 1))  # recall@10 needs ten, whatever was declared
        graph = ctx.neighbour_graph(split)  # as deep as built; deeper queries are searched by retrieval
        res = retrieval_metrics(
            emb,
            ids,
            metric=graph.metric,
            rng=ctx.rng(f"class_gap.{split}"),
            n_boot=n_boot,
            level=level,
            query_rows=graph.rows,
            knn_indices=graph.indices,
        )
        entry: dict[str, Any] = {
            "identities_from": ctx.identities_origin(split),
            "retrieval": res,
            "chance_r_precision": _chance(ids, res.query_labels),
            "n_identities": int(uniq.size),
            "n_items_evaluated": int(ids.size),
        }
        crow = _identity_sample(
            ids, int(self.params["cluster_max_items"]), ctx.rng(f"class_gap.cluster.{split}")
        )
        if 2 <= np.unique(ids[crow]).size < crow.size:
            entry["cluster"] = cluster_metrics(
                emb[crow],
                ids[crow],
                rng=ctx.rng(f"class_gap.kmeans.{split}"),
                metric=graph.metric,
                n_boot=n_boot,
                level=level,
            )
        return entry

    def _gap(self, per_split: dict, ctx: AuditContext, n_boot: int, level: float) -> dict[str, Any]:
        """Lift of R-precision over chance per split, their ratio and difference with bootstrap CIs."""
        rng = ctx.rng("class_gap.gap")
        lifts, samples = {}, {}
        for split in ("train", "val"):
            e = per_split[split]
            c = e["chance_r_precision"]
            vals = e["retrieval"].per_query["r_precision"]
            lifts[split] = (float(vals.mean()) - c) / (1.0 - c)
            samples[split] = (mean_bootstrap_draws(vals, rng, n_boot) - c) / (1.0 - c)
        n = min(per_split["train"]["retrieval"].n_queries, per_split["val"]["retrieval"].n_queries)
        diff = estimate_from_draws(lifts["train"] - lifts["val"], samples["train"] - samples["val"], n, level)
        out: dict[str, Any] = {
            "lift_train": estimate_from_draws(lifts["train"], samples["train"], n, level),
            "lift_val": estimate_from_draws(lifts["val"], samples["val"], n, level),
            "lift_difference": diff,
        }
        if lifts["train"] > 0:
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio_s = np.where(samples["train"] > 0, samples["val"] / samples["train"], np.nan)
            out["ratio"] = estimate_from_draws(lifts["val"] / lifts["train"], ratio_s, n, level)
        return out

    def _worst_classes_figure(
        self, per_split: dict, ctx: AuditContext, n_boot: int, level: float
    ) -> FigureSpec:
        rng = ctx.rng("class_gap.per_class")
        val = per_split["val"]["retrieval"]
        table = per_class_retrieval(val)
        order = np.argsort(table["r_precision"], kind="stable")[: int(self.params["n_worst_classes"])]
        train = per_split["train"]["retrieval"]
        # the training bar only where validation identities also occur in training
        closed = ctx.label_overlap()["setting"] in ("closed", "mixed")
        groups, series = [], {"val": {"value": [], "low": [], "high": []}}
        if closed:
            series["train (same identity)"] = {"value": [], "low": [], "high": []}
        for j in order:
            lab = table["label"][j]
            groups.append(f"{lab} (n={int(table['n_queries'][j])})")
            est = bootstrap_mean(
                val.per_query["r_precision"][val.query_labels == lab], rng=rng, n_boot=n_boot, level=level
            )
            for key, v in (("value", est.value), ("low", est.low), ("high", est.high)):
                series["val"][key].append(round(float(v), 4))
            if closed:
                m = train.query_labels == lab
                if m.any():
                    t = bootstrap_mean(train.per_query["r_precision"][m], rng=rng, n_boot=n_boot, level=level)
                    vals = (t.value, t.low, t.high)
                else:
                    vals = (float("nan"),) * 3
                for key, v in zip(("value", "low", "high"), vals):
                    series["train (same identity)"][key].append(
                        round(float(v), 4) if np.isfinite(v) else None
                    )
        return FigureSpec(
            id="class_gap_worst_classes",
            kind="bars",
            title="Validation identities with the lowest R-precision",
            data={
                "groups": groups,
                "series": series,
                "ref": round(per_split["val"]["chance_r_precision"], 4),
                "ref_label": "chance (val)",
                "ylabel": "R-precision (higher = better)",
                "horizontal": True,
                "ylim": [0.0, 1.0],
            },
            caption="Per-identity R-precision with bootstrap CIs over that identity's queries.",
        )

    def _embedding_map(self, ctx: AuditContext, metric: str) -> tuple[FigureSpec | None, str]:
        """UMAP (or PCA) of a seeded subsample of train+val, as two scatter panels."""
        rng = ctx.rng("class_gap.umap")
        total = max(4, int(self.params["umap_max_points"]))
        n_tr, n_va = ctx.embeddings("train").shape[0], ctx.embeddings("val").shape[0]
        k_tr = min(n_tr, max(total // 2, total - n_va))
        k_va = min(n_va, total - k_tr)
        rows = {
            "train": np.sort(rng.choice(n_tr, k_tr, replace=False)),
            "val": np.sort(rng.choice(n_va, k_va, replace=False)),
        }
        x = np.concatenate([ctx.embeddings(s)[rows[s]] for s in ("train", "val")]).astype(np.float32)
        split_of = np.array(["train"] * k_tr + ["val"] * k_va)
        cls = []
        for s in ("train", "val"):
            cls.extend(str(v) for v in np.asarray(ctx.splits[s].items.labels)[rows[s]])
        cls = np.array(cls, dtype=object)
        # The scatter draws at most 20 groups: keep the 19 most frequent identities, pool the rest.
        uniq, counts = np.unique(cls, return_counts=True)
        if uniq.size > 20:
            keep = set(uniq[np.argsort(-counts, kind="stable")[:19]].tolist())
            cls = np.array([c if c in keep else "other" for c in cls], dtype=object)
        note = ""
        method = "UMAP"
        try:
            if x.shape[0] < 10:
                raise ValueError("too few points for UMAP")
            xy = _umap(
                x, metric, seed=int(ctx.rng("class_gap.umap").integers(0, 2**31 - 1)), params=self.params
            )
        except Exception as exc:  # a figure is never worth a failed probe: fall back to PCA, say why
            method = "PCA"
            note = f"UMAP unavailable ({type(exc).__name__}: {exc}); the embedding map uses PCA instead."
            xc = x - x.mean(axis=0)
            _, _, vt = np.linalg.svd(xc.astype(np.float64), full_matrices=False)
            xy = xc @ vt[:2].T if vt.shape[0] >= 2 else np.column_stack([xc @ vt[0], np.zeros(len(xc))])
        xy = np.asarray(xy, dtype=float)
        # identities listed (legend, colours) in natural order: numbers by value, then names
        names = sorted(set(cls.tolist()), key=lambda c: (0, float(c), "") if _is_number(c) else (1, 0.0, c))
        rank = {c: i for i, c in enumerate(names)}
        by_id = np.argsort([rank[c] for c in cls], kind="stable")
        fig = FigureSpec(
            id="class_gap_embedding_map",
            kind="scatter",
            title=f"{method} of train and validation embeddings ({x.shape[0]} sampled items)",
            data={
                "points": _point_meta(ctx, rows, xy),
                "panels": [
                    {
                        "title": "by split",
                        "x": xy[:, 0].round(4).tolist(),
                        "y": xy[:, 1].round(4).tolist(),
                        "groups": split_of.tolist(),
                    },
                    {
                        "title": "by identity",
                        "x": xy[by_id, 0].round(4).tolist(),
                        "y": xy[by_id, 1].round(4).tolist(),
                        "groups": cls[by_id].tolist(),
                    },
                ],
            },
            caption=(
                f"Seeded subsample of {k_tr} training and {k_va} validation items, {metric} distance. "
                "Validation points outside the training clusters, or identities that do not form clusters, "
                "show the class-level gap."
            ),
        )
        return fig, note

    # -- judging ------------------------------------------------------------------------------------
    def _judge(self, m: Measurement) -> list[Finding]:
        mt = m.metrics
        if not mt.get("measured") or "ratio" not in mt:
            return []
        ratio: Estimate = mt["ratio"]
        diff: Estimate = mt["lift_difference"]
        p = self.params
        if not np.isfinite(ratio.value) or not diff.above(0.0):
            return []
        if ratio.value < p["fail_ratio"]:
            severity, bound = Severity.FAIL, p["fail_ratio"]
        elif ratio.value < p["warn_ratio"]:
            severity, bound = Severity.WARN, p["warn_ratio"]
        else:
            return []
        tr, va = mt["train"], mt["val"]
        overlap = mt["identity_overlap"]
        reading = {
            "open": "The validation identities are new to the model, so this is a transfer gap: the embedding "
            "separates the identities it was trained on but not new ones.",
            "closed": "The validation identities were seen in training, so the gap is over new items of known "
            "identities: look at memorization (GD201), leakage (GD101/GD102) and split shift (GD205).",
            "mixed": "Validation mixes seen and unseen identities (GD104); read the per-identity figure.",
            "unknown": "",
        }[overlap["setting"]]

        def rp(d: dict) -> str:
            e = d["r_precision"]
            return f"{e['value']:.2f} [{e['ci_low']:.2f}, {e['ci_high']:.2f}]"

        def figs(d: dict) -> str:
            p1, mr = d["precision_at_1"], d["map_at_r"]
            extra = f", AMI {d['ami']:.2f}" if "ami" in d else ""
            return f"P@1 {p1['value']:.2f}, MAP@R {mr['value']:.2f}{extra}"

        message = (
            f"R-precision on validation is {rp(va)} against {rp(tr)} on training (chance {va['chance_r_precision']:.2f} "
            f"and {tr['chance_r_precision']:.2f}: {va['n_identities']} vs {tr['n_identities']} identities). Above "
            f"chance that is {mt['lift_val']:.2f} vs {mt['lift_train']:.2f}, a ratio of {ratio:.2f} (< {bound}; 1 = no "
            f"gap). Validation {figs(va)}; training {figs(tr)}. {overlap['words'][0].upper() + overlap['words'][1:]}. "
            f"{reading}"
        ).strip()
        evidence = {
            "ratio": ratio.to_dict(),
            "lift_train": mt["lift_train"].to_dict(),
            "lift_val": mt["lift_val"].to_dict(),
            "lift_difference": diff.to_dict(),
            "train": tr,
            "val": va,
            "identity_overlap": overlap,
            "metric": mt["metric"],
        }
        figures = [f.id for f in m.figures]
        return [self.finding("GD202", severity, message, evidence=evidence, figures=figures)]
