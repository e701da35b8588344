"""Models built the way TFLM users have them: what runs forward only in a
frozen prefix, checked against the tflite-micro wheel, and a clear refusal
where a scheme would need a gradient the runtime does not have."""
import numpy as np
import pytest
from tflite_micro import runtime as tflm

import models
import tflm_parity
import tflm_train
from tflm_train.converter import ConversionError, tflite


def _micro_speech_like(first_conv: bool):
    """TFLM's micro speech model starts with a DEPTHWISE_CONV_2D of depth
    multiplier 8 on a 1-channel spectrogram (the TFLite converter also makes
    one of a Conv2D on a 1-channel input); optionally a conv before it."""
    import tf_keras as keras

    keras.utils.set_random_seed(1)
    L = keras.layers
    layers = [L.Input((10, 8, 1))]
    if first_conv:
        layers.append(L.Conv2D(1, 3, padding="same", activation="relu", name="pre"))
    layers += [L.DepthwiseConv2D((5, 4), depth_multiplier=8, padding="same",
                                 activation="relu", name="dw8"),
               L.Conv2D(8, 3, activation="relu", name="conv"), L.GlobalAveragePooling2D(),
               L.Dense(4, name="head")]
    x = np.random.default_rng(0).normal(0, 1, (24, 10, 8, 1)).astype(np.float32)
    return models.quantize(keras.Sequential(layers), x[:16]), x


def test_depth_multiplier_8_runs_forward_like_tflm_and_trains_after_it():
    int8_model, x = _micro_speech_like(first_conv=False)
    trainer = tflm_train.Trainer(tflm_train.convert(int8_model, {"preset": "last-k:2"}))
    interp = tflm.Interpreter.from_bytes(int8_model)
    for sample in x[:8]:
        trainer.predict(sample)
        interp.set_input(trainer.prepare_input(sample), 0)
        interp.invoke()
        np.testing.assert_array_equal(trainer.last_output().reshape(-1),
                                      interp.get_output(0).reshape(-1))
    before = trainer.weights_sha256()
    losses = [trainer.step(sample, k % 4) for k, sample in enumerate(x)]
    assert np.all(np.isfinite(losses)) and trainer.weights_sha256() != before
    exported = tflm_train.export_inference_model(trainer.to_bytes())
    assert tflm.Interpreter.from_bytes(exported) is not None


@pytest.mark.parametrize("first_conv,scheme,trained", [
    (False, {"preset": "bias-only"}, "dw8"),  # the depthwise x8's own bias
    (False, {"weight_update": {"dw8": "all"}}, "dw8"),
    (True, {"weight_update": {"pre": "all"}}, "pre"),  # the gradient passes through it
])
def test_depth_multiplier_8_trains_and_passes_the_gradient(first_conv, scheme, trained):
    """TFLM's micro speech layer trains (gradients checked against TF
    autodiff in test_grad_kernels, kind depthwise_m)."""
    int8_model, x = _micro_speech_like(first_conv)
    training = tflm_train.convert(int8_model, scheme)
    trainer = tflm_train.Trainer(training)
    layers = [t.layer_name for t in trainer.info.trainables]  # trainable_weights' order
    before = [v.copy() for v in trainer.trainable_weights().values()]
    losses = [trainer.step(sample, k % 4) for k, sample in enumerate(x)]
    assert np.all(np.isfinite(losses))
    moved = {layer for layer, old, new in zip(layers, before,
                                              trainer.trainable_weights().values())
             if not np.array_equal(old, new)}
    assert trained in moved, moved


def _upsampled_micro_speech():
    """The micro-speech-like model with its spectrogram upsampled first
    (RESIZE_NEAREST_NEIGHBOR, no gradient kernel) and a conv before that."""
    import tf_keras as keras

    keras.utils.set_random_seed(1)
    L = keras.layers
    model = keras.Sequential([
        L.Input((5, 4, 1)), L.Conv2D(2, 3, padding="same", activation="relu", name="pre"),
        L.UpSampling2D(2), L.DepthwiseConv2D((5, 4), depth_multiplier=4, padding="same",
                                             activation="relu", name="dw4"),
        L.Conv2D(8, 3, activation="relu", name="conv"), L.GlobalAveragePooling2D(),
        L.Dense(4, name="head")])
    x = np.random.default_rng(0).normal(0, 1, (24, 5, 4, 1)).astype(np.float32)
    return models.quantize(model, x[:16]), x


def test_scheme_search_keeps_to_layers_after_a_forward_only_one():
    """Both search methods propose only layers after the upsampling."""
    int8_model, x = _upsampled_micro_speech()
    y = np.arange(len(x)) % 4
    for method in ("fisher", "contribution"):
        result = tflm_train.search_scheme(int8_model, (x, y), 64 * 1024, method=method,
                                          epochs=1)
        trained = tflm_train.converter.read_training_info(
            tflm_train.convert(int8_model, result.scheme)).trainables
        # INIT_VARIABLES is operator 0, the upsampling operator 2.
        assert trained and min(t.op_index for t in trained) > 2


