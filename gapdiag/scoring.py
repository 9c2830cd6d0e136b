"""The one home of the sign convention: is a higher score more similar?

The user's ``distance()`` returns a *raw* score. ``kind`` says how the user's own evaluation reads it:
``"distance"`` (lower = more similar, ``min()`` picks the match) or ``"similarity"`` (higher = more
similar, ``max()`` picks). Everything inside gapdiag works on the *oriented* score, where higher always
means "more similar as the user reads it", so a user who reads a similarity with ``min()`` shows up as an
oriented AUC far below 0.5 (GD302) instead of being silently corrected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .validation import check_choice

__all__ = ["Scorer", "KINDS"]

KINDS = ("distance", "similarity")


@dataclass(frozen=True)
class Scorer:
    """Converts between the user's raw scores and oriented scores (higher = more similar)."""

    kind: str = "distance"

    def __post_init__(self) -> None:
        check_choice(self.kind, name="kind", choices=KINDS)

    @property
    def sign(self) -> float:
        return -1.0 if self.kind == "distance" else 1.0

    def orient(self, raw: np.ndarray) -> np.ndarray:
        """Raw scores (any shape) to oriented scores (same shape): higher = more similar."""
        return self.sign * np.asarray(raw, dtype=np.float64)

    def to_raw(self, oriented: np.ndarray | float) -> np.ndarray | float:
        """Oriented scores or thresholds back to the user's raw scale (for messages and thresholds)."""
        return self.sign * oriented

    def reversed(self) -> Scorer:
        """The other reading of the same raw score (a distance read as a similarity, or the reverse)."""
        return Scorer("similarity" if self.kind == "distance" else "distance")

    @property
    def rule(self) -> str:
        """How the user's evaluation reads the score, in words."""
        return (
            "lower = more similar (min() picks the match)"
            if self.kind == "distance"
            else "higher = more similar (max() picks the match)"
        )
