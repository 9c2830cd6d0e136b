"""gapdiag: explain the generalization gap of Siamese (metric-learning) networks.

>>> import gapdiag
>>> report = gapdiag.audit(model, train, val)       # doctest: +SKIP
>>> report.verdict, [f.code for f in report.findings]  # doctest: +SKIP

Heavy dependencies (matplotlib, umap, faiss) are imported only when used.
"""

from typing import TYPE_CHECKING, Any

from ._version import __version__

# ``audit`` is bound eagerly: it shares its name with the submodule gapdiag.audit, which would otherwise
# shadow a lazily loaded function once imported. gapdiag.audit imports nothing heavy until it runs.
from .audit import audit
from .errors import (
    ConfigError,
    EncoderError,
    GapdiagError,
    InputError,
    ModelError,
    OutputError,
    ProbeDefinitionError,
    UnknownCodeError,
)

if TYPE_CHECKING:
    from .config import Config, load_config
    from .data import Episodes, Items, Pairs, Split
    from .findings.finding import Finding, Severity
    from .model import SiameseModel
    from .probes.base import FigureSpec, Measurement, Probe, ProbeResult
    from .probes.registry import register_probe, registered_probes
    from .report.report import Report

# The public API is imported on first use (PEP 562), so that ``import gapdiag`` and the light CLI commands
# (``gapdiag --help``, ``explain``, ``compare``) never pay for torch, numpy or matplotlib.
_LAZY = {
    "Config": "config",
    "load_config": "config",
    "Items": "data",
    "Pairs": "data",
    "Episodes": "data",
    "Split": "data",
    "Finding": "findings.finding",
    "Severity": "findings.finding",
    "SiameseModel": "model",
    "FigureSpec": "probes.base",
    "Measurement": "probes.base",
    "Probe": "probes.base",
    "ProbeResult": "probes.base",
    "register_probe": "probes.registry",
    "registered_probes": "probes.registry",
    "Report": "report.report",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gapdiag' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "audit",
    "Items",
    "Pairs",
    "Episodes",
    "Split",
    "SiameseModel",
    "Report",
    "Finding",
    "Severity",
    "Probe",
    "ProbeResult",
    "Measurement",
    "FigureSpec",
    "register_probe",
    "registered_probes",
    "Config",
    "load_config",
    "GapdiagError",
    "InputError",
    "ConfigError",
    "ModelError",
    "EncoderError",
    "OutputError",
    "ProbeDefinitionError",
    "UnknownCodeError",
    "__version__",
]
