"""The gap: both splits under both protocols (the grid), and the chain of measured states from the user's
training number to the user's validation number, whose steps add up exactly. Numbers only; the report's
renderers write the sentences.

The chain (DESIGN §4, "Attribution"):

(a) ``train_given``: the training units (pairs or episodes) as the user gave them, under the training protocol;
(b) ``train_fresh``: the same training items re-paired without keeping roles (each pair keeps one side and
    swaps the other for a random item of the same identity or inferred group; episodes are redrawn);
(c) ``val_train_protocol``: validation under the training protocol (pairwise: accuracy at the same threshold
    re-weighted to the training positive ratio; n-way: validation episodes with the training n);
(d') ``val_user_corrected``: validation under the user's protocol, read the way the training pairs separate
    (only when that differs from the declared ``kind``);
(d) ``val_user``: validation as the user measures it, read as declared.

Each step is the drop from one state to the next with a bootstrap CI (paired where both states rest on the same
units), so the steps sum to ``a - d`` by construction. :func:`attribute` then names the finding that owns each
significant step; a significant drop that no finding explains is *unexplained*.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .context import Artifact
from .data import make_episodes
from .errors import InputError
from .findings.finding import Finding, Severity, lower_to_info
from .metrics import nway_accuracy
from .protocols import (
    NWAY,
    PAIRWISE,
    Cell,
    Protocols,
    accuracy_at_ratio_cell,
    difference,
    nway_cell,
    pairwise_cells,
    user_protocols,
)
from .sampling import draw_fresh_partners, pair_keys
from .stats import Estimate, estimate_from_draws, paired_mean_draws

if TYPE_CHECKING:
    from .context import AuditContext

__all__ = [
    "ChainState",
    "ChainStep",
    "Chain",
    "FreshPairs",
    "FRESH_PAIRS",
    "GRID",
    "CHAIN",
    "STEP_OWNERS",
    "LOOP_CODES",
    "MEASUREMENT_CODES",
    "attribute",
    "protocol_label",
]

# The codes that may own each kind of step, in order of precedence (the first that fired owns it).
# Generalization: GD307 first, when the validation pairs come from episodes whose correct index is shifted (their
# labels are the index's, so the drop is the loader's); then an artifact carried by the training items and absent
# on validation (proven by GD102's transplant, or at least seen by GD101) and the other explanations; GD205 late:
# it names no mechanism, but a warned shift of the validation embeddings is what that drop is where nothing more
# specific fired (left unowned, a larger unexplained drop lost the most-likely-cause line to a smaller protocol
# step); GD304 last, and only when it found validation negatives chosen harder than training's
# (:data:`OWNS_ONLY_WHEN`): validation items then answer a harder question, not the same one on new items.
_GENERALIZATION = ("GD307", "GD102", "GD305", "GD306", "GD202", "GD101", "GD205", "GD304")
STEP_OWNERS: dict[str, tuple[str, ...]] = {
    "pair_specific": ("GD101", "GD201"),
    "generalization": _GENERALIZATION,
    # GD304 before GD301: when the training number is only the pair mix (a training accuracy at the majority
    # share), the drop to another protocol is measured from a number at chance, and that is what explains it
    "protocol": ("GD307", "GD304", "GD301"),
    "composition": ("GD304",),
    "generalization_and_protocol": (*_GENERALIZATION, "GD301"),
    "direction": ("GD302",),
}
# A code that may own a kind of step only when its finding's evidence says so (one code, several reasons).
OWNS_ONLY_WHEN: dict[tuple[str, str], tuple[str, ...]] = {
    ("generalization", "GD304"): ("validation_negatives_harder", "training_negatives_easier"),
    ("generalization", "GD307"): ("val_pairs_from_episodes",),
}
# Codes about the user's training loop, which the chain cannot measure (it starts from the pairs as loaded): a
# warned one is the most likely cause of the user's gap when only a difference of measurement owns the chain.
LOOP_CODES = frozenset({"GD105"})
# Codes that explain a difference of measurement, not a fault of the model: they own a step at any severity
# (GD301 is info when the model is fine and the protocols alone make the numbers differ).
MEASUREMENT_CODES = frozenset({"GD301", "GD304"})
_COLUMNS = ("pairwise_accuracy", "pairwise_balanced_accuracy", "roc_auc", "nway_top1")


def protocol_label(protocol: str, n_way: int | None) -> str:
    """ "pairwise" or "10-way": how a protocol is named in the report."""
    return PAIRWISE if protocol == PAIRWISE else f"{n_way}-way"


# ------------------------------------------------------------------------------------------------------
# Fresh pairs of the training items (shared with GD201)


@dataclass
class FreshPairs:
    """The given training pairs and their fresh re-pairings, scored in gapdiag's reading.

    ``rows`` (P,) index the given pairs compared (all, or a seeded sample above ``max_pairs_per_split``);
    ``label`` (P,) bool; ``score_given`` (P,); ``score_role_free`` and ``score_role_kept`` (P, R) the scores of
    R fresh pairings that keep one side and swap the other for another item of its identity — of any role,
    or only among items that played the same role (member of a similar / dissimilar pair) — NaN where no such
    partner exists. ``identities_from`` names where identities came from (labels, or inferred groups).
    """

    rows: np.ndarray
    label: np.ndarray
    score_given: np.ndarray
    score_role_free: np.ndarray
    score_role_kept: np.ndarray
    kept_item: np.ndarray
    original_partner: np.ndarray
    fresh_role_free: np.ndarray
    fresh_role_kept: np.ndarray
    identities_from: str
    inferred: bool


def _fresh_pairs(ctx: AuditContext) -> FreshPairs | None:
    pairs = ctx.train.pairs
    ids = ctx.identities("train")
    if pairs is None or ids is None:
        return None
    n_items = len(pairs.items)
    identity = np.unique(ids, return_inverse=True)[1].reshape(-1)
    rng = ctx.rng("gap.fresh_pairs")
    rows = np.arange(len(pairs))
    cap = int(ctx.option("max_pairs_per_split"))
    if rows.size > cap:
        rows = np.sort(rng.choice(rows.size, cap, replace=False))
    left, right, label = pairs.left[rows], pairs.right[rows], pairs.label[rows].astype(np.int64)
    keep_left = rng.random(rows.size) < 0.5
    anchor, partner = np.where(keep_left, left, right), np.where(keep_left, right, left)
    original = np.unique(pair_keys(pairs.left, pairs.right, n_items))
    everyone = np.ones(n_items, dtype=bool)
    role_pool = {lab: pairs.members(lab) for lab in (0, 1)}
    r = int(ctx.option("fresh_per_pair"))
    scores = {}
    partners = {}
    for name, pool in (("free", {0: everyone, 1: everyone}), ("kept", role_pool)):
        fresh = draw_fresh_partners(
            anchor, partner, label, identity, pool, original, n_items=n_items, replicates=r, rng=rng
        )
        ok = fresh >= 0
        a_rep, f_flat, kl = np.repeat(anchor, r), np.where(ok, fresh, 0).reshape(-1), np.repeat(keep_left, r)
        raw = ctx.raw_scores("train", np.where(kl, a_rep, f_flat), np.where(kl, f_flat, a_rep))
        s = ctx.reading().scorer.orient(raw).reshape(-1, r)
        scores[name] = np.where(ok, s, np.nan)
        partners[name] = fresh
    return FreshPairs(
        rows,
        label.astype(bool),
        ctx.pair_scores("train")[rows],
        scores["free"],
        scores["kept"],
        anchor,
        partner,
        partners["free"],
        partners["kept"],
        ctx.identities_origin("train"),
        pairs.items.labels is None,
    )


FRESH_PAIRS: Artifact[FreshPairs | None] = Artifact(
    "gap.fresh_training_pairs", _fresh_pairs, "given training pairs and their fresh re-pairings, scored"
)


def fresh_correct(
    scores: np.ndarray, given_correct: np.ndarray, label: np.ndarray, threshold: float
) -> np.ndarray:
    """Per pair (P,), the mean correctness of its fresh re-pairings (P, R) at ``threshold``; a pair with no
    fresh partner keeps its given correctness (it cannot be re-paired, so it contributes no change)."""
    ok = np.isfinite(scores)
    right = ((scores >= threshold) == label[:, None]) & ok
    n_ok = ok.sum(axis=1)
    return np.where(n_ok > 0, right.sum(axis=1) / np.maximum(n_ok, 1), given_correct)


# ------------------------------------------------------------------------------------------------------
# The grid: both splits under both protocols


@dataclass
class Grid:
    """``cells[split][column]`` (columns: pairwise accuracy, balanced accuracy, ROC-AUC, n-way top-1) in
    gapdiag's reading, at the decision threshold; ``n_way[split]``; the user's ``protocols``."""

    cells: dict[str, dict[str, Cell | None]]
    n_way: dict[str, int | None]
    protocols: Protocols
    threshold: float
    threshold_origin: str
    notes: list[str] = field(default_factory=list)

    def user_column(self, split: str) -> str:
        proto = self.protocols.train if split == "train" else self.protocols.val
        return "pairwise_accuracy" if proto == PAIRWISE else "nway_top1"

    def to_dict(self) -> dict[str, Any]:
        columns = ["pairwise accuracy", "pairwise balanced accuracy", "ROC-AUC"]
        nt, nv = self.n_way["train"], self.n_way["val"]
        columns.append(
            f"{nv or nt}-way top-1"
            if nt in (None, nv) or nv is None
            else f"n-way top-1 (train {nt}, val {nv})"
        )
        rows = []
        for split in ("train", "val"):
            cells = []
            for key in _COLUMNS:
                cell = self.cells[split][key]
                cells.append(
                    {
                        "text": "n/a",
                        "value": None,
                        "ci_low": None,
                        "ci_high": None,
                        "chance": None,
                        "lift": None,
                    }
                    if cell is None
                    else cell.to_dict(user=key == self.user_column(split))
                )
            rows.append({"split": split, "cells": cells})
        return {"columns": columns, "rows": rows, "threshold_origin": self.threshold_origin}


def _grid(ctx: AuditContext) -> Grid:
    n_boot, level = int(ctx.option("n_boot")), float(ctx.option("ci_level"))
    threshold, origin = ctx.decision_threshold()
    cap = int(ctx.option("max_pairs_per_split"))
    cells: dict[str, dict[str, Cell | None]] = {}
    n_way: dict[str, int | None] = {}
    notes = []
    for split in ("train", "val"):
        p = ctx.pairs(split)
        s, y = ctx.pair_scores(split), p.label.astype(bool)
        if y.size > cap:
            keep = np.sort(ctx.rng(f"gap.cap.{split}").choice(y.size, cap, replace=False))
            notes.append(f"{split}: {y.size} pairs, a seeded sample of {cap} is evaluated.")
            s, y = s[keep], y[keep]
        row: dict[str, Cell | None] = dict(
            pairwise_cells(s, y, threshold, ctx.rng(f"gap.pairwise.{split}"), n_boot, level)
        )
        e = ctx.episodes(split)
        n_way[split] = None if e is None else e.n_way
        row["nway_top1"] = (
            None
            if e is None
            else nway_cell(
                nway_accuracy(ctx.episode_scores(split), e.correct),
                e.n_way,
                ctx.rng(f"gap.nway.{split}"),
                n_boot,
                level,
            )
        )
        cells[split] = row
    return Grid(cells, n_way, user_protocols(ctx), threshold, origin, notes)


GRID: Artifact[Grid] = Artifact("gap.grid", _grid, "both splits under both protocols, with CIs and chance")


# ------------------------------------------------------------------------------------------------------
# The chain


@dataclass
class ChainState:
    """One measured state of the chain: a number (``cell``) with what it measures and how it was obtained.

    ``basis``: "yours" (the user's own units, read as the user reads them), "derived" (units or a reading
    gapdiag derived: re-pairings, a re-weighting, generated episodes), "inferred" (it rests on identities
    inferred from positive pairs, not on labels).
    """

    id: str
    label: str
    cell: Cell
    protocol: str
    basis: str
    detail: str
    # train_fresh: units re-paired (the others count as given); train_given: distinct items its pairs draw on
    n_changed: int | None = None
    n_items: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = self.cell.to_dict()
        return {
            "id": self.id,
            "label": self.label,
            "value": d["value"],
            "ci_low": d["ci_low"],
            "ci_high": d["ci_high"],
            "n": d["n"],
            "unit": self.cell.unit,
            "protocol": self.protocol,
            "chance": d["chance"],
            "basis": self.basis,
            "detail": self.detail,
            "n_changed": self.n_changed,
            "n_items": self.n_items,
        }


@dataclass
class ChainStep:
    """The drop from state ``start`` to state ``end`` (positive = a loss), with its CI and its owner."""

    id: str
    label: str
    start: str
    end: str
    estimate: Estimate
    candidates: tuple[str, ...]
    owner: str | None = None
    status: str = ""

    @property
    def significant(self) -> bool:
        return bool(np.isfinite(self.estimate.low) and self.estimate.excludes(0.0))

    def to_dict(self) -> dict[str, Any]:
        e = self.estimate.to_dict()
        return {
            "id": self.id,
            "label": self.label,
            "from": self.start,
            "to": self.end,
            "value": e["value"],
            "ci_low": e["ci_low"],
            "ci_high": e["ci_high"],
            "significant": self.significant,
            "owner": self.owner,
            "candidates": list(self.candidates),
            "status": self.status,
        }


@dataclass
class Chain:
    """States in chain order, the steps between consecutive states, and the total drop (first - last)."""

    states: list[ChainState]
    steps: list[ChainStep]
    total: Estimate
    reading_reversed: bool
    protocols: Protocols
    notes: list[str] = field(default_factory=list)
    most_likely_cause: str | None = None

    def state(self, state_id: str) -> ChainState | None:
        return next((s for s in self.states if s.id == state_id), None)

    def step(self, step_id: str) -> ChainStep | None:
        return next((s for s in self.steps if s.id == step_id), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "states": [s.to_dict() for s in self.states],
            "steps": [s.to_dict() for s in self.steps],
            "total": self.total.to_dict(),
            "reading_reversed": self.reading_reversed,
            "train_protocol": self.protocols.train,
            "val_protocol": self.protocols.val,
            "notes": list(self.notes),
            "most_likely_cause": self.most_likely_cause,
        }


_STEP_LABELS = {
    "pair_specific": "specific to the given training pairs",
    "generalization": "from training items to validation items",
    "protocol": "change of protocol",
    "composition": "validation pair composition",
    "generalization_and_protocol": "validation items and the change of protocol together",
    "direction": "score read in the other direction",
}


def _train_states(ctx: AuditContext, grid: Grid, level: float, n_boot: int) -> list[ChainState]:
    """(a) and, where the user gave the training units, (b)."""
    prot, thr = grid.protocols, grid.threshold
    if prot.train == PAIRWISE:
        fp = ctx.artifact(FRESH_PAIRS) if prot.given["train"] else None
        if fp is None:
            cell = grid.cells["train"]["pairwise_accuracy"]
            return [
                ChainState(
                    "train_given", "training pairs", cell, PAIRWISE, "derived", ctx.pairs_origin("train")
                )
            ]
        given = ((fp.score_given >= thr) == fp.label).astype(float)
        fresh = fresh_correct(fp.score_role_free, given, fp.label, thr)
        dg, df = paired_mean_draws(given, fresh, ctx.rng("gap.chain.train"), n_boot)
        ratio = float(fp.label.mean())
        chance = max(ratio, 1 - ratio)
        n = int(given.size)
        n_changed = int(np.isfinite(fp.score_role_free).any(axis=1).sum())
        train_pairs = ctx.pairs("train")
        basis = "inferred" if fp.inferred else "derived"
        return [
            ChainState(
                "train_given",
                "training pairs as given",
                Cell(estimate_from_draws(given.mean(), dg, n, level), dg, chance, "pairs"),
                PAIRWISE,
                "yours",
                f"{n} given training pairs at the decision threshold",
                n_items=int((train_pairs.members(0) | train_pairs.members(1)).sum()),
            ),
            ChainState(
                "train_fresh",
                "fresh pairs of the same training items",
                Cell(estimate_from_draws(fresh.mean(), df, n, level), df, chance, "pairs"),
                PAIRWISE,
                basis,
                f"{n_changed} of {n} pairs re-paired (one side swapped for another item of its identity, "
                f"{fp.identities_from}, any role; {ctx.option('fresh_per_pair')} draws each)",
                n_changed,
            ),
        ]
    e = ctx.episodes("train")
    cell = grid.cells["train"]["nway_top1"]
    label = f"{e.n_way}-way"
    if not prot.given["train"]:
        return [
            ChainState(
                "train_given", "training episodes", cell, label, "derived", ctx.episodes_origin("train")
            )
        ]
    states = [
        ChainState(
            "train_given",
            "training episodes as given",
            cell,
            label,
            "yours",
            f"{len(e)} given training episodes",
        )
    ]
    fresh = _fresh_episodes(ctx, e.n_way, len(e), level, n_boot)
    if fresh is not None:
        basis = "inferred" if ctx.train.items.labels is None else "derived"
        states.append(
            ChainState(
                "train_fresh",
                "fresh episodes of the same training items",
                fresh,
                label,
                basis,
                f"{len(e)} episodes redrawn from the training identities ({ctx.identities_origin('train')})",
            )
        )
    return states


def _fresh_episodes(
    ctx: AuditContext, n_way: int, n_episodes: int, level: float, n_boot: int, split: str = "train"
) -> Cell | None:
    ids = ctx.identities(split)
    if ids is None or np.unique(ids).size < n_way:
        return None
    items = ctx.splits[split].items
    try:
        e = make_episodes(
            items, n_way=n_way, n_episodes=n_episodes, seed=ctx.rng(f"gap.fresh_episodes.{split}"), labels=ids
        )
    except InputError:
        return None
    raw = ctx.raw_scores(split, np.repeat(e.anchor, n_way), e.candidates.reshape(-1))
    credit = nway_accuracy(ctx.reading().scorer.orient(raw).reshape(len(e), n_way), e.correct)
    return nway_cell(credit, n_way, ctx.rng(f"gap.chain.fresh_episodes.{split}"), n_boot, level)


def _val_train_protocol(
    ctx: AuditContext, grid: Grid, train_ratio: float | None, level: float, n_boot: int
) -> ChainState | None:
    """(c): validation measured the way training is measured."""
    prot = grid.protocols
    if prot.train == PAIRWISE:
        p = ctx.pairs("val")
        ratio = train_ratio if train_ratio is not None else float(p.label.mean())
        cell = accuracy_at_ratio_cell(
            ctx.pair_scores("val"),
            p.label,
            grid.threshold,
            ratio,
            ctx.rng("gap.chain.val_train"),
            n_boot,
            level,
        )
        if cell is None:
            return None
        return ChainState(
            "val_train_protocol",
            "validation pairs, measured like training",
            cell,
            PAIRWISE,
            "derived",
            f"accuracy at the training threshold on {len(p)} validation pairs ({ctx.pairs_origin('val')}), re-weighted to the training share of similar pairs ({ratio:.2f})",
        )
    n_train = grid.n_way["train"]
    e = ctx.episodes("val")
    if e is not None and e.n_way == n_train:
        cell = grid.cells["val"]["nway_top1"]
        basis = "yours" if prot.given["val"] and prot.val == NWAY else "derived"
        return ChainState(
            "val_train_protocol",
            f"validation, {n_train}-way like training",
            cell,
            f"{n_train}-way",
            basis,
            ctx.episodes_origin("val"),
        )
    cell = _fresh_episodes(ctx, n_train, len(e) if e is not None else 1000, level, n_boot, split="val")
    if cell is None:
        return None
    return ChainState(
        "val_train_protocol",
        f"validation, {n_train}-way like training",
        cell,
        f"{n_train}-way",
        "derived",
        f"validation episodes generated from {ctx.identities_origin('val')}",
    )


def _val_user_states(ctx: AuditContext, grid: Grid, level: float, n_boot: int) -> list[ChainState]:
    """(d') and (d): validation as the user measures it (read the training way, then as declared)."""
    prot, thr = grid.protocols, grid.threshold
    reversed_reading = ctx.reading().reversed
    if prot.val == PAIRWISE:
        p = ctx.splits["val"].pairs
        y = p.label.astype(bool)
        x_read = ((ctx.pair_scores("val") >= thr) == y).astype(float)
        # read as declared, the same raw threshold accepts the other side: the reversed decision
        x_decl = ((ctx.pair_scores("val") <= thr) == y).astype(float) if reversed_reading else x_read
        ratio = float(y.mean())
        chance, unit, label, n = max(ratio, 1 - ratio), "pairs", PAIRWISE, len(p)
        what = f"accuracy on the {n} validation pairs you gave, at the decision threshold ({grid.threshold_origin})"
    else:
        e = ctx.splits["val"].episodes
        x_read = nway_accuracy(ctx.episode_scores("val"), e.correct)
        x_decl = (
            nway_accuracy(ctx.scorer.orient(ctx.raw_episode_scores("val")), e.correct)
            if reversed_reading
            else x_read
        )
        chance, unit, label, n = 1.0 / e.n_way, "episodes", f"{e.n_way}-way", len(e)
        what = f"top-1 accuracy on the {n} validation episodes you gave ({e.n_way}-way)"
    dr, dd = paired_mean_draws(x_read, x_decl, ctx.rng("gap.chain.val_user"), n_boot)
    declared = ChainState(
        "val_user",
        "validation as you measure it",
        Cell(estimate_from_draws(float(x_decl.mean()), dd, n, level), dd, chance, unit),
        label,
        "yours",
        what + f"; score read as declared ({ctx.scorer.rule})",
    )
    if not reversed_reading:
        return [declared]
    corrected = ChainState(
        "val_user_corrected",
        "validation as you measure it, score read the training way",
        Cell(estimate_from_draws(float(x_read.mean()), dr, n, level), dr, chance, unit),
        label,
        "derived",
        what + f"; score read the way training pairs separate ({ctx.reading().scorer.rule})",
    )
    return [corrected, declared]


def _chain(ctx: AuditContext) -> Chain:
    grid = ctx.artifact(GRID)
    prot = grid.protocols
    level, n_boot = float(ctx.option("ci_level")), int(ctx.option("n_boot"))
    states = _train_states(ctx, grid, level, n_boot)
    train_ratio = None
    if prot.train == PAIRWISE:
        train_ratio = float(ctx.pairs("train").label.mean())
    c = _val_train_protocol(ctx, grid, train_ratio, level, n_boot)
    notes = list(grid.notes)
    if c is not None:
        states.append(c)
    if prot.given["val"]:
        states += _val_user_states(ctx, grid, level, n_boot)
    elif c is None:
        notes.append(
            "Validation could not be measured under the training protocol, and you gave no validation units."
        )
    steps = _steps(states, prot, grid, level)
    first, last = states[0].cell, states[-1].cell
    total = (
        difference(first, last, level)
        if len(states) > 1
        else Estimate(0.0, 0.0, 0.0, first.estimate.n, level)
    )
    return Chain(states, steps, total, ctx.reading().reversed, prot, notes)


def _steps(states: list[ChainState], prot: Protocols, grid: Grid, level: float) -> list[ChainStep]:
    steps = []
    for a, b in zip(states, states[1:]):
        if b.id == "train_fresh":
            kind = "pair_specific"
        elif b.id == "val_train_protocol":
            kind = "generalization"
        elif b.id == "val_user_corrected" or (b.id == "val_user" and a.id != "val_user_corrected"):
            if a.id == "val_train_protocol":
                kind = "composition" if prot.same and a.protocol == b.protocol else "protocol"
            else:
                kind = "generalization_and_protocol"
        else:
            kind = "direction"
        steps.append(
            ChainStep(
                kind, _STEP_LABELS[kind], a.id, b.id, difference(a.cell, b.cell, level), STEP_OWNERS[kind]
            )
        )
    return steps


CHAIN: Artifact[Chain] = Artifact(
    "gap.chain", _chain, "the chain of measured states from train to validation"
)


# ------------------------------------------------------------------------------------------------------
# Attribution


def attribute(chain: Chain, findings: list[Finding]) -> Chain:
    """Name the owner of every step and the most likely cause; returns ``chain`` (updated in place).

    A significant step's owner is the first of its candidate codes with a warn or fail finding that is not
    ignored (a measurement code, :data:`MEASUREMENT_CODES`, at any severity); a step within noise of 0 has
    none. A
    significant drop with no owner is *unexplained*; a significant gain is a *gain*. The most likely cause is
    the owner of the largest positive share of the drop among the findings about the model (warn or fail),
    else among the measurement codes. When GD101 owns the pair-specific step, a GD201
    finding measured the same drop through the shared attribute: it is lowered to info and says so.
    """
    fired: dict[str, list[Finding]] = {}
    for f in findings:
        if not f.ignored and (f.severity >= Severity.WARN or f.code in MEASUREMENT_CODES):
            fired.setdefault(f.code, []).append(f)

    def may_own(step: ChainStep, code: str) -> bool:
        reasons = OWNS_ONLY_WHEN.get((step.id, code))
        return any(reasons is None or any(f.evidence.get(r) for r in reasons) for f in fired.get(code, []))

    for step in chain.steps:
        # a step within sampling noise of 0 has nothing to own: naming a code there reads as a cause
        step.owner = (
            next((c for c in step.candidates if may_own(step, c)), None) if step.significant else None
        )
        if not step.significant:
            step.status = "not significant"
        elif step.owner is not None:
            step.status = "owned"
        else:
            step.status = "unexplained" if step.estimate.value > 0 else "gain"
    pair = chain.step("pair_specific")
    if pair is not None and pair.owner == "GD101":
        lower_to_info(
            findings,
            "GD201",
            "the attribute GD101 names is shared within the given positive pairs, so re-pairing removes it too; "
            "GD101 owns this drop.",
        )
    faults = {f.code for f in findings if not f.ignored and f.severity >= Severity.WARN}
    owned: dict[str, float] = {}
    for step in chain.steps:
        if step.owner is not None and step.significant and step.estimate.value > 0:
            owned[step.owner] = owned.get(step.owner, 0.0) + step.estimate.value
    # a fault of the model that owns part of the drop comes before a difference of measurement
    pool = {c: v for c, v in owned.items() if c in faults} or owned
    chain.most_likely_cause = max(pool, key=lambda c: (pool[c], -STEP_ORDER.index(c))) if pool else None
    return chain


STEP_ORDER = tuple(dict.fromkeys(c for codes in STEP_OWNERS.values() for c in codes))
