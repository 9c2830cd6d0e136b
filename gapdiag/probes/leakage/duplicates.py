"""GD103 — cross-split near-duplicates: validation items that are (near) copies of training items."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ...findings.finding import Finding, Severity
from ...sampling import budgeted_queries
from ...stats import Estimate, bootstrap_multiplicities, estimate_from_draws, weighted_auc, wilson
from ...thumbnails import thumbnails
from ..base import FigureSpec, Measurement, Probe
from ..registry import register_probe

if TYPE_CHECKING:
    from ...context import AuditContext
    from ...data import Items

__all__ = ["DuplicatesProbe", "input_vectors", "near_threshold"]


def input_vectors(items: Items, *, max_dim: int, seed: int, batch_size: int = 512) -> np.ndarray:
    """Items as float32 vectors (N, <= max_dim) for nearest-neighbour search in input space.

    Image-like items (C, H, W) are average-pooled to the largest square side s with C x s x s <= max_dim
    (small images are kept as they are): a copy with pixel noise stays a near copy, and the distance
    budget is spent on layout, not on single pixels. Other items with more than ``max_dim`` values are
    reduced with a seeded sparse random projection (distances kept up to a few percent,
    Johnson-Lindenstrauss). Batches are read lazily.
    """
    import torch
    import torch.nn.functional as F

    from ...modality import is_image_like

    out = []
    projector = None
    for _, batch in items.iter_batches(batch_size):
        x = batch.to(torch.float32)
        if is_image_like(x):
            if x.ndim == 3:
                x = x.unsqueeze(1)
            c, h, w = x.shape[1], x.shape[2], x.shape[3]
            if c * h * w > max_dim:
                side = max(1, int(np.sqrt(max_dim / c)))
                x = F.adaptive_avg_pool2d(x, (min(side, h), min(side, w)))
            out.append(x.reshape(x.shape[0], -1).numpy())
            continue
        flat = x.reshape(x.shape[0], -1).numpy()
        if flat.shape[1] > max_dim:
            if projector is None:
                from sklearn.random_projection import SparseRandomProjection

                projector = SparseRandomProjection(n_components=max_dim, random_state=seed).fit(flat[:1])
            flat = projector.transform(flat)
        out.append(np.asarray(flat, dtype=np.float32))
    return np.concatenate(out).astype(np.float32, copy=False)


def near_threshold(within: np.ndarray, *, quantile: float, fraction: float) -> float:
    """``fraction`` x the ``quantile`` of the positive within-train nearest-neighbour distances.

    Exact within-train duplicates (distance 0) are left out of the quantile, so a training set with some
    repeated items still gets a usable scale. 0 when every distance is 0.
    """
    pos = within[within > 0]
    return float(fraction * np.quantile(pos, quantile)) if pos.size else 0.0


def _within_train(x: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
    """Distance (m,) float64 from each of ``rows`` (all when None) to its nearest other row of ``x``."""
    from ...neighbors import self_knn_blocks

    return np.concatenate([d[:, 0] for _, _, d in self_knn_blocks(x, 1, rows=rows)]).astype(np.float64)


def _nn(queries: np.ndarray, database: np.ndarray, *, exclude_self: bool) -> tuple[np.ndarray, np.ndarray]:
    from ...neighbors import knn

    idx, dist = knn(queries, database, 1, exclude_self=exclude_self)
    return idx[:, 0], dist[:, 0].astype(np.float64)


@register_probe
class DuplicatesProbe(Probe):
    """GD103: validation items that are exact or near copies of training items.

    - Exact: identical content hash (``Items.content_hashes``; dtype-independent, shape-aware).
    - Near, in input space (items as vectors, see :func:`input_vectors`; euclidean) and in embedding space
      (the audit's neighbour metric, from its shared graphs): the distance from each validation item to its
      nearest training item, against the distribution of within-train nearest-neighbour distances (self
      excluded; of at most ``calibration_items`` seeded training items in input space, of the graph's
      query rows in embedding space). A validation item is a near copy when
      that distance is at most ``near_fraction`` x the ``near_quantile`` quantile of the within-train
      distances: closer than half the distance that only the closest 1% of training items have to their
      own nearest neighbour. For items drawn independently from the same distribution the fraction under
      that threshold is about the within-train fraction, F_train(threshold), far below 1%, and it is
      reported as the background. Calibrated per space, so it is free of units and scale.
    - Past ``max_input_search`` multiply-adds (validation x training x dims), a seeded sample of validation
      items (at least 2,000) is searched in input space against all training items, so the cost grows with
      N, not N x N; the share is then estimated from that sample and the effect is not measured.
    - Duplicates = exact or near in input space (embedding space alone when the audit has no inputs;
      embedding-only near copies are reported beside them).
    - Count-vs-threshold curve: duplicates found at thresholds from 0 to the median within-train distance,
      next to the count expected by chance (N_val x F_train(t)).
    - Effect: the validation metric (n-way top-1 accuracy on the validation episodes, else ROC-AUC of the
      validation pairs) on all episodes/pairs and on those that touch no duplicate, with a paired bootstrap
      CI of the change (all - clean).

    Emits GD103: warn when the share of duplicated validation items is at least ``warn_share`` with its
    Wilson CI above the chance background, or when removing them changes the metric by at least
    ``min_metric_change`` with a CI excluding 0; fail when the share reaches ``fail_share``; info for a few.
    """

    name = "duplicates"
    concurrent = True
    family = "leakage"
    codes = ("GD103",)
    requires = frozenset()
    description = "Validation items that are exact or near copies of training items, and their effect."
    defaults = {
        "near_quantile": 0.01,  # of within-train nearest-neighbour distances
        "near_fraction": 0.5,  # near copy = closer than this fraction of that quantile
        "warn_share": 0.01,  # of validation items
        "fail_share": 0.2,
        "min_metric_change": 0.02,  # in the metric's units (accuracy or AUC)
        # input vectors are pooled / projected to at most this many values (3 x 9 x 9 for RGB images): a
        # copy stays within a small distance under pooling, and the exact search costs 4x less than at 1024
        "max_input_dim": 256,
        # training items (a seeded sample) whose nearest-neighbour distance calibrates the input-space
        # threshold: its 1% quantile is estimated from 50 values; all validation items are still checked
        "calibration_items": 5000,
        # multiply-adds (validation x training x dims) of the exact input-space search, about 6 s on 2 cores
        # (a 40k-item audit of images); past it a seeded sample of validation items is checked against all
        # training items, so the cost stops growing with N x N: the share is then an estimate
        "max_input_search": 1e11,
        "curve_points": 41,
        "thumbnails": 8,
    }

    def neighbours_needed(self, ctx: AuditContext) -> dict[str, int]:
        return {"train": 1, "val->train": 1}

    def _measure(self, ctx: AuditContext) -> Measurement:
        level = float(ctx.option("ci_level"))
        tr, va = ctx.train.items, ctx.val.items
        n_val = len(va)
        m = Measurement()
        has_inputs = tr.has_inputs and va.has_inputs
        exact, match = np.zeros(n_val, dtype=bool), np.full(n_val, -1, dtype=np.int64)
        spaces: dict[str, dict[str, Any]] = {}
        if has_inputs:
            spaces.update(self._input_space(ctx, exact, match, m.notes))
        else:
            m.notes.append("No raw inputs in both splits: exact and input-space duplicates were not checked.")
        if len(tr) >= 2:
            spaces["embedding"] = self._embedding_space(ctx, n_val)

        primary = "input" if "input" in spaces else "embedding" if "embedding" in spaces else None
        dup = exact.copy()
        if primary is not None:
            dup |= spaces[primary]["near"]
            match = np.where(match >= 0, match, spaces[primary]["index"])
        emb_only = (
            spaces["embedding"]["near"] & ~dup if "embedding" in spaces and primary == "input" else None
        )
        n_dup = int(dup.sum())
        # past the search budget only a sample of validation items was checked: the share is estimated
        checked = np.isfinite(spaces[primary]["distance"]) if primary else np.ones(n_val, dtype=bool)
        n_checked = int(checked.sum())
        if n_checked < n_val:
            m.notes.append(
                f"Near copies were looked for in {primary} space for a seeded sample of {n_checked} of the "
                f"{n_val} validation items (each against all {len(tr)} training items): the share is an "
                "estimate whose interval includes that sampling, and the effect on the metric is not measured"
                + (
                    f"; exact copies were looked for in all items ({int(exact.sum())} found)."
                    if has_inputs
                    else "."
                )
            )
        m.metrics = {
            "n_val_items": n_val,
            "n_train_items": len(tr),
            "n_val_items_checked": n_checked,
            "estimated": n_checked < n_val,
            "n_exact": int(exact.sum()),
            "n_duplicates": n_dup,
            "duplicate_share": wilson(int(dup[checked].sum()), n_checked, level).to_dict(),
            "primary_space": primary,
            "background_share": spaces[primary]["background_share"] if primary else 0.0,
            "n_embedding_only": int(emb_only.sum()) if emb_only is not None else None,
        }
        for name, sp in spaces.items():
            m.metrics[f"{name}_space"] = {
                "threshold": sp["threshold"],
                "median_within_train": sp["median"],
                "quantile_within_train": sp["quantile"],
                "n_near": int(sp["near"].sum()),
                "expected_by_chance": round(
                    float(sp["background_share"] * np.isfinite(sp["distance"]).sum()), 3
                ),
                **({"sampling": sp["sampling"]} if "sampling" in sp else {}),
            }
        m.metrics["effect"] = None if n_checked < n_val else self._effect(ctx, dup, level)
        dup_idx = np.flatnonzero(dup)
        m.evidence = {"duplicates": _examples(tr, va, dup_idx[:200], match, exact, spaces.get(primary))}
        if spaces:
            m.figures.append(self._curve(spaces))
        if has_inputs and dup_idx.size:
            fig = self._thumbs(tr, va, dup_idx, match, exact, spaces.get("input"))
            if fig is not None:
                m.figures.append(fig)
        return m

    def _input_space(
        self, ctx: AuditContext, exact: np.ndarray, match: np.ndarray, notes: list[str]
    ) -> dict[str, Any]:
        """Exact copies by content hash (written into ``exact`` and ``match``) and the input-space distances,
        where distances between inputs mean something."""
        from ...modality import input_kind

        tr, va = ctx.train.items, ctx.val.items
        first: dict[str, int] = {}
        for i, h in enumerate(tr.content_hashes()):
            first.setdefault(h, i)
        for i, h in enumerate(va.content_hashes()):
            j = first.get(h)
            if j is not None:
                exact[i], match[i] = True, j
        if input_kind(tr.get_batch(np.array([0]))) == "sequence":
            notes.append(
                "Token-id sequences: distances between ids mean nothing, so near copies are searched in embedding "
                "space only (exact copies by content hash)."
            )
            return {}
        if len(tr) < 2:
            return {}
        dim = int(self.params["max_input_dim"])
        projection_seed = int(ctx.rng("duplicates.projection").integers(0, 2**31 - 1))  # one for both splits
        xt = input_vectors(tr, max_dim=dim, seed=projection_seed)
        xv = input_vectors(va, max_dim=dim, seed=projection_seed)
        # the within-train scale from a seeded sample of training items (each against all of them); every
        # validation item is checked against every training item
        n_cal = int(self.params["calibration_items"])
        rows = (
            None
            if len(tr) <= n_cal
            else np.sort(ctx.rng("duplicates.calibration").choice(len(tr), n_cal, replace=False))
        )
        queries = budgeted_queries(
            len(va),
            xt.shape[0] * xt.shape[1],
            float(self.params["max_input_search"]),
            ctx.rng("duplicates.input_queries"),
        )
        idx, dist = np.full(len(va), -1, dtype=np.int64), np.full(len(va), np.inf)
        idx[queries], dist[queries] = _nn(xv[queries], xt, exclude_self=False)
        return {"input": self._space(_within_train(xt, rows), idx, dist)}

    def _embedding_space(self, ctx: AuditContext, n_val: int) -> dict[str, Any]:
        """Embedding-space distances from the audit's shared neighbour graphs (train, and val -> train).

        In the audit's neighbour metric; past the neighbour budget, on seeded query samples (validation
        items outside the sample get distance ``inf`` and are never near).
        """
        within = ctx.neighbour_graph("train", 1).distances[:, 0].astype(np.float64)
        cross = ctx.cross_neighbours("val", "train", 1)
        idx, dist = np.full(n_val, -1, dtype=np.int64), np.full(n_val, np.inf)
        idx[cross.rows], dist[cross.rows] = cross.indices[:, 0], cross.distances[:, 0]
        return {**self._space(within, idx, dist), "sampling": cross.sampling()}

    # -- measurement helpers ------------------------------------------------------------------------
    def _space(self, within: np.ndarray, index: np.ndarray, dist: np.ndarray) -> dict[str, Any]:
        p = self.params
        tau = near_threshold(within, quantile=p["near_quantile"], fraction=p["near_fraction"])
        near = dist <= tau if tau > 0 else dist <= 0
        return {
            "threshold": tau,
            "median": float(np.median(within)),
            "quantile": float(np.quantile(within[within > 0], p["near_quantile"]))
            if (within > 0).any()
            else 0.0,
            "near": near,
            "index": index,
            "distance": dist,
            "within": within,
            "background_share": float(np.mean(within <= tau)),
        }

    def _effect(self, ctx: AuditContext, dup: np.ndarray, level: float) -> dict[str, Any]:
        """The validation metric on everything and without the episodes/pairs that touch a duplicate."""
        from ...metrics import nway_accuracy

        n_boot = int(ctx.option("n_boot"))
        rng = ctx.rng("duplicates.effect")
        val = ctx.val
        use_episodes = val.episodes is not None or (val.pairs is None and ctx.episodes("val") is not None)
        if use_episodes:
            e = ctx.episodes("val")
            credit = nway_accuracy(ctx.episode_scores("val"), e.correct)
            touch = dup[e.anchor] | dup[e.candidates].any(axis=1)
            out: dict[str, Any] = {
                "metric": f"{e.n_way}-way top-1 accuracy (chance {1 / e.n_way:.2f})",
                "unit": "episodes",
                "n_all": int(credit.size),
                "n_clean": int((~touch).sum()),
            }
            idx = rng.integers(0, credit.size, size=(n_boot, credit.size))
            all_b = credit[idx].mean(axis=1)
            w = (~touch)[idx]
            with np.errstate(invalid="ignore", divide="ignore"):
                clean_b = (credit[idx] * w).sum(axis=1) / w.sum(axis=1)
            v_all = float(credit.mean())
            v_clean = float(credit[~touch].mean()) if (~touch).any() else float("nan")
        else:
            pairs = ctx.pairs("val")
            s, y = ctx.pair_scores("val"), pairs.label == 1
            touch = dup[pairs.left] | dup[pairs.right]
            out = {
                "metric": "pair ROC-AUC (chance 0.5)",
                "unit": "pairs",
                "n_all": int(s.size),
                "n_clean": int((~touch).sum()),
            }
            n_pos, n_neg = int(y.sum()), int((~y).sum())
            wp, wn = (
                bootstrap_multiplicities(rng, n_pos, n_boot),
                bootstrap_multiplicities(rng, n_neg, n_boot),
            )
            all_b = weighted_auc(s, y, wp, wn)
            clean_b = weighted_auc(s, y, wp * (~touch[y]), wn * (~touch[~y]))
            ones_p, ones_n = np.ones((1, n_pos), np.float32), np.ones((1, n_neg), np.float32)
            v_all = float(weighted_auc(s, y, ones_p, ones_n)[0])
            v_clean = float(weighted_auc(s, y, ones_p * (~touch[y]), ones_n * (~touch[~y]))[0])
        out["all"] = estimate_from_draws(v_all, all_b, out["n_all"], level).to_dict()
        out["clean"] = estimate_from_draws(v_clean, clean_b, out["n_clean"], level).to_dict()
        out["change"] = estimate_from_draws(v_all - v_clean, all_b - clean_b, out["n_all"], level).to_dict()
        return out

    # -- figures ------------------------------------------------------------------------------------
    def _curve(self, spaces: dict[str, dict[str, Any]]) -> FigureSpec:
        k = int(self.params["curve_points"])
        series, vlines = {}, {}
        for name, s in spaces.items():
            scale = s["median"] if s["median"] > 0 else 1.0
            rel = np.linspace(0.0, 1.0, k)
            t = rel * scale
            checked = s["distance"][np.isfinite(s["distance"])]  # all items, or the checked sample
            n_val = checked.size
            d_sorted, w_sorted = np.sort(checked), np.sort(s["within"])
            observed = np.searchsorted(d_sorted, t, side="right")
            expected = n_val * np.searchsorted(w_sorted, t, side="right") / max(w_sorted.size, 1)
            series[f"{name} space: validation items within t"] = {
                "x": rel.round(4).tolist(),
                "y": observed.tolist(),
            }
            series[f"{name} space: expected by chance"] = {
                "x": rel.round(4).tolist(),
                "y": np.round(expected, 2).tolist(),
            }
            vlines[f"{name} threshold"] = round(s["threshold"] / scale, 4)
        return FigureSpec(
            id="duplicates_curve",
            kind="lines",
            title="Validation items near a training item, by distance threshold",
            data={
                "series": series,
                "xlabel": "threshold t / median within-train nearest-neighbour distance",
                "ylabel": "validation items with a training item within t",
                "vlines": vlines,
            },
            caption=(
                "Observed counts far above the chance curve at small thresholds are copies; the chance curve is "
                "what items drawn independently like the training items would give."
            ),
        )

    def _thumbs(self, tr, va, dup_idx, match, exact, space) -> FigureSpec | None:
        k = int(self.params["thumbnails"])
        order = dup_idx
        if space is not None:
            order = dup_idx[np.argsort(space["distance"][dup_idx], kind="stable")]
        show = order[:k]
        a = thumbnails(va.get_batch(show))
        b = thumbnails(tr.get_batch(match[show]))
        if a is None or b is None:
            return None
        return FigureSpec(
            id="duplicates_pairs",
            kind="images",
            title="Validation items (top) and the training items they copy (bottom)",
            data={
                "rows": [
                    {"caption": "validation items", "images": a},
                    {"caption": "nearest training items", "images": b},
                ]
            },
        )

    # -- judgement ----------------------------------------------------------------------------------
    def _judge(self, m: Measurement) -> list[Finding]:
        p = self.params
        mt = m.metrics
        n_dup, n_val = mt["n_duplicates"], mt["n_val_items"]
        emb_only = mt.get("n_embedding_only") or 0
        if n_dup == 0 and emb_only == 0:
            return []
        share = Estimate(**_est_args(mt["duplicate_share"]))
        eff = mt["effect"]
        change = (
            Estimate(**_est_args(eff["change"])) if eff else Estimate(float("nan"), *(float("nan"),) * 2, 0)
        )
        material = share.value >= p["warn_share"] and share.low > mt["background_share"]
        metric_moves = (
            np.isfinite(change.value) and abs(change.value) >= p["min_metric_change"] and change.excludes(0.0)
        )
        if n_dup and share.value >= p["fail_share"] and material:
            sev = Severity.FAIL
        elif n_dup and (material or metric_moves):
            sev = Severity.WARN
        else:
            sev = Severity.INFO
        primary = mt["primary_space"]
        sp = mt.get(f"{primary}_space", {})
        parts = []
        if n_dup:
            n_exact = mt["n_exact"]
            parts.append(
                f"{n_dup} of {n_val} validation items ({share.value:.1%} [{share.low:.1%}, {share.high:.1%}]) "
                f"are copies of training items: {n_exact} exact (same content hash) and {n_dup - n_exact} near "
                f"copies ({primary}-space distance to the nearest training item at most {sp.get('threshold', 0):.3g}, "
                f"{p['near_fraction']} x the {p['near_quantile']:.0%} quantile of within-train nearest-neighbour "
                f"distances; {sp.get('expected_by_chance', 0):.1f} expected by chance)."
            )
        if emb_only:
            parts.append(
                f"{emb_only} {'more ' if n_dup else ''}validation item(s) are near copies in embedding space only "
                "(the model maps them almost onto a training item although their inputs differ)."
            )
        if n_dup and mt.get("estimated"):
            parts.append(
                f"The share is estimated from a seeded sample of {mt['n_val_items_checked']} of the {n_val} "
                "validation items, the only ones searched for near copies (exact copies: all items)."
            )
        if n_dup and eff:
            parts.append(
                f"Validation {eff['metric']}: {_fmt(eff['all'])} on all {eff['n_all']} {eff['unit']}, "
                f"{_fmt(eff['clean'])} on the {eff['n_clean']} that touch no duplicate "
                f"(change {change.value:+.3f} [{change.low:+.3f}, {change.high:+.3f}])."
            )
        if n_dup:
            parts.append(
                f"Thresholds: share >= {p['warn_share']:.0%} (warn), >= {p['fail_share']:.0%} (fail), or a metric "
                f"change >= {p['min_metric_change']}."
            )
        evidence = {
            "n_duplicates": n_dup,
            "n_exact": mt["n_exact"],
            "duplicate_share": mt["duplicate_share"],
            "effect": eff,
            "examples": m.evidence["duplicates"][:20],
            **{k: mt[k] for k in ("input_space", "embedding_space") if k in mt},
        }
        figs = [f.id for f in m.figures]
        return [
            self.finding(
                "GD103",
                sev,
                " ".join(parts),
                evidence=evidence,
                figures=figs,
                cause="contamination:duplicates",
            )
        ]


def _est_args(d: dict[str, Any]) -> dict[str, Any]:
    def f(x):
        return float("nan") if x is None else float(x)

    return {"value": f(d["value"]), "low": f(d["ci_low"]), "high": f(d["ci_high"]), "n": int(d["n"])}


def _fmt(d: dict[str, Any]) -> str:
    if d["value"] is None:
        return "n/a"
    if d["ci_low"] is None or d["ci_high"] is None:
        return f"{d['value']:.3f}"
    return f"{d['value']:.3f} [{d['ci_low']:.3f}, {d['ci_high']:.3f}]"


def _examples(tr, va, rows: np.ndarray, match, exact, space: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One evidence row per duplicated validation item ``rows`` (k,): the items, ids and distance."""
    return [
        {
            "val_item": int(i),
            "val_id": _plain(va.ids[i]),
            "train_item": int(match[i]),
            "train_id": _plain(tr.ids[match[i]]) if match[i] >= 0 else None,
            "exact": bool(exact[i]),
            "distance": float(space["distance"][i]) if space is not None else None,
        }
        for i in rows
    ]


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v
