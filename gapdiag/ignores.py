"""Ignored finding codes and the reason each one is ignored.

An ignored code is still reported, with its reason, but never gates. In a configuration *file* (``--config``
or ``[tool.gapdiag]``: the file a team reviews in git) every ignore needs a reason::

    ignore = [{code = "GD204", reason = "hubness is expected for our 512-d embeddings (issue #42)"}]

A bare code there (the old ``ignore = ["GD204"]``) is a ``ConfigError`` that shows the line to write
instead. Ad-hoc ignores keep working without one: ``--ignore GD204`` on the command line records the reason
"--ignore on the command line", and ``audit(config={"ignore": ["GD204"]})`` in Python records none (the report
says so).

The normalized form is a dict ``{code: reason}`` (``""`` = no reason given), so ``code in config.ignore``
still reads naturally.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import ConfigError

__all__ = ["normalize_ignores", "require_reasons", "command_line_ignores", "COMMAND_LINE_REASON"]

COMMAND_LINE_REASON = "--ignore on the command line"
_ENTRY_KEYS = ("code", "reason")


def _fix(code: str) -> str:
    return f'ignore = [{{code = "{code}", reason = "why it is acceptable"}}]'


def _entry(entry: Any, source: str) -> tuple[str, str]:
    if isinstance(entry, str):
        return entry.strip().upper(), ""
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{source}: each ignore entry must be a table like {_fix('GD204')}; got {entry!r}.")
    unknown = sorted(set(entry) - set(_ENTRY_KEYS))
    if unknown or "code" not in entry:
        raise ConfigError(
            f"{source}: an ignore entry has keys {', '.join(_ENTRY_KEYS)}; got {sorted(entry)!r}. "
            f"Write {_fix(str(entry.get('code', 'GD204')))}."
        )
    code, reason = str(entry["code"]).strip().upper(), entry.get("reason", "")
    if not isinstance(reason, str) or not reason.strip():
        raise ConfigError(
            f"{source}: the ignore entry for {code} needs a non-empty reason; write {_fix(code)}."
        )
    return code, reason.strip()


def normalize_ignores(value: Any, source: str) -> dict[str, str]:
    """``{code: reason}`` from a comma-separated string, a list of codes or ``{code, reason}`` tables, or a dict.

    Codes are upper-cased; a code listed twice is an error (which reason would hold?). Whether each code exists
    is checked by the caller (:class:`gapdiag.config.Config`).
    """
    if isinstance(value, Mapping):
        items = [(str(k).strip().upper(), str(v)) for k, v in value.items()]
    elif isinstance(value, str):
        items = [(c.strip().upper(), "") for c in value.split(",") if c.strip()]
    elif isinstance(value, (list, tuple)):
        items = [_entry(e, source) for e in value]
    else:
        raise ConfigError(f"{source}: ignore must be a list like {_fix('GD204')}; got {value!r}.")
    out: dict[str, str] = {}
    for code, reason in items:
        if code in out:
            raise ConfigError(f"{source}: ignore lists {code} twice; keep one entry with its reason.")
        out[code] = reason
    return out


def require_reasons(data: Mapping[str, Any], source: str) -> None:
    """A configuration file's ``ignore`` must give a reason for every code; raise ``ConfigError`` if not."""
    value = data.get("ignore")
    if value is None:
        return
    entries = [value] if isinstance(value, str) else value
    if not isinstance(entries, (list, tuple)):
        return  # not a list at all: the option check says what the shape must be
    for entry in entries:
        if isinstance(entry, str):
            for code in (c.strip().upper() for c in entry.split(",") if c.strip()):
                raise ConfigError(
                    f"{source}: ignore lists {code} without a reason; write {_fix(code)} so the report says "
                    "why it is accepted."
                )


def command_line_ignores(text: str | None) -> dict[str, str] | None:
    """``--ignore GD204,GD205`` as ``{code: COMMAND_LINE_REASON}`` (None when the flag was not given)."""
    if text is None:
        return None
    return {c.strip().upper(): COMMAND_LINE_REASON for c in text.split(",") if c.strip()}
