"""UNIDIRECTIONAL_SEQUENCE_LSTM, TFLM's 8x8->16 integer LSTM (int8 input,
output and hidden state, int16 cell state and gates), against the
tflite-micro wheel: every tensor of tf_keras LSTM models converted to full
int8 equals the wheel's, over consecutive samples (the hidden and cell
states persist across Invoke) and after a reset; the int16 sigmoid and tanh
equal the wheel's on every int16 input."""
import functools

import numpy as np
import pytest
from tflite_micro import runtime as tflm

import models  # noqa: F401 - sets TF_USE_LEGACY_KERAS before TensorFlow loads
from tflm_parity import (ARENA, assert_every_tensor_matches_tflm, random_input,
                         tflm_interpreter, tflm_tensor)
from tflm_train import _native
from tflm_train.converter import tflite

LSTM = "UNIDIRECTIONAL_SEQUENCE_LSTM"


def _int8(model, batches):
    """Full-int8 conversion; `batches` are whole inputs of the model's fixed
    shape (the TF converter fuses a Keras LSTM only with a fixed batch)."""
    import tensorflow as tf
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([b] for b in batches)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def _build(seed, input_shape, batch, body, data_scale=1.0, weight_gain=1.0):
    """int8 .tflite of Input(input_shape, batch_size=batch) -> body, with the
    LSTM weights scaled by `weight_gain` (saturating gates) and calibration
    data of spread `data_scale` (narrow or wide input and state ranges)."""
    import tf_keras as keras
    keras.utils.set_random_seed(seed)
    L = keras.layers
    model = keras.Sequential([L.Input(input_shape, batch_size=batch)] + body(L))
    for layer in model.layers:
        if isinstance(layer, L.LSTM):
            kernel, recurrent, bias = layer.get_weights()
            rng = np.random.default_rng(seed)
            layer.set_weights([kernel * weight_gain, recurrent * weight_gain,
                               bias + rng.normal(0, 0.3, bias.shape).astype(np.float32)])
    rng = np.random.default_rng(seed + 1)
    batches = [(rng.normal(0, data_scale, (batch,) + input_shape)).astype(np.float32)
               for _ in range(24)]
    return _int8(model, batches)


def _ops(model_bytes):
    m = tflite.read_model(model_bytes)
    return m, [tflite.op_name(m, op) for op in m.subgraphs[0].operators]


def _up_to_last_lstm(model_bytes):
    """The graph cut after its last LSTM (whose output becomes the graph's):
    `return_sequences=False` adds a STRIDED_SLICE after the op."""
    m, names = _ops(model_bytes)
    last = max(i for i, n in enumerate(names) if n == LSTM)
    sg = m.subgraphs[0]
    sg.operators = sg.operators[:last + 1]
    sg.outputs = np.array([sg.operators[-1].outputs[0]], np.int32)
    return tflite.write_model(m)


def _check_int8_lstm(model_bytes, count):
    """The converter emitted `count` int8 LSTMs with int16 cell states."""
    m, names = _ops(model_bytes)
    assert names.count(LSTM) == count, names
    sg = m.subgraphs[0]
    for op in sg.operators:
        if tflite.op_name(m, op) != LSTM:
            continue
        types = {k: sg.tensors[op.inputs[k]].type for k in (0, 2, 13, 18, 19)}
        assert types == {0: 9, 2: 9, 13: 2, 18: 9, 19: 7}, types  # int8/int32/int16
        assert sg.tensors[op.inputs[18]].isVariable and sg.tensors[op.inputs[19]].isVariable


# name -> (seed, input shape, batch, body, data scale, weight gain, LSTM count)
VARIANTS = {
    "lstm16_dense": (0, (6, 5), 1, lambda L: [L.LSTM(16), L.Dense(4)], 1.0, 1.0, 1),
    "lstm16_narrow_inputs": (1, (6, 5), 1, lambda L: [L.LSTM(16), L.Dense(4)], 0.05, 1.0, 1),
    "lstm16_wide_saturating": (2, (6, 5), 1, lambda L: [L.LSTM(16), L.Dense(4)], 4.0, 3.0, 1),
    "stacked_lstm8": (3, (7, 4), 1,
                      lambda L: [L.LSTM(8, return_sequences=True), L.LSTM(8), L.Dense(3)],
                      1.0, 1.0, 2),
    "stacked_lstm8_wide": (4, (5, 3), 1,
                           lambda L: [L.LSTM(8, return_sequences=True), L.LSTM(8), L.Dense(3)],
                           3.0, 2.0, 2),
    "sequences_batch3": (5, (6, 5), 3, lambda L: [L.LSTM(8, return_sequences=True)], 1.0, 1.0,
                         1),
    "time_major": (6, (1, 5), 6,  # [time 6, batch 1, features 5]
                   lambda L: [L.LSTM(8, time_major=True, return_sequences=True)], 1.0, 1.0, 1),
}


