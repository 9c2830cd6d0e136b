"""Audit configuration: global options and per-probe thresholds, declared once.

Global options live in :data:`GLOBAL_DEFAULTS`. Probe thresholds are declared on each probe class
(``Probe.defaults``) and overridden per probe under ``probes.<name>``. A configuration comes from keyword
arguments, a TOML file, or the ``[tool.gapdiag]`` table of ``pyproject.toml``; unknown keys raise and
list the valid ones.

Example ``gapdiag.toml``::

    seed = 1
    fail_on = "warn"
    ignore = [{code = "GD204", reason = "hubness is expected for our 512-d embeddings"}]
    [gates]
    unexplained_share_max = 0.10
    [probes.protocol]
    min_protocol_share = 0.3
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, UnknownCodeError
from .ignores import normalize_ignores, require_reasons

__all__ = ["Config", "GLOBAL_DEFAULTS", "load_config"]

GLOBAL_DEFAULTS: dict[str, Any] = {
    "seed": 0,  # every random draw (bootstrap, sampling, episodes) derives from it
    "n_boot": 500,  # bootstrap resamples per confidence interval
    "ci_level": 0.95,
    "gates": {},  # numeric CI gates and the baseline margin (gapdiag.gates; docs/ci.md), checked by check_config
    "batch_size": None,  # items per encoder call; None = the model's own
    "n_way": None,  # n of generated train episodes; None = the val episodes' n, else 10
    "threshold": None,  # the user's decision threshold on the raw score; None = tuned on train pairs
    "cache_dir": None,  # folder of the embedding cache; None = no cache
    "probes": None,  # names of probes to run; None = all registered
    "ignore": (),  # finding codes reported but never gating, each with its reason (gapdiag.ignores)
    "fail_on": "fail",  # "warn" or "fail": the lowest severity that makes the exit code 1
    "max_pairs_per_split": 200_000,  # the protocol grid scores a seeded subsample of at most this many pairs
    # how the user measures each split: "auto" (as given: pairs -> pairwise, episodes -> n-way), or forced
    "train_protocol": "auto",
    "val_protocol": "auto",
    # the score is read the other way (and GD302 fails) when the training pairs' AUC, read as declared by
    # `kind`, has its whole CI below 0.5 - direction_margin: clearly inverted, not merely weak
    "direction_margin": 0.1,
    # the pair label that means "similar" in your loaders and Pairs: 1 (gapdiag's), or 0 when they follow the
    # contrastive-loss convention (label 1 = dissimilar); the given pairs are read with 1 - label then
    "similar_label": 1,
    "fresh_per_pair": 3,  # fresh partners per training pair in the gap chain and GD201 (averaged: less noise)
    # multiply-adds (queries x database x d) of one exact neighbour search; above it a seeded query sample
    # searches all items and the numbers built on it are estimates (see docs/scale.md). 4e9 is about 0.3 s
    # on 2 cores: exact up to ~5,600 items at d = 128; beyond, >= 2,000 queries keep a retrieval metric's
    # sampling error under ~0.01 at a cost independent of the split's size
    "neighbour_budget": 4e9,
    # probes run side by side on this many threads, each single-threaded; None = one more than the cores
    # this process may use (at most 4); 1 = one after another. The report is the same whatever it is.
    "workers": None,
}


@dataclass
class Config:
    """Validated configuration of one audit. ``probe_params[name]`` overrides that probe's defaults."""

    options: dict[str, Any] = field(default_factory=lambda: dict(GLOBAL_DEFAULTS))
    probe_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = "config"  # where it was read from, for messages

    def __getattr__(self, key: str) -> Any:
        options = self.__dict__.get("options", {})
        if key in options:
            return options[key]
        raise AttributeError(key)

    @classmethod
    def from_mapping(cls, mapping: dict[str, Any] | None = None, *, source: str = "config") -> Config:
        """Validate a mapping ``{option: value, "probes": {name: {param: value}}}``.

        Global options are checked here. Probe names and probe options are checked against the probe registry
        by :func:`gapdiag.probes.registry.check_config`, which ``audit()`` and the CLI call before anything is
        embedded (the registry sits above the configuration, so the configuration never imports probes).
        """
        if mapping is not None and not isinstance(mapping, dict):
            raise ConfigError(
                f"{source}: the configuration must be a table of options; got {type(mapping).__name__}."
            )
        mapping = dict(mapping or {})
        options = dict(GLOBAL_DEFAULTS)
        probe_params: dict[str, dict[str, Any]] = {}
        raw_probe_tables = mapping.pop("probes", None)
        if isinstance(raw_probe_tables, dict):
            for name, params in raw_probe_tables.items():
                if not isinstance(params, dict):
                    raise ConfigError(f"{source}: [probes.{name}] must be a table of options.")
                probe_params[str(name)] = dict(params)
        elif raw_probe_tables is not None:
            mapping["probes"] = raw_probe_tables
        for key, value in mapping.items():
            if key not in GLOBAL_DEFAULTS:
                raise ConfigError(
                    f"{source}: unknown option {key!r}. Valid options: {', '.join(sorted(GLOBAL_DEFAULTS))}, probes.<name>.<option>."
                )
            options[key] = value
        cfg = cls(options, probe_params, source)
        cfg._check(source)
        return cfg

    def _check(self, source: str) -> None:
        from .validation import check_options

        o = check_options(self.options, source=source)  # types and ranges of every global option
        o["ignore"] = normalize_ignores(o["ignore"], source)  # {code: reason}
        from .findings.codes import lookup

        for code in o["ignore"]:
            if code.startswith("X"):  # a third-party probe's own code: checked by the registry, not here
                continue
            try:
                lookup(code)
            except UnknownCodeError as exc:
                raise ConfigError(f"{source}: ignore lists {exc}") from None
        if o["probes"] is not None:
            names = [o["probes"]] if isinstance(o["probes"], str) else list(o["probes"])
            if not all(isinstance(n, str) for n in names):
                raise ConfigError(f"{source}: probes must be a list of probe names; got {o['probes']!r}.")
            o["probes"] = tuple(names)

    def with_overrides(self, **overrides: Any) -> Config:
        """A validated copy with some global options replaced (``None`` values are ignored)."""
        unknown = sorted(set(overrides) - set(GLOBAL_DEFAULTS))
        if unknown:
            raise ConfigError(
                f"Unknown option(s) {', '.join(unknown)}. Valid options: {', '.join(sorted(GLOBAL_DEFAULTS))}."
            )
        options = {**self.options, **{k: v for k, v in overrides.items() if v is not None}}
        cfg = Config(options, {k: dict(v) for k, v in self.probe_params.items()}, self.source)
        cfg._check("options")
        return cfg

    def params_for(self, name: str) -> dict[str, Any]:
        return dict(self.probe_params.get(name, {}))

    def to_dict(self) -> dict[str, Any]:
        opts = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.options.items()}
        return {"options": opts, "probes": self.probe_params}


def load_config(path: str | Path | None = None, *, search_pyproject: bool = True) -> Config:
    """Load a TOML config file, or ``[tool.gapdiag]`` of ``./pyproject.toml`` when no path is given."""
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"Config file {str(p)!r} does not exist.")
        data = _read_toml(p)
        if p.name == "pyproject.toml":
            data = _tool_table(data, p)
        require_reasons(data, str(p))
        return Config.from_mapping(data, source=str(p))
    if search_pyproject and Path("pyproject.toml").is_file():
        data = _tool_table(_read_toml(Path("pyproject.toml")), Path("pyproject.toml"))
        if data:
            require_reasons(data, "pyproject.toml [tool.gapdiag]")
            return Config.from_mapping(data, source="pyproject.toml [tool.gapdiag]")
    return Config.from_mapping({})


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8."
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc}).") from None


def _tool_table(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """``[tool.gapdiag]`` of a pyproject.toml ({} when absent); a non-table there is a ``ConfigError``."""
    tool = data.get("tool", {})
    table = tool.get("gapdiag", {}) if isinstance(tool, dict) else None
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.gapdiag] must be a table of options.")
    return table
