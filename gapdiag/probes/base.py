"""The ``Probe`` contract: the base class owns the boilerplate, a subclass writes the analysis.

A probe declares its identity on the class (``name``, ``family``, ``codes``, ``requires``, ``defaults``)
and implements two steps: ``_measure(ctx)`` computes numbers from the :class:`AuditContext` and returns a
:class:`Measurement`; ``_judge(measurement)`` turns them into findings using ``self.params`` (the
thresholds). The final :meth:`Probe.run` checks requirements, times the work, catches a crash as a
``GD900`` finding, and refuses codes the probe did not declare. Measurement never renders: figures are
:class:`FigureSpec` data, drawn by ``gapdiag.report.figures``.
"""

from __future__ import annotations

import abc
import contextlib
import math
import random
import time
import traceback
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import ConfigError, GapdiagError, InputError, ProbeDefinitionError
from ..findings.codes import CATALOGUE, lookup
from ..findings.finding import Finding, Severity

if TYPE_CHECKING:
    from ..context import AuditContext

__all__ = ["Probe", "ProbeResult", "Measurement", "FigureSpec", "Status", "ProbeSkipped", "Param"]


class ProbeSkipped(Exception):
    """Raised inside ``_measure`` when the data turns out not to support the probe (a reason a person reads).

    Requirements that can be declared belong in ``requires``; this is for what only the measurement can see
    (e.g. no attribute column shared by both splits).
    """


@dataclass(frozen=True)
class Param:
    """A probe option declared next to its default, with the values it accepts.

    Options declared as plain values in ``Probe.defaults`` are checked against the type of their default;
    a ``Param`` adds ``choices``, an inclusive range ``[low, high]`` or a ``check(value) -> error text or
    None``. Every option is checked when the probe is built (``Probe(**params)``), before the audit embeds.
    """

    default: Any
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    check: Callable[[Any], str | None] | None = None

    def validate(self, probe: str, key: str, value: Any) -> Any:
        """The value, checked; raises ``ConfigError`` naming ``probes.<probe>.<key>`` and what it accepts."""
        where = f"probes.{probe}.{key}"
        _check_type(where, self.default, value)
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"{where} must be one of {', '.join(map(repr, self.choices))}; got {value!r}.")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{where} must be a finite number; got {value!r}.")
            if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
                bounds = f"[{self.low if self.low is not None else '-inf'}, {self.high if self.high is not None else 'inf'}]"
                raise ConfigError(f"{where} must lie in {bounds}; got {value!r}.")
        if self.check is not None:
            problem = self.check(value)
            if problem:
                raise ConfigError(f"{where}: {problem}")
        return value


def _check_type(where: str, default: Any, value: Any) -> None:
    """Options take the type of their default (an int where a float is expected is fine; None takes anything)."""
    if default is None:
        return
    if isinstance(default, bool):
        ok, word = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, word = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(default, float):
        ok, word = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    elif isinstance(default, str):
        ok, word = isinstance(value, str), "a string"
    elif isinstance(default, Mapping):
        ok, word = isinstance(value, Mapping), "a table {key: value}"
    elif isinstance(default, (tuple, list)):
        ok, word = isinstance(value, (tuple, list)), "a list"
    else:
        ok, word = True, ""
    if not ok:
        raise ConfigError(f"{where} must be {word}; got {value!r} ({type(value).__name__}).")


class Status:
    OK = "ok"
    SKIPPED = "skipped"
    ERROR = "error"


@dataclass
class FigureSpec:
    """A figure as data. ``kind`` is one of the kinds ``gapdiag.report.figures`` draws:

    - ``bars``: ``{"groups": [str], "series": {name: {"value": [...], "low": [...], "high": [...]}},
      "ref": float | None, "ref_label": str, "ylabel": str, "horizontal": bool}``
    - ``hist``: ``{"panels": [{"title": str, "series": {name: [float]}, "vlines": {name: float}}], "xlabel": str}``
    - ``lines``: ``{"series": {name: {"x": [...], "y": [...]}}, "xlabel": str, "ylabel": str,
      "diagonal": bool, "logx": bool, "vlines": {name: float}}``
    - ``heatmap``: ``{"rows": [str], "cols": [str], "values": [[float]], "annotations": [[str]],
      "vmin": float, "vmax": float, "cbar": str}``
    - ``scatter``: ``{"panels": [{"title": str, "x": [float], "y": [float], "groups": [str]}]}``
    - ``images``: ``{"rows": [{"caption": str, "images": [array (H, W) or (H, W, 3) in [0, 1]]}]}``
    - ``overlay``: ``{"image": array (h, w) or (h, w, 3) in [0, 1], "panels": [{"title": str, "values":
      [[float]] (gr, gc)}], "row_edges": [int] (gr + 1), "col_edges": [int] (gc + 1), "vmin", "vmax",
      "cbar": str, "outline": [[r0, r1, c0, c1]]}``: a grid of values over an image of H x W pixels (the
      last edges), boxes in pixels, end-exclusive
    """

    id: str
    kind: str
    title: str
    data: dict[str, Any]
    caption: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "title": self.title, "caption": self.caption}


