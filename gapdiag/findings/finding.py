"""``Finding`` and ``Severity``: what a probe concludes, in a shape every renderer understands."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Severity", "Finding", "lower_to_info"]


class Severity(enum.IntEnum):
    """How bad a finding is. Ordered: ``INFO < WARN < FAIL``."""

    INFO = 1
    WARN = 2
    FAIL = 3

    def __str__(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | Severity) -> Severity:
        from ..errors import ConfigError

        if isinstance(value, Severity):
            return value
        try:
            return cls[str(value).upper()]
        except KeyError:
            raise ConfigError(f"Unknown severity {value!r}; use one of info, warn, fail.") from None


@dataclass
class Finding:
    """One proven cause (or notable fact) with its evidence.

    ``evidence`` holds the numbers behind the message (estimates as ``Estimate.to_dict()`` dicts);
    ``figures`` names figures of the probe's result that show it; ``remediation`` is concrete steps.
    ``cause`` names the artifact or mechanism the finding is about (e.g. ``"artifact:tint"``): findings
    that share one, whatever their code or probe, are one cause and the report shows them as one card.
    ``ignored`` findings are reported but never gate; ``ignore_reason`` says why (from the configuration).
    ``baseline`` is None unless the report was compared with a baseline (:mod:`gapdiag.baseline`); then it is
    ``{"status": "accepted" | "new" | "worse", "change": words}`` and an accepted finding never gates.
    """

    code: str
    severity: Severity
    title: str
    message: str
    probe: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    remediation: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    ignored: bool = False
    cause: str = ""
    ignore_reason: str = ""
    baseline: dict[str, str] | None = None

    @property
    def accepted(self) -> bool:
        """Accepted in the baseline the report was compared with (known, and not worse)."""
        return bool(self.baseline) and self.baseline.get("status") == "accepted"

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": str(self.severity),
            "title": self.title,
            "message": self.message,
            "probe": self.probe,
            "evidence": self.evidence,
            "remediation": list(self.remediation),
            "figures": list(self.figures),
            "ignored": self.ignored,
            "cause": self.cause,
            "ignore_reason": self.ignore_reason,
            "baseline": None if self.baseline is None else dict(self.baseline),
        }


def lower_to_info(
    findings: list[Finding], code: str, why: str, only: Callable[[Finding], bool] | None = None
) -> None:
    """Lower every ``code`` finding at warn or above (those ``only`` accepts, when given) to info, appending
    " Lowered to info: " + ``why`` to its message: another finding measured what made it. Its numbers stay,
    for after the fix."""
    for f in findings:
        if f.code == code and f.severity >= Severity.WARN and (only is None or only(f)):
            f.severity = Severity.INFO
            f.message += f" Lowered to info: {why}"
