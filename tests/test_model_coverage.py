"""Models built the way TFLM users have them: what runs forward only in a
frozen prefix, checked against the tflite-micro wheel, and a clear refusal
where a scheme would need a gradient the runtime does not have."""
import numpy as np
import pytest
from tflite_micro import runtime as tflm

import models
import tflm_parity
import tflm_train
from tflm_train.converter import ConversionError


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


@pytest.mark.parametrize("first_conv,scheme,why", [
    (False, {"preset": "bias-only"}, "but the scheme trains it"),
    (True, {"weight_update": {"pre": "all"}},
     "but the layer trained at operator 0 is before it, so the gradient must pass through it"),
])
def test_a_gradient_through_depth_multiplier_8_is_refused_with_the_way_out(first_conv, scheme,
                                                                           why):
    int8_model, _ = _micro_speech_like(first_conv)
    at = 1 if first_conv else 0
    with pytest.raises(ConversionError, match=(
            f"DEPTHWISE_CONV_2D at operator {at} has depth multiplier 8: it runs forward only, "
            f"{why}; train only layers after operator {at}")):
        tflm_train.convert(int8_model, scheme)


def test_scheme_search_keeps_to_layers_after_a_forward_only_one():
    """Both search methods propose only layers after the depthwise x8."""
    int8_model, x = _micro_speech_like(first_conv=False)
    y = np.arange(len(x)) % 4
    for method in ("fisher", "contribution"):
        result = tflm_train.search_scheme(int8_model, (x, y), 64 * 1024, method=method,
                                          epochs=1)
        trained = tflm_train.converter.read_training_info(
            tflm_train.convert(int8_model, result.scheme)).trainables
        assert trained and min(t.op_index for t in trained) > 1  # operator 0 + INIT


def _broadcast_add_model():
    """A feature map plus its own per-channel mean (broadcast ADD), as
    attention and squeeze-excite-like blocks have."""
    import tf_keras as keras

    keras.utils.set_random_seed(2)
    L = keras.layers
    x = L.Input((8, 8, 2))
    y = L.Conv2D(4, 3, padding="same", name="conv")(x)
    y = L.Add()([y, L.GlobalAveragePooling2D(keepdims=True)(y)])
    y = L.Dense(3, name="head")(L.Flatten()(y))
    samples = np.random.default_rng(0).normal(0, 1, (16, 8, 8, 2)).astype(np.float32)
    return models.quantize(keras.Model(x, y), samples), samples


def test_an_op_without_gradient_runs_in_the_frozen_prefix_like_tflm():
    int8_model, x = _broadcast_add_model()
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
            r"ADD at operator 2 broadcasts its inputs \(shapes \[1, 8, 8, 4\] and \[1, 1, 1, 4\]"
            r"\): it runs forward only, but the layer trained at operator 0 is before it")):
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
