"""Probes: one module per probe, each registering itself with :func:`register_probe`.

Adding a probe is one file in this folder with one ``@register_probe`` class; the registry imports every
module here on first use.
"""

from .base import FigureSpec, Measurement, Probe, ProbeResult, ProbeSkipped, Status
from .registry import get_probe, register_probe, registered_probes, unregister_probe

__all__ = [
    "ProbeSkipped",
    "Probe",
    "ProbeResult",
    "Measurement",
    "FigureSpec",
    "Status",
    "register_probe",
    "registered_probes",
    "get_probe",
    "unregister_probe",
]
