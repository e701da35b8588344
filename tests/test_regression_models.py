"""Regression and anomaly models: `"loss": "mse"` / `"mae"` on the output
layer's real-valued output; cross-entropy is refused for them."""
import numpy as np
import pytest

import models
import tflm_train
from tflm_train import cli
from tflm_train.data import Dataset
from tflm_train.training import evaluate, train


@pytest.mark.parametrize("name", ["sine", "autoencoder"])
def test_cross_entropy_is_refused_with_the_option_to_use(name):
    with pytest.raises(tflm_train.ConversionError, match='set "loss": "mse"'):
        tflm_train.convert(models.regression_model(name), {"preset": "last-k:2"})


def _shifted_task(name, count=200):
    """The regression target moved by +0.4: a task to fine-tune to."""
    x, y = models.regression_data(name, seed=1, count=count, offset=0.4)
    return Dataset(x, y)


@pytest.mark.parametrize("loss", ["mse", "mae"])
def test_sine_model_trains_with_regression_loss(loss):
    data = _shifted_task("sine")
    model = tflm_train.convert(models.regression_model("sine"), {
        "preset": "last-k:2", "loss": loss, "optimizer": {"lr": 0.01}})
    trainer = tflm_train.Trainer(model)
    before = evaluate(trainer, data)["loss"]
    history = train(trainer, data, epochs=3, seed=0, progress=False, log=lambda *_: None)
    after = evaluate(trainer, data)
    assert "accuracy" not in after
    assert after["loss"] < 0.5 * before
    losses = history["loss_history"]
    assert np.mean(losses[-50:]) < np.mean(losses[:50])


def test_mse_is_computed_on_the_real_output():
    """The loss equals numpy's mean squared error of the real-valued output,
    which need not fit the int8 output range (the target is far outside)."""
    trainer = tflm_train.Trainer(tflm_train.convert(
        models.regression_model("sine"), {"preset": "classifier", "loss": "mse"}))
    x = np.float32([1.0])
    for target in (np.float32([0.25]), np.float32([40.0])):
        loss, _ = trainer.evaluate_sample(x, target)
        real = trainer.last_real_output().reshape(-1)
        assert loss == pytest.approx(float(np.mean((real - target) ** 2)), rel=1e-6)


def test_autoencoder_reconstructs_its_input_without_targets(tmp_path, capsys):
    x, _ = models.regression_data("autoencoder", seed=3, count=120)
    x = 0.98 - 0.8 * x  # a new signal distribution: inverted, 1.8x the swing
    model = tflm_train.convert(models.regression_model("autoencoder"), {
        "preset": "last-k:2", "loss": "mse", "optimizer": {"lr": 0.02}})
    trainer = tflm_train.Trainer(model)
    data = Dataset(x, None)
    before = evaluate(trainer, data)["loss"]
    train(trainer, data, epochs=3, seed=0, progress=False, log=lambda *_: None)
    assert evaluate(trainer, data)["loss"] < 0.3 * before

    # The CLI takes a DATA.npz without `y` for it, and prints loss only.
    model_path, data_path = tmp_path / "ae.tflite", tmp_path / "data.npz"
    model_path.write_bytes(model)
    np.savez(data_path, x=x)
    assert cli.main(["eval", str(model_path), "--data", str(data_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("loss ") and "accuracy" not in out


def test_regression_targets_are_checked(tmp_path, capsys):
    model_path, data_path = tmp_path / "sine.tflite", tmp_path / "data.npz"
    model_path.write_bytes(tflm_train.convert(models.regression_model("sine"),
                                              {"preset": "classifier", "loss": "mse"}))
    bad = {"integer labels": np.arange(4), "NaN target": np.float32([0, np.nan, 0, 0]),
           "wrong shape": np.zeros((4, 3), np.float32)}
    for what, y in bad.items():
        np.savez(data_path, x=np.zeros((4, 1), np.float32), y=y)
        assert cli.main(["train", str(model_path), "--data", str(data_path),
                         "--epochs", "1"]) == 1, what
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and ("'y'" in err or "targets" in err), (what, err)
