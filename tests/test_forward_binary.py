"""The standalone runtime's int8 binary forward ops (MUL, SUB, MAXIMUM,
MINIMUM, CONCATENATION, broadcasting ADD) against TFLM: small tf_keras models
that the TFLite converter turns into these ops (full int8), run through our
runtime and the tflite-micro wheel, every tensor compared byte for byte
(tests/tflm_parity.py), for several weight seeds and input ranges (which set
the quantization scales: a narrow and a wide range besides the unit one)."""
import numpy as np
import pytest
from tflite_micro import runtime as tflm

import models
import tflm_parity
from tflm_train import _native
from tflm_train.converter import tflite

INPUT = (6, 6, 4)
RANGES = (0.05, 1.0, 12.0)  # std of the calibration inputs: narrow, unit, wide
ACTIVATIONS = {0: "NONE", 1: "RELU", 3: "RELU6"}


def _keras():
    import tf_keras  # noqa: PLC0415 - TensorFlow is slow to import
    return tf_keras, tf_keras.layers


def _conv(L, channels, size=1, std=0.3, activation=None):
    """A conv whose output range scales with `std` (different ranges per branch)."""
    keras, _ = _keras()
    return L.Conv2D(channels, size, padding="same", activation=activation,
                    kernel_initializer=keras.initializers.RandomNormal(stddev=std),
                    bias_initializer=keras.initializers.RandomNormal(stddev=std))


def _activation(L, y, act):
    if act == "relu":
        return L.ReLU()(y)
    if act == "relu6":
        return L.ReLU(6.0)(y)
    return y


# ---- model builders: (keras layers, input) -> output --------------------------

def squeeze_excite(form, gate, act="none"):
    """GAP -> Dense/1x1 conv -> Dense/1x1 conv(gate) -> Multiply with the feature map."""
    def build(L, x):
        f = _conv(L, 8, 3, activation="relu")(x)
        if form == "dense":
            s = L.GlobalAveragePooling2D()(f)
            s = L.Dense(4, activation="relu")(s)
            s = L.Dense(8, activation=gate)(s)
            s = L.Reshape((1, 1, 8))(s)
        else:  # 1x1 convs on the kept [1, 1, 1, C] mean
            s = L.GlobalAveragePooling2D(keepdims=True)(f)
            s = L.Conv2D(4, 1, activation="relu")(s)
            s = L.Conv2D(8, 1, activation=gate)(s)
        return _activation(L, L.Multiply()([f, s]), act)
    return build


def multiply_maps(act="none", reverse=False):
    """Two same-shape branches, or the per-channel vector first (input 1 broadcasts)."""
    def build(L, x):
        a = _conv(L, 6, 3, std=0.5)(x)
        if reverse:
            b = _conv(L, 6, 1, std=0.2)(L.GlobalAveragePooling2D(keepdims=True)(x))
            return _activation(L, L.Multiply()([b, a]), act)
        b = _conv(L, 6, 1, std=0.1)(x)
        return _activation(L, L.Multiply()([a, b]), act)
    return build


def subtract(broadcast, act="none", reverse=False):
    def build(L, x):
        a = _conv(L, 5, 3, std=0.6)(x)
        if broadcast == "conv":
            b = _conv(L, 5, 1, std=0.1)(L.GlobalAveragePooling2D(keepdims=True)(a))
        elif broadcast == "dense":  # [1, C]: a lower rank than the feature map
            b = L.Dense(5)(L.GlobalAveragePooling2D()(x))
        else:
            b = _conv(L, 5, 1, std=0.15)(x)
        pair = [b, a] if reverse else [a, b]
        return _activation(L, L.Subtract()(pair), act)
    return build


def extremum(layer, broadcast, reverse=False):
    def build(L, x):
        a = _conv(L, 6, 3, std=0.4)(x)
        if broadcast == "conv":
            b = _conv(L, 6, 1, std=0.4)(L.GlobalAveragePooling2D(keepdims=True)(x))
        elif broadcast == "dense":
            b = L.Reshape((1, 1, 6))(L.Dense(6)(L.GlobalAveragePooling2D()(x)))
        else:
            b = _conv(L, 6, 1, std=0.05)(x)
        pair = [b, a] if reverse else [a, b]
        return getattr(L, layer)()(pair)
    return build


