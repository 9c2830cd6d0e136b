"""Files in and out: atomic writes that name an unwritable path, .npz read without pickle within limits."""

import zipfile

import numpy as np
import pytest

from gapdiag import InputError, OutputError
from gapdiag._io import atomic_write_text, read_npz


def test_read_npz_matches_numpy_for_every_layout(tmp_path):
    arrays = {
        "embeddings": np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32),
        "labels": np.array(["a", "b"] * 3 + ["c"]),
        "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        "scalar": np.array(3),
        "empty": np.zeros((0, 2)),
    }
    np.savez_compressed(tmp_path / "a.npz", **arrays)
    got = read_npz(tmp_path / "a.npz")
    assert set(got) == set(arrays)
    for k, v in arrays.items():
        assert got[k].dtype == v.dtype and np.array_equal(got[k], v)


def test_read_npz_refuses_what_it_should(tmp_path):
    np.savez(tmp_path / "obj.npz", x=np.array([None, 1], dtype=object))
    with pytest.raises(InputError, match="holds Python objects"):
        read_npz(tmp_path / "obj.npz")
    np.savez_compressed(tmp_path / "zeros.npz", x=np.zeros((300, 2**16), np.float32))  # 75 MiB of zeros
    with pytest.raises(InputError, match="inflates"):
        read_npz(tmp_path / "zeros.npz")
    np.savez(tmp_path / "big.npz", x=np.zeros(1000))
    with pytest.raises(InputError, match="over the limit of 4.0 KiB"):
        read_npz(tmp_path / "big.npz", max_bytes=4096)
    with zipfile.ZipFile(tmp_path / "notes.npz", "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(InputError, match="'readme.txt' is not a .npy array"):
        read_npz(tmp_path / "notes.npz")
    (tmp_path / "none.npz").write_bytes(b"")
    with pytest.raises(InputError, match="not a readable .npz"):
        read_npz(tmp_path / "none.npz")


def test_a_header_that_claims_more_than_the_member_holds_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "lie.npz", "w") as zf, zf.open("x.npy", "w") as fh:
        header = np.lib.format.header_data_from_array_1_0(np.zeros(2))
        header["shape"] = (10**9,)
        np.lib.format.write_array_header_1_0(fh, header)
        fh.write(np.zeros(2).tobytes())
    with pytest.raises(InputError, match="claims shape \\(1000000000,\\).*truncated or corrupt"):
        read_npz(tmp_path / "lie.npz")


def test_atomic_write_names_a_path_it_cannot_write(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="Cannot write"):
        atomic_write_text(tmp_path / "file" / "report.json", "{}")
    # a lone surrogate (e.g. from a file name) does not fail the write
    path = atomic_write_text(tmp_path / "s.txt", "name \udcff")
    assert path.read_bytes() == b"name \\udcff"
