"""The light commands start without the heavy stack (torch, numpy, scipy, pandas, matplotlib).

Checked through ``sys.modules`` in a fresh interpreter, never by timing.
"""

import json
import subprocess
import sys
import textwrap

import pytest

HEAVY = ("torch", "numpy", "scipy", "sklearn", "pandas", "matplotlib", "umap", "faiss", "ray")

_PROBE = textwrap.dedent(
    """
    import contextlib, io, json, sys
    from gapdiag.cli import main
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            code = main(sys.argv[1:])
        except SystemExit as exc:
            code = exc.code
    heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(HEAVY)))
    print(json.dumps({"code": code, "heavy": heavy, "out": out.getvalue()}))
    """
)


def _start(*args: str) -> dict:
    code = f"HEAVY = {json.dumps(json.dumps(list(HEAVY)))}\n" + _PROBE
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _report(path, verdict: str) -> str:
    path.write_text(json.dumps({"schema_version": 1, "verdict": verdict, "findings": [], "gap": {}}))
    return str(path)


@pytest.mark.parametrize(
    "args", [["--help"], ["--version"], ["explain"], ["explain", "GD204"], ["explain", "GD101"]]
)
def test_light_commands_import_no_heavy_module(args):
    res = _start(*args)
    assert res["heavy"] == [], res["heavy"]
    assert res["code"] == 0


def test_compare_imports_no_heavy_module(tmp_path):
    res = _start("compare", _report(tmp_path / "a.json", "pass"), _report(tmp_path / "b.json", "pass"))
    assert res["heavy"] == [], res["heavy"]


def test_import_gapdiag_is_light_and_the_api_loads_on_use():
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, gapdiag; light = 'torch' not in sys.modules; gapdiag.Items; "
            "print(light, 'torch' in sys.modules, sorted(set(gapdiag.__all__) - set(dir(gapdiag))))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert proc.stdout.split() == ["True", "True", "[]"]


def test_explain_reads_the_same_declarations_as_the_registry():
    from gapdiag.probes.declarations import builtin_declarations
    from gapdiag.probes.registry import registered_probes

    static = builtin_declarations()
    assert static is not None, "a built-in probe declares name/family/codes/defaults that are not literals"
    builtin = {n: c for n, c in registered_probes().items() if c.__module__.startswith("gapdiag.probes.")}
    assert set(static) == set(builtin)
    for name, cls in builtin.items():
        decl = static[name]
        assert (decl.family, decl.codes, decl.default_params()) == (
            cls.family,
            tuple(cls.codes),
            cls.default_params(),
        )


def test_explain_shows_the_owner_defaults_from_the_declarations(capsys):
    from gapdiag.cli import main

    assert main(["explain", "GD204"]) == 0
    out = capsys.readouterr().out
    assert "Emitted by probe 'geometry'" in out and "hub_k = 10" in out


def test_gapdiag_audit_stays_the_function_after_its_module_is_imported():
    code = (
        "import importlib, gapdiag; mod = importlib.import_module('gapdiag.audit'); "
        "import gapdiag.cli; print(gapdiag.audit is mod.audit and callable(gapdiag.audit))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert proc.stdout.strip() == "True"
