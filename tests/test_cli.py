import json
import subprocess
import sys
import textwrap

import numpy as np

from gapdiag.cli import main


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "gapdiag.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_explain_prints_the_catalogue_entry(capsys):
    assert main(["explain", "GD101"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("GD101: ") and "How to fix it" in out and "How it is measured" in out


def test_explain_without_a_code_lists_every_code(capsys):
    from gapdiag.findings.codes import CATALOGUE

    assert main(["explain"]) == 0
    out = capsys.readouterr().out
    assert all(code in out for code in CATALOGUE) and "(probe protocol_mismatch)" in out


def test_user_errors_exit_2_with_one_line_and_no_traceback():
    for args, needle in [
        (["explain", "GD999"], "Unknown finding code"),
        (["audit", "no.such.module:fn"], "Cannot import module"),
        (["audit", "nocolon"], "package.module:function"),
        (["audit-embeddings", "missing.npz", "missing.npz"], "does not exist"),
        (["demo", "--format", "pdf"], "Unknown --format"),
    ]:
        proc = _run(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and needle in lines[0], proc.stderr


def _write_target(tmp_path, body):
    (tmp_path / "mytarget.py").write_text(textwrap.dedent(body))


def test_audit_target_writes_reports_and_gates(tmp_path, monkeypatch, capsys):
    _write_target(
        tmp_path,
        """
        from gapdiag.digits import build_scenario

        def make():
            s = build_scenario(n_pairs=600, epochs=2, val_protocol="pairs", seed=1)
            return s.model, s.train, s.val
        """,
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "rep"
    code = main(["audit", "mytarget:make", "--out", str(out), "--format", "json,junit,markdown", "--quiet"])
    data = json.loads((out / "report.json").read_text())
    assert code == data["exit_code"]
    assert (out / "report.xml").exists() and (out / "report.md").exists()
    assert "Report written to" in capsys.readouterr().out


def test_audit_embeddings_from_npz(tmp_path, capsys):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(8), 12)
    centres = rng.normal(size=(8, 16)) * 3
    for name in ("train", "val"):
        emb = centres[labels] + rng.normal(size=(96, 16))
        np.savez(tmp_path / f"{name}.npz", embeddings=emb.astype(np.float32), labels=labels)
    code = main(
        [
            "audit-embeddings",
            str(tmp_path / "train.npz"),
            str(tmp_path / "val.npz"),
            "--out",
            str(tmp_path / "r"),
            "--format",
            "json",
            "--quiet",
        ]
    )
    data = json.loads((tmp_path / "r" / "report.json").read_text())
    assert code == data["exit_code"] in (0, 1, 3)
    skipped = {p["probe"]: p["reason"] for p in data["probes"] if p["status"] == "skipped"}
    assert all("precomputed embeddings" in r or "needs" in r for r in skipped.values())


def test_compare_reports(tmp_path, capsys):
    base = {"tool": "gapdiag", "verdict": "pass", "findings": [], "gap": {}}
    worse = {
        "tool": "gapdiag",
        "verdict": "fail",
        "findings": [{"code": "GD101", "severity": "fail", "ignored": False}],
        "gap": {},
    }
    (tmp_path / "a.json").write_text(json.dumps(base))
    (tmp_path / "b.json").write_text(json.dumps(worse))
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 1
    assert "GD101: pass -> fail (new)" in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "b.json"), str(tmp_path / "a.json")]) == 0


def test_audit_embeddings_from_parquet(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(6), 10)
    for name in ("train", "val"):
        emb = rng.normal(size=(60, 8)) + labels[:, None]
        frame = pd.DataFrame({f"emb_{j}": emb[:, j] for j in range(8)})
        frame["label"] = labels
        frame.to_parquet(tmp_path / f"{name}.parquet")
    out = tmp_path / "r"
    code = main(
        [
            "audit-embeddings",
            str(tmp_path / "train.parquet"),
            str(tmp_path / "val.parquet"),
            "--out",
            str(out),
            "--format",
            "json",
            "--quiet",
        ]
    )
    data = json.loads((out / "report.json").read_text())
    assert code == data["exit_code"]
    assert data["meta"]["sizes"]["train_items"] == 60 and data["meta"]["embedding"]["dimension"] == 8


def test_demo_prints_the_symptom_and_writes_both_reports(tmp_path, capsys):
    code = main(["demo", "--out", str(tmp_path), "--quiet"])
    out = capsys.readouterr().out
    assert "Symptom reproduced: training pairwise accuracy" in out and "10-way accuracy" in out
    data = json.loads((tmp_path / "report.json").read_text())
    assert (tmp_path / "report.html").stat().st_size > 10_000
    assert code == data["exit_code"] == 1
    codes = {f["code"] for f in data["findings"] if f["severity"] in ("warn", "fail")}
    assert {"GD101", "GD102"} <= codes and "GD301" in {f["code"] for f in data["findings"]}
    assert data["primary_cause"]["code"] in ("GD101", "GD102")  # the planted colour artifact
    steps = {s["id"]: s for s in data["gap"]["chain"]["steps"]}
    assert steps["protocol"]["owner"] == "GD301" and steps["pair_specific"]["owner"] == "GD101"
