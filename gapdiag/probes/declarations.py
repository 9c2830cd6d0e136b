"""What the built-in probes declare (name, family, codes, defaults), read from their source without importing.

``defaults`` values may be literals or ``Param(default, ...)`` declarations; the default is read.

``gapdiag explain`` prints a code's owner probe and its default thresholds. Importing the probes for that
would import numpy, scipy, torch and scikit-learn (over a second); reading the class attributes from the
source with :mod:`ast` takes milliseconds. The registry stays the single source: these are the same
literals, and ``tests/test_cli.py`` checks that both agree for every built-in probe.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["ProbeDeclaration", "builtin_declarations", "declared_owner"]

_FAMILIES = ("protocol", "leakage", "embedding")
_FIELDS = ("name", "family", "codes", "defaults")


@dataclass(frozen=True)
class ProbeDeclaration:
    """The class attributes of one registered probe, as literals."""

    name: str
    family: str
    codes: tuple[str, ...]
    defaults: dict[str, Any] = field(default_factory=dict)

    def default_params(self) -> dict[str, Any]:
        """The options' default values (as ``Probe.default_params``)."""
        return dict(self.defaults)


def _class_literals(node: ast.ClassDef, text: str, path: Path) -> dict[str, Any] | None:
    """The literal values of ``name``, ``family``, ``codes``, ``defaults`` in a class body, or None."""
    found: dict[str, Any] = {}
    for stmt in node.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, value = stmt.targets[0], stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            target, value = stmt.target, stmt.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in _FIELDS:
            try:
                if target.id == "defaults":
                    found[target.id] = _defaults(value, text, path)
                else:
                    found[target.id] = ast.literal_eval(value)
            except ValueError:  # not a literal: the caller imports the probe instead
                return None
    return found if set(_FIELDS) <= set(found) else None


def _defaults(node: ast.expr, text: str, path: Path) -> dict[str, Any]:
    """A ``defaults`` dict literal whose values are literals or ``Param(default, ...)``, and ``**SHARED``
    spreads of such dicts imported from a sibling module: the default values."""
    if not isinstance(node, ast.Dict):
        raise ValueError("not a dict literal")
    out: dict[str, Any] = {}
    for key, value in zip(node.keys, node.values, strict=True):
        if key is None:  # ``**NAME``
            if not isinstance(value, ast.Name):
                raise ValueError("a spread that is not a plain name")
            out.update(_module_dict(value.id, text, path))
            continue
        func = value.func if isinstance(value, ast.Call) else None
        if func is not None and getattr(func, "id", getattr(func, "attr", "")) == "Param":
            given = value.args[:1] or [kw.value for kw in value.keywords if kw.arg == "default"]
            if not given:
                raise ValueError("Param without a default")
            value = given[0]
        out[ast.literal_eval(key)] = ast.literal_eval(value)
    return out


def _module_dict(name: str, text: str, path: Path) -> dict[str, Any]:
    """The module-level dict literal ``name`` that ``text`` (the module at ``path``) imports relatively.

    For ``defaults = {**SHARED_DEFAULTS, ...}``: finds ``from .other import SHARED_DEFAULTS`` and reads the
    ``SHARED_DEFAULTS = {...}`` statement of ``other.py`` (only that statement is parsed).
    """
    found = None
    for m in re.finditer(r"^from (\.+)([\w.]*) import (\([^)]*\)|[^\n]*)", text, re.M):
        if re.search(rf"\b{name}\b", m.group(3)):
            found = m
            break
    if found is None:
        raise ValueError(f"{name} is not imported relatively")
    target = path.parent
    for _ in range(len(found.group(1)) - 1):
        target = target.parent
    module = found.group(2)
    source = (target.joinpath(*module.split(".")) if module else target).with_suffix(".py").read_text("utf-8")
    stmt = re.search(rf"^{name}\b[^=\n]*=\s*\{{.*?^\}}", source, re.M | re.S)
    if stmt is None:
        raise ValueError(f"{name} is not a dict literal")
    return _defaults(ast.parse(stmt.group(0)).body[0].value, source, path)


def _class_heads(text: str) -> list[str]:
    """The head of each ``@register_probe`` class in a module's text: its line and the class attributes.

    Only the lines before the first method are kept, so parsing costs a few dozen lines per probe, not
    the whole module (parsing every probe module took half a second on a busy machine).
    """
    lines = text.splitlines()
    heads = []
    for i, line in enumerate(lines):
        if line.strip() != "@register_probe" or i + 1 >= len(lines) or not lines[i + 1].startswith("class "):
            continue
        body = []
        for nxt in lines[i + 2 :]:
            if nxt.startswith(("    def ", "    @", "    async def ")) or (nxt and not nxt[0].isspace()):
                break
            body.append(nxt)
        heads.append("class _Probe:\n" + "\n".join(body) + "\n    pass\n")
    return heads


@lru_cache(maxsize=1)
def builtin_declarations() -> dict[str, ProbeDeclaration] | None:
    """Every built-in probe's declaration by name, or None when one cannot be read as literals."""
    root = Path(__file__).resolve().parent
    out: dict[str, ProbeDeclaration] = {}
    for family in _FAMILIES:
        for path in sorted((root / family).glob("*.py")):
            if path.name.startswith("_"):
                continue
            text = path.read_text(encoding="utf-8")
            for head in _class_heads(text):
                try:
                    node = ast.parse(head).body[0]
                    lit = _class_literals(node, text, path) if isinstance(node, ast.ClassDef) else None
                except (SyntaxError, OSError, ValueError):
                    return None
                if lit is None:
                    return None
                out[lit["name"]] = ProbeDeclaration(
                    lit["name"], lit["family"], tuple(lit["codes"]), dict(lit["defaults"])
                )
    return out


def declared_owner(code: str) -> ProbeDeclaration | None:
    """The probe that declares ``code``: from the built-ins' source when it is theirs, else the registry.

    Codes of third-party probes (``X...``), or built-ins that cannot be read statically, are looked up in
    the registry, which imports every probe.
    """
    static = builtin_declarations()
    if static is not None:
        for decl in static.values():
            if code in decl.codes:
                return decl
        if not code.upper().startswith("X"):
            return None
    from .registry import owner_of

    cls = owner_of(code)
    if cls is None:
        return None
    return ProbeDeclaration(cls.name, cls.family, tuple(cls.codes), cls.default_params())
