"""The mode probe: do embeddings depend on ``model.train()`` vs ``model.eval()``? (GD306)"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from ...findings.finding import Finding, Severity
from ...metrics import nway_accuracy
from ...stats import Estimate, bootstrap_mean, wilson
from ..base import FigureSpec, Measurement, Probe
from ..registry import register_probe

if TYPE_CHECKING:
    import torch

    from ...context import AuditContext

__all__ = ["ModeProbe"]

FIG_CHANGE = "mode_change"


@contextlib.contextmanager
def _isolated_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's RNG for the block and restore the caller's RNG state afterwards.

    Dropout in train mode draws from the global torch generator of the model's device; forking it keeps
    the user's random stream exactly where it was and makes the probe deterministic.
    """
    import torch

    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices, device_type="cuda"):
        torch.random.default_generator.manual_seed(seed)
        if devices:
            with torch.cuda.device(devices[0]):
                torch.cuda.manual_seed(seed)
        yield


def _mode_dependent_layers(module: torch.nn.Module) -> dict[str, int]:
    """Counts of the layers whose output depends on the training flag (normalization with running
    statistics, dropout), by class name."""
    from torch.nn.modules.batchnorm import _NormBase
    from torch.nn.modules.dropout import _DropoutNd

    found = Counter()
    for m in module.modules():
        dropout = isinstance(m, _DropoutNd) and m.p > 0
        if dropout or (isinstance(m, _NormBase) and m.track_running_stats):
            found[type(m).__name__] += 1
    return dict(sorted(found.items()))


