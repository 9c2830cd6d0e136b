"""Every user error on the command line is one line on stderr and exit code 2, never a traceback, and is
found before the work starts. One test per reader's file-format error."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from gapdiag.cli import main


def _fails(capsys, args, needle):
    """Run the CLI in process; it must exit 2 with one line naming the problem."""
    code = main(args)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("gapdiag: error: "), err
    assert needle in lines[0], lines[0]
    return lines[0]


def _npz(path, **arrays):
    rng = np.random.default_rng(0)
    base = {"embeddings": rng.normal(size=(24, 4)).astype(np.float32), "labels": np.arange(24) % 4}
    np.savez(path, **(base | arrays))
    return str(path)


def _parquet(path, frame=None):
    rng = np.random.default_rng(0)
    if frame is None:
        emb = rng.normal(size=(24, 3))
        frame = pd.DataFrame({f"emb_{j}": emb[:, j] for j in range(3)})
        frame["label"] = np.arange(24) % 4
    frame.to_parquet(path)
    return str(path)


# -- the readers: npz ----------------------------------------------------------------------------------------


def test_npz_corrupt(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 this is not a zip")
    _fails(capsys, ["audit-embeddings", str(bad), str(bad)], "bad.npz: not a readable .npz file")


def test_npz_truncated(tmp_path, capsys):
    good = _npz(tmp_path / "good.npz")
    with open(good, "rb") as fh:
        data = fh.read()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) * 2 // 3])
    _fails(capsys, ["audit-embeddings", str(tmp_path / "cut.npz"), good], "cut.npz: not a readable .npz file")


def test_npz_object_array_is_never_unpickled(tmp_path, capsys):
    bad = _npz(tmp_path / "obj.npz", labels=np.array([{"x": 1}] * 24, dtype=object))
    _fails(capsys, ["audit-embeddings", bad, bad], "array 'labels' holds Python objects")


def test_npz_string_embeddings(tmp_path, capsys):
    bad = _npz(tmp_path / "s.npz", embeddings=np.array([["a", "b"]] * 24))
    _fails(capsys, ["audit-embeddings", bad, bad], "has dtype <U1; embeddings must be real numbers")


def test_npz_decompression_bomb_is_refused_before_decompressing(tmp_path, capsys):
    """A member whose headers claim 4 GiB is refused from the zip directory, before a byte is inflated."""
    import struct

    bomb = tmp_path / "bomb.npz"
    _npz(bomb)
    data = bytearray(bomb.read_bytes())
    for signature, offset in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):  # central and local headers
        at = data.find(signature)
        while at != -1:
            data[at + offset : at + offset + 4] = struct.pack("<I", 0xFFFFFFF0)
            at = data.find(signature, at + 4)
    bomb.write_bytes(bytes(data))
    _fails(capsys, ["audit-embeddings", str(bomb), str(bomb)], "member 'embeddings.npy' inflates")


def test_npz_wrong_keys_and_shapes(tmp_path, capsys):
    bad = _npz(tmp_path / "k.npz", extra=np.zeros(3))
    _fails(capsys, ["audit-embeddings", bad, bad], "unknown arrays extra")
    three_d = _npz(tmp_path / "d.npz", embeddings=np.zeros((24, 2, 2), np.float32))
    _fails(capsys, ["audit-embeddings", three_d, three_d], "must have shape (N, d)")
    mixed = _npz(tmp_path / "m.npz", labels=np.array(["a", 1] * 12, dtype=object))
    _fails(capsys, ["audit-embeddings", mixed, mixed], "holds Python objects")


# -- the readers: parquet ------------------------------------------------------------------------------------


def test_parquet_corrupt(tmp_path, capsys):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 garbage")
    _fails(capsys, ["audit-embeddings", str(bad), str(bad)], "bad.parquet: not a readable parquet file")


def test_parquet_truncated(tmp_path, capsys):
    good = _parquet(tmp_path / "good.parquet")
    with open(good, "rb") as fh:
        data = fh.read()
    (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2])
    _fails(
        capsys,
        ["audit-embeddings", str(tmp_path / "cut.parquet"), good],
        "cut.parquet: not a readable parquet",
    )


def test_parquet_string_embedding_columns(tmp_path, capsys):
    frame = pd.DataFrame({"emb_0": ["a"] * 24, "emb_1": np.zeros(24), "label": np.arange(24) % 4})
    bad = _parquet(tmp_path / "s.parquet", frame)
    _fails(capsys, ["audit-embeddings", bad, bad], "embedding column 'emb_0' has dtype")


def test_parquet_ragged_or_string_list_column(tmp_path, capsys):
    ragged = pd.DataFrame({"embedding": [[1.0, 2.0], [1.0]] * 12, "label": np.arange(24) % 4})
    bad = _parquet(tmp_path / "r.parquet", ragged)
    _fails(capsys, ["audit-embeddings", bad, bad], "column 'embedding' must hold one list of d numbers")
    words = pd.DataFrame({"embedding": [["a", "b"]] * 24, "label": np.arange(24) % 4})
    bad = _parquet(tmp_path / "w.parquet", words)
    _fails(capsys, ["audit-embeddings", bad, bad], "column 'embedding' must hold one list of d numbers")


def test_parquet_odd_column_names_and_missing_labels(tmp_path, capsys):
    frame = pd.DataFrame({"emb_x": np.zeros(24), "label": np.arange(24) % 4})
    bad = _parquet(tmp_path / "x.parquet", frame)
    _fails(capsys, ["audit-embeddings", bad, bad], "no 'embedding' column and no emb_0")
    no_label = pd.DataFrame({"emb_0": np.zeros(24)})
    bad = _parquet(tmp_path / "n.parquet", no_label)
    _fails(capsys, ["audit-embeddings", bad, bad], "needs a 'label' column")
    with_none = pd.DataFrame({"emb_0": np.arange(24.0), "label": [None, *["a"] * 23]})
    bad = _parquet(tmp_path / "l.parquet", with_none)
    _fails(capsys, ["audit-embeddings", bad, bad], "labels[0] is missing")


# -- compare and config files --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("[1, 2, 3]", "not a gapdiag JSON report"),
        ('{"tool": "gapdiag", "findings": {}}', "verdict is None"),
        ('{"tool": "gapdiag", "verdict": "pass", "findings": {}}', "findings is not a list"),
        ('{"tool": "gapdiag", "verdict": "pass", "findings": [3]}', "findings[0] has no code"),
        ('{"tool": "gapdiag", "verdict": "pass", "findings": [{"code": "GD101"}]}', "has severity None"),
        ('{"tool": "gapdiag", "verdict": "pass", "findings": [], "gap": [1]}', "gap is not an object"),
        ("{not json", "is not a gapdiag JSON report"),
        ("[" * 100_000, "is not a gapdiag JSON report"),
    ],
)
def test_compare_on_json_of_another_shape(tmp_path, capsys, content, needle):
    good = {"tool": "gapdiag", "verdict": "pass", "findings": [], "gap": {}}
    (tmp_path / "good.json").write_text(json.dumps(good))
    (tmp_path / "other.json").write_text(content)
    _fails(capsys, ["compare", str(tmp_path / "good.json"), str(tmp_path / "other.json")], needle)


def test_compare_on_a_non_utf8_file(tmp_path, capsys):
    (tmp_path / "latin.json").write_bytes(b'{"tool": "gapdiag\xe9"}')
    _fails(
        capsys, ["compare", str(tmp_path / "latin.json"), str(tmp_path / "latin.json")], "is not UTF-8 text"
    )


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ('seed = "one"\n', "seed must be an integer"),
        ("n_boot = 1e9\n", "n_boot must be an integer"),
        ('threshold = "x"\n', "threshold must be a finite number"),
        ("ignore = 3\n", "ignore must be a list of finding codes"),
        ("probes = 3\n", "probes must be a list of names"),
        (
            '[probes.protocol_mismatch]\nmin_protocol_share = "x"\n',
            "probes.protocol_mismatch.min_protocol_share must be a number",
        ),
        ("probes = [3]\n", "probes must be a list of names"),
        ("seed = [\n", "not valid TOML"),
    ],
)
def test_config_values_of_the_wrong_type(tmp_path, capsys, toml, needle):
    (tmp_path / "g.toml").write_text(toml)
    _fails(capsys, ["demo", "--config", str(tmp_path / "g.toml"), "--out", str(tmp_path / "o")], needle)


def test_config_file_that_is_not_utf8(tmp_path, capsys):
    (tmp_path / "g.toml").write_bytes(b'fail_on = "w\xe9rn"\n')
    _fails(capsys, ["demo", "--config", str(tmp_path / "g.toml")], "not UTF-8 text")


def test_pyproject_whose_tool_table_is_not_a_table(tmp_path, capsys, monkeypatch):
    (tmp_path / "pyproject.toml").write_text('[tool]\ngapdiag = "yes"\n')
    monkeypatch.chdir(tmp_path)
    _fails(capsys, ["demo", "--out", str(tmp_path / "o")], "[tool.gapdiag] must be a table of options")


def test_a_negative_seed_on_the_command_line(tmp_path, capsys):
    _fails(capsys, ["demo", "--seed", "-1", "--out", str(tmp_path)], "seed must be an integer in [0,")


def test_zero_workers_on_the_command_line(tmp_path, capsys):
    _fails(capsys, ["demo", "--workers", "0", "--out", str(tmp_path)], "workers must be an integer in [1,")


# -- the output folder, before any work -----------------------------------------------------------------------


def _target(tmp_path, body):
    (tmp_path / "tgt.py").write_text(textwrap.dedent(body))
    return "tgt:make"


def test_out_that_is_a_file_is_refused_before_the_target_runs(tmp_path, capsys, monkeypatch):
    marker = tmp_path / "ran"
    target = _target(tmp_path, f"def make():\n    open({str(marker)!r}, 'w').close()\n    raise SystemExit\n")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "report.json"
    out.write_text("{}")
    _fails(capsys, ["audit", target, "--out", str(out)], "is a file; the reports go into a folder")
    _fails(capsys, ["audit", target, "--out", str(out / "sub")], "cannot be created")
    assert not marker.exists()


def test_out_that_is_not_writable_is_refused_before_the_work(tmp_path, capsys, monkeypatch):
    import gapdiag.validation as validation

    def no_write(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(validation.tempfile, "mkstemp", no_write)  # as root, chmod would not stop us
    _fails(capsys, ["demo", "--out", str(tmp_path / "r")], "is not writable (Permission denied")


def test_out_in_a_read_only_folder(tmp_path, capsys):
    import os

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: a read-only mode does not stop writes")
        _fails(capsys, ["demo", "--out", str(ro / "out")], "is not writable")
    finally:
        ro.chmod(0o755)


def test_a_target_that_raises_is_one_line(tmp_path, capsys, monkeypatch):
    target = _target(tmp_path, "def make():\n    raise ValueError('no data here')\n")
    monkeypatch.chdir(tmp_path)
    _fails(
        capsys, ["audit", target, "--out", str(tmp_path / "r")], "tgt:make() raised ValueError: no data here"
    )


def test_the_current_folder_goes_after_installed_packages_on_sys_path(tmp_path, monkeypatch):
    (tmp_path / "tgt.py").write_text("def make():\n    raise ValueError('x')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    main(["audit", "tgt:make", "--out", str(tmp_path / "r")])
    assert sys.path[-1] == str(tmp_path) and str(tmp_path) not in sys.path[:-1]


def test_no_traceback_in_a_real_process(tmp_path):
    """The same errors through ``python -m gapdiag.cli``: exit 2, one line, no traceback."""
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    (tmp_path / "f").write_text("x")
    for args in (["audit-embeddings", str(bad), str(bad)], ["demo", "--out", str(tmp_path / "f")]):
        proc = subprocess.run(
            [sys.executable, "-m", "gapdiag.cli", *args], capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert len([line for line in proc.stderr.splitlines() if line.strip()]) == 1
