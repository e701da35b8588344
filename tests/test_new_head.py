"""A fresh classifier head for new classes (scheme "head"): zero init and
on-device weight imprinting, checked against numpy on the same features and
against the tflite-micro wheel on the exported model."""
import numpy as np
import pytest
from tflite_micro import runtime as tflm

import models
import tflm_train
from tflm_train._native import testing as K
from tflm_train.converter import ConversionError, tflite

ROW_RMS = 31.75  # 127 / 4, docs/scheme.md


def _samples(trainer, n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(-128, 128, (n,) + tuple(trainer.input_shape[1:])).astype(np.int8)


@pytest.mark.parametrize("name", ["cnn", "mlp", "residual"])
def test_zero_head_has_new_classes_and_exports_them(name):
    source = models.tflite_model(name)
    old = tflite.read_model(source).subgraphs[0]
    training = tflm_train.convert(source, {"preset": "classifier", "head": {
        "num_classes": 3, "init": "zeros"}, "optimizer": {"lr": 0.05}})
    trainer = tflm_train.Trainer(training)
    assert trainer.num_classes == 3
    head = models.output_layer(training, trainer)
    sg, w_name, b_name, w_index = (head.model.subgraphs[0], head.weight_name, head.bias_name,
                                   head.filter_index)
    weights = trainer.trainable_weights()
    assert not weights[w_name].any() and not weights[b_name].any()
    assert weights[w_name].shape[0] == 3
    # One scale for every class: the largest of the classifier it replaces
    # (the filter tensor keeps its name).
    scales = np.asarray(sg.tensors[w_index].quantization.scale, np.float32)
    assert scales.tolist() == [scales[0]] * 3
    replaced = next(t for t in old.tensors if tflite.name_of(t) == w_name)
    assert scales[0] == np.max(np.float32(replaced.quantization.scale))
    with pytest.raises(tflm_train.errors.TflmTrainError, match=r"label 3 out of range \[0, 3\)"):
        trainer.step(_samples(trainer, 1, 0)[0], 3)
    samples = _samples(trainer, 12, 1)
    for k, sample in enumerate(samples):
        trainer.step(sample, k % 3)
    exported = trainer.export_inference_model()
    interp = tflm.Interpreter.from_bytes(exported)
    for sample in samples:
        trainer.predict(sample)
        interp.set_input(trainer.prepare_input(sample), 0)
        interp.invoke()
        output = interp.get_output(0).reshape(-1)
        assert output.shape == (3,)
        # Export fits the int8 output to the trained range: the real
        # output's class is the int8 argmax (or tied with it).
        assert output[np.argmax(trainer.last_real_output())] == output.max()


def _imprinted(features, labels, n, shots, s_x):
    """numpy (docs/scheme.md): per class, the first `shots` features' sum
    scaled to RMS ROW_RMS, rounded to nearest and saturated; every imprinted
    class's bias is round(-o / s_x), o the mean over imprinted classes of
    row . m, m the mean of all imprinted features. (rows, biases, classes
    imprinted)."""
    rows = np.zeros((n, features.shape[1]))
    chosen = [features[labels == c][:shots].astype(np.float64) for c in range(n)]
    for c in range(n):
        total = chosen[c].sum(axis=0)
        norm = np.linalg.norm(total)
        if norm > 0:
            rows[c] = np.clip(np.floor(total * ROW_RMS * np.sqrt(len(total)) / norm + 0.5),
                              -127, 127)
    mean = np.concatenate(chosen).mean(axis=0)
    seen = np.array([len(c) > 0 for c in chosen])
    offset = np.mean((rows @ mean)[seen])
    return rows, np.where(seen, np.floor(-offset / s_x + 0.5), 0), seen


@pytest.mark.parametrize("name,per_tensor_dense", [("cnn", False), ("mlp", True),
                                                   ("residual", False)])
def test_imprinting_writes_normalised_class_means_then_sgd_continues(name, per_tensor_dense):
    """The first `shots` samples of each class are imprinted (no SGD step,
    step counter unchanged); the rows equal numpy's normalised class means of
    the same features; later samples train by SGD."""
    source = models.tflite_model(name, per_tensor_dense=per_tensor_dense)
    shots, n = 2, 3
    training = tflm_train.convert(source, {"preset": "classifier", "head": {
        "num_classes": n, "init": "imprint", "shots": shots}, "optimizer": {"lr": 0.05}})
    trainer = tflm_train.Trainer(training)
    head = models.output_layer(training, trainer)
    s_x, w_name, b_name = head.s_x, head.weight_name, head.bias_name
    samples = _samples(trainer, 9, 5)
    labels = np.array([0, 1, 0, 2, 2, 1, 0, 1, 2])  # shots of each class by index 5
    features = head.features(trainer, samples)
    for sample, label in zip(samples[:6], labels[:6]):
        trainer.step(sample, int(label))
    weights = trainer.trainable_weights()
    want, want_bias, _ = _imprinted(features[:6], labels[:6], n, shots, s_x)
    # float32 on the device vs float64 here: a tie may round the other way.
    assert np.max(np.abs(weights[w_name].reshape(n, -1) - want)) <= 1
    assert np.mean(weights[w_name].reshape(n, -1) == want) > 0.95
    # The device's own rows and features give the common offset exactly
    # (up to float32 sums); numpy's rounded rows give it within a unit.
    offset = np.mean(weights[w_name].reshape(n, -1).astype(np.float64)
                     @ features[:6].astype(np.float64).mean(axis=0))
    assert len(set(weights[b_name].tolist())) == 1
    assert abs(weights[b_name][0] - (-offset / s_x)) <= 0.5 + 1e-4 * abs(offset / s_x)
    assert np.max(np.abs(weights[b_name] - want_bias)) <= 1 + 1e-3 * np.abs(want_bias).max()
    assert trainer.state_tensor(trainer.info.step).tolist() == [0]  # no SGD step yet
    trainer.step(samples[6], int(labels[6]))  # class 0 is full: SGD
    assert trainer.state_tensor(trainer.info.step).tolist() == [1]
    after = trainer.trainable_weights()
    assert (after[w_name] != weights[w_name]).any() or (after[b_name] != weights[b_name]).any()


def test_imprint_kernel_against_numpy():
    rng = np.random.default_rng(2)
    n, d, shots = 4, 24, 3
    filt = np.zeros((n, d), np.int8)
    bias = rng.integers(1, 50, n).astype(np.int32)
    initial_bias = bias.copy()
    counts = np.zeros(n, np.int32)
    sums = np.zeros((n, d), np.float32)
    xs = rng.integers(-128, 128, (10, d)).astype(np.int8)
    labels = np.array([1, 1, 3, 1, 1, 0, 3, 7, -1, 3])
    s_x, z_x = np.float32(0.05), -7
    for x, label in zip(xs, labels):
        was = counts.copy()
        imprinted, filt, bias, counts, sums = K.imprint(x, z_x, s_x, shots, filt, bias, counts,
                                                        sums, int(label))
        assert imprinted == (0 <= label < n and was[label] < shots)
    valid = (labels >= 0) & (labels < n)
    features = s_x * (xs.astype(np.float32) - z_x)
    want, want_bias, seen = _imprinted(features[valid], labels[valid], n, shots, s_x)
    assert counts.tolist() == [1, 3, 0, 3] and seen.tolist() == [True, True, False, True]
    assert np.max(np.abs(filt - want)) <= 1 and np.mean(filt == want) > 0.95
    # Class 2 never saw a sample: its row and bias are untouched.
    assert bias[2] == initial_bias[2] and not filt[2].any()
    assert np.max(np.abs(bias - want_bias)[seen]) <= 1 + 1e-3 * np.abs(want_bias).max()


def test_imprinting_alone_is_a_cosine_nearest_class_mean_classifier():
    """Fed only the k-shot support set, the head's real-valued logits rank
    the classes by the dot product of the normalised mean support feature
    with the sample's feature (cosine nearest class mean), as numpy computes
    it; the exported int8 model (tflite-micro wheel) predicts the real
    logits' class or one tied with it in int8."""
    source = models.tflite_model("cnn")
    shots, n = 4, 3
    training = tflm_train.convert(source, {"preset": "classifier", "head": {
        "num_classes": n, "init": "imprint", "shots": shots}})
    trainer = tflm_train.Trainer(training)
    head = models.output_layer(training, trainer)
    w_name = head.weight_name
    rng = np.random.default_rng(8)
    # Three "classes" of inputs around three random prototypes.
    prototypes = rng.normal(0, 60, (n,) + tuple(trainer.input_shape[1:]))
    labels = np.repeat(np.arange(n), shots + 20)
    samples = np.clip(prototypes[labels] + rng.normal(0, 40, prototypes[labels].shape),
                      -128, 127).astype(np.int8)
    features = head.features(trainer, samples)
    support = np.concatenate([np.flatnonzero(labels == c)[:shots] for c in range(n)])
    for i in support:
        trainer.step(samples[i], int(labels[i]))
    assert trainer.state_tensor(trainer.info.step).tolist() == [0]
    means = np.array([features[support][labels[support] == c].sum(axis=0) for c in range(n)])
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    test = np.setdiff1d(np.arange(len(labels)), support)
    scores = features[test] @ means.T
    interp = tflm.Interpreter.from_bytes(trainer.export_inference_model())
    real, outputs = [], []
    for i in test:
        trainer.predict(samples[i])
        real.append(np.argmax(trainer.last_real_output()))
        interp.set_input(trainer.prepare_input(samples[i]), 0)
        interp.invoke()
        outputs.append(interp.get_output(0).reshape(-1).copy())
    real, outputs = np.array(real), np.array(outputs)
    # The same rule on the device's int8 rows, in float64.
    rows = trainer.trainable_weights()[w_name].reshape(n, -1).astype(np.float64)
    assert np.mean(real == np.argmax(features[test] @ rows.T, axis=1)) >= 0.98
    # This test model has 6 features whose class means are nearly parallel:
    # rounding the rows to int8 swaps some near-equal scores.
    assert np.mean(real == np.argmax(scores, axis=1)) >= 0.85
    assert np.all(outputs[np.arange(len(test)), real] == outputs.max(axis=1))


def test_conv_output_layer_takes_a_fresh_head():
    """A person-detection-style head (1x1 CONV_2D on a 1x1 map, RESHAPE,
    SOFTMAX) gets N classes through the RESHAPE; a CONV_2D with more than one
    output pixel is refused with the reason."""
    import tf_keras as keras

    keras.utils.set_random_seed(3)
    L = keras.layers
    x = np.random.default_rng(3).normal(0, 1, (32, 6, 6, 2)).astype(np.float32)
    pooled = keras.Sequential([
        L.Input((6, 6, 2)), L.Conv2D(8, 3, activation="relu"),
        L.GlobalAveragePooling2D(keepdims=True), L.Conv2D(4, 1, name="head"), L.Flatten(),
        L.Softmax()])
    trainer = tflm_train.Trainer(tflm_train.convert(
        models.quantize(pooled, x[:16]),
        {"preset": "last-k:2", "head": {"num_classes": 6, "init": "imprint", "shots": 1}}))
    assert trainer.num_classes == 6
    for k, sample in enumerate(x[:12]):
        trainer.step(sample, k % 6)
    interp = tflm.Interpreter.from_bytes(trainer.export_inference_model())
    interp.set_input(trainer.prepare_input(x[0]), 0)
    interp.invoke()
    assert interp.get_output(0).shape == (1, 6)
    spatial = keras.Sequential([
        L.Input((6, 6, 2)), L.Conv2D(4, 3, name="head"), L.Flatten(), L.Softmax()])
    with pytest.raises(ConversionError, match=r"head: the output layer CONV_2D at operator "
                                              r"\d+ maps \[1, 6, 6, 2\] to \[1, 4, 4, 4\]"):
        tflm_train.convert(models.quantize(spatial, x[:16]), {
            "preset": "classifier", "head": {"num_classes": 3}})


@pytest.mark.parametrize("scheme,message", [
    ({"head": {"num_classes": 1}}, "field 'head.num_classes' must be an integer >= 2"),
    ({"head": {"num_classes": 3, "init": "random"}}, "field 'head.init' must be one of zeros, "
                                                     "imprint"),
    ({"head": {"num_classes": 3, "shots": 0}}, "field 'head.shots' must be an integer >= 1"),
    ({"head": {"num_classes": 3, "size": 2}}, "unknown field 'head.size'"),
    ({"head": {"num_classes": 3}, "loss": "mse"}, "field 'head' needs the cross_entropy loss"),
    ({"head": {"num_classes": 3}, "train_classifier": False,
      "bias_update_layers": 1}, "field 'train_classifier' cannot be false with a fresh head"),
    ({"head": {"num_classes": 3}, "weight_update": {"-1": 0.5}},
     "weight_update trains part of the classifier; a fresh head always trains all of it"),
])
def test_bad_head_schemes_are_named(scheme, message):
    with pytest.raises(ConversionError, match=message):
        tflm_train.convert(models.tflite_model("mlp"), scheme)
