"""One exception hierarchy for everything gapdiag reports as the user's problem.

Every message says what is wrong, what was seen, and what to do about it. The CLI prints
``GapdiagError`` messages as one line and exits with status 2; anything else is a bug in gapdiag.
"""

from __future__ import annotations

__all__ = [
    "GapdiagError",
    "InputError",
    "ConfigError",
    "ModelError",
    "EncoderError",
    "OutputError",
    "ProbeDefinitionError",
    "UnknownCodeError",
]


class GapdiagError(Exception):
    """Base class of every error gapdiag raises on purpose."""


class InputError(GapdiagError, ValueError):
    """Items, pairs, episodes, splits or embeddings that cannot be audited as given."""


class ConfigError(GapdiagError, ValueError):
    """A configuration value, file or option that is unknown or out of range."""


class ModelError(GapdiagError, TypeError):
    """A model whose encoder or distance cannot be found or called as declared."""


class EncoderError(ModelError):
    """The user's encoder raised or returned something unusable for a batch."""


class OutputError(GapdiagError, OSError):
    """An output folder or file that cannot be written (a file where a folder is needed, no permission)."""


class ProbeDefinitionError(GapdiagError, TypeError):
    """A probe class that breaks the Probe contract (duplicate name, undeclared code...)."""


class UnknownCodeError(GapdiagError, KeyError):
    """A finding code that is not in the catalogue."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""
