"""GD104 — identity overlap: closed set (validation identities seen in training) or open set."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ...findings.finding import Finding, Severity
from ...stats import wilson
from ..base import Measurement, Probe
from ..registry import register_probe

if TYPE_CHECKING:
    from ...context import AuditContext

__all__ = ["IdentityOverlapProbe", "identity_centroids"]


def identity_centroids(emb: np.ndarray, ids: np.ndarray, *, min_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean embedding of every identity with at least ``min_items`` items.

    Returns the identities (K,) and their centroids (K, d) float32, without an (N, K) dense matrix: the
    sums are a sparse (K, block) indicator times each block of 65,536 rows, accumulated in float64, so
    memory stays at one block however large (or memory-mapped) ``emb`` is.
    """
    from scipy.sparse import csr_matrix

    uniq, inv, counts = np.unique(ids, return_inverse=True, return_counts=True)
    inv = inv.reshape(-1)
    sums = np.zeros((uniq.size, emb.shape[1]), dtype=np.float64)
    for s in range(0, inv.size, 1 << 16):
        rows = inv[s : s + (1 << 16)]
        indicator = csr_matrix(
            (np.ones(rows.size), (rows, np.arange(rows.size))), shape=(uniq.size, rows.size)
        )
        sums += indicator @ np.asarray(emb[s : s + rows.size], dtype=np.float64)
    keep = counts >= min_items
    return uniq[keep], (sums[keep] / counts[keep, None]).astype(np.float32)


def _comparable(a: np.ndarray, b: np.ndarray) -> bool:
    """Labels of two splits can name the same identity: both numeric or both text."""

    def kind(x: np.ndarray) -> str:
        return "number" if x.dtype.kind in "iufb" else "text"

    return kind(a) == kind(b)


