"""What the package declares about itself: Python versions it runs on and dependency floors without known
CVEs (see docs/reliability.md for the advisory behind each floor)."""

import ast
import configparser
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: package -> first release without the known advisories listed in docs/reliability.md
CVE_FREE_FLOORS = {
    "torch": (2, 10),
    "scipy": (1, 11, 1),
    "scikit-learn": (1, 5, 0),
    "tqdm": (4, 66, 3),
    "jinja2": (3, 1, 6),
    "pyarrow": (14, 0, 1),
}


def _setup():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg


def _floors(text):
    out = {}
    for line in text.splitlines():
        m = re.match(r"\s*([A-Za-z0-9_.-]+)>=([0-9.]+)", line)
        if m:
            out[m.group(1).lower()] = tuple(int(p) for p in m.group(2).split("."))
    return out


def test_python_requires_matches_the_language_the_code_uses():
    assert _setup()["options"]["python_requires"].strip() == ">=3.11"  # tomllib is 3.11+
    assert sys.version_info >= (3, 11)
    for path in (ROOT / "gapdiag").rglob("*.py"):
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 11))


def test_dependency_floors_are_free_of_known_advisories():
    cfg = _setup()
    floors = _floors(cfg["options"]["install_requires"])
    for extra in ("parquet", "dev"):
        floors |= _floors(cfg["options.extras_require"][extra])
    for package, fixed in CVE_FREE_FLOORS.items():
        assert floors[package] >= fixed, (package, floors[package], fixed)
