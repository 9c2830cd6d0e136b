"""Audit configuration: global options and per-probe thresholds, declared once.

Global options live in :data:`GLOBAL_DEFAULTS`. Probe thresholds are declared on each probe class
(``Probe.defaults``) and overridden per probe under ``probes.<name>``. A configuration comes from keyword
arguments, a TOML file, or the ``[tool.gapdiag]`` table of ``pyproject.toml``; unknown keys raise and
list the valid ones.

Example ``gapdiag.toml``::

    seed = 1
    fail_on = "warn"
    ignore = ["GD204"]
    [probes.protocol]
    min_protocol_share = 0.3
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, UnknownCodeError

__all__ = ["Config", "GLOBAL_DEFAULTS", "load_config"]

GLOBAL_DEFAULTS: dict[str, Any] = {
    "seed": 0,  # every random draw (bootstrap, sampling, episodes) derives from it
    "n_boot": 500,  # bootstrap resamples per confidence interval
    "ci_level": 0.95,
    "batch_size": None,  # items per encoder call; None = the model's own
    "n_way": None,  # n of generated train episodes; None = the val episodes' n, else 10
    "threshold": None,  # the user's decision threshold on the raw score; None = tuned on train pairs
    "cache_dir": None,  # folder of the embedding cache; None = no cache
    "probes": None,  # names of probes to run; None = all registered
    "ignore": (),  # finding codes reported but never gating
    "fail_on": "fail",  # "warn" or "fail": the lowest severity that makes the exit code 1
    "max_pairs_per_split": 200_000,  # the protocol grid scores a seeded subsample of at most this many pairs
    # how the user measures each split: "auto" (as given: pairs -> pairwise, episodes -> n-way), or forced
    "train_protocol": "auto",
    "val_protocol": "auto",
    # the score is read the other way (and GD302 fails) when the training pairs' AUC, read as declared by
    # `kind`, has its whole CI below 0.5 - direction_margin: clearly inverted, not merely weak
    "direction_margin": 0.1,
    "fresh_per_pair": 3,  # fresh partners per training pair in the gap chain and GD201 (averaged: less noise)
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
        o = self.options
        if o["fail_on"] not in ("warn", "fail"):
            raise ConfigError(f"{source}: fail_on must be 'warn' or 'fail'; got {o['fail_on']!r}.")
        if not isinstance(o["seed"], int) or isinstance(o["seed"], bool):
            raise ConfigError(f"{source}: seed must be an integer; got {o['seed']!r}.")
        if not isinstance(o["n_boot"], int) or o["n_boot"] < 50:
            raise ConfigError(f"{source}: n_boot must be an integer >= 50; got {o['n_boot']!r}.")
        if not 0.5 < float(o["ci_level"]) < 1.0:
            raise ConfigError(f"{source}: ci_level must lie in (0.5, 1); got {o['ci_level']!r}.")
        if o["n_way"] is not None and (not isinstance(o["n_way"], int) or o["n_way"] < 2):
            raise ConfigError(f"{source}: n_way must be an integer >= 2; got {o['n_way']!r}.")
        for key in ("train_protocol", "val_protocol"):
            if o[key] not in ("auto", "pairwise", "n-way"):
                raise ConfigError(f"{source}: {key} must be 'auto', 'pairwise' or 'n-way'; got {o[key]!r}.")
        if isinstance(o["direction_margin"], bool) or not isinstance(o["direction_margin"], (int, float)):
            raise ConfigError(
                f"{source}: direction_margin must be a number in [0, 0.5); got {o['direction_margin']!r}."
            )
        if not 0.0 <= float(o["direction_margin"]) < 0.5:
            raise ConfigError(
                f"{source}: direction_margin must lie in [0, 0.5); got {o['direction_margin']!r}."
            )
        if (
            isinstance(o["fresh_per_pair"], bool)
            or not isinstance(o["fresh_per_pair"], int)
            or o["fresh_per_pair"] < 1
        ):
            raise ConfigError(
                f"{source}: fresh_per_pair must be a positive integer; got {o['fresh_per_pair']!r}."
            )
        if isinstance(o["ignore"], str):
            o["ignore"] = tuple(c.strip().upper() for c in o["ignore"].split(",") if c.strip())
        o["ignore"] = tuple(str(c).upper() for c in o["ignore"])
        from .findings.codes import lookup

        for code in o["ignore"]:
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
            data = data.get("tool", {}).get("gapdiag", {})
        return Config.from_mapping(data, source=str(p))
    if search_pyproject and Path("pyproject.toml").is_file():
        data = _read_toml(Path("pyproject.toml")).get("tool", {}).get("gapdiag")
        if data:
            return Config.from_mapping(data, source="pyproject.toml [tool.gapdiag]")
    return Config.from_mapping({})


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