@register_probe
class IdentityOverlapProbe(Probe):
    """GD104: which validation identities also occur in training.

    - By label (when both splits carry labels of the same kind): the share of validation identities whose
      label occurs in training, and the share of validation items they hold (Wilson CIs). 1 = closed set,
      0 = open set.
    - By embedding (always when both splits have identities with at least ``min_items_per_identity``
      items; the method used when labels are not comparable, e.g. training identities that come from the
      graph of positive pairs): each validation identity's centroid is matched to its nearest training
      centroid; it counts as seen when that distance is at most ``centroid_fraction`` x its distance to the
      nearest other validation centroid (much closer to a training identity than to any other identity;
      with a single validation identity, the median distance between neighbouring training centroids is
      the scale). Training-to-training distances are not the scale because identities from the positive-
      pair graph are often fragments of one person. With labels, the share of shared identities whose
      nearest training centroid carries their own label checks that the labels mean the same identities in
      both splits.

    Always INFO: closed vs open set is not a fault, but it changes how every other number reads.
    """

    name = "identity_overlap"
    concurrent = True
    family = "leakage"
    codes = ("GD104",)
    # real identity labels on both splits: inferred groups are not identities (see DESIGN section 2)
    requires = frozenset({"train_labels", "val_labels"})
    description = "Closed or open set: do validation identities occur in training (by label or by embedding)?"
    defaults = {
        # a validation identity is seen when its centroid lies within this fraction of the distance to the
        # nearest other validation identity from some training centroid
        "centroid_fraction": 0.5,
        "min_items_per_identity": 2,  # identities with fewer items get no centroid
    }

    def _measure(self, ctx: AuditContext) -> Measurement:
        level = float(ctx.option("ci_level"))
        m = Measurement()
        t_ids, v_ids = ctx.train.items.labels, ctx.val.items.labels
        t_origin = v_origin = "labels"
        m.metrics["train_identities_from"] = m.metrics["val_identities_from"] = "labels"
        by_label = t_origin == "labels" and v_origin == "labels" and _comparable(t_ids, v_ids)
        m.metrics["method"] = "label" if by_label else "embedding"
        if by_label:
            v_unique, v_counts = np.unique(v_ids, return_counts=True)
            seen = np.isin(v_unique, np.unique(t_ids))
            m.metrics["by_label"] = {
                "n_val_identities": int(v_unique.size),
                "n_seen": int(seen.sum()),
                "identity_share": wilson(int(seen.sum()), int(v_unique.size), level).to_dict(),
                "item_share": wilson(int(v_counts[seen].sum()), int(v_counts.sum()), level).to_dict(),
            }
            m.evidence["unseen_identities"] = [_plain(x) for x in v_unique[~seen][:50]]
            m.evidence["seen_identities"] = [_plain(x) for x in v_unique[seen][:50]]
        else:
            m.metrics["why_embedding"] = (
                f"training labels ({t_ids.dtype}) and validation labels ({v_ids.dtype}) are of different kinds and "
                "cannot name the same identities"
            )
        m.metrics["by_embedding"] = self._centroids(ctx, t_ids, v_ids, by_label, level)
        return m

    def _centroids(
        self, ctx: AuditContext, t_ids, v_ids, by_label: bool, level: float
    ) -> dict[str, Any] | None:
        from ...neighbors import knn

        p = self.params
        k = int(p["min_items_per_identity"])
        t_u, t_c = identity_centroids(ctx.embeddings("train"), t_ids, min_items=k)
        v_u, v_c = identity_centroids(ctx.embeddings("val"), v_ids, min_items=k)
        if t_u.size < 2 or v_u.size < 1:
            return None
        within = knn(t_c, t_c, 1, exclude_self=True)[1][:, 0].astype(np.float64)
        idx, dist = knn(v_c, t_c, 1)
        idx, dist = idx[:, 0], dist[:, 0].astype(np.float64)
        # The scale of "a different identity", per validation identity: its distance to the nearest other
        # validation identity. Training identities may be fragments (connected components of positive pairs
        # split one person into several), which would make training-to-training distances too small.
        if v_u.size >= 2:
            scale = knn(v_c, v_c, 1, exclude_self=True)[1][:, 0].astype(np.float64)
            scale_from = "nearest other validation identity centroid"
        else:
            scale = np.full(v_u.size, float(np.median(within)))
            scale_from = "median distance between neighbouring training centroids"
        tau = p["centroid_fraction"] * scale
        matched = dist <= tau
        out: dict[str, Any] = {
            "n_train_centroids": int(t_u.size),
            "n_val_centroids": int(v_u.size),
            "rule": f"nearest training centroid within {p['centroid_fraction']} x the distance to the {scale_from}",
            "threshold_median": float(np.median(tau)),
            "n_matched": int(matched.sum()),
            "identity_share": wilson(int(matched.sum()), int(v_u.size), level).to_dict(),
            "val_to_train_distance_median": float(np.median(dist)),
            "distance_ratio_median": float(np.median(dist / np.maximum(scale, 1e-12))),
            "median_train_centroid_distance": float(np.median(within)),
        }
        if by_label:
            shared = np.isin(v_u, t_u)
            if shared.any():
                same = t_u[idx[shared]] == v_u[shared]
                out["same_label_nearest"] = wilson(int(same.sum()), int(shared.sum()), level).to_dict()
        return out

    def _judge(self, m: Measurement) -> list[Finding]:
        p = self.params
        mt = m.metrics
        if mt.get("val_identities_from") is None:
            return []
        emb = mt.get("by_embedding")
        if mt["method"] == "label":
            bl = mt["by_label"]
            n, k = bl["n_val_identities"], bl["n_seen"]
            items = bl["item_share"]
            kind = "closed" if k == n else "open" if k == 0 else "partly closed"
            head = {
                "closed": f"Closed set: all {n} validation identities also occur in training (by label)",
                "open": f"Open set: none of the {n} validation identities occur in training (by label)",
                "partly closed": (
                    f"Partly closed set: {k} of {n} validation identities occur in training (by label), holding "
                    f"{items['value']:.0%} [{items['ci_low']:.0%}, {items['ci_high']:.0%}] of the {items['n']} "
                    "validation items"
                ),
            }[kind]
            msg = head + "."
            if emb and "same_label_nearest" in emb:
                s = emb["same_label_nearest"]
                msg += (
                    f" In embedding space {s['value']:.0%} of the {s['n']} shared identities have the training "
                    "centroid of their own label as nearest training centroid"
                    + (
                        " (labels look consistent across splits)."
                        if s["value"] >= 0.5
                        else ": low, so either the embedding does not transfer or the labels name different "
                        "identities in the two splits."
                    )
                )
        else:
            if not emb:
                return []
            k, n = emb["n_matched"], emb["n_val_centroids"]
            share = emb["identity_share"]
            kind = "closed" if k == n else "open" if k == 0 else "partly closed"
            msg = (
                f"Labels cannot be compared between the splits ({mt.get('why_embedding', '')}), so identities "
                "were matched by embedding: "
                f"{k} of {n} validation identity centroids ({share['value']:.0%} [{share['ci_low']:.0%}, "
                f"{share['ci_high']:.0%}]) have a training centroid within {p['centroid_fraction']} x their distance "
                f"to the nearest other validation identity (median ratio {emb['distance_ratio_median']:.2f}): "
                f"estimated {kind} set."
            )
        msg += {
            "closed": (
                " Validation therefore measures recognition of identities the model has seen, not transfer to new "
                "ones; a class-level gap (GD202) here means the model does not even separate known identities."
            ),
            "open": (
                " Validation measures transfer of the embedding to new identities; a class-level gap (GD202) calls "
                "for more training identities rather than more epochs."
            ),
            "partly closed": (
                " Validation mixes seen and unseen identities; report them separately to tell recognition from "
                "transfer."
            ),
        }[kind]
        evidence = {k: mt[k] for k in ("method", "by_label", "by_embedding") if k in mt}
        evidence["set"] = kind
        return [self.finding("GD104", Severity.INFO, msg, evidence=evidence, cause="split:identity_overlap")]


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v