@register_probe
class ModeProbe(Probe):
    """Embeddings of the same validation inputs in ``train()`` vs ``eval()`` mode, on a deep copy.

    What it measures
    ----------------
    A seeded sample of validation items (the items of up to ``max_episodes`` whole episodes, at most
    ``max_items`` items, so that decisions can be compared) is embedded twice with the same batches: in
    eval mode (the user's module, flags restored) and in train mode (a deep copy, so BatchNorm running
    statistics of the user's model never move; Dropout draws from a forked, seeded torch RNG, so the
    user's random state is untouched and the result is deterministic).

    - relative change per item ``||e_train - e_eval|| / ||e_eval||`` (0 = identical, 1 = as large as the
      embedding itself), mean with a bootstrap CI over items;
    - agreement of decisions: the candidate the user's evaluation picks (argmax of the oriented score) in
      each episode, train mode vs eval mode, with a Wilson CI; n-way top-1 in both modes. Without episodes,
      the nearest neighbour of each sampled item among the others (same rule) is compared instead.

    A model without mode-dependent layers gives exactly 0 and no finding. GD306 when the mean relative change
    is >= ``max_relative_change`` with its CI above 0, or decision agreement's whole CI is below ``1 -
    max_decision_flips``: ``warn`` when the model was handed over in train mode (as after a training loop, so
    the user's own evaluation likely ran in it), ``info`` when it came in eval mode.
    """

    name = "mode"
    concurrent = False  # train-mode dropout draws from torch's global stream, seeded for this probe
    family = "protocol"
    codes = ("GD306",)
    requires = frozenset({"model", "val_inputs"})
    defaults = {
        # items embedded twice (bounded cost for big encoders)
        "max_items": 512,
        "max_episodes": 100,
        # a tenth of the embedding's length: far above float noise, well below what moves decisions
        "max_relative_change": 0.1,
        # more than one decision in ten changes with the mode
        "max_decision_flips": 0.1,
    }
    description = (
        "Embeddings in train() vs eval() mode on a deep copy; the user's BatchNorm is never touched."
    )

    def _measure(self, ctx: AuditContext) -> Measurement:
        level = float(ctx.option("ci_level"))
        n_boot = int(ctx.option("n_boot"))
        split = "val"
        items = ctx.splits[split].items
        rng = ctx.rng("mode.sample")
        episodes = ctx.episodes(split)
        chosen, sample = self._sample(episodes, len(items), rng)
        idx = np.array(sorted(sample), dtype=np.int64)
        pos = {int(i): k for k, i in enumerate(idx)}
        x = items.get_batch(idx)

        e_eval = ctx.embed_new(x, mode="eval")
        seed = int(ctx.rng("mode.dropout").integers(0, 2**31 - 1))
        with _isolated_rng(seed, ctx.model.module_device()):
            e_train = ctx.embed_new(x, mode="train")

        norm = np.linalg.norm(e_eval.astype(np.float64), axis=1)
        diff = np.linalg.norm(e_train.astype(np.float64) - e_eval.astype(np.float64), axis=1)
        rel = diff / np.maximum(norm, np.finfo(np.float64).tiny)
        change = bootstrap_mean(rel, rng=ctx.rng("mode.boot"), n_boot=n_boot, level=level)

        if chosen:
            ep = np.array(chosen)
            anchors = np.array([pos[int(a)] for a in episodes.anchor[ep]])
            cands = np.vectorize(lambda i: pos[int(i)])(episodes.candidates[ep])
            correct = episodes.correct[ep]
            unit = f"{episodes.n_way}-way episodes"
        else:
            anchors, cands, correct = self._neighbour_rows(idx.size)
            unit = "nearest-neighbour queries"
        s_eval = self._oriented(ctx, e_eval, anchors, cands)
        s_train = self._oriented(ctx, e_train, anchors, cands)
        pick_eval, pick_train = s_eval.argmax(axis=1), s_train.argmax(axis=1)
        agree = wilson(int((pick_eval == pick_train).sum()), pick_eval.size, level)
        metrics: dict[str, Any] = {
            "split": split,
            "n_items": int(idx.size),
            "relative_change": change,
            "max_relative_change_item": float(rel.max()) if rel.size else 0.0,
            "decision_unit": unit,
            "n_decisions": int(pick_eval.size),
            "decision_agreement": agree,
            "mode_dependent_layers": _mode_dependent_layers(ctx.model.module),
            # the audit restores every flag, so this is the state the user handed the model over in
            "handed_over_in_train_mode": ctx.model.handed_over_in_train_mode,
            "exactly_equal": bool(np.array_equal(e_eval, e_train)),
        }
        if correct is not None:
            b = ctx.rng("mode.boot.acc")
            metrics["top1_eval"] = bootstrap_mean(
                nway_accuracy(s_eval, correct), rng=b, n_boot=n_boot, level=level
            )
            metrics["top1_train"] = bootstrap_mean(
                nway_accuracy(s_train, correct), rng=b, n_boot=n_boot, level=level
            )
        figure = FigureSpec(
            FIG_CHANGE,
            "hist",
            "Embedding change between train and eval mode",
            {
                "panels": [
                    {
                        "title": f"{idx.size} {split} items",
                        "series": {"relative change": np.round(rel, 5).tolist()},
                    }
                ],
                "xlabel": "||e_train - e_eval|| / ||e_eval||",
            },
            caption="0 = the mode does not matter; 1 = the change is as large as the embedding.",
        )
        evidence = {"sample_items": idx.tolist(), "episodes": [int(e) for e in chosen]}
        return Measurement(metrics=metrics, evidence=evidence, figures=[figure])

    def _sample(self, episodes: Any, n_items: int, rng: np.random.Generator) -> tuple[list[int], set[int]]:
        """Whole episodes (their ids) whose items fit in ``max_items``, and the items; else random items."""
        max_items = int(self.params["max_items"])
        chosen: list[int] = []
        sample: set[int] = set()
        if episodes is not None:
            for e in rng.permutation(len(episodes)):
                members = {int(episodes.anchor[e]), *map(int, episodes.candidates[e])}
                if len(sample | members) > max_items:
                    continue
                sample |= members
                chosen.append(int(e))
                if len(chosen) >= int(self.params["max_episodes"]):
                    break
        if not chosen:
            sample = set(rng.choice(n_items, size=min(n_items, max_items), replace=False).tolist())
        return chosen, sample

    @staticmethod
    def _neighbour_rows(n: int) -> tuple[np.ndarray, np.ndarray, None]:
        """Each item against every other sampled item: anchors (n,), candidates (n, n - 1)."""
        j = np.arange(n - 1)[None, :]
        cands = j + (j >= np.arange(n)[:, None])
        return np.arange(n), cands.astype(np.int64), None

    @staticmethod
    def _oriented(ctx: AuditContext, emb: np.ndarray, anchors: np.ndarray, cands: np.ndarray) -> np.ndarray:
        """Oriented scores (E, n) of each anchor row against its candidates, with the user's distance."""
        left = np.repeat(anchors, cands.shape[1])
        raw = ctx.raw_scores_of(emb[left], emb[cands.reshape(-1)])
        return ctx.scorer.orient(raw).reshape(cands.shape)

    def _judge(self, m: Measurement) -> list[Finding]:
        p = self.params
        mt = m.metrics
        change: Estimate = mt["relative_change"]
        agree: Estimate = mt["decision_agreement"]
        if mt["exactly_equal"]:
            return []
        large_change = change.value >= p["max_relative_change"] and change.above(0.0)
        flips = agree.below(1.0 - p["max_decision_flips"])
        if not (large_change or flips):
            return []
        layers = (
            ", ".join(f"{name} x{k}" for name, k in mt["mode_dependent_layers"].items())
            or "none found by type"
        )
        acc = ""
        if "top1_eval" in mt:
            acc = f" (top-1 {mt['top1_eval']:.2f} in eval mode vs {mt['top1_train']:.2f} in train mode)"
        message = (
            f"In train mode the embeddings of {mt['n_items']} {mt['split']} items move by {change:.2f} of their "
            f"length on average (0 = the mode does not matter), and the decisions of {agree.value:.0%} "
            f"[{agree.low:.0%}, {agree.high:.0%}] of {mt['n_decisions']} {mt['decision_unit']} stay the same{acc}. "
            f"Mode-dependent layers: {layers}. "
            + (
                "The model was handed over in train mode, as it is after a training loop: if validation ran "
                "like this, its numbers come from the train-mode embeddings. "
                if mt.get("handed_over_in_train_mode")
                else ""
            )
            + "If the validation code forgets model.eval(), or training accuracy "
            f"was measured in train mode, the numbers are not comparable. (warn: change >= "
            f"{p['max_relative_change']:g} or more than {p['max_decision_flips']:.0%} of decisions flip.)"
        )
        evidence = {
            k: (v.to_dict() if isinstance(v, Estimate) else v) for k, v in mt.items() if k != "exactly_equal"
        }
        # A WARN says something about the user's gap: only when the model came in train mode, so the user's
        # own evaluation likely ran that way. Handed over in eval mode, the dependence is a fact to know (info).
        severity = Severity.WARN if mt.get("handed_over_in_train_mode") else Severity.INFO
        if severity == Severity.INFO:
            message += " The model was handed over in eval mode, so your evaluation most likely ran in eval mode: info."
        return [
            self.finding(
                "GD306", severity, message, evidence=evidence, figures=[FIG_CHANGE], cause="mechanism:mode"
            )
        ]