@functools.cache
def _variant(name):
    seed, shape, batch, body, data_scale, gain, _ = VARIANTS[name]
    return _build(seed, shape, batch, body, data_scale, gain)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_lstm_matches_tflm_over_consecutive_samples(name):
    model = _variant(name)
    _check_int8_lstm(model, VARIANTS[name][-1])
    lstm_part = _up_to_last_lstm(model)
    for sample_seed in (0, 1):
        assert assert_every_tensor_matches_tflm(lstm_part, samples=6, seed=sample_seed) > 0


def test_mnist_lstm_like_model_matches_tflm_end_to_end():
    """TFLM's mnist_lstm example: 28x28 rows as a sequence, LSTM(20) with
    return_sequences, Flatten, Dense(10), Softmax; every tensor of the whole
    model, states included."""
    model = _build(7, (28, 28), 1, lambda L: [L.LSTM(20, return_sequences=True), L.Flatten(),
                                              L.Dense(10, activation="softmax")])
    _check_int8_lstm(model, 1)
    assert _ops(model)[1] == [LSTM, "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    for sample_seed in (0, 3):
        assert assert_every_tensor_matches_tflm(model, samples=5, seed=sample_seed) > 0


def test_whole_model_with_return_sequences_false():
    """The full converted model (LSTM, STRIDED_SLICE, FULLY_CONNECTED), when
    the runtime has STRIDED_SLICE."""
    model = _variant("lstm16_dense")
    assert _ops(model)[1] == [LSTM, "STRIDED_SLICE", "FULLY_CONNECTED"]
    try:
        _native.Interpreter(model, ARENA)
    except RuntimeError as e:
        if "STRIDED_SLICE" in str(e) or "code 45" in str(e):
            pytest.skip(f"the runtime has no STRIDED_SLICE yet ({e})")
        raise
    assert assert_every_tensor_matches_tflm(model, samples=6, seed=0) > 0


def _variables(interp, ref, indices):
    ours = [interp.get_tensor(t).reshape(-1) for t in indices]
    theirs = [tflm_tensor(ref, t, a.dtype) for t, a in zip(indices, ours)]
    return ours, theirs


def test_states_persist_across_invokes_and_reset_like_tflm():
    model = _up_to_last_lstm(_variant("stacked_lstm8"))
    ours = _native.Interpreter(model, ARENA, preserve_all_tensors=True)
    ref = tflm_interpreter(model)
    variables = [t for t in range(ours.num_tensors) if ours.tensor_info(t)["is_variable"]]
    assert len(variables) == 4  # hidden and cell state of two LSTMs
    zero_points = []
    m = tflite.read_model(model)
    for t in variables:
        q = m.subgraphs[0].tensors[t].quantization
        zero_points.append(int(q.zeroPoint[0]) if m.subgraphs[0].tensors[t].type == 9 else 0)
    rng = np.random.default_rng(5)
    x = random_input(ours.tensor_info(ours.inputs[0]), rng)
    out = ours.outputs[0]
    outputs = []
    for _ in range(3):  # the same input three times: the state makes them differ
        ours.set_tensor(ours.inputs[0], x)
        ref.set_input(x, 0)
        ours.invoke()
        ref.invoke()
        outputs.append(ours.get_tensor(out).copy())
        a, b = _variables(ours, ref, variables)
        for va, vb in zip(a, b):
            np.testing.assert_array_equal(va, vb)
        np.testing.assert_array_equal(outputs[-1].reshape(-1), tflm_tensor(ref, out, np.int8))
    assert not np.array_equal(outputs[0], outputs[1])
    ours.reset()
    ref.reset()
    a, b = _variables(ours, ref, variables)
    for va, vb, zp in zip(a, b, zero_points):
        np.testing.assert_array_equal(va, vb)
        assert np.all(va == zp)
    ours.set_tensor(ours.inputs[0], x)
    ref.set_input(x, 0)
    ours.invoke()
    ref.invoke()
    np.testing.assert_array_equal(ours.get_tensor(out), outputs[0])  # as from a fresh start
    np.testing.assert_array_equal(outputs[0].reshape(-1), tflm_tensor(ref, out, np.int8))


def _single_op_model(code, input_scale, count):
    """One int16 LOGISTIC or TANH op (zero points 0, output scale 2^-15)."""
    s = tflite.schema()

    def tensor(name, scale, buffer):
        t = s.TensorT()
        t.name, t.type, t.buffer = name, 7, buffer
        t.shape = np.array([count], np.int32)
        t.quantization = s.QuantizationParametersT()
        t.quantization.scale = np.array([scale], np.float32)
        t.quantization.zeroPoint = np.array([0], np.int64)
        return t

    m = s.ModelT()
    m.version = 3
    opcode = s.OperatorCodeT()
    opcode.builtinCode = opcode.deprecatedBuiltinCode = code
    opcode.version = 1
    m.operatorCodes = [opcode]
    m.buffers = [s.BufferT() for _ in range(3)]
    sg = s.SubGraphT()
    sg.tensors = [tensor("x", input_scale, 1), tensor("y", 2.0 ** -15, 2)]
    op = s.OperatorT()
    op.opcodeIndex = 0
    op.inputs, op.outputs = np.array([0], np.int32), np.array([1], np.int32)
    sg.operators = [op]
    sg.inputs, sg.outputs = np.array([0], np.int32), np.array([1], np.int32)
    m.subgraphs = [sg]
    return tflite.write_model(m)


def _wheel_op(code, input_scale, x):
    interp = tflm.Interpreter.from_bytes(_single_op_model(code, input_scale, x.size),
                                         arena_size=1 << 20)
    interp.set_input(x, 0)
    interp.invoke()
    return interp.get_output(0)


EVERY_INT16 = np.arange(-32768, 32768).astype(np.int16)


def test_gate_sigmoid_equals_tflm_logistic_on_every_int16():
    """The LSTM's sigmoid (Q3.12 -> Q0.15) is TFLM's int16 LOGISTIC at input
    scale 2^-12, which takes the same power-of-two path."""
    ops = tflite.schema().BuiltinOperator
    np.testing.assert_array_equal(_native.testing.lstm_sigmoid(EVERY_INT16),
                                  _wheel_op(ops.LOGISTIC, 2.0 ** -12, EVERY_INT16))


@pytest.mark.parametrize("scale_log2", [-16, -15, -13, -12, -11, -10])
def test_tanh_equals_tflm_tanh_on_every_int16(scale_log2):
    """The LSTM's tanh of a gate (2^-12) or of the cell state (its power-of-
    two scale) is TFLM's int16 TANH at that input scale: TANH's own
    rescaling gives the same integer for these scales."""
    ops = tflite.schema().BuiltinOperator
    np.testing.assert_array_equal(_native.testing.lstm_tanh(EVERY_INT16, scale_log2),
                                  _wheel_op(ops.TANH, 2.0 ** scale_log2, EVERY_INT16))


def test_float_lstm_is_refused_naming_the_op():
    import tensorflow as tf
    import tf_keras as keras
    L = keras.layers
    model = keras.Sequential([L.Input((6, 5), batch_size=1), L.LSTM(8, return_sequences=True)])
    float_model = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    with pytest.raises(RuntimeError, match=f"operator 0 \\({LSTM}\\): {LSTM}: float LSTM is "
                                           "not supported \\(only int8 activations\\)"):
        _native.Interpreter(float_model, ARENA)


def test_an_operator_reading_an_empty_tensor_is_refused():
    """The converter's LSTM intermediates are empty tensors ([0]); the
    runtime reads them but refuses any operator that uses one."""
    m = tflite.read_model(_up_to_last_lstm(_variant("lstm16_dense")))
    op = m.subgraphs[0].operators[0]
    empty = int(op.intermediates[0])
    assert list(m.subgraphs[0].tensors[empty].shape) == [0]
    op.inputs[9] = empty  # a peephole slot
    with pytest.raises(RuntimeError, match=f"input 9 is tensor {empty}, which is empty"):
        _native.Interpreter(tflite.write_model(m), ARENA)


def _fully_connected_model(input_scale, filter_scale, output_scale, bias, rows):
    """FULLY_CONNECTED of `rows` int8 inputs x through weight 1 plus `bias`:
    the accumulator is bias + x, requantized by input*filter/output scale."""
    s = tflite.schema()

    def tensor(name, type_, shape, scale, buffer):
        t = s.TensorT()
        t.name, t.type, t.buffer = name, type_, buffer
        t.shape = np.array(shape, np.int32)
        t.quantization = s.QuantizationParametersT()
        t.quantization.scale = np.array([scale], np.float32)
        t.quantization.zeroPoint = np.array([0], np.int64)
        return t

    def buffer(array=None):
        b = s.BufferT()
        if array is not None:
            b.data = np.frombuffer(array.tobytes(), np.uint8)
        return b

    m = s.ModelT()
    m.version = 3
    opcode = s.OperatorCodeT()
    opcode.builtinCode = opcode.deprecatedBuiltinCode = s.BuiltinOperator.FULLY_CONNECTED
    opcode.version = 1
    m.operatorCodes = [opcode]
    m.buffers = [buffer(), buffer(), buffer(np.ones((1, 1), np.int8)),
                 buffer(np.array([bias], np.int32)), buffer()]
    sg = s.SubGraphT()
    sg.tensors = [tensor("x", 9, [rows, 1], input_scale, 1),
                  tensor("w", 9, [1, 1], filter_scale, 2),
                  tensor("b", 2, [1], np.float32(input_scale) * np.float32(filter_scale), 3),
                  tensor("y", 9, [rows, 1], output_scale, 4)]
    op = s.OperatorT()
    op.opcodeIndex = 0
    op.inputs, op.outputs = np.array([0, 1, 2], np.int32), np.array([3], np.int32)
    op.builtinOptionsType = s.BuiltinOptions.FullyConnectedOptions
    op.builtinOptions = s.FullyConnectedOptionsT()
    sg.operators = [op]
    sg.inputs, sg.outputs = np.array([0], np.int32), np.array([3], np.int32)
    m.subgraphs = [sg]
    return tflite.write_model(m)


@pytest.mark.parametrize("scales,bias", [
    ((0.026372608, 0.0021572562, 0.02862476), -1760),
    ((0.017404905, 0.008350798, 0.023241388), -2318),
    ((0.026966032, 0.008266254, 0.011551309), -3238),
])
def test_fully_connected_per_tensor_multiplier_is_formed_in_double(scales, bias):
    """Found through the LSTM's gate products: for these scales the product
    input*filter rounded to single precision moves the Q31 multiplier by 12
    to 74 units, enough for one of the 256 accumulators to round to another
    int8; the wheel's FULLY_CONNECTED gives the double product's result."""
    x = np.arange(-128, 128, dtype=np.int8).reshape(256, 1)
    model = _fully_connected_model(*[np.float32(v) for v in scales], bias, 256)
    ours = _native.Interpreter(model, ARENA)
    ours.set_tensor(ours.inputs[0], x)
    ours.invoke()
    wheel = tflm.Interpreter.from_bytes(model, arena_size=1 << 16)
    wheel.set_input(x, 0)
    wheel.invoke()
    np.testing.assert_array_equal(ours.get_tensor(ours.outputs[0]), wheel.get_output(0))


def test_an_lstm_in_the_frozen_prefix_trains_with_its_states_cleared_every_step():
    """A training model clears the LSTM's states after every step (Keras's
    non-stateful LSTM): each prediction equals the wheel's from a reset
    interpreter, however many samples ran before, and the head learns."""
    import tflm_train

    model = _variant("lstm16_dense")
    trainer = tflm_train.Trainer(tflm_train.convert(model, {"preset": "classifier",
                                                            "optimizer": {"lr": 0.3}}))
    wheel = tflm.Interpreter.from_bytes(model)
    rng = np.random.default_rng(4)
    x = rng.normal(0, 1, (32,) + trainer.input_shape[1:]).astype(np.float32)
    y = (x[:, :, 0].mean(axis=1) > 0).astype(np.int64) + 2 * (x[:, -1, 1] > 0)
    y %= trainer.num_classes
    for sample in x[:6]:
        wheel.reset()
        wheel.set_input(trainer.prepare_input(sample), 0)
        wheel.invoke()
        np.testing.assert_array_equal(trainer.predict(sample).reshape(-1),
                                      wheel.get_output(0).reshape(-1))
    result = trainer.fit((x, y), epochs=6, progress=False)
    assert result.epochs[-1]["loss"] < 0.8 * result.epochs[0]["loss"]
    # After training, still one sample at a time from the zero state.
    first = trainer.predict(x[0])
    trainer.predict(x[1])
    np.testing.assert_array_equal(trainer.predict(x[0]), first)
