"""The Cortex-M4 firmware (QEMU mps2-an386) trains bit-exactly like the host
simulator, and a model over the RAM budget is a clear error."""
import json
import os
import shutil

import numpy as np
import pytest

import models
import tflm_train
from tflm_train import cli
from tflm_train.data import Dataset
from tflm_train.errors import TflmTrainError
from tflm_train.firmware import TOOLS, run_firmware
from tflm_train.training import train

_missing = [t for t in TOOLS if shutil.which(t) is None]
pytestmark = pytest.mark.skipif(
    bool(_missing), reason=f"{', '.join(_missing)} not installed (Cortex-M toolchain / QEMU)")

STEPS, SEED = 20, 5
# One model per kind of backward graph; mobilenet has float input/output
# (QUANTIZE/DEQUANTIZE), so float samples travel to the device.
CASES = {
    "cnn": (models.plain_cnn, False,
            {"bias_update_layers": 2, "weight_update": {"conv_b": 0.5}}),
    "mobilenet": (models.mobilenet_like, True,
                  {"bias_update_layers": 4, "weight_update": {"pw2": 0.25, "dw2": 0.5}}),
    "residual": (models.residual, False,
                 {"bias_update_layers": 3, "weight_update": {"res_b": 0.5}}),
    # res_b's float input gradient (3x3, 25 channels) on the Cortex-M4's
    # VLDM register blocks.
    "wide_residual": (models.wide_residual, False,
                      {"bias_update_layers": 3, "weight_update": {"res_b": 0.5}}),
    # Partial updates of CONV_2D / FULLY_CONNECTED layers are channel-sliced
    # (cnn's conv_b, mobilenet's pw2, residual's res_b; here two FC layers).
    "mlp": (models.mlp, False,
            {"bias_update_layers": 3, "weight_update": {"fc1": 0.25, "fc2": 0.5}}),
    # int8 gradients with per-tensor scales (GRAD_SUM, ADD, AVERAGE_POOL_2D,
    # PAD, depthwise and pointwise convolutions).
    "residual_int8": (models.residual, False, {"preset": "last-k:4", "gradients": "int8"}),
    # ... rounded stochastically: the quantizing ops draw from the rng.
    "residual_int8_sr": (models.residual, False,
                         {"preset": "last-k:4", "gradients": "int8",
                          "gradient_rounding": "stochastic"}),
    "mobilenet_int8": (models.mobilenet_like, True,
                       {"bias_update_layers": 4, "weight_update": {"pw2": 0.25, "dw2": 0.5},
                        "gradients": "int8"}),
}


def _training_model(name):
    build, float_io, scheme = CASES[name]
    scheme = dict(scheme, optimizer={"lr": 0.05, "rounding": "stochastic"})
    return tflm_train.convert(build(float_io=float_io), scheme)


def _data(name, count=12):
    # The case's architecture: the longest models.SHAPES name it starts with
    # (residual_int8_sr -> residual, wide_residual -> wide_residual).
    architecture = max((a for a in models.SHAPES if name == a or name.startswith(a + "_")),
                       key=len)
    shape, classes = models.SHAPES[architecture]
    rng = np.random.default_rng(11)
    return Dataset(rng.normal(0, 1, (count,) + shape).astype(np.float32),
                   rng.integers(0, classes, count))


@pytest.mark.parametrize("name", sorted(CASES))
def test_firmware_trains_like_the_host_simulator(name):
    model, data = _training_model(name), _data(name)
    device = run_firmware(model, data, steps=STEPS, seed=SEED)
    host = train(tflm_train.Trainer(model), data, steps=STEPS, seed=SEED, progress=False,
                 log=lambda *_: None)

    assert device["weights_sha256"] == host["weights_sha256"]
    assert device["loss_history"] == host["loss_history"]  # bit for bit
    assert device["steps"] == STEPS and len(device["loss_history"]) == STEPS

    plan = tflm_train.plan(model)
    assert device["peak_arena_bytes"] == plan["peak_arena_bytes"]
    assert device["persistent_bytes"] < plan["persistent_bytes"]  # 32-bit records
    assert device["arena_used_bytes"] <= device["arena_bytes"] < device["static_ram_bytes"]
    assert 0 < device["ram_bytes"] <= device["ram_budget_bytes"] == 256 * 1024
    assert device["flash_bytes"] > len(model)
    assert 0 < device["instructions_per_infer_step"] < device["instructions_per_train_step"]


