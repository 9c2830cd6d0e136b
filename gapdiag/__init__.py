"""gapdiag: explain the generalization gap of Siamese (metric-learning) networks.

>>> import gapdiag
>>> report = gapdiag.audit(model, train, val)       # doctest: +SKIP
>>> report.verdict, [f.code for f in report.findings]  # doctest: +SKIP

Heavy dependencies (matplotlib, umap, faiss) are imported only when used.
"""

from ._version import __version__
from .audit import audit
from .config import Config, load_config
from .data import Episodes, Items, Pairs, Split
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
from .findings.finding import Finding, Severity
from .model import SiameseModel
from .probes.base import FigureSpec, Measurement, Probe, ProbeResult
from .probes.registry import register_probe, registered_probes
from .report.report import Report

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
