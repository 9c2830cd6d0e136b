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
    "num",
    "with_ci",
    "symptom_text",
    "step_text",
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


def num(value: Any, digits: int = 2) -> str:
    """A number to ``digits`` places, or "n/a" when it is missing or not finite."""
    if value is None or not isinstance(value, (int, float, np.integer, np.floating)):
        return "n/a"
    return f"{float(value):.{digits}f}" if math.isfinite(float(value)) else "n/a"


def with_ci(value: Any, low: Any = None, high: Any = None, digits: int = 2) -> str:
    """ "0.44 [0.41, 0.48]": a value with its confidence interval (the interval left out when unknown).

    ``value`` may also be an estimate dict (``{"value", "ci_low", "ci_high", ...}``)."""
    if isinstance(value, dict):
        value, low, high = value.get("value"), value.get("ci_low"), value.get("ci_high")
    text = num(value, digits)
    if text != "n/a" and num(low) != "n/a" and num(high) != "n/a":
        text += f" [{num(low, digits)}, {num(high, digits)}]"
    return text


# The gap chain in words (the chain itself is numbers: gapdiag.gap)

_GAIN_MEANING = {
    "pair_specific": "fresh pairs of the same items score higher than the given ones: the given pairs are unusually hard or mislabelled",
    "generalization": "validation items score higher than training items under the same protocol",
    "protocol": "on the same validation items the validation protocol scores higher; its chance level differs, compare lifts",
    "composition": "the validation share of similar pairs makes its plain accuracy higher",
    "generalization_and_protocol": "validation scores higher under its own protocol",
    "direction": "reading the score as declared helps",
}


# What an unexplained drop of each step leaves as its reading, once the faults gapdiag checks are ruled out.
_UNEXPLAINED_MEANING = {
    "generalization": (
        "no fault gapdiag checks for accounts for it: the model fits its training items better than new ones, "
        "the plain generalization gap (more items or identities, augmentation, regularization or an earlier "
        "stop narrow it)"
    ),
    "pair_specific": (
        "the given pairs score better than fresh pairs of the same items, yet no shared attribute (GD101) or "
        "memorization finding (GD201) accounts for it"
    ),
}


def _protocol_words(protocol: str) -> str:
    return "pairwise verification" if protocol == "pairwise" else f"{protocol} identification"


def symptom_text(gap: dict[str, Any]) -> str:
    """ "Training pairwise verification accuracy 1.00 [...] (1500 pairs, chance 0.50) vs validation ..."."""
    chain = gap.get("chain")
    if not chain:
        return gap.get("unavailable", "")
    first, last = chain["states"][0], chain["states"][-1]

    def part(s: dict[str, Any]) -> str:
        return f"{_protocol_words(s['protocol'])} accuracy {with_ci(s)} ({s['n']} {s['unit']}, chance {s['chance']:.2f})"

    return f"Training {part(first)} vs validation {part(last)}."


def step_text(step: dict[str, Any]) -> str:
    """One step of the chain in words, with its owner or status."""
    value = with_ci(step)
    if step["status"] == "owned":
        tail = f"owned by {step['owner']}"
    elif step["status"] == "unexplained":
        tail = f"unexplained: {_UNEXPLAINED_MEANING.get(step['id'], 'no finding accounts for it')}"
    elif step["status"] == "gain":
        tail = f"a gain: {_GAIN_MEANING.get(step['id'], 'the later state scores higher')}"
    else:
        tail = "not significant"
    return f"{value} {step['label']} ({tail})"


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
