"""Files in and out, safely.

Writes are atomic: a temporary file in the target folder, then a rename, so a reader never sees half a
file; a folder that cannot be written is an ``OutputError`` naming the path.

``.npz`` files are read without pickle and without trusting their sizes: every member's declared size is
checked against a limit before anything is decompressed (a few hundred bytes of zip can claim gigabytes),
object arrays are refused, and a truncated or corrupt file is an ``InputError`` naming the member.

JSON documents (reports, baselines) are read with one ``InputError`` for every way they can fail.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError, OutputError

if TYPE_CHECKING:
    import numpy as np

# numpy is imported by the npz readers only: compare and baseline read JSON through this module and must
# start without it (tests/test_startup.py).

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "read_json",
    "read_npz",
    "MAX_ARRAY_BYTES",
    "MAX_INFLATION",
]

#: Largest array (decompressed) read from one ``.npz`` member, and from all of its members together.
MAX_ARRAY_BYTES = 16 * 2**30
#: Largest decompressed / compressed ratio accepted for a member above 64 MiB (numbers rarely pass 20).
MAX_INFLATION = 200


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, creating parent folders; return the path."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OutputError(
            f"Cannot write {str(path)!r}: {exc.strerror or exc} ({str(path.parent)!r}). Pick a folder you can "
            "write to."
        ) from None
    try:
        # mkstemp creates 0600; a report is an ordinary file, readable as the umask allows
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise OutputError(f"Cannot write {str(path)!r}: {exc.strerror or exc}.") from None
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (a lone surrogate, e.g. from a file name, is written as
    its ``\\udcxx`` escape rather than failing the write)."""
    return atomic_write_bytes(path, text.encode("utf-8", errors="backslashreplace"))


def read_json(path: str | os.PathLike, what: str, fix: str = "") -> Any:
    """The JSON document at ``path``. Any way it cannot be read is an ``InputError`` that names ``what`` the file
    should be (``"a gapdiag JSON report"``) and ends with ``fix`` (what to do) when given."""
    import json

    p = Path(path)
    tail = f"; {fix}." if fix else "."
    if not p.is_file():
        raise InputError(f"{str(p)!r} does not exist (expected {what}){tail}")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{p} is not UTF-8 text ({exc.reason} at byte {exc.start}); not {what}{tail}"
        ) from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InputError(f"{p} is not {what}: {exc}{tail}") from None
    except OSError as exc:
        raise InputError(f"{p} cannot be read ({exc.strerror or exc}){tail}") from None


def read_npz(
    path: str | os.PathLike, *, max_bytes: int = MAX_ARRAY_BYTES, max_inflation: float = MAX_INFLATION
) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file by name, read without pickle and within size limits.

    Raises ``InputError`` for a file that is not a zip, a member that is not a ``.npy`` array, an object
    array (it would need pickle), a member or total larger than ``max_bytes`` decompressed, a member that
    inflates more than ``max_inflation`` times, and truncated or corrupt data.
    """
    p = Path(path)
    try:
        archive = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputError(f"{p.name}: not a readable .npz file ({exc}); save it with numpy.savez.") from None
    with archive:
        infos = archive.infolist()
        _check_sizes(p, infos, max_bytes, max_inflation)
        return {_member_name(p, info): _read_member(p, archive, info) for info in infos}


def _check_sizes(p: Path, infos: list[zipfile.ZipInfo], max_bytes: int, max_inflation: float) -> None:
    """Refuse members whose declared decompressed size, or inflation, passes the limits, before reading."""
    total = 0
    for info in infos:
        size = info.file_size
        total += size
        if size > max_bytes or total > max_bytes:
            raise InputError(
                f"{p.name}: member {info.filename!r} would decompress to {_human(size)} ({_human(total)} so far), over "
                f"the limit of {_human(max_bytes)} for an .npz; store large embeddings as .npy or parquet shards."
            )
        if size > 64 * 2**20 and size > max_inflation * max(info.compress_size, 1):
            raise InputError(
                f"{p.name}: member {info.filename!r} inflates {size / max(info.compress_size, 1):.0f} times "
                f"(limit {max_inflation:.0f}); this is not an array of embeddings. Re-save it with numpy.savez."
            )


def _member_name(p: Path, info: zipfile.ZipInfo) -> str:
    if not info.filename.endswith(".npy") or info.is_dir():
        raise InputError(
            f"{p.name}: member {info.filename!r} is not a .npy array; save the file with numpy.savez."
        )
    return info.filename[: -len(".npy")]


def _read_member(p: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """One member as an array, checked for object dtype from its header before its data is read."""
    import numpy as np

    name = info.filename[: -len(".npy")]
    try:
        with archive.open(info) as fh:
            version = np.lib.format.read_magic(fh)
            shape, fortran, dtype = _read_header(fh, version)
            if dtype.hasobject:
                raise InputError(
                    f"{p.name}: array {name!r} holds Python objects (dtype {dtype}); gapdiag never unpickles "
                    "files. Save numeric or string arrays (e.g. np.asarray(x, dtype=np.float32))."
                )
            count = int(np.prod(shape, dtype=np.int64))
            if count * dtype.itemsize > info.file_size:
                raise InputError(
                    f"{p.name}: array {name!r} claims shape {shape} ({count * dtype.itemsize} bytes) but its "
                    f"member holds {info.file_size} bytes; the file is truncated or corrupt."
                )
            data = fh.read(count * dtype.itemsize)
    except InputError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise InputError(f"{p.name}: array {name!r} cannot be read ({type(exc).__name__}: {exc}).") from None
    if len(data) != count * dtype.itemsize:
        raise InputError(
            f"{p.name}: array {name!r} is truncated ({len(data)} of {count * dtype.itemsize} bytes)."
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()


def _read_header(fh, version: tuple[int, int]) -> tuple[tuple[int, ...], bool, np.dtype]:
    """The (shape, fortran_order, dtype) of an .npy header (format 1.0 or 2.0, what numpy.savez writes)."""
    import numpy as np

    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise ValueError(f".npy format version {version} is not supported; save with numpy.savez")
    return readers[version](fh)


def _human(nbytes: float) -> str:
    """A byte count as a person reads it: 512 B, 3.2 MiB, 1.5 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} GiB"  # pragma: no cover
