"""Which pair label means "similar": set by the user, checked against facts that need no pair label.

gapdiag reads pair label 1 as *similar*. Loaders written for the contrastive loss of Hadsell et al. often
mark *dissimilar* pairs with 1. Read the wrong way, every number turns over: GD302 fires as if the score were
read backwards, identities inferred from "positive" pairs are wrong, and GD201 reports a memorization that
is not there. The option ``similar_label`` (1, or 0 for that convention) says which label means similar, and
two facts can show that the setting is wrong without trusting the labels:

- identity labels on both sides of the pairs: pairs labelled similar must not be of one identity *less*
  often than pairs labelled dissimilar (:func:`check_by_identities`, before anything is embedded);
- episodes the user gave, which need no pair label: when the training pairs say the score is read backwards
  but the same reading identifies the episodes' true matches above chance, and the reverse reading below it,
  the pair labels are what is backwards (:func:`check_by_episodes`, right after the embedding pass).

Either one stops the audit with an ``InputError`` that gives the evidence and the setting to use; nothing is
flipped on a guess.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .data import Pairs, Split
from .errors import InputError
from .stats import wilson

if TYPE_CHECKING:
    from .context import AuditContext

__all__ = ["apply_similar_label", "check_by_identities", "check_by_episodes"]

#: pairs of each label needed before identity labels can speak for the convention
MIN_PAIRS_PER_LABEL = 10


def apply_similar_label(splits: dict[str, Split], similar_label: int) -> dict[str, Split]:
    """The splits with their given pairs read in gapdiag's convention (1 = similar): ``1 - label`` when the
    user's labels say 0 = similar, except for pairs made from triplets, whose label the layout gave. New
    objects; the user's Pairs and Splits are not modified."""
    if int(similar_label) == 1:
        return splits
    out = {}
    for role, s in splits.items():
        if s.pairs is None:
            out[role] = s
            continue
        p = s.pairs
        flipped = 1 - p.label if p.from_triplets is None else np.where(p.from_triplets, p.label, 1 - p.label)
        pairs = Pairs(p.items, p.left, p.right, flipped, from_triplets=p.from_triplets)
        out[role] = Split(s.name, s.items, pairs, s.episodes, embeddings=s.embeddings)
    return out


def _setting(similar_label: int) -> tuple[str, str]:
    """What the user's current setting says, and the option that fixes it."""
    if int(similar_label) == 1:
        return (
            "gapdiag reads label 1 as similar",
            "Your labels mark dissimilar pairs with 1 (the contrastive-loss convention): audit again with "
            "config={'similar_label': 0} (similar_label = 0 in [tool.gapdiag]).",
        )
    return (
        "similar_label = 0 makes gapdiag read label 0 as similar",
        "Your labels mark similar pairs with 1: drop similar_label = 0 from the configuration.",
    )


def check_by_identities(splits: dict[str, Split], *, similar_label: int, level: float) -> None:
    """``InputError`` when, in a split with given pairs and identity labels, the pairs read as similar are of
    one identity clearly less often (Wilson CIs apart) than those read as dissimilar, and less than half the
    time. ``splits`` are already in gapdiag's convention (:func:`apply_similar_label`)."""
    for role, s in splits.items():
        p, ids = s.pairs, s.items.labels
        if p is None or ids is None:
            continue
        similar = p.label == 1
        if similar.sum() < MIN_PAIRS_PER_LABEL or (~similar).sum() < MIN_PAIRS_PER_LABEL:
            continue
        same = p.same_identity(ids)
        as_similar = wilson(int(same[similar].sum()), int(similar.sum()), level)
        as_dissimilar = wilson(int(same[~similar].sum()), int((~similar).sum()), level)
        if as_similar.value < 0.5 and as_similar.high < as_dissimilar.low:
            reads, fix = _setting(similar_label)
            raise InputError(
                f"The {role} pairs' labels say the opposite of their identity labels: {reads}, yet only "
                f"{as_similar.value:.0%} of the {int(similar.sum())} pairs read as similar are two items of one "
                f"identity, against {as_dissimilar.value:.0%} of the {int((~similar).sum())} read as dissimilar. "
                + fix
            )


def check_by_episodes(ctx: AuditContext) -> None:
    """``InputError`` when the training pairs say the score is read backwards (GD302's test) while episodes the
    user gave are identified above chance read as declared and below chance read the other way (top-1
    accuracy, Wilson CIs). Call after the embedding pass, before the probes."""
    from .metrics import nway_accuracy

    reading = ctx.reading()
    if not reading.reversed or ctx.pairs_origin(reading.split) != "given":
        return
    level = float(ctx.option("ci_level"))
    for split in ("val", "train"):
        e = ctx.splits[split].episodes
        if e is None:
            continue
        declared = ctx.scorer.orient(ctx.raw_episode_scores(split))
        chance = 1.0 / e.n_way
        as_declared = wilson(int(round(nway_accuracy(declared, e.correct).sum())), len(e), level)
        reversed_ = wilson(int(round(nway_accuracy(-declared, e.correct).sum())), len(e), level)
        if as_declared.low > chance and reversed_.high < chance:
            auc = reading.declared_auc
            reads, fix = _setting(int(ctx.option("similar_label")))
            raise InputError(
                f"The {reading.split} pairs' labels are backwards: {reads}, and read as you declared "
                f"({ctx.scorer.rule}) your score ranks the pairs labelled similar below the others (AUC "
                f"{auc.value:.2f} [{auc.low:.2f}, {auc.high:.2f}], {auc.n} pairs; 0.5 = no signal), yet the same "
                f"reading finds the true match of your {split} episodes, which need no pair label, in "
                f"{as_declared.value:.0%} [{as_declared.low:.0%}, {as_declared.high:.0%}] of {len(e)} episodes "
                f"(chance {chance:.0%}), and the reverse reading in {reversed_.value:.0%}. So the score is read the "
                f"right way and the pair labels are not. {fix} (With cache_dir set, the second audit reuses "
                "these embeddings.)"
            )
