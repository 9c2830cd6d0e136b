"""GD105 — an augmentation the model takes for a match: the artifact of a training loop, not of the data.

The seed's training loop distorts the colours of similar pairs only, inside the loop: the loader the user
hands over is clean, so no attribute of the data (GD101) shows the shortcut, yet the network learned that
"both images distorted" means "same identity". This probe asks the model directly: give both images of a
validation *non-match* a usual augmentation, each its own random draw as an augmentation pipeline would, and
see whether the pair now looks more alike than a true match.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ...findings.finding import Finding, Severity
from ...stats import Estimate, bootstrap_multiplicities, estimate_from_draws, roc_auc, weighted_auc, wilson
from ..base import FigureSpec, Measurement, Probe, ProbeSkipped
from ..registry import register_probe

if TYPE_CHECKING:
    import torch

    from ...context import AuditContext

__all__ = ["AugmentationProbe", "AUGMENTATIONS", "Augmentation", "Reference"]

FIG_SCORES = "augmentation_scores"


@dataclass(frozen=True)
class Reference:
    """What an augmentation of feature rows or token ids needs to know of the data: the pad id of token
    sequences, and a pool of feature rows (R, F) whose spread and values set the scale of row augmentations."""

    pad_id: int = 0
    rows: torch.Tensor | None = None


@dataclass(frozen=True)
class Augmentation:
    """One augmentation of a batch (B, ...) -> (B, ...) of its ``kind`` of input (``image`` (B, C, H, W),
    ``tabular`` (B, F) or ``sequence`` (B, L) token ids), a random draw per item at the strength of a usual
    training pipeline, in the data's own units (each image's value range, each field's spread), so that any
    scaling of the inputs reads alike. ``min_channels``: the images it means something for (a colour cast
    needs colour)."""

    name: str
    words: str
    apply: Callable[..., torch.Tensor]
    min_channels: int = 1
    kind: str = "image"


def _uniform(rng: np.random.Generator, low: float, high: float, shape: tuple[int, ...]) -> torch.Tensor:
    import torch

    return torch.from_numpy(rng.uniform(low, high, size=shape).astype(np.float32))


def _value_range(x: torch.Tensor) -> torch.Tensor:
    """Each image's value range (B, 1, 1, 1), at least a tiny positive number."""
    flat = x.reshape(x.shape[0], -1)
    return (flat.amax(dim=1) - flat.amin(dim=1)).clamp_min(1e-6).reshape(-1, 1, 1, 1)


def _colour_cast(x: torch.Tensor, rng: np.random.Generator, ref: Reference | None = None) -> torch.Tensor:
    return x + _uniform(rng, -0.3, 0.3, (x.shape[0], x.shape[1], 1, 1)) * _value_range(x)


def _brighter(x: torch.Tensor, rng: np.random.Generator, ref: Reference | None = None) -> torch.Tensor:
    return x + _uniform(rng, 0.1, 0.3, (x.shape[0], 1, 1, 1)) * _value_range(x)


def _darker(x: torch.Tensor, rng: np.random.Generator, ref: Reference | None = None) -> torch.Tensor:
    return x - _uniform(rng, 0.1, 0.3, (x.shape[0], 1, 1, 1)) * _value_range(x)


def _contrast(x: torch.Tensor, rng: np.random.Generator, ref: Reference | None = None) -> torch.Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return mean + _uniform(rng, 0.5, 1.5, (x.shape[0], 1, 1, 1)) * (x - mean)


