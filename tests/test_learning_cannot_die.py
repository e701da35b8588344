"""Training that cannot die (docs/format.md, "The loss reads the real-valued
output").

The regression scenario: a classifier pretrained on one domain, its int8
output range calibrated there, fine-tuned on a shifted domain at an ordinary
learning rate. When the loss read the requantized, saturated int8 logits
with the activation mask, every logit ended at an int8 limit within a few
hundred steps and the loss stayed exactly constant for ever (format
version 1). The loss now reads the output layer's real-valued output.
"""
import warnings

import numpy as np
import pytest
from tflite_micro import runtime as tflm

import models
import tflm_train

LR = 0.05
STEPS = 600
# A run of identical losses this long means nothing moves any more.
DEAD_WINDOW = 50


@pytest.fixture(scope="module")
def shifted_digits():
    """(int8 model maker, target train, target test).

    Digits 8x8 (scikit-learn's bundled copy), pretrained on one half; the
    target domain is the other half inverted and moved by one pixel. The
    maker quantizes the classifier (per-tensor weights) after dividing its
    logits by a temperature T, calibrated on a handful of source samples:
    T = 10 gives an output range a tenth of the usual, the narrow range
    that killed training under format version 1.
    """
    import tf_keras as keras
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    source, target = order[:900], order[900:]
    shifted = np.roll(1.0 - x[target], shift=(1, 1), axis=(1, 2))

    keras.utils.set_random_seed(0)
    L = keras.layers
    model = keras.Sequential([
        L.Input((8, 8, 1)),
        L.Conv2D(12, 3, padding="same", activation="relu6", name="conv1"),
        L.Conv2D(16, 3, strides=2, padding="same", activation="relu6", name="conv2"),
        L.GlobalAveragePooling2D(name="gap"),
        L.Dense(10, name="classifier"),
    ])
    model.compile(keras.optimizers.Adam(0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[source], y[source], epochs=15, batch_size=32, verbose=0)
    kernel, bias = model.get_layer("classifier").get_weights()

    def int8_model(temperature):
        model.get_layer("classifier").set_weights([kernel / temperature, bias / temperature])
        return models.quantize(model, x[source][:16], per_tensor_dense=True)

    split = 600
    return (int8_model, (shifted[:split], y[target][:split]),
            (shifted[split:], y[target][split:]))


def _train(trainer, data, steps):
    xs, ys = data
    order = np.random.default_rng(1).permutation(len(ys))
    return [trainer.step(xs[i], ys[i]) for i in np.resize(order, steps)]


def _longest_constant_run(losses):
    longest = run = 1
    for previous, loss in zip(losses, losses[1:]):
        run = run + 1 if loss == previous else 1
        longest = max(longest, run)
    return longest


def _exported_outputs(model_bytes, xs):
    """The exported int8 model's outputs under the TFLM wheel."""
    interp = tflm.Interpreter.from_bytes(model_bytes)
    details = interp.get_input_details(0)
    scale, zero_point = details["quantization_parameters"]["scales"][0], \
        details["quantization_parameters"]["zero_points"][0]
    outputs = []
    for x in xs:
        q = np.clip(np.round(x / scale) + zero_point, -128, 127).astype(np.int8)
        interp.set_input(q[None], 0)
        interp.invoke()
        outputs.append(interp.get_output(0).reshape(-1).copy())
    return np.array(outputs)


@pytest.mark.parametrize("preset", ["classifier", "last-k:2"])
def test_narrow_output_range_does_not_kill_training(shifted_digits, preset):
    """The scenario that died under format version 1 (measured there: every
    logit of every test sample at an int8 limit, one class predicted, mean
    loss above ln 10). The loss never stays constant, the exported outputs
    do not saturate, and the loss falls below ln 10."""
    int8_model, train_data, (test_x, _) = shifted_digits
    trainer = tflm_train.Trainer(tflm_train.convert(
        int8_model(10.0), {"preset": preset, "optimizer": {"lr": LR, "bias_lr": LR}}))
    before = _exported_outputs(trainer.export_inference_model(), test_x)
    # The precondition: the calibrated range is too narrow for the target.
    assert np.mean(np.any((before == -128) | (before == 127), axis=1)) > 0.3

    losses = _train(trainer, train_data, STEPS)
    assert _longest_constant_run(losses) < DEAD_WINDOW
    assert np.mean(losses[-100:]) < np.log(10) - 0.1
    after = _exported_outputs(trainer.export_inference_model(), test_x)
    all_saturated = np.all((after == -128) | (after == 127), axis=1)
    assert np.mean(all_saturated) < 0.05


def test_exported_output_range_keeps_the_trained_argmax(shifted_digits):
    """export requantizes the output to the range training recorded: the
    int8 model's argmax equals the real-valued logits' on >= 99 %."""
    int8_model, train_data, (test_x, _) = shifted_digits
    trainer = tflm_train.Trainer(tflm_train.convert(
        int8_model(1.0), {"preset": "classifier", "optimizer": {"lr": LR, "bias_lr": LR}}))
    calibrated = trainer.output_range().copy()
    _train(trainer, train_data, STEPS)
    assert not np.array_equal(trainer.output_range(), calibrated)  # it followed training

    real_argmax = []
    for x in test_x:
        trainer.predict(x)
        real_argmax.append(int(np.argmax(trainer.last_real_output())))
    exported = _exported_outputs(trainer.export_inference_model(), test_x)
    agreement = np.mean(np.argmax(exported, axis=1) == np.array(real_argmax))
    assert agreement >= 0.99
    # Saturation is gone: the largest logit sits inside the range.
    assert np.mean(exported.max(axis=1) == 127) < 0.05


@pytest.mark.parametrize("per_tensor_dense", [False, True])
def test_classifier_step_is_float_sgd_on_real_logits(per_tensor_dense):
    """One step of the classifier preset, against numpy float64: the loss is
    the cross-entropy of the real-valued logits s_x s_w[c] acc + b, and the
    int8 weights / int32 biases move by round(-lr G / s) (QAS, nearest)."""
    from tflm_train.converter import tflite

    model = models.tflite_model("mlp", per_tensor_dense=per_tensor_dense)
    lr = 0.02
    training = tflm_train.convert(model, {"preset": "classifier", "optimizer": {
        "lr": lr, "bias_lr": lr, "rounding": "nearest"}})
    trainer = tflm_train.Trainer(training)
    info = trainer.info
    sg = tflite.read_model(training).subgraphs[0]
    head = sg.operators[info.trainables[0].op_index]
    x_index, w_index, b_index = (int(t) for t in head.inputs[:3])
    s_x = np.float64(sg.tensors[x_index].quantization.scale[0])
    z_x = int(sg.tensors[x_index].quantization.zeroPoint[0])
    s_w = np.float64(np.float32(sg.tensors[w_index].quantization.scale))

    rng = np.random.default_rng(4)
    for step in range(5):
        sample = rng.integers(-128, 128, trainer.input_shape).astype(np.int8)
        label = int(rng.integers(0, trainer.num_classes))
        trainer.predict(sample)  # the classifier's input for this sample
        x = trainer._interp.get_tensor(x_index).reshape(-1).astype(np.float64) - z_x
        w = trainer.trainable_weights()
        w_q, b_q = (w[tflite.name_of(sg.tensors[i])] for i in (w_index, b_index))
        scale = s_x * np.broadcast_to(s_w, (len(b_q),))
        logits = scale * (w_q.astype(np.float64) @ x + b_q)
        p = np.exp(logits - logits.max())
        p /= p.sum()
        loss = trainer.step(sample, label)
        np.testing.assert_allclose(trainer.last_real_output().reshape(-1), logits, rtol=1e-5,
                                   atol=1e-5)
        assert abs(loss - (-np.log(p[label]))) <= 1e-5 * max(1.0, abs(loss))
        g = p - np.eye(len(p))[label]
        # dL/dW[c, i] = g[c] s_x x[i], stepped on q = W / s_w[c]; the bias's
        # scale is s_x s_w[c].
        expected_w = w_q + np.floor(-lr * np.outer(g, s_x * x) / (scale / s_x)[:, None] + 0.5)
        expected_b = b_q + np.floor(-lr * g / scale + 0.5)
        w_after = trainer.trainable_weights()
        got_w = w_after[tflite.name_of(sg.tensors[w_index])].astype(np.float64)
        got_b = w_after[tflite.name_of(sg.tensors[b_index])].astype(np.float64)
        # Float32 on the device vs float64 here: a step at a rounding tie may
        # differ by one unit.
        assert np.max(np.abs(got_w - np.clip(expected_w, -127, 127))) <= 1, step
        assert np.max(np.abs(got_b - expected_b)) <= 1, step
        assert np.mean(got_w != np.clip(expected_w, -127, 127)) < 0.01


def test_convert_warns_about_a_narrow_calibrated_output_range(shifted_digits, tmp_path,
                                                              capsys):
    """The bound the calibrated int8 range puts on the int8 model's
    cross-entropy: log(1 + (C - 1) exp(-(hi - lo))), computed here from the
    output tensor's quantization."""
    from tflm_train import cli
    from tflm_train.converter.build import ConversionWarning

    int8_model, _, _ = shifted_digits
    narrow = int8_model(10.0)
    with pytest.warns(ConversionWarning, match=r"bounds the int8 model's cross-entropy at >= "
                                               r"(\d+\.\d+)") as record:
        tflm_train.convert(narrow, {"preset": "classifier"})
    interp = tflm.Interpreter.from_bytes(narrow)
    q = interp.get_output_details(0)["quantization_parameters"]
    span = 255 * float(q["scales"][0])
    bound = np.log1p(9 * np.exp(-span))
    assert f"{bound:.3g}" in str(record[0].message)

    usual = int8_model(1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConversionWarning)  # none for the usual range
        tflm_train.convert(usual, {"preset": "classifier"})

    # The CLI prints it as one line.
    source = tmp_path / "narrow.tflite"
    source.write_bytes(narrow)
    assert cli.main(["convert", str(source), "--scheme", str(_scheme_file(tmp_path)),
                     "--out", str(tmp_path / "train.tflite")]) == 0
    err = capsys.readouterr().err
    assert err.startswith("tflm-train: warning: the output layer's calibrated int8 range")
    assert err.count("\n") == 1


def _scheme_file(directory):
    path = directory / "scheme.json"
    path.write_text('{"preset": "classifier"}')
    return path


def test_train_warns_when_the_loss_stays_constant():
    from tflm_train.training import StallDetector

    lines = []
    stall = StallDetector(lines.append, window=100)
    for loss in [1.0, 0.5] * 60:  # alternating: never a run of 100
        stall.update(loss)
    assert lines == []
    for _ in range(250):
        stall.update(2.302585)
    assert len(lines) == 1 and "exactly 2.30259 for 100 steps" in lines[0]


def test_conv_output_layer_behind_a_reshape():
    """A person-detection-style head (1x1 CONV_2D on a 1x1 map, RESHAPE,
    SOFTMAX): the loss reads the conv's real output, the backward pass skips
    the RESHAPE, and export rescales the conv output and the reshaped logits
    together (they share one quantization)."""
    import tf_keras as keras

    keras.utils.set_random_seed(3)
    L = keras.layers
    model = keras.Sequential([
        L.Input((6, 6, 2)), L.Conv2D(8, 3, activation="relu"),
        L.GlobalAveragePooling2D(keepdims=True), L.Conv2D(4, 1, name="head"), L.Flatten(),
        L.Softmax()])
    x = np.random.default_rng(3).normal(0, 1, (64, 6, 6, 2)).astype(np.float32)
    int8_model = models.quantize(model, x[:16])
    trainer = tflm_train.Trainer(tflm_train.convert(
        int8_model, {"preset": "last-k:2", "optimizer": {"lr": 0.05, "bias_lr": 0.05}}))
    names = [tflm_train.converter.tflite.op_name(m, op) for m in
             [tflm_train.converter.tflite.read_model(trainer.to_bytes())]
             for op in m.subgraphs[0].operators]
    assert "TFLMTRAIN_CONV_2D_REAL_OUTPUT" in names and "TFLMTRAIN_RESHAPE_GRAD" not in names
    labels = np.arange(64) % 4
    losses = [trainer.step(xi, int(yi)) for xi, yi in zip(np.concatenate([x] * 4),
                                                          np.concatenate([labels] * 4))]
    assert np.mean(losses[-64:]) < np.mean(losses[:64])
    exported = tflm_train.export_inference_model(trainer.to_bytes())
    interp = tflm.Interpreter.from_bytes(exported)
    agree = 0
    for xi in x:
        trainer.predict(xi)
        interp.set_input(trainer.prepare_input(xi), 0)
        interp.invoke()
        agree += np.argmax(interp.get_output(0)) == np.argmax(trainer.last_real_output())
    assert agree >= 60  # of 64; disagreements only where int8 rounds logits to a tie
