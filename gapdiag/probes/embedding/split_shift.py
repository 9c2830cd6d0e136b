"""GD205 — split shift: can a cross-validated classifier tell training embeddings from validation ones?"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ...findings.finding import Finding, Severity
from ...stats import Estimate, bootstrap_auc, bootstrap_multiplicities, estimate_from_draws
from ..base import Measurement, Probe
from ..registry import register_probe

if TYPE_CHECKING:
    from ...context import AuditContext
    from ...data import Items

__all__ = ["SplitShiftProbe"]


def _matched_sample(
    train_labels: np.ndarray | None,
    val_labels: np.ndarray | None,
    n_train: int,
    n_val: int,
    cap: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Rows of train and val to compare, balanced between the splits.

    With identities shared by both splits: for every shared label the same number of items from each
    split (at most the smaller count), so the identity mix is identical and cannot tell the splits apart;
    items of unshared labels are left out. Otherwise a random subset of equal size from each split.
    At most ``cap`` items per split in both cases.
    """
    if train_labels is not None and val_labels is not None:
        shared = np.intersect1d(np.unique(train_labels), np.unique(val_labels))
        if shared.size:
            tr_rows, va_rows = [], []
            for lab in shared:
                t = np.flatnonzero(train_labels == lab)
                v = np.flatnonzero(val_labels == lab)
                k = min(t.size, v.size)
                tr_rows.append(rng.choice(t, k, replace=False))
                va_rows.append(rng.choice(v, k, replace=False))
            tr, va = np.concatenate(tr_rows), np.concatenate(va_rows)
            if tr.size > cap:  # the same random subset of matched pairs keeps the balance per label
                keep = rng.choice(tr.size, cap, replace=False)
                tr, va = tr[keep], va[keep]
            return (
                np.sort(tr),
                np.sort(va),
                f"per shared identity, the same number from each split ({shared.size} identities)",
            )
    k = min(n_train, n_val, cap)
    return (
        np.sort(rng.choice(n_train, k, replace=False)),
        np.sort(rng.choice(n_val, k, replace=False)),
        "at random, the same number from each split",
    )