def _upsampling_model():
    """A feature map upsampled (RESIZE_NEAREST_NEIGHBOR, which has no
    gradient kernel), as segmentation-like heads have."""
    import tf_keras as keras

    keras.utils.set_random_seed(2)
    L = keras.layers
    x = L.Input((8, 8, 2))
    y = L.Conv2D(4, 3, padding="same", name="conv")(x)
    y = L.UpSampling2D(2)(y)
    y = L.Dense(3, name="head")(L.Flatten()(y))
    samples = np.random.default_rng(0).normal(0, 1, (16, 8, 8, 2)).astype(np.float32)
    return models.quantize(keras.Model(x, y), samples), samples


def test_an_op_without_gradient_runs_in_the_frozen_prefix_like_tflm():
    int8_model, x = _upsampling_model()
    assert tflm_parity.assert_every_tensor_matches_tflm(int8_model) > 10
    trainer = tflm_train.Trainer(tflm_train.convert(int8_model, {"preset": "classifier"}))
    interp = tflm.Interpreter.from_bytes(int8_model)
    for sample in x[:4]:
        interp.set_input(trainer.prepare_input(sample), 0)
        interp.invoke()
        np.testing.assert_array_equal(trainer.predict(sample).reshape(-1),
                                      interp.get_output(0).reshape(-1))
    before = trainer.weights_sha256()
    trainer.fit((x, np.arange(len(x)) % 3))
    assert trainer.weights_sha256() != before
    with pytest.raises(ConversionError, match=(
            r"RESIZE_NEAREST_NEIGHBOR at operator 1 has no gradient kernel: it runs forward "
            r"only, but the layer trained at operator 0 is before it")):
        tflm_train.convert(int8_model, {"preset": "last-k:2"})


def test_int16_activations_are_refused_naming_the_quantization():
    import tensorflow as tf
    import tf_keras as keras

    model = keras.Sequential([keras.layers.Input((6,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(3)])
    samples = np.random.default_rng(0).normal(0, 1, (8, 6)).astype(np.float32)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([samples[i:i + 1]] for i in range(8))
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int16
    with pytest.raises(ConversionError, match=(
            "is int16: 16x8 quantization \\(int16 activations\\) is not supported; convert "
            "with int8 activations")):
        tflm_train.convert(converter.convert(), {"preset": "classifier"})


def _qat_average_pool_model(tmp_path):
    """A keyword-spotter-like tfmot QAT model: tfmot puts an int8 -> int8
    QUANTIZE after AveragePooling2D. Saved as .h5, as the docs say."""
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    keras.utils.set_random_seed(3)
    L = keras.layers
    base = keras.Sequential([
        L.Input((12, 10, 1)),
        L.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv"),
        L.DepthwiseConv2D(3, padding="same", activation="relu", name="dw"),
        L.Conv2D(8, 1, activation="relu", name="pw"), L.AveragePooling2D((6, 5)),
        L.Flatten(), L.Dense(4, name="head")])
    qat = tfmot.quantization.keras.quantize_model(base)
    rng = np.random.default_rng(0)
    y = np.arange(64) % 4
    # A learnable task for a global pooling model: the class sets the
    # brightness (rows 0-5) and contrast (rows 6-11) of the sample.
    x = rng.normal(0, 0.3, (64, 12, 10, 1)).astype(np.float32)
    x[:, :6] += (y % 2).reshape(-1, 1, 1, 1)
    x[:, 6:] *= 1 + 2 * (y // 2).reshape(-1, 1, 1, 1)
    qat.compile(keras.optimizers.Adam(0.01),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    qat.fit(x[:, :, ::-1], y, epochs=30, verbose=0)  # pre-trained on mirrored samples
    path = tmp_path / "qat.h5"
    qat.save(path)
    return path, x, y


def test_a_tfmot_requantize_runs_like_tflm_and_passes_the_gradient(tmp_path):
    path, x, y = _qat_average_pool_model(tmp_path)
    int8_model = tflm_train.to_int8_tflite(path, x)
    assert tflm_parity.assert_every_tensor_matches_tflm(int8_model) > 10
    training = tflm_train.convert(path, {"preset": "last-k:2", "optimizer": {"lr": 0.1}},
                                  representative_data=x)
    trainer = tflm_train.Trainer(training, preserve_all_tensors=True)
    model = tflite.read_model(training)
    graph_ops = [tflite.op_name(model, op) for op in model.subgraphs[0].operators]
    assert "QUANTIZE" in graph_ops and "TFLMTRAIN_QUANTIZE_GRAD" in graph_ops
    requantize = model.subgraphs[0].operators[graph_ops.index("QUANTIZE")]
    x_grad = trainer.tensor_index(trainer.tensor_info(int(requantize.inputs[0]))["name"]
                                  + "/grad")
    losses = [trainer.step(x[k], y[k]) for k in range(len(x))]
    # The requantize's input gradient is its output gradient where the int8
    # output is not clamped (numpy, from the tensors of the last step).
    out = int(requantize.outputs[0])
    y_grad = trainer.tensor(trainer.tensor_index(trainer.tensor_info(out)["name"] + "/grad"))
    q = trainer.tensor(out)
    np.testing.assert_array_equal(trainer.tensor(x_grad),
                                  np.where((q > -128) & (q < 127), y_grad, 0))
    assert np.any(trainer.tensor(x_grad) != 0)
    later = trainer.fit((x, y), epochs=3, progress=False)
    assert later.epochs[-1]["loss"] < 0.8 * np.mean(losses)
