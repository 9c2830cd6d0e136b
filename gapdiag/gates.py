"""Numeric gates: thresholds on the gap chain's numbers, each judged with its confidence interval.

Configured under ``[tool.gapdiag.gates]`` (or ``[gates]`` of a ``--config`` file)::

    [tool.gapdiag.gates]
    use = "strict"                 # which number meets the threshold (below)
    val_metric_min = 0.60          # your validation metric: the chain's last state, "validation as you measure it"
    gap_max = 0.30                 # the drop: the chain's total, first state minus last
    unexplained_share_max = 0.10   # share of the drop in significant steps that no finding explains
    step_share_max = {generalization = 0.50}   # share of the drop in one step, by step id
    baseline_margin = 0.02         # how far an effect must move past its baseline CI to count as worse

``use`` says which number is compared with each threshold:

- ``"strict"`` (default, the conservative choice): the pessimistic end of the CI, so a gate passes only when
  the whole interval is on the good side: ``ci_low >= min``, ``ci_high <= max``. A model whose number is
  not clearly good enough does not pass; a model near the threshold may fail until it clears it.
- ``"value"``: the point estimate.
- ``"lenient"``: the optimistic end: a gate fails only when the whole interval is on the bad side.

A share is a ratio of the bootstrap draws of the steps and of the total (so its CI carries both
uncertainties). When the total drop is not significant (its CI includes 0) there is no drop to share and share
gates pass, saying so. A configured gate whose numbers were not measured (no gap chain) is ``unmeasured``: it
neither passes nor fails, and the exit code says a check did not run (3), as a probe error does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ConfigError
from .stats import Estimate, estimate_from_draws

if TYPE_CHECKING:
    from .gap import Chain, ChainStep

__all__ = ["GateResult", "GateSpec", "parse_gates", "evaluate_gates", "judge", "USES", "DEFAULT_MARGIN"]

USES = ("strict", "value", "lenient")
DEFAULT_MARGIN = 0.02
# name -> (direction, what it measures); the order is the order of the report's gate list
_NUMERIC: dict[str, tuple[str, str]] = {
    "val_metric_min": ("min", "validation metric"),
    "gap_max": ("max", "drop from training to validation"),
    "unexplained_share_max": ("max", "share of the drop that no finding explains"),
}
_KEYS = ("use", "baseline_margin", *_NUMERIC, "step_share_max")


@dataclass(frozen=True)
class GateSpec:
    """The validated ``gates`` table: thresholds by gate name, per-step share limits, ``use``, the margin."""

    use: str = "strict"
    baseline_margin: float = DEFAULT_MARGIN
    thresholds: dict[str, float] = field(default_factory=dict)
    step_share_max: dict[str, float] = field(default_factory=dict)


@dataclass
class GateResult:
    """One numeric gate, judged: the measured number with its CI, the number compared, and the outcome.

    ``status`` is ``"passed"``, ``"failed"`` or ``"unmeasured"``; ``compared`` is the number that met the
    threshold (a CI bound or the point value, per ``use``); ``detail`` says anything a reader needs (why it
    was not measured, that no CI was available...).
    """

    name: str
    label: str
    direction: str  # "min": the number must be at least the threshold; "max": at most
    threshold: float
    use: str
    value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    compared: float | None = None
    status: str = "unmeasured"
    detail: str = ""

    @property
    def passed(self) -> bool | None:
        return None if self.status == "unmeasured" else self.status == "passed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "direction": self.direction,
            "threshold": self.threshold,
            "use": self.use,
            "value": self.value,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "compared": self.compared,
            "passed": self.passed,
            "status": self.status,
            "detail": self.detail,
        }


def _number(value: Any, what: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise ConfigError(f"{source}: gates.{what} must be a number; got {value!r}.")
    return float(value)


def parse_gates(table: Any, source: str = "config") -> GateSpec:
    """Validate a ``gates`` table; unknown keys and step ids raise ``ConfigError`` listing the valid ones."""
    if not table:
        return GateSpec()
    if not isinstance(table, Mapping):
        raise ConfigError(f"{source}: gates must be a table like [gates] unexplained_share_max = 0.1.")
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise ConfigError(f"{source}: unknown gate {', '.join(unknown)}. Valid: {', '.join(_KEYS)}.")
    use = table.get("use", "strict")
    if use not in USES:
        raise ConfigError(f"{source}: gates.use must be one of {', '.join(USES)}; got {use!r}.")
    margin = _number(table.get("baseline_margin", DEFAULT_MARGIN), "baseline_margin", source)
    if margin < 0:
        raise ConfigError(f"{source}: gates.baseline_margin must be >= 0; got {margin!r}.")
    thresholds = {k: _number(table[k], k, source) for k in _NUMERIC if k in table}
    steps = table.get("step_share_max", {})
    if not isinstance(steps, Mapping):
        raise ConfigError(
            f"{source}: gates.step_share_max must be a table {{step_id = share}}; got {steps!r}."
        )
    from .gap import STEP_OWNERS  # the chain owns its step ids

    bad = sorted(set(steps) - set(STEP_OWNERS))
    if bad:
        raise ConfigError(
            f"{source}: gates.step_share_max names unknown step {', '.join(bad)}. Steps: {', '.join(STEP_OWNERS)}."
        )
    shares = {str(k): _number(v, f"step_share_max.{k}", source) for k, v in steps.items()}
    return GateSpec(use, margin, thresholds, shares)


def _finite(x: float) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def judge(
    name: str,
    label: str,
    direction: str,
    threshold: float,
    use: str,
    estimate: Estimate | None,
    detail: str = "",
) -> GateResult:
    """Compare ``estimate`` (or nothing: unmeasured) with ``threshold`` the way ``use`` says."""
    gate = GateResult(name, label, direction, float(threshold), use, detail=detail)
    if estimate is None or _finite(estimate.value) is None:
        gate.detail = detail or "not measured"
        return gate
    gate.value, gate.ci_low, gate.ci_high = (
        _finite(x) for x in (estimate.value, estimate.low, estimate.high)
    )
    pessimistic = gate.ci_low if direction == "min" else gate.ci_high
    optimistic = gate.ci_high if direction == "min" else gate.ci_low
    compared = {"strict": pessimistic, "lenient": optimistic}.get(use, gate.value)
    if compared is None:
        compared = gate.value
        gate.detail = (detail + " " if detail else "") + "No CI was available: the point value was compared."
    gate.compared = compared
    ok = compared >= threshold if direction == "min" else compared <= threshold
    gate.status = "passed" if ok else "failed"
    return gate


def _draws(chain: Chain, start: str, end: str) -> np.ndarray | None:
    a, b = chain.state(start), chain.state(end)
    if a is None or b is None or a.cell.draws is None or b.cell.draws is None:
        return None
    return np.asarray(a.cell.draws, dtype=float) - np.asarray(b.cell.draws, dtype=float)


def _share(chain: Chain, steps: list[ChainStep]) -> tuple[Estimate | None, str]:
    """The share of the total drop in ``steps``, with a CI from the ratio of bootstrap draws."""
    total = chain.total
    if not (np.isfinite(total.low) and total.low > 0):
        return (
            None,
            f"No significant drop to share: the total's CI [{total.low:.3f}, {total.high:.3f}] is not above 0.",
        )
    value = sum(s.estimate.value for s in steps) / total.value
    total_draws = _draws(chain, chain.states[0].id, chain.states[-1].id)
    parts = [_draws(chain, s.start, s.end) for s in steps]
    if total_draws is None or any(p is None for p in parts):
        return Estimate.unknown(total.n, total.level, value=value), ""
    numerator = np.sum(parts, axis=0) if parts else np.zeros_like(total_draws)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(total_draws > 0, numerator / total_draws, np.nan)
    return estimate_from_draws(value, ratio, total.n, total.level), ""


def evaluate_gates(table: Any, chain: Chain | None, source: str = "config") -> list[GateResult]:
    """Every configured gate judged on ``chain`` (the attributed gap chain; None when it was not measured)."""
    spec = parse_gates(table, source)
    asked = [(k, *_NUMERIC[k], t) for k, t in spec.thresholds.items()]
    asked += [
        (f"step_share_max.{sid}", "max", f"share of the drop in step {sid}", t)
        for sid, t in spec.step_share_max.items()
    ]
    out = []
    for name, direction, label, threshold in asked:
        if chain is None:
            out.append(
                judge(name, label, direction, threshold, spec.use, None, "The gap chain was not measured.")
            )
            continue
        estimate, detail = _measure(chain, name)
        if estimate is None:  # a share of no significant drop: nothing to gate
            out.append(
                GateResult(name, label, direction, threshold, spec.use, status="passed", detail=detail)
            )
        else:
            out.append(judge(name, label, direction, threshold, spec.use, estimate, detail))
    return out


def _measure(chain: Chain, name: str) -> tuple[Estimate | None, str]:
    if name == "val_metric_min":
        last = chain.states[-1]
        return last.cell.estimate, f"{last.label}: {last.protocol}, chance {last.cell.chance:.2f}"
    if name == "gap_max":
        return chain.total, f"{chain.states[0].label} minus {chain.states[-1].label}"
    if name == "unexplained_share_max":
        steps = [s for s in chain.steps if s.status == "unexplained"]
        estimate, detail = _share(chain, steps)
        return estimate, detail or (
            f"unexplained steps: {', '.join(s.id for s in steps)}" if steps else "no step is unexplained"
        )
    step_id = name.partition(".")[2]
    steps = [s for s in chain.steps if s.id == step_id]
    estimate, detail = _share(chain, steps)
    return estimate, detail or ("" if steps else f"this chain has no {step_id} step")
