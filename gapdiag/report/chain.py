"""The gap chain in words and bars: what every renderer shows of ``report.gap["chain"]``.

``gapdiag.gap`` measures the chain (states from the training number to the validation number, and the steps
between them, which add up to the total drop); this module only reads it. :func:`waterfall_rows` lays the
chain out as a waterfall on a 0-1 accuracy axis, once, for both the HTML figure and the console's text bars.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .formatting import num, step_text, with_ci

__all__ = [
    "WaterfallRow",
    "chain_of",
    "change_text",
    "state_text",
    "step_verdict",
    "waterfall_rows",
    "text_waterfall",
]

#: What a step's status means, for the ones that have no owning finding.
_STATUS_WORDS = {
    "unexplained": "unexplained",
    "not significant": "not significant",
    "gain": "a gain",
}


@dataclass(frozen=True)
class WaterfallRow:
    """One bar of the waterfall: a measured state (a bar from 0) or a step (a bar floating between states).

    Positions are on the 0-1 accuracy axis, clipped to it: ``start``/``end`` the bar, ``ci`` the whisker
    (for a step, where the next state lands given the step's CI), ``chance`` a state's chance level.
    """

    kind: str  # "state" or "step"
    id: str
    label: str
    value_text: str  # "1.00 [1.00, 1.00]", "drop 0.50 [0.48, 0.53]"
    start: float
    end: float
    ci: tuple[float, float] | None
    chance: float | None
    meaning: str  # a state: protocol, n, chance; a step: its owner or status
    owner: str | None
    status: str
    detail: str
    direction: str  # a step: "drop" or "gain"; a state: ""


def chain_of(gap: dict[str, Any] | None) -> dict[str, Any] | None:
    """The chain of ``report.gap`` when it was measured (at least two states), else None."""
    chain = (gap or {}).get("chain")
    return chain if isinstance(chain, dict) and len(chain.get("states") or []) >= 2 else None


def _unit_text(state: dict[str, Any]) -> str:
    n, unit = state.get("n"), state.get("unit") or "units"
    return f"{n} {unit}" if n is not None else unit


def state_text(state: dict[str, Any]) -> str:
    """ "pairwise, 1500 pairs, chance 0.50": how a state was measured and what its number is read against."""
    parts = [str(state.get("protocol") or "")] if state.get("protocol") else []
    parts.append(_unit_text(state))
    if state.get("n_items") is not None:
        parts.append(f"{state['n_items']:,} distinct items")
    if state.get("chance") is not None:
        parts.append(f"chance {num(state['chance'])}")
    if state.get("basis") == "inferred":
        parts.append("identities inferred from positive pairs")
    changed, n = state.get("n_changed"), state.get("n")
    if changed is not None and n and changed < n:
        # the others count as given: a low share understates a memorized pairing
        parts.append(f"{changed} of {n} re-paired, the rest as given")
    return ", ".join(parts)


def change_text(drop: dict[str, Any]) -> str:
    """A drop (positive = a loss, as the chain stores it) in words: "drop 0.44 [0.41, 0.48]" or "gain 0.05 [...]"."""
    v, lo, hi = drop.get("value"), drop.get("ci_low"), drop.get("ci_high")
    if v is None:
        return "change n/a"
    if v >= 0:
        return f"drop {with_ci(v, lo, hi)}"
    return f"gain {with_ci(-v, None if hi is None else -hi, None if lo is None else -lo)}"


def step_verdict(step: dict[str, Any]) -> str:
    """Who owns a step: its finding's code, else what its status means (unexplained, not significant, a gain)."""
    if step.get("owner"):
        return str(step["owner"])
    status = step.get("status") or ("not significant" if not step.get("significant") else "unexplained")
    if status == "unexplained" and step.get("id") == "generalization":
        return "unexplained: no known fault, training items fit better than new ones"
    return _STATUS_WORDS.get(status, status)


def _clip(x: Any) -> float:
    return min(max(float(x), 0.0), 1.0) if x is not None else 0.0


def _state_row(s: dict[str, Any]) -> WaterfallRow:
    v = s.get("value")
    ci = (_clip(s["ci_low"]), _clip(s["ci_high"])) if s.get("ci_low") is not None else None
    return WaterfallRow(
        "state", s["id"], s["label"], with_ci(s), 0.0, _clip(v), ci,
        None if s.get("chance") is None else _clip(s["chance"]), state_text(s), None, "", s.get("detail", ""), "",
    )  # fmt: skip


def _step_row(step: dict[str, Any], before: dict[str, Any]) -> WaterfallRow:
    v = float(step.get("value") or 0.0)
    top = before.get("value") or 0.0
    ci = None
    if step.get("ci_low") is not None and step.get("ci_high") is not None:
        ci = (_clip(top - step["ci_high"]), _clip(top - step["ci_low"]))
    direction = "drop" if v >= 0 else "gain"
    return WaterfallRow(
        "step", step["id"], step["label"], change_text(step), _clip(min(top, top - v)),
        _clip(max(top, top - v)), ci, None, step_verdict(step), step.get("owner"), step.get("status", ""),
        step_text(step), direction,
    )  # fmt: skip


def waterfall_rows(chain: dict[str, Any]) -> list[WaterfallRow]:
    """State, step, state, ... in chain order: the rows of the waterfall."""
    states = {s["id"]: s for s in chain["states"]}
    rows = [_state_row(chain["states"][0])]
    for step in chain.get("steps") or []:
        before = states.get(step.get("from"), chain["states"][0])
        rows.append(_step_row(step, before))
        if step.get("to") in states:
            rows.append(_state_row(states[step["to"]]))
    return rows


def _bar(row: WaterfallRow, width: int) -> str:
    a, b = round(row.start * width), round(row.end * width)
    if b == a and row.end > row.start:
        b = min(a + 1, width)  # a small but real step still shows
    fill = "█" if row.kind == "state" else ("░" if row.direction == "drop" else "▓")
    return " " * a + fill * (b - a) + " " * (width - b)


def text_waterfall(chain: dict[str, Any], width: int = 20) -> list[str]:
    """The chain as a compact text bar chart (the console summary and Markdown show it in a code block)."""
    level = (chain.get("total") or {}).get("level") or 0.95
    out = [f"The gap, step by step (accuracy from 0 to 1 [{round(level * 100)}% CI]; ░ drop, ▓ gain):"]
    for row in waterfall_rows(chain):
        if row.kind == "state":
            out.append(f"  {row.value_text:>22} |{_bar(row, width)}| {row.label} ({row.meaning})")
        else:
            out.append(f"  {row.value_text:>22} |{_bar(row, width)}| {row.label}: {row.meaning}")
    total = chain.get("total") or {}
    cause = chain.get("most_likely_cause")
    if chain.get("reading_reversed"):
        out.append(
            "  (the score is read the way the training pairs separate, except for your own validation number)"
        )
    out.append(
        f"  total: {change_text(total)}, the sum of the steps"
        + (f"; the largest owned share: {cause}" if cause else "")
    )
    return out