@dataclass
class Measurement:
    """What ``_measure`` returns: numbers, per-item/per-pair tables and examples, figures."""

    metrics: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    figures: list[FigureSpec] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class ProbeResult:
    """The outcome of one probe on one audit."""

    probe: str
    family: str
    status: str
    metrics: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    figures: list[FigureSpec] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reason: str = ""
    duration_s: float = 0.0
    codes: tuple[str, ...] = ()  # every code the probe checks (JUnit shows one case per code)

    def to_dict(self) -> dict[str, Any]:
        return {
            "probe": self.probe,
            "family": self.family,
            "status": self.status,
            "reason": self.reason,
            "metrics": self.metrics,
            "findings": [f.code for f in self.findings],
            "figures": [f.to_dict() for f in self.figures],
            "notes": list(self.notes),
        }


class Probe(abc.ABC):
    """Base class of every probe. Subclasses set the class attributes and implement ``_measure`` and ``_judge``."""

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    codes: ClassVar[tuple[str, ...]] = ()
    requires: ClassVar[frozenset[str]] = frozenset()
    defaults: ClassVar[dict[str, Any]] = {}
    description: ClassVar[str] = ""
    #: True when the probe may run beside other probes (the audit's ``workers`` option): it draws randomness
    #: only from ``ctx.rng`` (never from numpy's, Python's or torch's global streams, directly or through a
    #: library), reaches the model only through the context, and calls no numba-parallel code. False (the
    #: default, right for any probe not known to be so) runs it on the calling thread before the concurrent
    #: ones, with nothing beside it and the global streams seeded for it.
    concurrent: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "run" in cls.__dict__:
            raise ProbeDefinitionError(
                f"{cls.__name__} overrides Probe.run; implement _measure and _judge instead."
            )

    def __init__(self, **params: Any):
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            valid = ", ".join(sorted(self.defaults)) or "none"
            raise ConfigError(
                f"Unknown option(s) {', '.join(unknown)} for probe {self.name!r}. Valid options: {valid}."
            )
        for key, value in params.items():
            declared = self.defaults[key]
            spec = declared if isinstance(declared, Param) else Param(declared)
            spec.validate(self.name, key, value)
        self.params: dict[str, Any] = {**self.default_params(), **params}

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        """The options' default values (``Param`` declarations resolved to their defaults)."""
        return {k: (v.default if isinstance(v, Param) else v) for k, v in cls.defaults.items()}

    # -- the two steps a subclass writes -------------------------------------------------------------
    @abc.abstractmethod
    def _measure(self, ctx: AuditContext) -> Measurement:
        """Compute the probe's numbers, tables and figures from the context (never renders)."""

    @abc.abstractmethod
    def _judge(self, m: Measurement) -> list[Finding]:
        """Turn the measurement into findings using ``self.params`` (the thresholds)."""

    # -- declared prerequisites ---------------------------------------------------------------------
    def neighbours_needed(self, ctx: AuditContext) -> dict[str, int]:
        """Neighbours per item this probe will read from the context's shared graphs.

        Keys: a split name for ``ctx.neighbour_graph(split)`` (the split's items among themselves), or
        ``"split->database"`` for ``ctx.cross_neighbours(split, database)``. Called once before any probe
        runs, so that each graph is built once, as deep as the deepest need, with every core. Default:
        none. Cheap: decide from sizes, labels and ``self.params`` only.
        """
        return {}

    # -- helpers for subclasses ----------------------------------------------------------------------
    def finding(
        self,
        code: str,
        severity: Severity,
        message: str,
        *,
        title: str | None = None,
        evidence: dict[str, Any] | None = None,
        figures: list[str] | tuple[str, ...] = (),
        remediation: list[str] | None = None,
        cause: str = "",
    ) -> Finding:
        """A finding of this probe; title and remediation default to the catalogue's.

        A third-party code (``X...``, not in the catalogue) takes the code itself as title and no remediation
        unless the probe gives them.
        """
        if code not in self.codes:
            raise ProbeDefinitionError(
                f"Probe {self.name!r} emitted {code}, which it does not declare in codes={self.codes}."
            )
        info = CATALOGUE.get(code)
        default_fix = list(info.fix) if info is not None else []
        return Finding(
            code=code,
            severity=severity,
            title=title or (info.title if info is not None else code),
            message=message,
            probe=self.name,
            evidence=dict(evidence or {}),
            remediation=list(remediation if remediation is not None else default_fix),
            figures=list(figures),
            cause=cause,
        )

    # -- the one entry point -------------------------------------------------------------------------
    def run(self, ctx: AuditContext) -> ProbeResult:
        """Check requirements, measure, judge; never raises (a crash becomes a GD900 finding).

        A requirement the data cannot meet (absent, or degenerate: pairs of one class, a single identity),
        or an ``InputError`` raised while measuring (the data cannot support this probe), skips the probe with
        the reason; any other exception is a GD900 finding. The probe runs with numpy's, Python's and torch's global random
        streams seeded from the audit seed and the probe's name, and restored afterwards: a probe (or a
        library it calls) that draws from them is deterministic and leaves the caller's streams untouched.
        A ``concurrent`` probe draws from none of them, so they are left alone: seeding them from its
        thread would move the streams of the probe running beside it.
        """
        start = time.perf_counter()
        if self.concurrent:
            return self.__run_isolated(ctx, start)
        with _isolated_global_rng(int(ctx.config.seed), self.name):
            return self.__run_isolated(ctx, start)

    def __run_isolated(self, ctx: AuditContext, start: float) -> ProbeResult:  # mangled: no subclass clash
        from ..context import REQUIREMENTS

        unknown = sorted(set(self.requires) - set(REQUIREMENTS))
        if unknown:  # a typo in requires fails this probe only
            return self._error(
                ProbeDefinitionError(
                    f"Unknown probe requirement {unknown[0]!r} in {type(self).__name__}.requires; known: "
                    f"{', '.join(REQUIREMENTS)}."
                ),
                start,
            )
        try:
            missing = ctx.missing(self.requires) or _unsupported(ctx, self.requires)
        except GapdiagError as exc:  # the data cannot give what the probe needs (no pair can be formed...)
            missing = f"its inputs cannot be derived from the data: {exc}"
        except Exception as exc:
            return self._error(exc, start)
        if missing:
            return ProbeResult(self.name, self.family, Status.SKIPPED, reason=missing, codes=self.codes)
        try:
            try:
                m = self._measure(ctx)
            except (ProbeSkipped, InputError) as skip:  # InputError: the data cannot support this probe
                return ProbeResult(
                    self.name,
                    self.family,
                    Status.SKIPPED,
                    reason=str(skip)
                    if isinstance(skip, ProbeSkipped)
                    else f"the data cannot support it: {skip}",
                    duration_s=time.perf_counter() - start,
                    codes=self.codes,
                )
            findings = self._judge(m)
            for f in findings:
                if f.code not in self.codes:
                    raise ProbeDefinitionError(
                        f"Probe {self.name!r} emitted {f.code}, which it does not declare."
                    )
        except Exception as exc:  # a broken probe must not end the audit, nor pass silently
            return self._error(exc, start)
        return ProbeResult(
            self.name,
            self.family,
            Status.OK,
            metrics=m.metrics,
            evidence=m.evidence,
            findings=findings,
            figures=m.figures,
            notes=m.notes,
            duration_s=time.perf_counter() - start,
            codes=self.codes,
        )

    def _error(self, exc: BaseException, start: float) -> ProbeResult:
        """The result of a probe that raised: status ERROR and a GD900 finding carrying the message."""
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        err = Finding(
            code="GD900",
            severity=Severity.FAIL,
            title=f"Probe {self.name!r} failed",
            message=f"The {self.name} probe raised {detail}. Its checks did not run.",
            probe=self.name,
            evidence={"exception": type(exc).__name__, "traceback": traceback.format_exc(limit=6)},
            remediation=list(lookup("GD900").fix),
        )
        return ProbeResult(
            self.name,
            self.family,
            Status.ERROR,
            findings=[err],
            reason=detail,
            duration_s=time.perf_counter() - start,
            codes=self.codes,
        )


def _unsupported(ctx: AuditContext, requires: frozenset[str]) -> str:
    from ..preflight import unsupported

    return unsupported(ctx, requires)


@contextlib.contextmanager
def _isolated_global_rng(seed: int, name: str) -> Any:
    """Seed numpy's, Python's and torch's (CPU) global random streams for a block; restore them after.

    The streams belong to the block until it ends (:func:`gapdiag._threads.exclusive`), whatever probes run
    beside it.
    """
    import numpy as np
    import torch

    from .._threads import exclusive

    with exclusive():
        np_state, py_state = np.random.get_state(), random.getstate()
        derived = zlib.crc32(f"{seed}:{name}".encode())
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(derived)
            np.random.seed(derived)
            random.seed(derived)
            try:
                yield
            finally:
                np.random.set_state(np_state)
                random.setstate(py_state)
