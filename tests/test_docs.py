"""Lists that must agree with their single source."""

import re
from pathlib import Path

from gapdiag.findings.codes import CATALOGUE
from gapdiag.probes.registry import registered_probes

ROOT = Path(__file__).resolve().parents[1]


def test_readme_code_table_matches_the_catalogue():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| (GD\d{3}) \|", readme, flags=re.M))
    assert listed == {c for c in CATALOGUE if c != "GD900"}


def test_every_code_has_a_rank_and_an_owner_probe():
    ranks = [info.cause_rank for info in CATALOGUE.values()]
    assert len(set(ranks)) == len(ranks) and max(ranks) < len(ranks)  # every code ranked, no ties
    owned = {code for cls in registered_probes().values() for code in cls.codes}
    assert owned <= set(CATALOGUE) | {c for c in owned if c.startswith("X")}
    # every code but the probe-error code has a probe that measures it
    assert {c for c in CATALOGUE if c != "GD900"} <= owned


def test_catalogue_entries_are_complete():
    for info in CATALOGUE.values():
        assert info.meaning and info.why and info.measured and info.fix, info.code


def test_every_test_named_in_the_reliability_page_exists():
    page = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    named = set(re.findall(r"(tests/[\w/]+\.py)::(test_\w+)", page))
    bare = set(re.findall(r"`(test_\w+)`", page))  # tests of the file named in the same list
    assert len(named) > 40
    for path, name in named:
        assert re.search(rf"^def {name}\(", (ROOT / path).read_text(encoding="utf-8"), flags=re.M), (
            path,
            name,
        )
    every = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("test_*.py"))
    for name in bare:
        assert re.search(rf"^def {name}\(", every, flags=re.M), name
