"""GD203 — dimensional collapse (effective rank, alignment, uniformity) and GD204 — hubness."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from threadpoolctl import threadpool_limits

from ...findings.finding import Finding, Severity
from ...neighbors import k_occurrence, k_occurrence_skewness, knn
from ...stats import Estimate, bootstrap_mean, estimate_from_draws, wilson
from ..base import Measurement, Probe
from ..registry import register_probe

if TYPE_CHECKING:
    from ...context import AuditContext

__all__ = ["GeometryProbe", "effective_rank", "alignment", "uniformity"]


def effective_rank(x: np.ndarray) -> float:
    """Effective rank (Roy & Vetterli, 2007) of embeddings ``x`` (n, d).

    ``exp(H(p))`` with ``p_i = s_i / sum_j s_j`` the normalised singular values of the column-centred
    matrix and ``H`` the Shannon entropy (natural log, ``0 log 0 = 0``). In [1, min(n - 1, d)]: 1 when all
    variance lies on one direction, ``r`` when ``r`` directions carry equal singular values.
    """
    xc = np.asarray(x, dtype=np.float64)
    xc = xc - xc.mean(axis=0)
    s = np.linalg.svd(xc, compute_uv=False)
    return _erank_from_singular(s)


def _erank_from_singular(s: np.ndarray) -> float:
    s = np.clip(np.asarray(s, dtype=np.float64), 0.0, None)
    total = s.sum()
    if total <= 0:
        return 1.0
    p = s[s > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n == 0, 1.0, n)


def alignment(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pair ``||u - v||^2`` of L2-normalised embeddings (P, d) -> (P,) in [0, 4]; lower = closer."""
    return ((_unit(a) - _unit(b)) ** 2).sum(axis=1)


def uniformity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pair Gaussian potential ``exp(-2 ||u - v||^2)`` of L2-normalised embeddings (P, d) -> (P,).

    Each value lies in [e^-8, 1]. Wang & Isola's uniformity is the log of their mean over random pairs:
    0 when all embeddings coincide, about -4 for points spread uniformly over a high-dimensional sphere
    (its minimum is -8, two antipodal points); lower = more uniform.
    """
    return np.exp(-2.0 * ((_unit(a) - _unit(b)) ** 2).sum(axis=1))


def _spectrum(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (r,) ascending of the scatter of centred ``x`` (m, d) and the principal coordinates (m, r).

    ``r = min(m, d)``. Through the d x d scatter when d <= m, else through the m x m Gram matrix: memory stays
    ``min(m, d)**2`` (no d x d matrix for very wide embeddings).
    """
    m, d = x.shape
    if d <= m:
        lam, vec = np.linalg.eigh(x.T @ x)
        return lam, x @ vec
    lam, u = np.linalg.eigh(x @ x.T)
    return lam, u * np.sqrt(np.clip(lam, 0.0, None))


def null_embeddings(
    emb: np.ndarray, n: int, rng: np.random.Generator, *, max_items: int = 5000
) -> np.ndarray:
    """A Gaussian cloud (n, d) float32 with the mean and covariance spectrum of ``emb`` (N, d).

    The null for hubness: the same directions and variances, no cluster structure. Hubness that this cloud
    shows too comes from the dimension alone.
    """
    rows = rng.choice(emb.shape[0], min(emb.shape[0], max_items), replace=False)
    x = emb[rows].astype(np.float64)
    mean = x.mean(axis=0)
    x -= mean
    m, d = x.shape
    if d <= m:
        lam, vec = np.linalg.eigh(x.T @ x / max(m - 1, 1))
        g = rng.standard_normal((n, d)) * np.sqrt(np.clip(lam, 0.0, None))
        return (mean + g @ vec.T).astype(np.float32)
    # wide: sample in the span of the items (rank <= m), the exact covariance of that sample
    lam, u = np.linalg.eigh(x @ x.T)
    keep = lam > lam.max() * 1e-12
    basis = (x.T @ u[:, keep]) / np.sqrt(lam[keep])  # (d, r) orthonormal principal directions
    g = rng.standard_normal((n, int(keep.sum()))) * np.sqrt(lam[keep] / max(m - 1, 1))
    return (mean + g @ basis.T).astype(np.float32)


