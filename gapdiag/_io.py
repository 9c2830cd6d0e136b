"""Atomic writes (a temporary file in the target folder, then a rename, so a reader never sees half a file),
and reading a JSON document with one clear error for every way it can fail."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_bytes", "atomic_write_text", "read_json"]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, creating parent folders; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates 0600; a report is an ordinary file, readable as the umask allows
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def read_json(path: str | os.PathLike, what: str, fix: str = "") -> Any:
    """The JSON document at ``path``. Any way it cannot be read is an ``InputError`` that names ``what`` the file
    should be (``"a gapdiag JSON report"``) and ends with ``fix`` (what to do) when given."""
    import json

    from .errors import InputError

    p = Path(path)
    tail = f"; {fix}." if fix else "."
    if not p.is_file():
        raise InputError(f"{str(p)!r} does not exist (expected {what}){tail}")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{p} is not UTF-8 text ({exc.reason} at byte {exc.start}); expected {what}{tail}"
        ) from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InputError(f"{p} is not valid JSON ({exc}); expected {what}{tail}") from None
    except OSError as exc:
        raise InputError(f"{p} cannot be read ({exc.strerror or exc}){tail}") from None
