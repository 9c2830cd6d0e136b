"""Findings grouped into causes: the report shows one card per cause, not one per finding.

Findings that share ``Finding.cause`` are one cause. A finding without one joins the findings it shares an
artifact with (the attributes its evidence names: GD101's ``attribute`` and ``also_flagged`` features, GD102's
``attributes``), else the findings of its code. Grouping is presentation: nothing here measures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..findings.finding import Finding, Severity
from ..findings.policy import ERROR_CODE

__all__ = ["Cause", "group_causes", "named_items"]

# The kinds of figure that show a cause best, strongest first: the inputs themselves (thumbnails), a
# localization map, then charts.
_PICTURE_ORDER = ("images", "overlay", "heatmap", "bars", "hist", "lines", "scatter")


@dataclass(eq=False)
class Cause:
    """One card: the findings about one artifact or mechanism, strongest (the lead) first."""

    key: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def lead(self) -> Finding:
        return self.findings[0]

    @property
    def anchor(self) -> str:
        return "cause-" + re.sub(r"[^a-zA-Z0-9_-]+", "-", self.key).strip("-")

    @property
    def counted(self) -> list[Finding]:
        """The findings that count (not ignored); all of them when every one is ignored."""
        return [f for f in self.findings if not f.ignored] or self.findings

    @property
    def severity(self) -> Severity:
        return max(f.severity for f in self.counted)

    @property
    def ignored(self) -> bool:
        return all(f.ignored for f in self.findings)

    @property
    def codes(self) -> list[str]:
        return list(dict.fromkeys(f.code for f in self.findings))

    @property
    def remedies(self) -> list[str]:
        """Every remedy of the card's findings, once, in the order the findings give them."""
        return list(dict.fromkeys(step for f in self.findings for step in f.remediation))

    @property
    def moves_together(self) -> list[str]:
        """Features that move with the lead's artifact (flagged alongside it), without the lead's own."""
        lead = self.lead.evidence.get("feature")
        seen = [x for f in self.findings for x in _features(f)]
        return [x for x in dict.fromkeys(seen) if x != lead]

    def figure_refs(self, kinds: dict[tuple[str, str], str]) -> list[tuple[str, str]]:
        """The card's figures, the strongest evidence picture first (``kinds`` maps a figure to its kind)."""
        refs = list(dict.fromkeys((f.probe, fid) for f in self.findings for fid in f.figures))
        refs = [r for r in refs if r in kinds]
        order = {kind: i for i, kind in enumerate(_PICTURE_ORDER)}
        return sorted(refs, key=lambda r: order.get(kinds[r], len(order)))


def _features(f: Finding) -> list[str]:
    ev = f.evidence or {}
    out = [ev["feature"]] if isinstance(ev.get("feature"), str) else []
    for key in ("also_flagged", "attributes"):
        out += [x for x in ev.get(key) or [] if isinstance(x, str)]
    return out


def _tokens(f: Finding) -> set[str]:
    """What a finding without a ``cause`` is about: the attributes its evidence names, else its code."""
    attrs = {x.split(":", 1)[0] for x in _features(f)}
    if isinstance((f.evidence or {}).get("attribute"), str):
        attrs.add(f.evidence["attribute"])
    return {f"attribute:{a}" for a in attrs} or {f"code:{f.code}"}


def group_causes(findings: list[Finding]) -> list[Cause]:
    """Causes in the order of their strongest finding (``findings`` come ranked); probe errors are left out."""
    causes: list[Cause] = []
    by_token: dict[str, Cause] = {}
    for f in findings:
        if f.code == ERROR_CODE:
            continue
        tokens = {f"cause:{f.cause}"} if f.cause else _tokens(f)
        hits = list(dict.fromkeys(by_token[t] for t in tokens if t in by_token))
        if not hits:
            hits = [Cause(f.cause or sorted(tokens)[0])]
            causes.append(hits[0])
        target = hits[0]
        for other in hits[1:]:  # a finding that bridges two causes merges them
            target.findings += other.findings
            causes.remove(other)
            by_token.update({t: target for t, c in by_token.items() if c is other})
        target.findings.append(f)
        by_token.update({t: target for t in tokens})
    position = {id(f): i for i, f in enumerate(findings)}
    for c in causes:
        c.findings.sort(key=lambda f: position[id(f)])
    return causes


def named_items(findings: list[Finding]) -> dict[tuple[str, int], list[str]]:
    """The items findings name in their evidence, as (split, row) -> codes.

    Evidence names an item with a dict holding ``train_item`` and/or ``val_item`` (row numbers in the split,
    as GD103's examples do), or ``{"split": ..., "item": ...}``, at any depth of lists and dicts.
    """
    out: dict[tuple[str, int], list[str]] = {}

    def walk(value: Any, code: str) -> None:
        if isinstance(value, dict):
            refs = [(s, value.get(f"{s}_item")) for s in ("train", "val")]
            refs.append((value.get("split"), value.get("item")))
            for split, row in refs:
                if isinstance(split, str) and isinstance(row, int) and not isinstance(row, bool):
                    codes = out.setdefault((split, row), [])
                    if code not in codes:
                        codes.append(code)
            for v in value.values():
                walk(v, code)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v, code)

    for f in findings:
        walk(f.evidence, f.code)
    return out
