"""GD301 — protocol mismatch: training and validation measured with different protocols.

The numbers come from the gap chain (:data:`gapdiag.gap.CHAIN`, :data:`gapdiag.gap.GRID`): this probe judges
the chain's protocol step and draws the grid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ...findings.finding import Finding, Severity
from ...gap import CHAIN, GRID, Chain, Grid
from ..base import FigureSpec, Measurement, Probe
from ..registry import register_probe

if TYPE_CHECKING:
    from ...context import AuditContext

__all__ = ["ProtocolMismatchProbe"]

FIG_GRID = "protocol_grid"
_GRID_COLUMNS = ("pairwise_accuracy", "pairwise_balanced_accuracy", "roc_auc", "nway_top1")


def _describe(protocol: str) -> str:
    return "pairwise verification" if protocol == "pairwise" else f"{protocol} identification"


@register_probe
class ProtocolMismatchProbe(Probe):
    """GD301: are training and validation measured the same way, and how much of the drop is the change?

    Reads the gap chain: the *protocol* step is validation under the training protocol minus validation as
    the user measures it (a drop in accuracy units, paired-bootstrap CI). Its share is ``|protocol| / sum of
    |every step|``. ``warn`` when the protocols differ, the step is at least ``min_protocol_part`` with its CI
    above 0 and its share at least ``min_protocol_share``, the finding says the protocol is a material part of
    the gap (and owns that step of the chain); otherwise that the numbers live on different scales. It is
    always ``info``: a protocol mismatch is a property of the evaluation, not a fault of the model, so a
    healthy model validated n-way stays clean. Nothing when the protocols match. The figure is the grid: both splits under both protocols, coloured by lift over chance.
    """

    name = "protocol_mismatch"
    concurrent = True
    family = "protocol"
    codes = ("GD301",)
    requires = frozenset({"train_pairs_any", "val_pairs_any"})
    defaults = {
        "min_protocol_part": 0.05,  # the protocol step, in accuracy units
        "min_protocol_share": 0.25,  # its share of the sum of |steps|: a quarter of the explanation
    }
    description = "Training and validation measured with different protocols (pairwise vs n-way)."

    def _measure(self, ctx: AuditContext) -> Measurement:
        chain, grid = ctx.artifact(CHAIN), ctx.artifact(GRID)
        step = chain.step("protocol") or chain.step("generalization_and_protocol")
        first, last = chain.states[0], chain.states[-1]
        metrics: dict[str, Any] = {
            "train_protocol": first.protocol,
            "val_protocol": last.protocol,
            "differ": first.protocol != last.protocol,
            "step": None if step is None else step.to_dict(),
            "share": _share(chain, step),
            "train": first.to_dict(),
            "val": last.to_dict(),
            "reading_reversed": chain.reading_reversed,
        }
        return Measurement(metrics=metrics, figures=[_grid_figure(grid, float(ctx.option("ci_level")))])

    def _judge(self, m: Measurement) -> list[Finding]:
        mt, p = m.metrics, self.params
        if not mt["differ"]:
            return []
        tr, va, step = mt["train"], mt["val"], mt["step"]
        body = (
            f"Training is measured by {_describe(tr['protocol'])} ({tr['value']:.2f}, chance {tr['chance']:.2f}) "
            f"and validation by {_describe(va['protocol'])} ({va['value']:.2f}, chance {va['chance']:.2f}): the two "
            "numbers live on different scales with different chance levels."
        )
        if mt["reading_reversed"]:
            body += " (The score direction is inverted, GD302: fix it first; the chain shows both readings.)"
        if step is None or step["value"] is None:
            return [
                self.finding(
                    "GD301", Severity.INFO, body, evidence=mt, figures=[FIG_GRID], cause="mechanism:protocol"
                )
            ]
        part = (
            f" Measured on the same validation items, the change of protocol costs {step['value']:.2f} "
            f"[{step['ci_low']:.2f}, {step['ci_high']:.2f}] of accuracy ({mt['share']:.0%} of the chain)."
        )
        material = (
            step["value"] >= p["min_protocol_part"]
            and step["ci_low"] is not None
            and step["ci_low"] > 0
            and mt["share"] >= p["min_protocol_share"]
        )
        if material:
            rule = (
                " Part of your gap is how it is measured, not what the model learned: compare the two splits under "
                f"one protocol (the grid) before changing the model. (named the cause: step >= {p['min_protocol_part']:.2f}, "
                f"share >= {p['min_protocol_share']:.0%}, CI above 0; info, since the protocol is a property of your "
                "evaluation, not a fault of the model.)"
            )
            return [
                self.finding(
                    "GD301",
                    Severity.INFO,
                    body + part + rule,
                    evidence=mt,
                    figures=[FIG_GRID],
                    cause="mechanism:protocol",
                )
            ]
        return [
            self.finding(
                "GD301",
                Severity.INFO,
                body + part + " That is a small part of the gap: judge generalization on the same protocol.",
                evidence=mt,
                figures=[FIG_GRID],
                cause="mechanism:protocol",
            )
        ]


def _share(chain: Chain, step: Any) -> float:
    total = sum(abs(s.estimate.value) for s in chain.steps if np.isfinite(s.estimate.value))
    if step is None or not total or not np.isfinite(step.estimate.value):
        return 0.0
    return float(abs(step.estimate.value) / total)


def _grid_figure(grid: Grid, level: float) -> FigureSpec:
    values, notes = [], []
    for split in ("train", "val"):
        vrow, nrow = [], []
        for key in _GRID_COLUMNS:
            cell = grid.cells[split][key]
            if cell is None or not np.isfinite(cell.estimate.value):
                vrow.append(float("nan"))
                nrow.append("n/a")
                continue
            vrow.append(float(cell.lift.value))
            mine = " (yours)" if key == grid.user_column(split) else ""
            nrow.append(f"{cell.estimate:.2f}\nchance {cell.chance:.2f}{mine}")
        values.append(vrow)
        notes.append(nrow)
    n = grid.n_way["val"] or grid.n_way["train"]
    return FigureSpec(
        FIG_GRID,
        "heatmap",
        "Both splits under both protocols",
        {
            "rows": ["train", "val"],
            "cols": ["pairwise acc.", "balanced acc.", "ROC-AUC", f"{n}-way\ntop-1"],
            "values": values,
            "annotations": notes,
            "vmin": -1.0,
            "vmax": 1.0,
            "cmap": "RdYlGn",
            "cbar": "lift over chance (0 = chance, 1 = perfect)",
        },
        caption=f"Each cell: value [{level:.0%} CI] and its chance level; colour = lift over chance.",
    )