def concatenate(axis, inputs=2, requantized=False, negative_axis=False):
    """Branches with different ranges; `requantized` adds a softmax branch,
    whose fixed output quantization makes the converter insert a requantizing
    QUANTIZE before the concatenation."""
    def build(L, x):
        # Different channel counts only along the channel axis.
        branches = [_conv(L, 3 + k if axis == 3 else 4, 1 + 2 * (k % 2), std=0.05 * 4 ** k)(x)
                    for k in range(inputs)]
        if requantized:
            branches.append(L.Softmax()(_conv(L, 4, 1)(x)))
        if negative_axis:
            import tensorflow as tf  # noqa: PLC0415
            return L.Lambda(lambda t: tf.concat(t, axis=axis - 4))(branches)
        return L.Concatenate(axis=axis)(branches)
    return build


def add_broadcast(form, act="none", reverse=False):
    """Feature map + a per-channel vector from a branch."""
    def build(L, x):
        f = _conv(L, 8, 3, std=0.5)(x)
        if form == "conv":  # [1, 1, 1, C]
            v = _conv(L, 8, 1, std=0.2)(L.GlobalAveragePooling2D(keepdims=True)(x))
        else:  # [1, C]
            v = L.Dense(8)(L.GlobalAveragePooling2D()(f))
        pair = [v, f] if reverse else [f, v]
        return _activation(L, L.Add()(pair), act)
    return build


# ---- helpers --------------------------------------------------------------------

def convert(build, seed, input_range):
    keras, L = _keras()
    keras.utils.set_random_seed(seed)
    x = L.Input(INPUT, batch_size=1)
    model = keras.Model(x, build(L, x))
    samples = np.random.default_rng(seed).normal(0, input_range, (24, *INPUT))
    return models.quantize(model, samples.astype(np.float32))


def operators(model_bytes):
    """[(name, input shapes, builtin options or None)] of the model's operators."""
    m = tflite.read_model(model_bytes)
    g = m.subgraphs[0]
    return [(tflite.op_name(m, op), [tuple(int(d) for d in g.tensors[t].shape)
                                     for t in op.inputs if t >= 0], op.builtinOptions)
            for op in g.operators]


def find(model_bytes, name):
    found = [op for op in operators(model_bytes) if op[0] == name]
    assert found, f"the converter made no {name}: {[op[0] for op in operators(model_bytes)]}"
    return found


def needs_logistic(model_bytes):
    """Skips when the runtime has no LOGISTIC kernel yet (another branch adds it)."""
    if any(op[0] == "LOGISTIC" for op in operators(model_bytes)):
        try:
            _native.Interpreter(model_bytes, tflm_parity.ARENA)
        except Exception as e:  # noqa: BLE001 - the binding raises RuntimeError
            if "unsupported builtin operator" in str(e) and ("LOGISTIC" in str(e)
                                                             or "(code 14)" in str(e)):
                pytest.skip("the standalone runtime has no LOGISTIC kernel in this branch")
            raise


def check(model_bytes, seed, minimum_tensors):
    compared = tflm_parity.assert_every_tensor_matches_tflm(model_bytes, samples=4, seed=seed)
    assert compared >= minimum_tensors
    return compared


# ---- MUL ---------------------------------------------------------------------------

@pytest.mark.parametrize("form", ["dense", "conv"])
@pytest.mark.parametrize("act", ["none", "relu", "relu6"])
def test_squeeze_excite_mul_with_relu6_gate(form, act):
    for seed, input_range in ((0, RANGES[1]), (1, RANGES[2])):
        model = convert(squeeze_excite(form, "relu6", act), seed, input_range)
        (mul,) = find(model, "MUL")
        assert mul[1][0] != mul[1][1]  # broadcast
        assert ACTIVATIONS[mul[2].fusedActivationFunction] == act.upper()
        check(model, seed, 4 * 8)


@pytest.mark.parametrize("form", ["dense", "conv"])
def test_squeeze_excite_mul_with_sigmoid_gate(form):
    for seed, input_range in ((0, RANGES[0]), (2, RANGES[1])):
        model = convert(squeeze_excite(form, "sigmoid"), seed, input_range)
        (mul,) = find(model, "MUL")
        assert mul[1][0] == (1, 6, 6, 8) and mul[1][1] in ((1, 1, 1, 8), (1, 8))
        needs_logistic(model)
        check(model, seed, 4 * 9)


@pytest.mark.parametrize("input_range", RANGES)
@pytest.mark.parametrize("act,reverse", [("none", False), ("relu", False), ("relu6", True),
                                         ("none", True)])
