"""`tflm-train firmware --cmsis-nn DIR` without CMSIS-NN: a bad DIR is a
one-line error before anything is built, and the default build neither
compiles nor references CMSIS-NN. (CMSIS-NN is on neither PyPI nor Debian,
so nothing here compiles it; the bit-exactness runs with it are in
test_firmware.py, enabled by CMSIS_NN_DIR.)"""
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tflm_train import cli
from tflm_train.errors import TflmTrainError
from tflm_train.firmware import (CMSIS_NN_FOLDERS, CMSIS_NN_FUNCTIONS, _make_command,
                                 cmsis_nn_build, run_firmware)

ROOT = Path(__file__).resolve().parent.parent


def _fake_tree(root: Path, functions=CMSIS_NN_FUNCTIONS) -> Path:
    """A folder laid out like CMSIS-NN (empty sources; declarations only)."""
    (root / "Include").mkdir(parents=True)
    (root / "Include" / "arm_nnfunctions.h").write_text(
        "".join(f"arm_cmsis_nn_status {f}(const cmsis_nn_context *ctx);\n" for f in functions))
    for folder in CMSIS_NN_FOLDERS:
        (root / "Source" / folder).mkdir(parents=True)
        (root / "Source" / folder / f"{folder.lower()}_s8.c").write_text("")
        (root / "Source" / folder / f"{folder.lower()}_f32.c").write_text("")
    (root / "Source" / "SoftmaxFunctions").mkdir()
    (root / "Source" / "SoftmaxFunctions" / "arm_softmax_s8.c").write_text("")
    return root


def test_missing_directory_is_a_one_line_error(tmp_path):
    with pytest.raises(TflmTrainError, match=r"^--cmsis-nn: .*nope is not a directory$"):
        run_firmware(b"not even a model", tmp_path, steps=1, cmsis_nn=tmp_path / "nope")


def test_a_folder_that_is_not_cmsis_nn_is_named(tmp_path):
    (tmp_path / "Include").mkdir()
    with pytest.raises(TflmTrainError) as exc:
        run_firmware(b"not even a model", tmp_path, steps=1, cmsis_nn=tmp_path)
    message = str(exc.value)
    assert "\n" not in message
    assert "does not look like a CMSIS-NN tree" in message
    assert "Include/arm_nnfunctions.h" in message and "Source/ConvolutionFunctions" in message


def test_an_old_cmsis_nn_without_a_needed_function_is_named(tmp_path):
    tree = _fake_tree(tmp_path / "old", [f for f in CMSIS_NN_FUNCTIONS
                                         if f != "arm_fully_connected_per_channel_s8"])
    with pytest.raises(TflmTrainError,
                       match=r"does not declare arm_fully_connected_per_channel_s8 \(an older"):
        cmsis_nn_build(tree)


def test_cli_reports_a_bad_cmsis_nn_dir_on_one_line(tmp_path, capsys):
    model, data = tmp_path / "m.tflite", tmp_path / "d.npz"
    model.write_bytes(b"x")
    np.savez(data, x=np.zeros((2, 4), np.float32), y=np.zeros(2, np.int64))
    rc = cli.main(["firmware", str(model), "--data", str(data), "--steps", "1",
                   "--cmsis-nn", str(tmp_path / "missing")])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.count("\n") == 1 and "--cmsis-nn:" in err and "is not a directory" in err


def test_the_build_adds_cmsis_nn_only_when_asked(tmp_path):
    default = _make_command(tmp_path, 1024, "all", relink_only=False, timeout=1)
    assert not any("DEFINES=" in a or "TFLM_TRAIN_CMSIS_NN" in a for a in default)
    srcs = next(a for a in default if a.startswith("SRCS=")).split()[1:]
    assert all("/ops_cc/" in s or s == str(tmp_path / "train_data.cc") for s in srcs)

    tree = _fake_tree(tmp_path / "cmsis")
    extra = cmsis_nn_build(tree)
    cmd = _make_command(tmp_path, 1024, "all", relink_only=False, timeout=1, extra=extra)
    assert "DEFINES=-DTFLM_TRAIN_CMSIS_NN" in cmd
    includes = next(a for a in cmd if a.startswith("INCLUDES="))
    assert f"-I{tree.resolve() / 'Include'}" in includes.split()
    added = set(next(a for a in cmd if a.startswith("SRCS=")).split()) - set(
        next(a for a in default if a.startswith("SRCS=")).split())
    # The s8 kernels' folders only: no float files, no softmax.
    assert added == {str(tree.resolve() / "Source" / f / f"{f.lower()}_s8.c")
                     for f in CMSIS_NN_FOLDERS}
    assert extra.defines == ("-DTFLM_TRAIN_CMSIS_NN",) and set(extra.sources) == added


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
@pytest.mark.parametrize("wrapper", ["conv", "fully_connected", "pooling"])
def test_default_build_does_not_reference_cmsis_nn(wrapper):
    """Without TFLM_TRAIN_CMSIS_NN the wrappers preprocess to code with no
    CMSIS-NN name in it (same op data, same kernels as before); with it, they
    call CMSIS-NN."""
    source = ROOT / "ops_cc" / "ops" / "forward" / f"{wrapper}.cc"

    def preprocess(*flags):
        return subprocess.run(["g++", "-std=c++17", "-E", "-P", f"-I{ROOT}", *flags,
                               str(source)], capture_output=True, text=True)

    default = preprocess()
    assert default.returncode == 0, default.stderr
    assert "cmsis" not in default.stdout.lower() and "arm_" not in default.stdout
    # The same source with the define asks for CMSIS-NN's header.
    with_define = preprocess("-DTFLM_TRAIN_CMSIS_NN")
    assert with_define.returncode != 0 and "arm_nnfunctions.h" in with_define.stderr
