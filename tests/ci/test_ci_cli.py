"""The CI gate from the command line, on precomputed embeddings (no model to train: seconds)."""

import json

import numpy as np
import pytest

from gapdiag.cli import main


@pytest.fixture
def shifted(tmp_path):
    """Train and val embeddings of 8 identities; val is shifted (GD205 warns) and noisier (val accuracy < 1)."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(8), 12)
    centres = rng.normal(size=(8, 16)) * 3
    for name, shift, noise in (("train", 0.0, 1.0), ("val", 1.5, 3.0)):
        emb = centres[labels] + rng.normal(size=(96, 16)) * noise + shift
        np.savez(tmp_path / f"{name}.npz", embeddings=emb.astype(np.float32), labels=labels)
    return tmp_path


def _audit(folder, out, *extra):
    args = [
        "audit-embeddings",
        str(folder / "train.npz"),
        str(folder / "val.npz"),
        "--out",
        str(folder / out),
    ]
    code = main([*args, "--probes", "split_shift", "--format", "json,junit", "--quiet", *extra])
    return code, json.loads((folder / out / "report.json").read_text())


def test_baseline_round_trip_gates_only_on_what_is_new(shifted, capsys):
    code, first = _audit(shifted, "r1", "--fail-on", "warn")
    assert code == first["exit_code"] == 1 and {f["code"] for f in first["findings"]} == {"GD205"}
    base = shifted / ".gapdiag-baseline.json"
    assert main(["baseline", "write", str(shifted / "r1" / "report.json"), "--out", str(base)]) == 0
    assert "1 warn/fail finding(s) accepted" in capsys.readouterr().out

    code, again = _audit(shifted, "r2", "--fail-on", "warn", "--baseline", str(base))
    out = capsys.readouterr().out
    assert code == again["exit_code"] == 0, out
    assert "1 known finding(s) accepted" in out and "Nothing new or worse" in out
    assert again["findings"][0]["baseline"]["status"] == "accepted"

    data = json.loads(base.read_text())
    data["findings"] = []  # as if GD205 had not been there when the baseline was written
    base.write_text(json.dumps(data))
    code, new = _audit(shifted, "r3", "--fail-on", "warn", "--baseline", str(base))
    out = capsys.readouterr().out
    assert code == new["exit_code"] == 1 and "New since the baseline: GD205" in out
    assert new["baseline"]["new"][0]["code"] == "GD205"


def test_numeric_gates_from_the_config_fail_and_pass(shifted, capsys):
    val = None
    for threshold, expected in ((0.999, 1), (0.05, 0)):
        (shifted / "g.toml").write_text(f"[gates]\nval_metric_min = {threshold}\n")
        code, data = _audit(shifted, f"g{threshold}", "--config", str(shifted / "g.toml"))
        gate = data["gates"][0]
        val = gate["value"]
        assert code == data["exit_code"] == expected, capsys.readouterr().out
        assert gate["name"] == "val_metric_min" and gate["passed"] is (expected == 0)
    assert 0.05 < val < 0.999
    assert "gate val_metric_min passed" in capsys.readouterr().out


def test_command_line_ignores_add_to_the_config_and_say_where_they_came_from(shifted, capsys):
    (shifted / "g.toml").write_text('fail_on = "warn"\nignore = [{code = "GD204", reason = "known hubs"}]\n')
    code, data = _audit(shifted, "i", "--config", str(shifted / "g.toml"), "--ignore", "GD205")
    assert code == data["exit_code"] == 0
    assert data["meta"]["config"]["options"]["ignore"] == {
        "GD204": "known hubs",
        "GD205": "--ignore on the command line",
    }
    assert "(ignored: --ignore on the command line)" in capsys.readouterr().out


def test_a_missing_baseline_is_a_usage_error_before_any_work(shifted, capsys):
    code = main(["audit", "no_such_module:make", "--baseline", str(shifted / "nope.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "does not exist" in err[0] and "gapdiag baseline write" in err[0]


def test_baseline_write_defaults_to_the_committed_file_name(shifted, monkeypatch, capsys):
    from gapdiag.baseline import DEFAULT_PATH

    _audit(shifted, "r", "--fail-on", "warn")
    monkeypatch.chdir(shifted)
    assert main(["baseline", "write", "r/report.json"]) == 0
    assert (shifted / DEFAULT_PATH).is_file() and DEFAULT_PATH in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["baseline", "write", "--help"])
    assert f"default: {DEFAULT_PATH}" in capsys.readouterr().out