@pytest.mark.skipif(not os.environ.get("CMSIS_NN_DIR"),
                    reason="CMSIS_NN_DIR (a CMSIS-NN checkout) not set")
@pytest.mark.parametrize("name", sorted(CASES))
def test_firmware_with_cmsis_nn_trains_like_the_host_simulator(name):
    """CMSIS-NN's s8 kernels in place of the portable forward kernels: the
    same weights and losses, bit for bit, in fewer instructions."""
    model, data = _training_model(name), _data(name)
    fast = run_firmware(model, data, steps=STEPS, seed=SEED, cmsis_nn=os.environ["CMSIS_NN_DIR"])
    portable = run_firmware(model, data, steps=STEPS, seed=SEED)
    host = train(tflm_train.Trainer(model), data, steps=STEPS, seed=SEED, progress=False,
                 log=lambda *_: None)
    assert fast["weights_sha256"] == portable["weights_sha256"] == host["weights_sha256"]
    assert fast["loss_history"] == host["loss_history"]
    assert fast["instructions_per_infer_step"] < portable["instructions_per_infer_step"]


def test_over_budget_is_a_one_line_error(tmp_path, capsys):
    model_path, data_path = tmp_path / "cnn_train.tflite", tmp_path / "data.npz"
    model_path.write_bytes(_training_model("cnn"))
    data = _data("cnn")
    np.savez(data_path, x=data.x, y=data.y)
    capsys.readouterr()

    rc = cli.main(["firmware", str(model_path), "--data", str(data_path), "--steps", "2",
                   "--ram-kb", "8"])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.count("\n") == 1
    assert "does not fit in 8 KiB of RAM" in err and "over by" in err

    with pytest.raises(TflmTrainError, match=r"over by (\d+) bytes") as exc:
        run_firmware(model_path, data_path, steps=2, ram_kb=16)
    # Exactly the shortfall: adding it (rounded up to KiB) makes it fit.
    over = int(exc.value.args[0].rsplit("over by ", 1)[1].split()[0])
    fits = json.loads(_cli_json(capsys, model_path, data_path, 16 + -(-over // 1024)))
    assert fits["ram_budget_bytes"] == (16 + -(-over // 1024)) * 1024


def _cli_json(capsys, model_path, data_path, ram_kb):
    assert cli.main(["firmware", str(model_path), "--data", str(data_path), "--steps", "2",
                     "--ram-kb", str(ram_kb), "--json"]) == 0
    return capsys.readouterr().out


def test_regression_model_trains_like_the_host_simulator():
    """A hello_world-shaped regression model with the mse loss: float targets
    travel to the device, whose weights and losses equal the host's."""
    model = tflm_train.convert(models.regression_model("sine"), {
        "preset": "last-k:2", "loss": "mse", "optimizer": {"lr": 0.01}})
    x, y = models.regression_data("sine", seed=4, count=12, offset=0.4)
    data = Dataset(x, y)
    device = run_firmware(model, data, steps=STEPS, seed=SEED)
    host = train(tflm_train.Trainer(model), data, steps=STEPS, seed=SEED, progress=False,
                 log=lambda *_: None)
    assert device["weights_sha256"] == host["weights_sha256"]
    assert device["loss_history"] == host["loss_history"]


def test_trained_state_survives_a_restart(tmp_path):
    """The firmware saves its trained state to a flash image file (two
    CRC-checked slots); a second QEMU run with the same file loads it and
    continues: N + M steps equal an unbroken N + M step run bit for bit."""
    model, data = _training_model("cnn"), _data("cnn")
    flash = tmp_path / "flash.bin"
    first = run_firmware(model, data, steps=8, seed=SEED, state_file=flash)
    assert not first["state_loaded"] and flash.is_file()
    second = run_firmware(model, data, steps=12, seed=SEED, state_file=flash, first_step=8)
    assert second["state_loaded"]
    unbroken = run_firmware(model, data, steps=20, seed=SEED)
    assert second["weights_sha256"] == unbroken["weights_sha256"]
    assert first["loss_history"] + second["loss_history"] == unbroken["loss_history"]

    # The host reads the device's image too (tflm_train.state_store).
    from tflm_train import state_store

    host = tflm_train.Trainer(model)
    assert state_store.load_state(host, flash.read_bytes(), len(flash.read_bytes()) // 2)
    assert host.weights_sha256() == unbroken["weights_sha256"]


def test_transfer_scheme_trains_like_the_host_and_survives_a_restart(tmp_path):
    """A fresh imprinted head with momentum, mini-batches and a cosine
    schedule: imprinting, accumulators, velocities and the step counter run
    on the device bit for bit as on the host, and a restart in the middle of
    a mini-batch (state file) continues exactly."""
    scheme = {"bias_update_layers": 2, "head": {"num_classes": 3, "init": "imprint", "shots": 2},
              "optimizer": {"lr": 0.05, "momentum": 0.9, "batch_size": 3, "schedule": "cosine",
                            "warmup_steps": 2, "decay_steps": 6}}
    model = tflm_train.convert(models.residual(), scheme)
    base = _data("residual")
    data = Dataset(base.x, base.y % 3)
    unbroken = run_firmware(model, data, steps=STEPS, seed=SEED)
    host = train(tflm_train.Trainer(model), data, steps=STEPS, seed=SEED, progress=False,
                 log=lambda *_: None)
    assert unbroken["weights_sha256"] == host["weights_sha256"]
    assert unbroken["loss_history"] == host["loss_history"]
    assert unbroken["ram_bytes"] <= 256 * 1024

    flash = tmp_path / "flash.bin"
    run_firmware(model, data, steps=7, seed=SEED, state_file=flash)
    second = run_firmware(model, data, steps=STEPS - 7, seed=SEED, state_file=flash,
                          first_step=7)
    assert second["state_loaded"]
    assert second["weights_sha256"] == unbroken["weights_sha256"]


def test_profile_counts_every_operator(capsys):
    """`profile=True` counts each operator's Eval on the device: one entry
    per operator of the model, named as the host interpreter names it; the
    train-step counts cover nearly all of the step (the rest is the session's
    own work between Evals), the infer step runs no gradient op; training is
    unchanged (weights = host). The CLI prints the totals per operator type."""
    model, data = _training_model("residual"), _data("residual")
    device = run_firmware(model, data, steps=3, seed=SEED, profile=True)
    host = train(tflm_train.Trainer(model), data, steps=3, seed=SEED, progress=False,
                 log=lambda *_: None)
    assert device.weights_sha256 == host["weights_sha256"]
    timeline = tflm_train.plan(model)["timeline"]
    ops = device.op_instructions
    assert [(o["op"], o["name"]) for o in ops] == [(t["op"], t["name"]) for t in timeline]
    train_total = sum(o["train"] for o in ops)
    assert 0.9 * device.instructions_per_train_step < train_total
    assert train_total < device.instructions_per_train_step
    assert sum(o["infer"] for o in ops) < device.instructions_per_infer_step
    grads = [o for o in ops if o["name"].endswith("_GRAD")]
    assert grads and all(0 < o["infer"] < o["train"] for o in grads)  # infer: early return
    by_type = cli.profile_by_type(ops)
    assert sum(r[1] for r in by_type) == len(ops)
    assert sum(r[2] for r in by_type) == train_total
