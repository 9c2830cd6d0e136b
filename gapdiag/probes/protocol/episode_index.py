"""GD307 — the correct index of the user's episodes points at another candidate than the model's match.

An n-way evaluation loop builds ``(anchor, candidates, correct_index)``; an index taken before the true match
was inserted, or counted from 1, names the candidate next to the match. Validation accuracy then sits *below*
chance, the pairs derived from the episodes carry wrong labels, and every number measured on them with them.
The model shows it without any label: its picks pile up at one fixed offset from the named candidate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ...findings.finding import Finding, Severity
from ...stats import Estimate, wilson
from ..base import Measurement, Probe
from ..registry import register_probe

if TYPE_CHECKING:
    from ...context import AuditContext

__all__ = ["EpisodeIndexProbe"]


def pick_offsets(scores: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """Offset (E,) of the model's pick from the named candidate, ``(argmax - correct) mod n``, for oriented
    ``scores`` (E, n) (higher = more alike) and ``correct`` (E,) in 0..n-1. Episodes whose top score is tied
    get -1 (no single pick)."""
    top = scores.max(axis=1, keepdims=True)
    single = (scores == top).sum(axis=1) == 1
    offsets = (np.argmax(scores, axis=1) - correct) % scores.shape[1]
    return np.where(single, offsets, -1)


@register_probe
class EpisodeIndexProbe(Probe):
    """GD307: do the model's picks in the user's episodes sit at the named candidate, or at a fixed offset?

    For each split with episodes the user gave, the offset of the model's pick (argmax of the score in
    gapdiag's reading) from the candidate ``correct`` names, modulo n: the share of episodes at each offset
    0..n-1 (Wilson CIs). With a right index a model above chance piles its picks at offset 0 and spreads the
    rest; with a shifted index they pile at the shift. ``fail`` when some offset k != 0 holds at least
    ``min_share_over_chance`` x chance (1/n) of the episodes with its CI above chance and above the CI of
    offset 0. The evidence gives the top-1 the episodes would have with the index moved by k. A consistent
    index that names a fixed, wrong slot (always 0 while the match is shuffled) spreads the picks evenly: it
    cannot be told from a model at chance, and is not flagged.
    """

    name = "episode_index"
    concurrent = True
    family = "protocol"
    codes = ("GD307",)
    requires = frozenset()
    defaults = {"min_share_over_chance": 2.0}
    description = (
        "Does the correct index of your episodes name the candidate the model picks, or its neighbour?"
    )

    def _measure(self, ctx: AuditContext) -> Measurement:
        level = float(ctx.option("ci_level"))
        splits = [s for s in ("val", "train") if ctx.splits[s].episodes is not None]
        metrics: dict[str, Any] = {}
        if not splits:
            return Measurement(
                metrics={"val_pairs_from_episodes": False},
                notes=["No split has episodes of its own: there is no correct index to check."],
            )
        for split in splits:
            e = ctx.splits[split].episodes
            offsets = pick_offsets(ctx.episode_scores(split), e.correct)
            n = int(offsets.size)
            counts = np.bincount(offsets[offsets >= 0], minlength=e.n_way)
            metrics[split] = {
                "n_episodes": n,
                "n_way": int(e.n_way),
                "tied": int((offsets < 0).sum()),
                "shares": [wilson(int(c), n, level) for c in counts],
            }
        metrics["val_pairs_from_episodes"] = ctx.splits["val"].pairs is None and "val" in splits
        return Measurement(metrics=metrics)

    def _judge(self, m: Measurement) -> list[Finding]:
        findings = []
        for split in ("val", "train"):
            r = m.metrics.get(split)
            if r is None:
                continue
            shares: list[Estimate] = r["shares"]
            chance = 1.0 / r["n_way"]
            k = 1 + int(np.argmax([s.value for s in shares[1:]]))
            at_k, at_0 = shares[k], shares[0]
            if not (
                at_k.value >= self.params["min_share_over_chance"] * chance
                and at_k.low > chance
                and at_k.low > at_0.high
            ):
                continue
            shift = f"+{k}" if k <= r["n_way"] // 2 else f"-{r['n_way'] - k}"
            steps = abs(int(shift))
            where = f"{'1 position' if steps == 1 else f'{steps} positions'} {'after' if k <= r['n_way'] // 2 else 'before'}"
            msg = (
                f"In {at_k.value:.0%} [{at_k.low:.0%}, {at_k.high:.0%}] of your {r['n_episodes']} {split} episodes "
                f"({r['n_way']}-way) the model picks the candidate {where} the one your correct index names "
                f"(counting round the list), and the named one in only {at_0.value:.0%} [{at_0.low:.0%}, {at_0.high:.0%}] "
                f"(chance {chance:.0%} each). The index looks shifted by {shift}: taken before the true match was "
                "inserted among the candidates, counted from 1, or read from another list. With it moved, top-1 "
                f"would be {at_k.value:.2f} instead of {at_0.value:.2f}, and the pairs gapdiag derives from the "
                "episodes carry its labels too. (Unless that slot always holds a near-copy of the anchor.)"
            )
            evidence = {
                "split": split,
                "shift": k,
                "share_at_shift": at_k.to_dict(),
                "share_at_index": at_0.to_dict(),
                "shares": [s.to_dict() for s in shares],
                "n_episodes": r["n_episodes"],
                "val_pairs_from_episodes": bool(m.metrics["val_pairs_from_episodes"]) and split == "val",
            }
            findings.append(
                self.finding("GD307", Severity.FAIL, msg, evidence=evidence, cause="mechanism:episode_index")
            )
        return findings
