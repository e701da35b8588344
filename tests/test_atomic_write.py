"""The package's one atomic writer (`tflm_train.data.atomic_write`, also the
converter's `write_atomically`): whole files or nothing, and the permissions
of a plain open() (0o666 minus the umask), not mkstemp's 0o600."""
import os
import stat

import pytest

from tflm_train import converter
from tflm_train.data import atomic_write


def test_converter_and_cli_share_one_writer():
    assert converter.write_atomically is atomic_write


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_file_mode_honours_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write(tmp_path / "new.bin", b"abc")
        with open(tmp_path / "plain.bin", "wb") as f:
            f.write(b"abc")
    finally:
        os.umask(old)
    mode = stat.S_IMODE(os.stat(tmp_path / "new.bin").st_mode)
    assert mode == 0o666 & ~umask
    assert mode == stat.S_IMODE(os.stat(tmp_path / "plain.bin").st_mode)


def test_replaces_creates_parents_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "sub" / "dir" / "out.tflite"
    atomic_write(path, b"first")
    atomic_write(path, b"second")
    assert path.read_bytes() == b"second"
    assert os.listdir(path.parent) == ["out.tflite"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    with pytest.raises(TypeError):
        atomic_write(path, "not bytes")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]