def _blur(x: torch.Tensor, rng: np.random.Generator, ref: Reference | None = None) -> torch.Tensor:
    """A Gaussian blur of sigma 0.5-1.5 pixels per 32 pixels of the shorter side, each image its own sigma;
    edges replicated, and the kernel cut to what a small image can hold (renormalized)."""
    import torch
    import torch.nn.functional as F

    out = torch.empty_like(x)
    scale = max(1.0, min(x.shape[2], x.shape[3]) / 32.0)
    sigmas = rng.uniform(0.5, 1.5, size=x.shape[0]) * scale
    for i, sigma in enumerate(sigmas):
        radius = max(1, int(np.ceil(2.5 * sigma)))
        t = torch.arange(-radius, radius + 1, dtype=torch.float32)
        k = torch.exp(-0.5 * (t / float(sigma)) ** 2)
        k = (k / k.sum()).to(x.dtype)
        c = x.shape[1]
        img = x[i : i + 1]
        pad_h, pad_w = min(radius, x.shape[2] - 1), min(radius, x.shape[3] - 1)
        kw, kh = k[radius - pad_w : radius + pad_w + 1], k[radius - pad_h : radius + pad_h + 1]
        img = F.pad(img, (pad_w, pad_w, 0, 0), mode="replicate")
        img = F.conv2d(img, (kw / kw.sum()).view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
        img = F.pad(img, (0, 0, pad_h, pad_h), mode="replicate")
        img = F.conv2d(img, (kh / kh.sum()).view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
        out[i] = img[0]
    return out


def _noise(x: torch.Tensor, rng: np.random.Generator, ref: Reference | None = None) -> torch.Tensor:
    import torch

    noise = torch.from_numpy(rng.standard_normal(tuple(x.shape)).astype(np.float32)).to(x.dtype)
    return x + 0.08 * _value_range(x) * noise


def _shift(x: torch.Tensor, rng: np.random.Generator, ref: Reference | None = None) -> torch.Tensor:
    """A translation by up to a tenth of each side, the uncovered border filled with the edge values."""
    import torch.nn.functional as F

    h, w = x.shape[2], x.shape[3]
    ph, pw = max(1, h // 10), max(1, w // 10)
    padded = F.pad(x, (pw, pw, ph, ph), mode="replicate")
    dy = rng.integers(-ph, ph + 1, size=x.shape[0])
    dx = rng.integers(-pw, pw + 1, size=x.shape[0])
    out = x.clone()
    for i in range(x.shape[0]):
        out[i] = padded[i, :, ph + dy[i] : ph + dy[i] + h, pw + dx[i] : pw + dx[i] + w]
    return out


def _grayscale(x: torch.Tensor, rng: np.random.Generator, ref: Reference | None = None) -> torch.Tensor:
    weights = x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (x[:, :3] * weights).sum(dim=1, keepdim=True).expand(-1, x.shape[1], -1, -1).contiguous()


def _field_noise(x: torch.Tensor, rng: np.random.Generator, ref: Reference) -> torch.Tensor:
    import torch

    sd = ref.rows.to(torch.float64).std(dim=0).to(x.dtype)
    return x + 0.2 * sd * torch.from_numpy(rng.standard_normal(tuple(x.shape))).to(x.dtype)


def _field_corruption(x: torch.Tensor, rng: np.random.Generator, ref: Reference) -> torch.Tensor:
    """SCARF's corruption: 30% of each row's fields replaced by the same field of a random row of the pool."""
    import torch

    donors = ref.rows[torch.from_numpy(rng.integers(0, ref.rows.shape[0], x.shape[0]))].to(x.dtype)
    replace = torch.from_numpy(rng.random(tuple(x.shape)) < 0.3)
    return torch.where(replace, donors, x)


def _field_dropout(x: torch.Tensor, rng: np.random.Generator, ref: Reference) -> torch.Tensor:
    """Dropout on the input: 30% of each row's fields set to 0."""
    import torch

    return x * torch.from_numpy(rng.random(tuple(x.shape)) >= 0.3).to(x.dtype)


def _row_scale(x: torch.Tensor, rng: np.random.Generator, ref: Reference) -> torch.Tensor:
    return x * _uniform(rng, 0.8, 1.2, (x.shape[0], 1)).to(x.dtype)


def _kept_tokens(x: torch.Tensor, keep: np.ndarray, pad_id: int) -> torch.Tensor:
    """Each row (B, L) with only the tokens ``keep`` (B, L) marks, in order, padded with ``pad_id`` as the row
    was (left when it started with the pad id and ended with a token)."""
    import torch

    out = torch.full_like(x, pad_id)
    n = x.shape[1]
    for i in range(x.shape[0]):
        row = x[i]
        tokens = row[torch.from_numpy(keep[i]) & (row != pad_id)]
        left = bool(row[0] == pad_id) and bool(row[-1] != pad_id)
        if left:
            out[i, n - tokens.numel() :] = tokens
        else:
            out[i, : tokens.numel()] = tokens
    return out


def _token_dropout(x: torch.Tensor, rng: np.random.Generator, ref: Reference) -> torch.Tensor:
    """15% of each sequence's tokens deleted (at least one token kept)."""
    keep = rng.random(tuple(x.shape)) >= 0.15
    keep[np.arange(x.shape[0]), rng.integers(0, x.shape[1], x.shape[0])] = True
    return _kept_tokens(x, keep, ref.pad_id)


def _truncation(x: torch.Tensor, rng: np.random.Generator, ref: Reference) -> torch.Tensor:
    """Each sequence cut to its first 50-80% of tokens (at least one)."""
    lengths = (x != ref.pad_id).sum(dim=1).numpy()
    cut = np.maximum(1, np.ceil(lengths * rng.uniform(0.5, 0.8, x.shape[0]))).astype(int)
    order = np.cumsum((x != ref.pad_id).numpy(), axis=1)
    return _kept_tokens(x, order <= cut[:, None], ref.pad_id)


def _token_swap(x: torch.Tensor, rng: np.random.Generator, ref: Reference) -> torch.Tensor:
    """A fifth of the neighbouring tokens of each sequence swapped (word order noise)."""
    out = x.clone()
    for i in range(x.shape[0]):
        pos = np.flatnonzero((x[i] != ref.pad_id).numpy())
        for j in pos[:-1][rng.random(max(pos.size - 1, 0)) < 0.2]:
            if j + 1 in pos:
                out[i, j], out[i, j + 1] = out[i, j + 1].clone(), out[i, j].clone()
    return out


#: The usual augmentations of an image pipeline (torchvision's ColorJitter, GaussianBlur, RandomAffine,
#: Grayscale, additive noise), of feature rows and of token sequences, each at a moderate strength.
AUGMENTATIONS: tuple[Augmentation, ...] = (
    Augmentation(
        "colour_cast",
        "a colour cast (each channel offset by up to 30% of the image's range)",
        _colour_cast,
        2,
    ),
    Augmentation("brighter", "brightening (by 10-30% of the image's range)", _brighter),
    Augmentation("darker", "darkening (by 10-30% of the image's range)", _darker),
    Augmentation("contrast", "a contrast change (x0.5 to x1.5)", _contrast),
    Augmentation("blur", "a Gaussian blur (sigma 0.5-1.5 px per 32 px)", _blur),
    Augmentation("noise", "pixel noise (SD 8% of the image's range)", _noise),
    Augmentation("shift", "a shift by up to a tenth of the image", _shift),
    Augmentation("grayscale", "conversion to grey", _grayscale, 3),
    # feature rows: noise, SCARF-style corruption, dropout, scaling
    Augmentation(
        "field_noise", "noise on every field (SD 20% of the field's spread)", _field_noise, kind="tabular"
    ),
    Augmentation(
        "field_corruption",
        "corruption (30% of the fields replaced by another row's)",
        _field_corruption,
        kind="tabular",
    ),
    Augmentation("field_dropout", "dropout (30% of the fields set to 0)", _field_dropout, kind="tabular"),
    Augmentation("row_scale", "scaling of the whole row (x0.8 to x1.2)", _row_scale, kind="tabular"),
    # token sequences: deletion, truncation, word-order noise
    Augmentation("token_dropout", "token deletion (15% of the tokens)", _token_dropout, kind="sequence"),
    Augmentation(
        "truncation", "truncation (to the first 50-80% of the tokens)", _truncation, kind="sequence"
    ),
    Augmentation(
        "token_swap",
        "word-order noise (a fifth of neighbouring tokens swapped)",
        _token_swap,
        kind="sequence",
    ),
)


@register_probe
class AugmentationProbe(Probe):
    """GD105: does an augmentation on both items of a non-matching pair make the model call it a match?

    On a seeded sample of ``n_pairs`` validation pairs of each label (given, or from episodes or labels),
    every augmentation of :data:`AUGMENTATIONS` that applies to the inputs is given to both items of each
    *negative* pair (an independent random draw per item, as an augmentation pipeline draws), which are
    re-embedded and scored. The clean positive pairs stay as they are. Measured, per augmentation:

    - the *crossing rate*: the probability that an augmented non-match scores as more alike than a true match
      (1 - ROC-AUC of clean positives against augmented negatives; ties count one half). 0.5 means the model
      can no longer tell an augmented non-match from a match; a healthy model keeps it near its clean value,
      1 - AUC, whatever the augmentation does to its scores;
    - its rise over the clean crossing rate (the same pairs without the augmentation);

    with bootstrap CIs over pairs (the same resamples for both, so the rise is paired), simultaneous over the
    augmentations tested (Bonferroni). Each augmentation is first measured on half the negatives and kept there
    when its crossing rate's CI is below ``null_crossing`` (a stop for futility, which adds no false finding);
    the others are measured on all. Emits GD105 (warn) when the crossing rate is at least
    ``min_crossing`` with its CI above ``null_crossing`` (0.5: more often than not) and the rise's CI above 0;
    fail from ``fail_crossing``. A model that learned "both images augmented = same identity" (augmentation
    applied to similar pairs only, in the training loop) scores augmented non-matches far above its true
    matches; a merely non-invariant model moves its scores, but not past its own matches. The loop's view
    decides between the two where the validation ranking is weak: when the training accuracy with the
    augmentation on the similar pairs is below the accuracy as loaded (Wilson CIs apart), the model does not
    take the augmentation for a match on its own pairs, and the finding is info. So it is, too, when the clean
    validation ranking is at chance (clean crossing CI not below ``null_crossing``: an augmentation that makes
    every pair more alike then pushes non-matches past the matches whatever the model learned) unless the loop's
    view is clearly above the accuracy as loaded.
    Images, feature rows and token ids (each with its own augmentations); 1-D signals and other inputs are
    skipped with the reason.
    """

    name = "augmentation"
    concurrent = True
    family = "leakage"
    codes = ("GD105",)
    requires = frozenset({"model", "val_inputs", "val_pairs_any"})
    description = (
        "Augmentations on both images of non-matching validation pairs: does the model call them a match?"
    )
    defaults = {
        "n_pairs": 200,  # validation pairs of each label; the negatives are re-embedded once per augmentation
        "min_crossing": 0.6,  # augmented non-matches beating true matches this often
        "null_crossing": 0.5,  # the CI must clear "as often as not"
        "fail_crossing": 0.8,
    }

    def _sample(self, ctx: AuditContext):
        """Oriented scores of up to ``n_pairs`` validation pairs of each label, the non-matches' images (B, C, H, W)
        and the items' own shape."""
        import torch

        from ...modality import input_kind

        pairs = ctx.pairs("val")
        items = ctx.val.items
        probe_batch = items.get_batch(pairs.left[:1])
        kind = input_kind(probe_batch)
        if kind not in ("image", "tabular", "sequence") or (kind != "sequence") != torch.is_floating_point(
            probe_batch
        ):
            raise ProbeSkipped(
                "the augmentations are defined for images (B, C, H, W) and feature rows (B, F) of real values, and "
                "for token ids (B, L)"
            )
        rng = ctx.rng("augmentation.sample")
        n = int(self.params["n_pairs"])
        pos_rows, neg_rows = np.flatnonzero(pairs.label == 1), np.flatnonzero(pairs.label == 0)
        if pos_rows.size < 10 or neg_rows.size < 10:
            raise ProbeSkipped("fewer than 10 validation pairs of one label")
        pos_rows = np.sort(rng.choice(pos_rows, min(n, pos_rows.size), replace=False))
        neg_rows = np.sort(rng.choice(neg_rows, min(n, neg_rows.size), replace=False))
        scores = ctx.pair_scores("val")
        left, right = items.get_batch(pairs.left[neg_rows]), items.get_batch(pairs.right[neg_rows])
        if kind == "image" and left.ndim == 3:
            left, right = left.unsqueeze(1), right.unsqueeze(1)
        ref = Reference(pad_id=_pad_id(ctx) if kind == "sequence" else 0, rows=torch.cat([left, right]))
        usable = [
            a
            for a in AUGMENTATIONS
            if a.kind == kind and (kind != "image" or left.shape[1] >= a.min_channels)
        ]
        sample = (
            scores[pos_rows],
            scores[neg_rows],
            left,
            right,
            probe_batch.shape[1:],
            float(np.std(scores) or 1.0),
        )
        return sample, ref, usable

    def _measure(self, ctx: AuditContext) -> Measurement:
        import torch

        (s_pos, s_neg, left, right, shape, sd), ref, usable = self._sample(ctx)
        level = float(ctx.option("ci_level"))
        simultaneous = 1.0 - (1.0 - level) / max(len(usable), 1)
        n_boot = int(ctx.option("n_boot"))
        boot = ctx.rng("augmentation.boot")
        wp = bootstrap_multiplicities(boot, s_pos.size, n_boot)
        # a first half of the negatives settles the augmentations that are clearly harmless (crossing CI below
        # the null): stopping for futility only, so no false finding is added, at half the re-embedding
        half = s_neg.size // 2 if s_neg.size >= 40 else s_neg.size
        wn = {m: bootstrap_multiplicities(boot, m, n_boot) for m in sorted({half, s_neg.size})}

        def crossing(neg: np.ndarray) -> tuple[float, np.ndarray]:
            y = np.r_[np.ones(s_pos.size, bool), np.zeros(neg.size, bool)]
            values = np.r_[s_pos, neg]
            point = 1.0 - roc_auc(values, y)
            return point, 1.0 - weighted_auc(values, y, wp, wn[neg.size])

        clean = {m: crossing(s_neg[:m]) for m in wn}
        reading = ctx.reading().scorer

        def augmented_scores(aug: Augmentation, rows: slice, draw: np.random.Generator) -> np.ndarray:
            new_l = aug.apply(left[rows].clone(), draw, ref).to(left.dtype)  # the user's dtype (float16...)
            new_r = aug.apply(right[rows].clone(), draw, ref).to(left.dtype)
            emb = ctx.embed_new(torch.cat([new_l, new_r]).reshape(-1, *shape))
            k = new_l.shape[0]
            return reading.orient(ctx.raw_scores_of(emb[:k], emb[k:]))

        tested: list[dict[str, Any]] = []
        shown: dict[str, np.ndarray] = {}
        null = float(self.params["null_crossing"])
        for aug in usable:
            draw = ctx.rng(f"augmentation.{aug.name}")
            s_aug = augmented_scores(aug, slice(0, half), draw)
            point, draws = crossing(s_aug)
            if half < s_neg.size and estimate_from_draws(point, draws, half, simultaneous).high >= null:
                s_aug = np.r_[s_aug, augmented_scores(aug, slice(half, None), draw)]
                point, draws = crossing(s_aug)
            m = s_aug.size
            tested.append(
                {
                    "augmentation": aug.name,
                    "words": aug.words,
                    "n_negatives": int(m),
                    "crossing": estimate_from_draws(point, draws, m, simultaneous),
                    "rise": estimate_from_draws(point - clean[m][0], draws - clean[m][1], m, simultaneous),
                    "negatives_accepted_shift_sd": float(np.mean(s_aug - s_neg[:m]) / sd),
                }
            )
            shown[aug.name] = s_aug
        tested.sort(key=lambda t: -t["crossing"].value)
        # the loop's view is worth its re-embedding only for an augmentation that could be reported
        lead = tested[0] if tested else None
        promising = lead is not None and lead["crossing"].value >= self.params["min_crossing"]
        loop_view = self._loop_view(ctx, usable, lead["augmentation"], ref, level) if promising else None
        metrics = {
            "n_positive_pairs": int(s_pos.size),
            "n_negative_pairs": int(s_neg.size),
            "pairs": f"validation pairs {ctx.pairs_origin('val')}",
            "clean_crossing": estimate_from_draws(*clean[s_neg.size], s_neg.size, level),
            "augmentations": tested,
            "multiplicity": f"Bonferroni over {len(usable)} augmentations",
            "training_accuracy_as_loaded": loop_view[0] if loop_view else None,
            "training_accuracy_similar_augmented": loop_view[1] if loop_view else None,
        }
        figures = [self._figure(s_pos, s_neg, shown, tested)] if tested else []
        return Measurement(metrics=metrics, figures=figures)

    def _loop_view(
        self, ctx: AuditContext, usable: list[Augmentation], name: str, ref: Reference, level: float
    ) -> tuple[Estimate, Estimate] | None:
        """Training accuracy at the decision threshold on a seeded sample of training pairs (up to 2 x
        ``n_pairs``, in their given mix): as loaded, and with augmentation ``name`` on both images of the
        similar pairs only, which is what a loop that augments similar pairs measures."""
        import torch

        pairs = ctx.pairs("train")
        if pairs is None or ctx.model is None:
            return None
        aug = next(a for a in usable if a.name == name)
        rng = ctx.rng("augmentation.loop")
        rows = np.sort(
            rng.choice(len(pairs), min(2 * int(self.params["n_pairs"]), len(pairs)), replace=False)
        )
        similar = pairs.label[rows] == 1
        thr, _ = ctx.decision_threshold()
        before = ctx.pair_scores("train")[rows]
        after = before.copy()
        if similar.any():
            items = ctx.train.items
            left, right = (
                items.get_batch(pairs.left[rows[similar]]),
                items.get_batch(pairs.right[rows[similar]]),
            )
            shape = left.shape[1:]
            if aug.kind == "image" and left.ndim == 3:
                left, right = left.unsqueeze(1), right.unsqueeze(1)
            draw = ctx.rng(f"augmentation.loop.{name}")
            new = torch.cat([aug.apply(left.clone(), draw, ref), aug.apply(right.clone(), draw, ref)]).to(
                left.dtype
            )
            new = new.reshape(-1, *shape)
            emb = ctx.embed_new(new)
            k = int(similar.sum())
            after[similar] = ctx.reading().scorer.orient(ctx.raw_scores_of(emb[:k], emb[k:]))
        label = pairs.label[rows] == 1
        n = int(rows.size)
        return (
            wilson(int(((before >= thr) == label).sum()), n, level),
            wilson(int(((after >= thr) == label).sum()), n, level),
        )

    @staticmethod
    def _figure(s_pos, s_neg, shown: dict[str, np.ndarray], tested: list[dict[str, Any]]) -> FigureSpec:
        """Scores of true matches, non-matches, and non-matches with the leading augmentation on both images."""
        lead = tested[0]["augmentation"]
        return FigureSpec(
            FIG_SCORES,
            "hist",
            "Validation scores: matches, non-matches, and non-matches with both images augmented",
            {
                "panels": [
                    {
                        "title": f"'{lead}' on both images of the non-matches",
                        "series": {
                            "matches": np.round(s_pos, 5).tolist(),
                            "non-matches": np.round(s_neg, 5).tolist(),
                            f"non-matches, {lead}": np.round(shown[lead], 5).tolist(),
                        },
                    }
                ],
                "xlabel": "score (higher = more alike)",
            },
            caption="A healthy model keeps augmented non-matches below its matches; a model that learned "
            "'both images augmented = a match' moves them past.",
        )

    def _judge(self, m: Measurement) -> list[Finding]:
        p = self.params
        flagged = [
            t
            for t in m.metrics["augmentations"]
            if t["crossing"].value >= p["min_crossing"]
            and t["crossing"].above(p["null_crossing"])
            and t["rise"].above(0.0)
        ]
        if not flagged:
            return []
        lead: dict[str, Any] = flagged[0]
        crossing: Estimate = lead["crossing"]
        clean: Estimate = m.metrics["clean_crossing"]
        sev = Severity.FAIL if crossing.value >= p["fail_crossing"] else Severity.WARN
        others = ", ".join(t["augmentation"] for t in flagged[1:])
        msg = (
            f"With {lead['words']} on both images, a validation non-match scores as more alike than a true "
            f"match {crossing.value:.0%} of the time {_ci(crossing)}, against {clean.value:.0%} {_ci(clean)} "
            f"without it (chance 50%: the model can no longer tell them apart; {lead['n_negatives']} "
            f"non-matches against {m.metrics['n_positive_pairs']} matches, {m.metrics['pairs']}). The model "
            "treats the augmentation itself as evidence of a match. A training loop that augments similar pairs "
            "only teaches exactly this, and its own training accuracy then measures the augmentation, not the "
            "identity; whatever the cause, the model cannot be trusted on data where the augmentation occurs."
        )
        loaded, augmented = (
            m.metrics["training_accuracy_as_loaded"],
            m.metrics["training_accuracy_similar_augmented"],
        )
        if loaded is not None and augmented is not None:
            msg += (
                f" If your loop augments the similar pairs only, its training accuracy reads {augmented.value:.2f} "
                f"{_ci2(augmented)} where the training pairs as loaded give {loaded.value:.2f} {_ci2(loaded)} "
                f"({loaded.n} training pairs at the decision threshold)."
            )
            if augmented.high < loaded.low:  # the loop's view contradicts a loop that taught it
                sev = Severity.INFO
                msg += (
                    " That is lower: on its own training pairs the model does not take the augmentation for a match, "
                    "so no loop taught it that; the crossing says the model is not invariant to the augmentation, "
                    "and it is reported for information."
                )
        if (
            sev > Severity.INFO
            and not clean.below(p["null_crossing"])
            and not (loaded is not None and augmented is not None and augmented.low > loaded.high)
        ):
            sev = Severity.INFO
            msg += (
                f" But without the augmentation the model tells these validation matches from non-matches no better "
                f"than chance (crossing {clean.value:.0%} {_ci(clean)}), so an augmentation that makes every pair "
                "look more alike pushes non-matches past them whatever the model learned, and its own training "
                "pairs do not show the augmentation read as a match: reported for information. (Check the "
                "validation pair labels.)"
            )
        if others:
            msg += f" Also: {others}."
        evidence = {
            "augmentation": lead["augmentation"],
            "crossing": crossing.to_dict(),
            "clean_crossing": clean.to_dict(),
            "rise": lead["rise"].to_dict(),
            "also": [t["augmentation"] for t in flagged[1:]],
            "training_accuracy_as_loaded": loaded.to_dict() if loaded is not None else None,
            "training_accuracy_similar_augmented": augmented.to_dict() if augmented is not None else None,
        }
        return [
            self.finding(
                "GD105",
                sev,
                msg,
                evidence=evidence,
                figures=[FIG_SCORES],
                cause=f"augmentation:{lead['augmentation']}",
            )
        ]


def _pad_id(ctx: AuditContext) -> int:
    """The pad id of token sequences, as the leakage signal reads it (one setting: ``probes.shortcut.pad_id``)."""
    from .signal import INPUT_LAYOUT

    return int(ctx.artifact(INPUT_LAYOUT).pad_id)


def _ci(e: Estimate) -> str:
    return f"[{e.low:.0%}, {e.high:.0%}]"


def _ci2(e: Estimate) -> str:
    return f"[{e.low:.2f}, {e.high:.2f}]"
