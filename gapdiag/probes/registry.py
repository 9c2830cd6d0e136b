"""The probe registry. Built-in probes register with the same decorator as third-party ones; packages
can also expose probes through the entry-point group ``gapdiag.probes``.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from ..config import Config
from ..errors import ConfigError, ProbeDefinitionError
from ..findings.codes import CATALOGUE
from .base import Probe

__all__ = ["register_probe", "get_probe", "registered_probes", "unregister_probe", "owner_of", "check_config"]

_REGISTRY: dict[str, type[Probe]] = {}
_FAMILIES = ("protocol", "leakage", "embedding", "custom")
_loaded = False


def register_probe(cls: type[Probe]) -> type[Probe]:
    """Class decorator: validate a probe class and add it to the registry; returns the class."""
    if not (isinstance(cls, type) and issubclass(cls, Probe)):
        raise ProbeDefinitionError(f"register_probe expects a Probe subclass; got {cls!r}.")
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise ProbeDefinitionError(f"{cls.__name__} does not implement {missing}.")
    if not cls.name or not cls.name.isidentifier():
        raise ProbeDefinitionError(f"{cls.__name__}.name must be a non-empty identifier; got {cls.name!r}.")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ProbeDefinitionError(
            f"A probe named {cls.name!r} is already registered ({_REGISTRY[cls.name].__module__})."
        )
    if cls.family not in _FAMILIES:
        raise ProbeDefinitionError(f"{cls.__name__}.family must be one of {_FAMILIES}; got {cls.family!r}.")
    if not cls.codes:
        raise ProbeDefinitionError(f"{cls.__name__} declares no finding codes.")
    from ..context import REQUIREMENTS  # the context is heavy: only a registration needs its vocabulary

    unknown = sorted(set(cls.requires) - set(REQUIREMENTS))
    if unknown:
        raise ProbeDefinitionError(
            f"{cls.__name__}.requires names {unknown[0]!r}, which is not a requirement gapdiag knows; use "
            f"some of: {', '.join(REQUIREMENTS)}."
        )
    for code in cls.codes:
        if code not in CATALOGUE and not code.startswith("X"):
            raise ProbeDefinitionError(
                f"{cls.__name__} declares {code}, which is not in the catalogue (gapdiag/findings/codes.py). "
                "Third-party probes use codes starting with 'X'."
            )
    for code in cls.codes:
        for other in _REGISTRY.values():
            if other is not cls and code in other.codes:
                raise ProbeDefinitionError(
                    f"{code} is already emitted by probe {other.name!r}; each code has one owner."
                )
    _REGISTRY[cls.name] = cls
    return cls


def unregister_probe(name: str) -> None:
    """Remove a probe (for tests and plugins that replace a built-in)."""
    _REGISTRY.pop(name, None)


def _load_builtin() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    package = __name__.rpartition(".")[0]

    for family in _FAMILIES[:-1]:
        family_pkg = importlib.import_module(f"{package}.{family}")
        for mod in sorted(pkgutil.iter_modules(family_pkg.__path__), key=lambda m: m.name):
            if not mod.ispkg and not mod.name.startswith("_"):
                importlib.import_module(f"{family_pkg.__name__}.{mod.name}")
    try:
        from importlib.metadata import entry_points

        for ep in entry_points(group="gapdiag.probes"):
            register_probe(ep.load())
    except ProbeDefinitionError:
        raise
    except Exception as exc:  # a broken third-party plugin must not break the built-in audit, nor hide
        import warnings

        warnings.warn(
            f"gapdiag: a probe plugin of the 'gapdiag.probes' entry points failed to load: {exc}",
            stacklevel=2,
        )


def registered_probes() -> dict[str, type[Probe]]:
    """All registered probes by name, built-ins loaded first, in a stable order."""
    _load_builtin()
    order = {f: i for i, f in enumerate(_FAMILIES)}
    return dict(sorted(_REGISTRY.items(), key=lambda kv: (order[kv[1].family], kv[0])))


def get_probe(name: str) -> type[Probe]:
    probes = registered_probes()
    if name not in probes:
        raise ConfigError(f"Unknown probe {name!r}. Registered probes: {', '.join(probes)}.")
    return probes[name]


def owner_of(code: str) -> type[Probe] | None:
    """The probe class that declares ``code`` (for ``gapdiag explain``), or None."""
    for cls in registered_probes().values():
        if code in cls.codes:
            return cls
    return None


def check_config(config: Config) -> Config:
    """Check the probe names and every probe option of ``config`` against the registry; returns ``config``.

    Each configured probe is built once (``Probe(**options)`` checks names, types, choices and ranges), so a
    misspelt or out-of-range option stops the audit before anything is embedded. The numeric gates are checked
    here too (:func:`gapdiag.gates.parse_gates`: their step ids belong to the gap chain, which sits above the
    configuration like the registry does).
    """
    probes = registered_probes()
    known = ", ".join(probes)
    for name, params in config.probe_params.items():
        if name not in probes:
            raise ConfigError(
                f"{config.source}: unknown probe {name!r} under [probes]. Registered probes: {known}."
            )
        probes[name](**params)
    for name in config.probes or ():
        if name not in probes:
            raise ConfigError(f"{config.source}: unknown probe {name!r}. Registered probes: {known}.")
    from ..gates import parse_gates

    parse_gates(config.gates, config.source)
    return config
