"""What every renderer shares: the table of report formats and the helpers that turn numbers into text.

Renderers are pure functions of a ``Report``; they import this module and nothing that computes.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from ..report_formats import FORMATS, ReportFormat, format_of_path
from ..stats import Estimate

__all__ = [
    "ReportFormat",
    "FORMATS",
    "format_of_path",
    "jsonable",
    "fmt",
    "headline",
    "symptom_text",
    "chain_text",
    "step_text",
    "gap_lines",
    "labels_hint",
]


def jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, Estimates, tuples and sets into plain JSON values (floats rounded to 6)."""
    if isinstance(obj, Estimate):
        return obj.to_dict()
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted(jsonable(v) for v in obj)
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        return round(x, 6) if math.isfinite(x) else None
    if obj is None or isinstance(obj, str):
        return obj
    if hasattr(obj, "to_dict"):
        return jsonable(obj.to_dict())
    return str(obj)


def fmt(value: Any) -> str:
    """A number a person reads: an estimate with its CI, a float to 3 places."""
    if isinstance(value, Estimate):
        return f"{value:.3f}"
    if isinstance(value, dict) and {"value", "ci_low", "ci_high"} <= set(value):
        if value["value"] is None:
            return "n/a"
        lo, hi = value["ci_low"], value["ci_high"]
        ci = f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else ""
        return f"{value['value']:.3f}{ci} (n={value.get('n', '?')})"
    if isinstance(value, (float, np.floating)):
        return f"{value:.3f}" if math.isfinite(value) else "n/a"
    return str(value)


def headline(message: str) -> str:
    """The first sentence of a finding's message (its claim and main number), for the top of the report."""
    match = re.search(r"(?<=[.!?])\s+(?=[A-Z(])", message)
    return message if match is None else message[: match.start()]


# The gap chain in words (the chain itself is numbers: gapdiag.gap)

_GAIN_MEANING = {
    "pair_specific": "fresh pairs of the same items score higher than the given ones: the given pairs are unusually hard or mislabelled",
    "generalization": "validation items score higher than training items under the same protocol",
    "protocol": "on the same validation items the validation protocol scores higher; its chance level differs, compare lifts",
    "composition": "the validation share of similar pairs makes its plain accuracy higher",
    "generalization_and_protocol": "validation scores higher under its own protocol",
    "direction": "reading the score as declared helps",
}


def _interval(d: dict[str, Any]) -> str:
    if d.get("value") is None:
        return "n/a"
    if d.get("ci_low") is None or d.get("ci_high") is None:
        return f"{d['value']:.2f}"
    return f"{d['value']:.2f} [{d['ci_low']:.2f}, {d['ci_high']:.2f}]"


def _protocol_words(protocol: str) -> str:
    return "pairwise verification" if protocol == "pairwise" else f"{protocol} identification"


def symptom_text(gap: dict[str, Any]) -> str:
    """ "Training pairwise verification accuracy 1.00 [...] (1500 pairs, chance 0.50) vs validation ..."."""
    chain = gap.get("chain")
    if not chain:
        return gap.get("unavailable", "")
    first, last = chain["states"][0], chain["states"][-1]

    def part(s: dict[str, Any]) -> str:
        return f"{_protocol_words(s['protocol'])} accuracy {_interval(s)} ({s['n']} {s['unit']}, chance {s['chance']:.2f})"

    return f"Training {part(first)} vs validation {part(last)}."


def step_text(step: dict[str, Any]) -> str:
    """One step of the chain in words, with its owner or status."""
    value = _interval(step)
    if step["status"] == "owned":
        tail = f"owned by {step['owner']}"
    elif step["status"] == "unexplained":
        tail = "unexplained: no finding accounts for it"
    elif step["status"] == "gain":
        tail = f"a gain: {_GAIN_MEANING.get(step['id'], 'the later state scores higher')}"
    else:
        tail = "not significant"
    return f"{value} {step['label']} ({tail})"


def chain_text(gap: dict[str, Any]) -> str:
    """The chain in one sentence: the total drop and each step, which add up."""
    chain = gap.get("chain")
    if not chain or len(chain["states"]) < 2:
        return ""
    first, last = chain["states"][0], chain["states"][-1]
    steps = "; ".join(step_text(s) for s in chain["steps"])
    text = (
        f"Of the {_interval(chain['total'])} drop from {first['label']} ({first['value']:.2f}) to {last['label']} "
        f"({last['value']:.2f}): {steps}."
    )
    if chain.get("reading_reversed"):
        text += (
            " The score is read the way the training pairs separate, except for your own validation number."
        )
    if chain.get("most_likely_cause"):
        text += f" The largest owned share of the drop: {chain['most_likely_cause']}."
    return text


def gap_lines(gap: dict[str, Any]) -> list[str]:
    """The symptom and the chain sentence, for renderers that print the gap as text."""
    return [line for line in (symptom_text(gap or {}), chain_text(gap or {})) if line]


def labels_hint(results: list[Any]) -> str:
    """What identity labels would unlock, and how to pass them; '' when no probe waits for labels.

    ``results`` are the report's ``ProbeResult`` objects; a probe skipped for want of identity labels names them
    in its reason.
    """
    waiting = [r for r in results if r.status == "skipped" and "identity labels" in r.reason]
    if not waiting:
        return ""
    names = ", ".join(f"{r.probe} ({', '.join(r.codes)})" if r.codes else r.probe for r in waiting)
    return (
        f"Identity labels would unlock {names}: pass (x1, x2, label, y1, y2) batches, or Items(..., labels=...). "
        "Without them, identities are inferred from positive pairs and no identity-level number is reported."
    )