def test_mul_of_two_branches(input_range, act, reverse):
    model = convert(multiply_maps(act, reverse), 3, input_range)
    (mul,) = find(model, "MUL")
    assert (mul[1][0] != mul[1][1]) == reverse
    assert ACTIVATIONS[mul[2].fusedActivationFunction] == act.upper()
    check(model, 3, 4 * 5)


# ---- SUB ---------------------------------------------------------------------------

@pytest.mark.parametrize("input_range", RANGES)
@pytest.mark.parametrize("broadcast,act,reverse", [
    ("none", "none", False), ("none", "relu", False), ("conv", "none", False),
    ("conv", "relu6", True), ("dense", "none", False), ("dense", "relu", True)])
def test_sub_of_two_branches(input_range, broadcast, act, reverse):
    seed = 4 + RANGES.index(input_range)
    model = convert(subtract(broadcast, act, reverse), seed, input_range)
    (sub,) = find(model, "SUB")
    assert (sub[1][0] != sub[1][1]) == (broadcast != "none")
    assert ACTIVATIONS[sub[2].fusedActivationFunction] == act.upper()
    check(model, seed, 4 * 5)


# ---- MAXIMUM / MINIMUM ----------------------------------------------------------------

@pytest.mark.parametrize("layer,op", [("Maximum", "MAXIMUM"), ("Minimum", "MINIMUM")])
@pytest.mark.parametrize("broadcast,reverse", [("none", False), ("conv", False),
                                               ("conv", True), ("dense", False)])
def test_maximum_minimum_of_two_branches(layer, op, broadcast, reverse):
    for seed, input_range in ((0, RANGES[0]), (7, RANGES[2])):
        model = convert(extremum(layer, broadcast, reverse), seed, input_range)
        (found,) = find(model, op)
        assert (found[1][0] != found[1][1]) == (broadcast != "none")
        check(model, seed, 4 * 5)


# ---- CONCATENATION -------------------------------------------------------------------

@pytest.mark.parametrize("input_range", RANGES)
@pytest.mark.parametrize("axis,inputs,requantized,negative_axis", [
    (3, 2, False, False), (3, 3, False, False), (3, 2, True, False),
    (1, 2, False, False), (2, 3, True, False), (3, 2, False, True), (1, 2, False, True)])
def test_concatenation_of_branches(input_range, axis, inputs, requantized, negative_axis):
    seed = 10 + RANGES.index(input_range)
    model = convert(concatenate(axis, inputs, requantized, negative_axis), seed, input_range)
    (concat,) = find(model, "CONCATENATION")
    assert concat[2].axis == (axis - 4 if negative_axis else axis)
    assert len(concat[1]) == inputs + requantized
    if requantized:
        find(model, "QUANTIZE")  # the softmax branch is requantized to the output's
    check(model, seed, 4 * 6)


# ---- ADD with broadcasting -----------------------------------------------------------

@pytest.mark.parametrize("input_range", RANGES)
@pytest.mark.parametrize("form,act,reverse", [
    ("conv", "none", False), ("conv", "relu", True), ("dense", "none", False),
    ("dense", "relu6", True)])
def test_add_with_broadcasting(input_range, form, act, reverse):
    seed = 20 + RANGES.index(input_range)
    model = convert(add_broadcast(form, act, reverse), seed, input_range)
    (add,) = find(model, "ADD")
    assert add[1][0] != add[1][1]
    assert ACTIVATIONS[add[2].fusedActivationFunction] == act.upper()
    check(model, seed, 4 * 5)


# ---- every int8 pair through one op, with chosen quantization -------------------------