@register_probe
class GeometryProbe(Probe):
    """GD203 — dimensional collapse and GD204 — hubness of the embedding space, per split.

    **Effective rank (GD203).** ``erank = exp(H(p))``, ``p_i = s_i / sum_j s_j`` with ``s`` the singular
    values of the column-centred embedding matrix of the split (at most ``max_items`` random items),
    ``H`` the Shannon entropy (Roy & Vetterli, 2007). Range [1, min(n - 1, d)]; higher = more
    directions used. It is compared with what the identities need: separating ``C`` identities takes
    ``C - 1`` directions (a simplex), so the reference is ``r_need = min(d, C - 1, n - 1)`` with ``C`` the
    number of identities with two or more items. Collapse ratio ``= erank / r_need``; a split without
    identity labels gets no reference and is reported, not judged. CI: bootstrap over ``n_blocks`` random
    blocks of items, each resample re-weighting the blocks' scatter matrices: one pass over the items
    plus one ``q x q`` eigen-decomposition per resample (``q = min(d, max_dim_boot)``; above it the
    resampled spectrum is the top-``q`` principal subspace's, the tail held at its full-sample values);
    the percentile interval is re-centred on the estimate, since resampling biases a spectral entropy low. A split
    is collapsed when the ratio is below ``collapse_ratio`` and its whole CI is too. Warn when validation is
    collapsed and training is not (the validation identities are squeezed: a difference between the splits);
    info when training is collapsed too, since a collapse both splits share limits both alike and says nothing
    about the gap between them (a healthy model of 60 text identities used 6 of its 32 dimensions).
    Reported with it: alignment = mean ``||u - v||^2`` over positive pairs of L2-normalised
    embeddings (in [0, 4], lower = positives closer) and uniformity = ``log mean exp(-2 ||u - v||^2)``
    over ``uniformity_pairs`` random item pairs (Wang & Isola, 2020; in [-4, 0] in practice, lower = more
    uniform). Both are on normalised but not centred embeddings, as defined; a euclidean embedding far
    from the origin reads as non-uniform there without being collapsed, so neither is judged.

    **Hubness (GD204).** ``N_k(x)`` = the number of items whose ``k`` nearest neighbours (``hub_k``,
    self excluded, same distance as the user's score) include ``x``; the skewness of ``N_k`` over items
    (Radovanovic et al., 2010; 0 = symmetric, large positive = a few hubs in many lists), bootstrap CI over
    items. Reported with it: the share of anti-hubs (never a neighbour, Wilson CI) and the largest
    ``N_k`` against its mean ``k``, and the share of all neighbour-list slots taken by the top 1% of
    items (above ``max_items_hubness`` items, on a seeded subset of that many, searched among themselves).
    Null: a Gaussian cloud with the split's own mean and covariance spectrum (same n, k, metric),
    since high-dimensional data is hubby by dimension alone (i.i.d. Gaussian data in 32 dimensions reads
    about 2.9 for 1000 points, k = 10). Warn when the skewness exceeds ``warn_skewness`` (3: strong hubness)
    and its excess over the null reaches ``warn_excess_skewness`` with a CI above 0: hubs made by the
    embedding's structure, not its dimension.

    **Codes.** GD203 (warn for validation alone, else info) and GD204 (warn), per split; the message names the
    split.
    """

    name = "geometry"
    concurrent = True
    family = "embedding"
    codes = ("GD203", "GD204")
    requires = frozenset()
    defaults: dict[str, Any] = {
        # GD203: warn when erank / min(d, C - 1, n - 1) is below this (and its whole CI is): the embedding
        # uses less than about a third of the directions its C identities need
        "collapse_ratio": 0.3,
        "max_items": 5000,  # items per split for the spectrum
        "n_blocks": 100,  # blocks of items resampled for the effective-rank CI
        "max_rank_boot": 200,  # bootstrap resamples for the effective rank (each costs one q x q eigh)
        "max_dim_boot": 256,  # q: dimensions resampled in that bootstrap (the tail is held fixed above)
        "uniformity_pairs": 5000,  # random item pairs for uniformity
        "alignment_pairs": 5000,  # positive pairs for alignment (a random subset above this)
        # GD204
        "hub_k": 10,
        "warn_skewness": 3.0,  # k-occurrence skewness above which hubs dominate neighbour lists
        # ... and beyond what a Gaussian cloud with the embedding's own spectrum shows (dimensional hubness
        # alone is info): the excess must reach this, with its CI above 0
        "warn_excess_skewness": 2.0,
        # items per split for hubness: above it, the observed and the null skewness are both measured on a
        # seeded random subset of this many items searched among themselves (k-occurrence needs every item's
        # list, and skewness grows with n, so both sides must have the same n); the null's own exact kNN then
        # costs (5000)^2 instead of N^2
        "max_items_hubness": 5000,
    }
    description = "Effective rank, alignment, uniformity (GD203) and hubness (GD204) per split."

    def neighbours_needed(self, ctx: AuditContext) -> dict[str, int]:
        return {"train": int(self.params["hub_k"]), "val": int(self.params["hub_k"])}

    def _measure(self, ctx: AuditContext) -> Measurement:
        n_boot, level = int(ctx.option("n_boot")), float(ctx.option("ci_level"))
        metric = ctx.neighbour_metric()
        metrics: dict[str, Any] = {"metric": metric}
        notes: list[str] = []
        for split in ("train", "val"):
            emb = ctx.embeddings(split)
            entry: dict[str, Any] = {"n_items": int(emb.shape[0]), "dimension": int(emb.shape[1])}
            if emb.shape[0] < 3:
                notes.append(f"The {split} split has {emb.shape[0]} items: too few for geometry.")
                metrics[split] = entry
                continue
            # d x d problems gain nothing from BLAS threads, and on a busy machine threads make the small
            # LAPACK calls 10-100x slower through contention
            with threadpool_limits(limits=1, user_api="blas"):
                entry.update(self._collapse(ctx, split, emb, n_boot, level))
            entry.update(self._hubness(ctx, split, emb, metric, n_boot, level))
            metrics[split] = entry
        return Measurement(metrics=metrics, notes=notes)

    # -- GD203 ---------------------------------------------------------------------------------------
    def _collapse(self, ctx: AuditContext, split: str, emb: np.ndarray, n_boot: int, level: float) -> dict:
        rng = ctx.rng(f"geometry.rank.{split}")
        n, d = emb.shape
        rows = np.arange(n)
        if n > int(self.params["max_items"]):
            rows = np.sort(rng.choice(n, int(self.params["max_items"]), replace=False))
        x = emb[rows].astype(np.float64)
        m = x.shape[0]
        x -= x.mean(axis=0)
        lam, z_all = _spectrum(x)
        erank = _erank_from_singular(np.sqrt(np.clip(lam, 0.0, None)))
        # Identity labels only: pseudo-identities from the positive-pair graph are fragments of the true
        # identities, and their count would overstate the directions needed.
        ids = ctx.splits[split].items.labels
        if ids is not None:
            _, counts = np.unique(np.asarray(ids)[rows], return_counts=True)
            n_classes = int((counts >= 2).sum())
            need = max(1, min(d, n_classes - 1, m - 1))
            need_from = f"min(d={d}, identities-1={n_classes - 1}, n-1={m - 1})"
        else:
            n_classes, need, need_from = None, None, "unknown (no identity labels)"
        samples = self._erank_draws(z_all, lam, rng, n_boot)
        # Resampling blocks adds sampling noise to the spectrum, which spreads the eigenvalues and biases
        # every resample's entropy low; the percentile interval is re-centred on the estimate (its width
        # kept), or it would sit wholly below the value it belongs to.
        raw = estimate_from_draws(erank, samples, m, level)
        shift = erank - float(np.median(samples))
        erank_est = Estimate(erank, raw.low + shift, raw.high + shift, m, level)
        ratio_est = (
            Estimate(erank / need, erank_est.low / need, erank_est.high / need, m, level) if need else None
        )

        out: dict[str, Any] = {
            "effective_rank": erank_est,
            "effective_rank_over_d": round(erank / d, 6),
            "rank_needed": need,
            "rank_needed_from": need_from,
            "collapse_ratio": ratio_est,
            "n_identities": n_classes,
            "n_items_spectrum": m,
        }
        # Alignment over positive pairs (given, or derived from episodes/labels).
        pairs = ctx.pairs(split)
        if pairs is not None and pairs.label.any():
            pos = np.flatnonzero(pairs.label == 1)
            if pos.size > int(self.params["alignment_pairs"]):
                pos = rng.choice(pos, int(self.params["alignment_pairs"]), replace=False)
            out["alignment"] = bootstrap_mean(
                alignment(emb[pairs.left[pos]], emb[pairs.right[pos]]), rng=rng, n_boot=n_boot, level=level
            )
            out["alignment_pairs"] = ctx.pairs_origin(split)
        k = int(self.params["uniformity_pairs"])
        a, b = rng.integers(0, n, k), rng.integers(0, n, k)
        keep = a != b
        pot = bootstrap_mean(uniformity(emb[a[keep]], emb[b[keep]]), rng=rng, n_boot=n_boot, level=level)
        out["uniformity"] = Estimate(
            float(np.log(pot.value)), float(np.log(pot.low)), float(np.log(pot.high)), pot.n, level
        )
        return out

    def _erank_draws(
        self, z_all: np.ndarray, lam: np.ndarray, rng: np.random.Generator, n_boot: int
    ) -> np.ndarray:
        """Bootstrap draws of the effective rank from principal coordinates (m, r) and eigenvalues (r,)."""
        m = z_all.shape[0]
        # Block bootstrap on sufficient statistics (count, sum, scatter) per random block of items. Above
        # ``max_dim_boot`` dimensions the resampled spectrum is that of the top principal subspace, the
        # tail eigenvalues held at their full-sample values (memory stays n_blocks x q x q).
        q = int(min(lam.size, self.params["max_dim_boot"]))
        z, tail = z_all[:, -q:], lam[:-q]
        g = int(min(self.params["n_blocks"], m))
        block = rng.permutation(m) % g
        cnt = np.bincount(block, minlength=g).astype(np.float64)
        sums = np.stack([z[block == b].sum(axis=0) for b in range(g)])
        flat = np.stack([z[block == b].T @ z[block == b] for b in range(g)]).reshape(g, q * q)
        n_rank_boot = int(min(n_boot, self.params["max_rank_boot"]))
        samples = np.empty(n_rank_boot)
        step = max(1, (1 << 22) // (q * q))  # resamples per batch: about 32 MB of scatter matrices
        for s0 in range(0, n_rank_boot, step):
            b = min(step, n_rank_boot - s0)
            w = np.stack([np.bincount(rng.integers(0, g, g), minlength=g) for _ in range(b)]).astype(float)
            tot = w @ cnt  # (b,)
            mu = (w @ sums) / tot[:, None]  # (b, q)
            scatter = (w @ flat).reshape(b, q, q) - tot[:, None, None] * mu[:, :, None] * mu[:, None, :]
            lam_b = np.linalg.eigvalsh(scatter)  # batched, (b, q)
            samples[s0 : s0 + b] = [
                _erank_from_singular(np.sqrt(np.clip(np.concatenate([tail, row]), 0.0, None)))
                for row in lam_b
            ]
        return samples

    # -- GD204 ---------------------------------------------------------------------------------------
    def _hubness(
        self, ctx: AuditContext, split: str, emb: np.ndarray, metric: str, n_boot: int, level: float
    ) -> dict:
        rng = ctx.rng(f"geometry.hubness.{split}")
        n = emb.shape[0]
        k = int(min(self.params["hub_k"], n - 1))
        cap = int(self.params["max_items_hubness"])
        if n <= cap and ctx.neighbour_queries(split).size == n:  # the shared graph: every item's k nearest
            idx = ctx.neighbour_graph(split, k).indices
        else:  # a random subset of items, searched among themselves, the null at the same size
            rows = np.sort(rng.choice(n, min(n, cap), replace=False))
            sub = emb[rows]
            idx, _ = knn(sub, sub, k, metric=metric, exclude_self=True)
            n = rows.size
        counts = k_occurrence(idx, n)
        skew = k_occurrence_skewness(counts)
        # Resampling items = a multinomial draw of how often each distinct count occurs (few levels),
        # so each resample's moments come from (levels,) sums: O(n_boot x levels), not O(n_boot x n).
        levels, freq = np.unique(counts, return_counts=True)
        v = levels.astype(np.float64) - counts.mean()  # centred: no cancellation in the third moment
        w = rng.multinomial(n, freq / n, size=n_boot).astype(np.float64) / n
        m1, m2, m3 = w @ v, w @ v**2, w @ v**3
        var = m2 - m1**2
        with np.errstate(invalid="ignore", divide="ignore"):
            samples = [(m3 - 3 * m1 * m2 + 2 * m1**3) / var**1.5]
        skew_est = estimate_from_draws(skew, np.concatenate(samples) if samples else np.empty(0), n, level)
        # the null: a Gaussian cloud with this split's own spectrum, same n, k and metric
        null_emb = null_embeddings(emb, n, rng)
        null_idx, _ = knn(null_emb, null_emb, k, metric=metric, exclude_self=True)
        null_skew = float(k_occurrence_skewness(k_occurrence(null_idx, n)))
        draws = np.concatenate(samples) if samples else np.empty(0)
        top = int(np.argmax(counts))
        return {
            "hub_k": k,
            "k_occurrence_skewness": skew_est,
            "null_skewness": round(null_skew, 6),
            "excess_skewness": estimate_from_draws(skew - null_skew, draws - null_skew, n, level),
            "antihub_share": wilson(int((counts == 0).sum()), n, level),
            "top_hub_occurrence": int(counts[top]),
            "top_hub_item": top if n == emb.shape[0] else None,
            "top_hub_over_mean": round(float(counts[top]) / k, 4),
            "n_items_hubness": n,
            "hubs_share_of_lists": round(float(np.sort(counts)[::-1][: max(1, n // 100)].sum()) / (n * k), 6),
        }

    # -- judging -------------------------------------------------------------------------------------
    def _judge(self, m: Measurement) -> list[Finding]:
        p = self.params
        out: list[Finding] = []
        collapsed, hubby, dimensional = [], [], []
        for split in ("train", "val"):
            e = m.metrics.get(split, {})
            r = e.get("collapse_ratio")
            # large (point below the threshold) and clear (the whole CI below it too)
            if isinstance(r, Estimate) and np.isfinite(r.value) and r.below(p["collapse_ratio"]):
                collapsed.append(split)
            sk, ex = e.get("k_occurrence_skewness"), e.get("excess_skewness")
            large = isinstance(sk, Estimate) and np.isfinite(sk.value) and sk.value > p["warn_skewness"]
            beyond_null = isinstance(ex, Estimate) and ex.value >= p["warn_excess_skewness"] and ex.above(0.0)
            if large and sk.above(0.0) and beyond_null:
                hubby.append(split)
            elif large:
                dimensional.append(split)
        if collapsed:
            parts = []
            for split in collapsed:
                e = m.metrics[split]
                extra = ""
                if "alignment" in e:
                    extra = f", alignment {e['alignment']:.2f} (positives, 0 = identical)"
                parts.append(
                    f"{split}: effective rank {e['effective_rank']:.2f} of {e['dimension']} dimensions, against the "
                    f"{e['rank_needed']} directions its identities need ({e['rank_needed_from']}): ratio "
                    f"{e['collapse_ratio']:.2f} (< {p['collapse_ratio']}){extra}, uniformity "
                    f"{e['uniformity']:.2f} (0 = all on one point, about -4 = spread)"
                )
            # a collapse the training embedding shares limits both splits alike: it is the model's capacity,
            # not a difference between the splits; only validation squeezed on its own says something about the gap
            val_only = collapsed == ["val"]
            scope = (
                "Only validation is collapsed, while training uses enough directions: the validation identities "
                "are squeezed together, which costs validation accuracy that training keeps. "
                if val_only
                else "The training embedding is collapsed too, so this limits both splits alike rather than "
                "explaining a difference between them (info). "
            )
            message = (
                "The embeddings occupy far fewer directions than needed to tell the identities apart. "
                + "; ".join(parts)
                + ". "
                + scope
                + "Effective rank = exp(entropy of the normalised singular values of the centred embeddings)."
            )
            evidence = {s: _plain(m.metrics[s], _COLLAPSE_KEYS) for s in collapsed}
            severity = Severity.WARN if val_only else Severity.INFO
            out.append(self.finding("GD203", severity, message, evidence=evidence))
        if hubby:
            parts = []
            for split in hubby:
                e = m.metrics[split]
                parts.append(
                    f"{split}: k-occurrence skewness {e['k_occurrence_skewness']:.2f} (k={e['hub_k']}, > "
                    f"{p['warn_skewness']}; 0 = no hubs); the top hub is among the {e['hub_k']} nearest neighbours "
                    f"of {e['top_hub_occurrence']} of {e['n_items_hubness']} items ({e['top_hub_over_mean']:.1f}x "
                    f"the mean), the top 1% of items fill {e['hubs_share_of_lists']:.0%} of all neighbour-list slots (1% without "
                    f"hubs), and "
                    f"{e['antihub_share'].value:.0%} of items are never a neighbour; a Gaussian cloud with the same "
                    f"spectrum reads {e['null_skewness']:.2f}, so {e['excess_skewness']:.2f} comes from the embedding's "
                    f"structure, not its dimension (warn at {p['warn_excess_skewness']})"
                )
            message = (
                "A few items are the nearest neighbour of very many others, so n-way identification tends to "
                "pick them whatever the anchor. " + "; ".join(parts) + "."
            )
            evidence = {s: _plain(m.metrics[s], _HUB_KEYS) for s in hubby}
            out.append(
                self.finding("GD204", Severity.WARN, message, evidence=evidence, cause="mechanism:hubness")
            )
        if dimensional and not hubby:
            out.append(self._dimensional_hubness(m, dimensional))
        return out

    def _dimensional_hubness(self, m: Measurement, splits: list[str]) -> Finding:
        """Hubness that a Gaussian cloud with the same spectrum shows too: info, it comes from the dimension."""
        parts = [
            f"{s}: skewness {m.metrics[s]['k_occurrence_skewness']:.2f}, a Gaussian cloud with the same spectrum "
            f"{m.metrics[s]['null_skewness']:.2f}"
            for s in splits
        ]
        message = (
            "Some items are neighbours of many others, as in any high-dimensional space: the hubness comes from the "
            "dimension, not from the embedding's structure ("
            + "; ".join(parts)
            + "). Info: nothing to fix unless "
            "n-way results depend on a few candidates."
        )
        evidence = {s: _plain(m.metrics[s], _HUB_KEYS) for s in splits}
        return self.finding("GD204", Severity.INFO, message, evidence=evidence, cause="mechanism:hubness")


_COLLAPSE_KEYS = (
    "effective_rank",
    "effective_rank_over_d",
    "rank_needed",
    "rank_needed_from",
    "collapse_ratio",
    "n_identities",
    "n_items_spectrum",
    "alignment",
    "uniformity",
    "dimension",
)
_HUB_KEYS = (
    "hub_k",
    "k_occurrence_skewness",
    "null_skewness",
    "excess_skewness",
    "antihub_share",
    "top_hub_occurrence",
    "top_hub_item",
    "top_hub_over_mean",
    "hubs_share_of_lists",
    "n_items_hubness",
)


def _plain(entry: dict, keys: tuple[str, ...]) -> dict:
    return {
        k: (entry[k].to_dict() if isinstance(entry[k], Estimate) else entry[k]) for k in keys if k in entry
    }