def _token_ids(items: Items, rows: np.ndarray, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """The non-pad token ids of the items ``rows`` (read 512 at a time), and the position in ``rows`` of the item
    each comes from: two (k,) int64 arrays."""
    import torch

    ids, owner = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    for start in range(0, rows.size, 512):
        x = torch.as_tensor(items.get_batch(rows[start : start + 512])).long()
        x = x.reshape(x.shape[0], -1)
        keep = (x != pad_id) & (x >= 0)
        ids.append(x[keep].numpy())
        owner.append(start + torch.arange(x.shape[0]).unsqueeze(1).expand_as(x)[keep].numpy())
    return np.concatenate(ids), np.concatenate(owner)


def token_share_shift(
    train: Items,
    val: Items,
    tr: np.ndarray,
    va: np.ndarray,
    *,
    pad_id: int,
    rng: np.random.Generator,
    n_boot: int,
    level: float,
    top: int = 3,
) -> list[dict[str, Any]]:
    """The token ids whose share of all (non-pad) tokens differs most between the sampled items of two splits.

    ``tr`` and ``va`` (n,) index ``train`` and ``val``, whose items are token-id sequences. Returns up to
    ``top`` entries, largest difference first: ``{"token", "train_share", "val_share", "difference"}``, the
    difference (val - train) an Estimate whose bootstrap resamples the items of each split (the share of an
    id among the resampled items' tokens).
    """
    read = {"train": _token_ids(train, tr, pad_id), "val": _token_ids(val, va, pad_id)}
    # ids as positions in the sorted ids seen, so that a hashed vocabulary of huge ids costs nothing extra
    seen = np.unique(np.concatenate([ids for ids, _ in read.values()]))
    read = {k: (np.searchsorted(seen, ids), owner) for k, (ids, owner) in read.items()}
    share = {k: np.bincount(ids, minlength=seen.size) / max(ids.size, 1) for k, (ids, _) in read.items()}
    diff = share["val"] - share["train"]
    chosen = [int(t) for t in np.argsort(-np.abs(diff), kind="stable")[:top] if diff[t] != 0]
    if not chosen:
        return []
    draws = []
    for (ids, owner), rows in ((read["train"], tr), (read["val"], va)):
        # per item: its tokens, and how many of them are each chosen id -> (n,), (n, k)
        length = np.bincount(owner, minlength=rows.size).astype(np.float64)
        counts = np.stack([np.bincount(owner[ids == t], minlength=rows.size) for t in chosen], axis=1)
        weights = bootstrap_multiplicities(rng, rows.size, n_boot)  # (n_boot, n)
        draws.append((weights @ counts) / np.maximum(weights @ length, 1.0)[:, None])
    n = int(min(tr.size, va.size))
    return [
        {
            "token": int(seen[t]),
            "train_share": float(share["train"][t]),
            "val_share": float(share["val"][t]),
            "difference": estimate_from_draws(float(diff[t]), draws[1][:, j] - draws[0][:, j], n, level),
        }
        for j, t in enumerate(chosen)
    ]


@register_probe
class SplitShiftProbe(Probe):
    """GD205 — do training and validation embeddings live in different regions of the space?

    **What it measures.** A balanced sample of training and validation embeddings (at most
    ``max_per_split`` each; when both splits have labels with identities in common, the same number of
    items per shared identity from each split, so that the identity mix cannot give the split away) is
    standardised and fed to an L2-regularised logistic regression predicting the split. Its
    out-of-fold decision values from ``n_folds``-fold stratified cross-validation give the ROC-AUC
    (0.5 = the splits are indistinguishable, 1 = perfectly separable), with a stratified bootstrap CI.
    A linear classifier detects a shift of location (an offset, a scale or a different region), not
    the tighter clusters a trained-on item may have, so a healthy closed-set split reads about 0.5.

    **Codes.** GD205 warn when the AUC reaches ``warn_auc`` and its CI excludes 0.5. It is never a fail:
    it shows *that* the splits differ, not why; the probes that name a cause (GD305 preprocessing,
    GD101/GD102 leakage, GD104 identities) carry the fail severity. When validation identities are all
    unseen in training (open set, labels on both splits), separability is expected from the identities
    alone: the finding is then info only.
    A leakage artifact carried by training items only (a tint on positive training pairs) legitimately
    separates part of the training set: the message points to GD101 and GD305.
    """

    name = "split_shift"
    concurrent = True
    family = "embedding"
    codes = ("GD205",)
    requires = frozenset()
    defaults: dict[str, Any] = {
        "warn_auc": 0.75,  # out-of-fold ROC-AUC of the train-vs-val classifier
        "max_per_split": 2000,  # items per split in the classifier
        "n_folds": 5,
        "regularization": 1.0,  # inverse L2 strength C of the logistic regression
    }
    description = "Cross-validated train-vs-val classifier on the embeddings (GD205)."

    def _measure(self, ctx: AuditContext) -> Measurement:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_predict
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        n_boot, level = int(ctx.option("n_boot")), float(ctx.option("ci_level"))
        rng = ctx.rng("split_shift")
        e_tr, e_va = ctx.embeddings("train"), ctx.embeddings("val")
        tr, va, how = _matched_sample(
            ctx.train.items.labels,
            ctx.val.items.labels,
            e_tr.shape[0],
            e_va.shape[0],
            int(self.params["max_per_split"]),
            rng,
        )
        overlap = ctx.label_overlap()
        metrics: dict[str, Any] = {"sampling": how, "identity_overlap": overlap}
        n_folds = int(self.params["n_folds"])
        if min(tr.size, va.size) < max(n_folds, 5):
            metrics["measured"] = False
            return Measurement(
                metrics=metrics,
                notes=[
                    f"Only {min(tr.size, va.size)} items per split could be compared; split shift not measured."
                ],
            )
        x = np.concatenate([e_tr[tr], e_va[va]]).astype(np.float64)
        y = np.concatenate([np.zeros(tr.size, int), np.ones(va.size, int)])
        clf = make_pipeline(
            StandardScaler(),
            # liblinear shuffles with numpy's global generator unless given a seed: give it one of ours
            LogisticRegression(
                C=float(self.params["regularization"]),
                solver="liblinear",
                max_iter=1000,
                random_state=int(rng.integers(0, 2**31 - 1)),
            ),
        )
        cv = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=int(rng.integers(0, 2**31 - 1)))
        oof = cross_val_predict(clf, x, y, cv=cv, method="decision_function")
        auc = bootstrap_auc(oof, y, rng=rng, n_boot=n_boot, level=level)
        # Where the classifier looks: the mean shift between the splits, in units of the pooled std.
        sd = x.std(axis=0)
        shift = np.abs(e_va[va].mean(axis=0) - e_tr[tr].mean(axis=0)) / np.where(sd > 0, sd, 1.0)
        metrics.update(
            {
                "measured": True,
                "auc": auc,
                "n_train_sampled": int(tr.size),
                "n_val_sampled": int(va.size),
                "n_folds": n_folds,
                "mean_shift_max_sd": round(float(shift.max()), 6),
                "mean_shift_mean_sd": round(float(shift.mean()), 6),
            }
        )
        if ctx.train.items.has_inputs and ctx.val.items.has_inputs:
            from ..leakage.signal import INPUT_LAYOUT

            layout = ctx.artifact(INPUT_LAYOUT)
            if layout.kind == "sequence":
                metrics["pad_id"] = int(layout.pad_id)
                metrics["token_shift"] = token_share_shift(
                    ctx.train.items,
                    ctx.val.items,
                    tr,
                    va,
                    pad_id=int(layout.pad_id),
                    rng=rng,
                    n_boot=n_boot,
                    level=level,
                )
        return Measurement(metrics=metrics)

    def _judge(self, m: Measurement) -> list[Finding]:
        mt = m.metrics
        if not mt.get("measured"):
            return []
        auc: Estimate = mt["auc"]
        p = self.params
        if not (np.isfinite(auc.value) and auc.value >= p["warn_auc"] and auc.above(0.5)):
            return []
        severity = Severity.WARN
        overlap = mt["identity_overlap"]
        base = (
            f"A cross-validated logistic regression tells training from validation embeddings with ROC-AUC "
            f"{auc:.2f} (>= {p['warn_auc']}; 0.5 = same distribution) on {mt['n_train_sampled']} training and "
            f"{mt['n_val_sampled']} validation items, drawn {mt['sampling']}; the largest per-dimension mean "
            f"shift is {mt['mean_shift_max_sd']:.2f} standard deviations."
        )
        if overlap["setting"] == "open":
            severity = Severity.INFO
            message = (
                f"{base} {overlap['words'][0].upper() + overlap['words'][1:]}, so different identities alone "
                "separate the splits; this is expected and GD202 measures whether it hurts."
            )
        else:
            message = (
                f"{base} The model maps validation inputs to a different region than training inputs. "
                "Check preprocessing of the validation loader (GD305) and, if only some training items are "
                "separable, an artifact carried by the training pairs (GD101/GD102)."
                + (
                    " Without identity labels on both splits gapdiag cannot tell whether validation holds "
                    "identities that training never had (an open set), which separates the splits by itself: "
                    "pass them and GD104/GD202 say which."
                    if overlap["setting"] == "unknown"
                    else ""
                )
            )
        message += _token_words(mt)
        evidence = {
            k: (v.to_dict() if isinstance(v, Estimate) else v) for k, v in mt.items() if k != "measured"
        }
        if "token_shift" in evidence:
            evidence["token_shift"] = [
                {**e, "difference": e["difference"].to_dict()} for e in mt["token_shift"]
            ]
        return [self.finding("GD205", severity, message, evidence=evidence)]


def _token_words(mt: dict[str, Any]) -> str:
    """What differs in the token ids themselves, for the message: the ids whose share moved by at least a
    percentage point with the CI excluding 0; "" when none did or the items are not token ids."""
    moved = [
        e
        for e in mt.get("token_shift", [])
        if abs(e["difference"].value) >= 0.01 and e["difference"].excludes(0)
    ]
    if not moved:
        return ""
    parts = [
        f"id {e['token']} is {e['val_share']:.1%} of validation tokens against {e['train_share']:.1%} of training "
        f"tokens (difference {e['difference']:+.3f})"
        for e in moved
    ]
    return (
        f" In the inputs themselves (token ids, pad id {mt['pad_id']} left out, on the same sampled items): "
        + "; ".join(parts)
        + ". Token ids are categories: a share that moves this much means validation texts use other words, or "
        "the same words under other ids (a tokenizer or vocabulary set up differently for validation); an "
        "unknown-token id flooding validation means words the training vocabulary lacks (new identities, or "
        "such a tokenizer)."
    )