def single_op_model(kind, activation, quant):
    """One broadcasting binary op of a [256, 1] and a [1, 256] input (every
    int8 pair once in the [256, 256] output), converted, then given the
    quantization `quant` = ((s1, z1), (s2, z2), (s_out, z_out)) and the fused
    activation (0 NONE, 1 RELU, 3 RELU6)."""
    import tensorflow as tf  # noqa: PLC0415
    keras, L = _keras()
    a = L.Input((256, 1), batch_size=1)
    b = L.Input((1, 256), batch_size=1)
    fn = {"ADD": tf.add, "SUB": tf.subtract, "MUL": tf.multiply, "MAXIMUM": tf.maximum,
          "MINIMUM": tf.minimum}[kind]
    model = keras.Model([a, b], L.Lambda(lambda t: fn(t[0], t[1]))([a, b]))
    rng = np.random.default_rng(0)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: (
        [rng.normal(0, 1, (1, 256, 1)).astype(np.float32),
         rng.normal(0, 1, (1, 1, 256)).astype(np.float32)] for _ in range(8))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    m = tflite.read_model(converter.convert())
    g = m.subgraphs[0]
    assert [tflite.op_name(m, op) for op in g.operators] == [kind]
    op = g.operators[0]
    for t, (scale, zero_point) in zip(list(op.inputs) + list(op.outputs), quant):
        g.tensors[t].quantization.scale = np.array([scale], np.float32)
        g.tensors[t].quantization.zeroPoint = np.array([zero_point], np.int64)
    if hasattr(op.builtinOptions, "fusedActivationFunction"):
        op.builtinOptions.fusedActivationFunction = activation
    return tflite.write_model(m)


def assert_all_pairs_match_tflm(model_bytes):
    ours = _native.Interpreter(model_bytes, tflm_parity.ARENA, preserve_all_tensors=True)
    # The wheel's default arena is sized for small tensors: give it ours.
    ref = tflm.Interpreter.from_bytes(
        model_bytes, arena_size=tflm_parity.ARENA,
        intrepreter_config=tflm.InterpreterConfig.kPreserveAllTensors)
    values = np.arange(-128, 128, dtype=np.int8)
    for position, index in enumerate(ours.inputs):  # the converter may swap them
        x = values.reshape(ours.tensor_info(index)["shape"])
        ours.set_tensor(index, x)
        ref.set_input(x, position)
    ours.invoke()
    ref.invoke()
    out = ours.outputs[0]
    ours_out = ours.get_tensor(out).reshape(-1)
    np.testing.assert_array_equal(ours_out, tflm_parity.tflm_tensor(ref, out, np.int8))
    return ours_out.reshape(256, 256)  # [a + 128, b + 128]: op(a, b)


# A quantization where SUB's multipliers formed as TFLM's source writes them
# (float ratios widened to double) give another output, for a = 113 and
# b = -8, than in double precision (ADD's way): 102 instead of 101. The
# wheel's compiled SUB divides in double and gives 101; so does the runtime
# (ops_cc/kernels/add.h, ComputeAddParams).
SUB_FLOAT_CASE = ((0.0213169996, 0), (0.0233178418, 0), (0.0255700871, 0))


@pytest.mark.parametrize("kind,activation,quant", [
    ("SUB", 0, SUB_FLOAT_CASE),
    ("SUB", 1, ((0.05, -5), (0.02, 17), (0.04, 3))),
    ("SUB", 3, ((0.1, 100), (0.3, -100), (0.03, -128))),
    ("ADD", 0, SUB_FLOAT_CASE),
    ("ADD", 3, ((0.05, -5), (0.02, 17), (0.04, 3))),
    ("MUL", 0, ((0.05, -5), (0.02, 17), (0.04, 3))),   # multiplier < 1
    ("MUL", 1, ((0.5, 10), (0.25, -3), (0.01, -20))),  # multiplier 12.5 > 1
    ("MUL", 3, ((0.1, 0), (0.1, 0), (0.05, -128))),
    ("MAXIMUM", 0, ((0.1, 7), (0.1, 7), (0.1, 7))),
    ("MINIMUM", 0, ((0.1, -7), (0.1, -7), (0.1, -7))),
])
def test_every_int8_pair_matches_tflm(kind, activation, quant):
    out = assert_all_pairs_match_tflm(single_op_model(kind, activation, quant))
    if kind == "SUB" and quant == SUB_FLOAT_CASE:
        assert out[113 + 128, -8 + 128] == 101  # 102 with float ratios


# ---- refusals the runtime reports ---------------------------------------------------------

def test_unsupported_concatenation_activation_is_refused():
    """The TFLite converter never fuses an activation into CONCATENATION; a
    model that has one (patched here) is refused by TFLM and by the runtime."""
    model = convert(concatenate(3), 0, 1.0)
    m = tflite.read_model(model)
    for op in m.subgraphs[0].operators:
        if tflite.op_name(m, op) == "CONCATENATION":
            op.builtinOptions.fusedActivationFunction = 1
    with pytest.raises(RuntimeError, match="CONCATENATION: fused activation 1"):
        _native.Interpreter(tflite.write_model(m), tflm_parity.ARENA)
