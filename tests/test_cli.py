"""The tflm-train command line: the happy path end to end, and bad input.

Commands run in a subprocess (`python -m tflm_train.cli`), as a user's
shell would, so exit codes and stderr are what users see.
"""
import json
import subprocess
import sys

import numpy as np
import pytest

import models
import tflm_train
from tflm_train.training import train


def run(*args):
    return subprocess.run([sys.executable, "-m", "tflm_train.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A plain-CNN int8 model, a scheme file and a small labelled data set."""
    d = tmp_path_factory.mktemp("cli")
    (d / "model.tflite").write_bytes(models.plain_cnn())
    (d / "scheme.json").write_text(json.dumps(
        {"bias_update_layers": 2, "weight_update": {"-2": 0.5},
         "optimizer": {"type": "sgd", "lr": 0.05, "rounding": "stochastic", "seed": 3}}))
    shape, classes = models.SHAPES["cnn"]
    rng = np.random.default_rng(0)
    x = models.representative_inputs("cnn", count=24)
    y = rng.integers(0, classes, size=24)
    np.savez(d / "data.npz", x=x, y=y)
    return d


def test_convert_plan_train_eval_export(workdir):
    train_path = workdir / "train.tflite"
    r = run("convert", workdir / "model.tflite", "--scheme", workdir / "scheme.json",
            "--out", train_path)
    assert r.returncode == 0, r.stderr
    assert train_path.is_file()

    r = run("plan", train_path, "--json", "--plot", workdir / "memory.png")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["peak_ram_bytes"] == report["peak_arena_bytes"] + report["persistent_bytes"]
    assert report["flash_bytes"] == train_path.stat().st_size
    assert 0 < report["trainable_bytes"] < report["persistent_bytes"]
    assert (workdir / "memory.png").stat().st_size > 0

    trained = workdir / "trained.tflite"
    r = run("train", train_path, "--data", workdir / "data.npz", "--epochs", 3,
            "--seed", 7, "--out", trained, "--plot", workdir / "loss.png", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["steps"] == 72 and len(result["loss_history"]) == 72
    assert [e["epoch"] for e in result["epochs"]] == [1, 2, 3]

    # The CLI is the host simulator: same digest as the Python API.
    data = np.load(workdir / "data.npz")
    trainer = tflm_train.Trainer(train_path)
    api = train(trainer, tflm_train.data.Dataset(data["x"], data["y"]), epochs=3,
                seed=7, progress=False, log=lambda *_: None)
    assert api["weights_sha256"] == result["weights_sha256"]
    assert api["loss_history"] == result["loss_history"]

    # --out holds the trained weights: training continues from them.
    assert tflm_train.Trainer(trained).weights_sha256() == result["weights_sha256"]

    r = run("eval", trained, "--data", workdir / "data.npz", "--json")
    assert r.returncode == 0, r.stderr
    ev = json.loads(r.stdout)
    assert 0 <= ev["accuracy"] <= 1 and ev["samples"] == 24 and np.isfinite(ev["loss"])

    exported = workdir / "inference.tflite"
    r = run("export", trained, "--out", exported)
    assert r.returncode == 0, r.stderr
    x0 = trainer.prepare_input(data["x"][0])
    from tflite_micro import runtime as tflm

    interp = tflm.Interpreter.from_bytes(exported.read_bytes())
    interp.set_input(x0, 0)
    interp.invoke()
    # The export is the trained model with its output range requantized to
    # what training recorded: converted again, our runtime infers it as TFLM
    # does, and its argmax is the trained model's real-valued logits'.
    again = tflm_train.Trainer(tflm_train.convert(exported.read_bytes(), {"preset": "classifier"}))
    np.testing.assert_array_equal(interp.get_output(0), again.predict(x0))
    trainer.predict(x0)
    assert np.argmax(interp.get_output(0)) == np.argmax(trainer.last_real_output())


def test_lr_override_changes_training(workdir):
    train_path = workdir / "train_lr.tflite"
    assert run("convert", workdir / "model.tflite", "--scheme", workdir / "scheme.json",
               "--out", train_path).returncode == 0
    digests = set()
    for lr in ("0.05", "0.2"):
        r = run("train", train_path, "--data", workdir / "data.npz", "--steps", 10,
                "--lr", lr, "--json")
        assert r.returncode == 0, r.stderr
        digests.add(json.loads(r.stdout)["weights_sha256"])
    assert len(digests) == 2


def _expect_error(r, *words):
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("tflm-train: error:")
    for w in words:
        assert w in lines[0], lines[0]


def _bad_data(workdir, name, **arrays):
    path = workdir / name
    np.savez(path, **arrays)
    return path


def test_bad_input_gives_one_line_and_no_output(workdir):
    train_path = workdir / "train_bad.tflite"
    assert run("convert", workdir / "model.tflite", "--scheme", workdir / "scheme.json",
               "--out", train_path).returncode == 0
    out = workdir / "should_not_exist.tflite"
    shape, classes = models.SHAPES["cnn"]
    x = models.representative_inputs("cnn", count=4)
    y = np.arange(4) % classes

    _expect_error(run("train", workdir / "missing.tflite", "--data", workdir / "data.npz",
                      "--steps", 1, "--out", out), "missing.tflite")
    _expect_error(run("train", train_path, "--data", workdir / "missing.npz",
                      "--steps", 1, "--out", out), "missing.npz")
    wrong_shape = _bad_data(workdir, "shape.npz", x=x[:, :4], y=y)
    _expect_error(run("train", train_path, "--data", wrong_shape, "--steps", 1,
                      "--out", out), "shape")
    bad_label = _bad_data(workdir, "label.npz", x=x, y=np.array([0, 1, classes, 2]))
    _expect_error(run("train", train_path, "--data", bad_label, "--steps", 1,
                      "--out", out), "label", str(classes))
    nan = x.copy()
    nan[2, 0, 0, 0] = np.nan
    _expect_error(run("train", train_path, "--data", _bad_data(workdir, "nan.npz", x=nan, y=y),
                      "--steps", 1, "--out", out), "NaN", "sample 2")
    _expect_error(run("train", train_path, "--data", _bad_data(workdir, "nox.npz", y=y),
                      "--steps", 1, "--out", out), "'x'")
    # An inference model is not a training model.
    _expect_error(run("train", workdir / "model.tflite", "--data", workdir / "data.npz",
                      "--steps", 1, "--out", out), "training")
    _expect_error(run("plan", workdir / "model.tflite"), "training")
    # A non-flatbuffer file.
    junk = workdir / "junk.tflite"
    junk.write_bytes(b"not a model at all" * 10)
    _expect_error(run("eval", junk, "--data", workdir / "data.npz"))
    _expect_error(run("export", junk, "--out", out))
    truncated = workdir / "truncated.tflite"
    truncated.write_bytes(train_path.read_bytes()[:3000])
    for command in (("export", truncated, "--out", out),
                    ("train", truncated, "--data", workdir / "data.npz", "--steps", 1, "--out", out)):
        # The device's own checks refuse it, on the host too.
        _expect_error(run(*command), "invalid training model")
    # Conversion errors: missing scheme layer.
    bad_scheme = workdir / "bad_scheme.json"
    bad_scheme.write_text(json.dumps({"weight_update": {"no_such_layer": 1.0}}))
    _expect_error(run("convert", workdir / "model.tflite", "--scheme", bad_scheme,
                      "--out", out), "no_such_layer")
    _expect_error(run("train", train_path, "--data", workdir / "data.npz", "--steps", 0),
                  "--steps")
    assert not out.exists()
    assert not [p for p in workdir.iterdir() if p.name.startswith(".should_not_exist")]
