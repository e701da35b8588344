"""Channel-sliced trainable weights (docs/format.md, "Channel-sliced
weights"): a CONV_2D / FULLY_CONNECTED layer trained on a strict subset of
its output channels keeps only those channels in a RAM variable. Training
must be bit-identical to the whole-variable path (the converter with slicing
switched off), the sliced forward op must equal TFLM's builtin on the merged
filter, and a malformed channel list is an error, not a crash."""
import numpy as np
import pytest

import models
import tflm_train
from tflm_train.converter import ConversionError, build, read_training_info, tflite
from tflm_train.runtime import RuntimeModelError
from tflm_parity import tflm_interpreter, tflm_tensor

STEPS = 12
# name -> (int8 model, scheme): per-channel conv, per-channel FC with two
# sliced layers, per-tensor FC (the slice carries the filter's one scale).
CASES = {
    "cnn": (lambda: models.plain_cnn(),
            {"bias_update_layers": 2, "weight_update": {"conv_b": 0.5, "conv_a": 0.25},
             "optimizer": {"lr": 0.05, "rounding": "stochastic", "momentum": 0.9}}),
    "mlp": (lambda: models.mlp(),
            {"bias_update_layers": 3, "weight_update": {"fc1": 0.25, "fc2": 0.5},
             "optimizer": {"lr": 0.05, "batch_size": 2}}),
    "mlp_per_tensor": (lambda: models.tflite_model("mlp", per_tensor_dense=True),
                       {"bias_update_layers": 3, "weight_update": {"fc1": 0.25, "fc2": 0.5},
                        "optimizer": {"lr": 0.05, "rounding": "stochastic",
                                      "momentum": 0.5}}),
}


def _samples(name, count=STEPS):
    shape, classes = models.SHAPES[name.split("_")[0]]
    rng = np.random.default_rng(7)
    return [(rng.integers(-128, 128, (1,) + shape).astype(np.int8), i % classes)
            for i in range(count)]


def _convert(name, sliced=True, monkeypatch=None):
    make, scheme = CASES[name]
    if not sliced:  # the whole-variable path this feature must reproduce
        monkeypatch.setattr(build._TrainingGraph, "sliceable", lambda self, layer: False)
    model = tflm_train.convert(make(), scheme)
    if not sliced:
        monkeypatch.undo()
    return model


def _train(model, name):
    trainer = tflm_train.Trainer(model)
    losses = [trainer.step(x, y) for x, y in _samples(name)]
    return trainer, losses


def _tensors_and_ops(model_bytes):
    """{tensor name: (shape, scales, zero points, data bytes)} and the
    operators (name, inputs by tensor name, builtin options) of a model."""
    m = tflite.read_model(model_bytes)
    sg = m.subgraphs[0]
    tensors = {}
    for t in sg.tensors:
        q = t.quantization
        data = tflite.tensor_data(m, t)
        tensors[tflite.name_of(t)] = (
            [int(d) for d in t.shape],
            None if q is None or q.scale is None else [float(s) for s in q.scale],
            None if q is None or q.zeroPoint is None else [int(z) for z in q.zeroPoint],
            None if data is None else data.tobytes())
    ops = [(tflite.op_name(m, op), [tflite.name_of(sg.tensors[int(i)]) for i in op.inputs],
            vars(op.builtinOptions) if op.builtinOptions is not None else None,
            m.operatorCodes[op.opcodeIndex].version) for op in sg.operators]
    return tensors, ops


@pytest.mark.parametrize("name", sorted(CASES))
def test_sliced_training_equals_the_whole_variable_path(name, monkeypatch):
    whole = _convert(name, sliced=False, monkeypatch=monkeypatch)
    sliced = _convert(name)
    info = read_training_info(sliced)
    weights = [t for t in info.trainables if t.channels]
    assert weights, "the scheme trains partial channels"
    sg = tflite.read_model(sliced).subgraphs[0]
    for t in weights:  # the variable holds only the trained channels
        variable = sg.tensors[t.variable]
        assert tflite.name_of(variable).endswith("/slice")
        assert int(variable.shape[0]) == len(t.channels)
    assert (tflm_train.plan(sliced)["trainable_bytes"]
            < tflm_train.plan(whole)["trainable_bytes"])

    whole_trainer, whole_losses = _train(whole, name)
    sliced_trainer, sliced_losses = _train(sliced, name)
    assert sliced_losses == whole_losses  # bit for bit, every step
    # The exported inference models are the same model: same tensors
    # (weights merged back into the full filter), operators and options.
    assert _tensors_and_ops(sliced_trainer.export_inference_model()) == \
        _tensors_and_ops(whole_trainer.export_inference_model())
    # The trained rows moved (the test is not vacuous).
    exported = _tensors_and_ops(sliced_trainer.export_inference_model())[0]
    original = _tensors_and_ops(CASES[name][0]())[0]
    changed = [n for n in original if original[n][3] is not None
               and exported.get(n, original[n])[3] != original[n][3]]
    assert any(len(original[n][0]) in (2, 4) and "bias" not in n.lower() for n in changed)


def _op_outputs(model_bytes):
    """(op name, inputs, options, version, output name) per operator."""
    m = tflite.read_model(model_bytes)
    sg = m.subgraphs[0]
    return [op + (tflite.name_of(sg.tensors[int(o.outputs[0])]) if len(o.outputs) else "",)
            for op, o in zip(_tensors_and_ops(model_bytes)[1], sg.operators)]


@pytest.mark.parametrize("name", sorted(CASES))
def test_sliced_forward_equals_tflm_on_the_merged_filter(name):
    """Our runtime on the training model (sliced ops, trained slices) and
    the tflite-micro wheel on its export (builtins, merged filters): every
    tensor of the forward pass is equal."""
    trainer, _ = _train(_convert(name), name)
    trained = trainer.to_bytes()
    exported = trainer.export_inference_model()
    ours = tflm_train.Trainer(trained, preserve_all_tensors=True)
    ref = tflm_interpreter(exported)
    ref_tensors, _ = _tensors_and_ops(exported)
    our_tensors, our_ops = _tensors_and_ops(trained)
    # Activations, except those export requantized to the recorded output
    # range (the output layer's output; never a sliced layer's).
    names = {n: i for i, n in enumerate(ref_tensors)
             if ref_tensors[n][3] is None and ref_tensors[n][1:3] == our_tensors[n][1:3]}
    sliced_outputs = {o for op, _, _, _, o in _op_outputs(trained) if op.endswith("_SLICED")}
    assert sliced_outputs and sliced_outputs <= set(names)
    for x, y in _samples(name, 4):
        ours.evaluate_sample(x, y)
        ref.set_input(x, 0)
        ref.invoke()
        for tensor_name, i in names.items():
            a = ours.tensor(ours.tensor_index(tensor_name)).reshape(-1)
            np.testing.assert_array_equal(a, tflm_tensor(ref, i, a.dtype), tensor_name)


def _with_channels(model_bytes, trainable, values):
    """The training model with the channel list of sliced `trainable`
    replaced by `values` (shape [len(values)])."""
    m = tflite.read_model(model_bytes)
    sg = m.subgraphs[0]
    name = tflite.name_of(sg.tensors[trainable.variable]).removesuffix("/slice") + "/channels"
    (tensor,) = [t for t in sg.tensors if tflite.name_of(t) == name]
    tensor.shape = np.asarray([len(values)], dtype=np.int32)
    tflite.set_buffer_data(m.buffers[tensor.buffer], np.asarray(values, dtype=np.int32))
    return tflite.write_model(m)


@pytest.mark.parametrize("name", ["cnn", "mlp"])
@pytest.mark.parametrize("bad", ["out_of_range", "negative", "duplicate", "decreasing",
                                 "too_short", "too_long"])
def test_malformed_channels_is_an_error(name, bad):
    model = _convert(name)
    info = read_training_info(model)
    # The sliced layer with the most trained channels (so that every kind of
    # breakage is one); per-channel scales give its channel count.
    trainable = max((t for t in info.trainables if t.channels), key=lambda t: len(t.channels))
    channels, out = trainable.channels, len(trainable.scales)
    assert len(channels) >= 2
    values = {"out_of_range": channels[:-1] + [out],
              "negative": [-1] + channels[1:],
              "duplicate": [channels[0]] * len(channels),
              "decreasing": channels[::-1] if len(channels) > 1 else [out],
              "too_short": channels[:-1] or [],
              "too_long": channels + [c for c in range(out) if c not in channels][:1]}[bad]
    broken = _with_channels(model, trainable, values)
    with pytest.raises((ConversionError, RuntimeModelError)) as e:
        tflm_train.Trainer(broken)
    message = str(e.value)
    assert "channels" in message or "slice" in message, message
    assert "_SLICED" in message or "_GRAD" in message, message


@pytest.mark.parametrize("name", sorted(CASES))
def test_plan_itemises_each_slice(name):
    """`tflm-train plan` lists each sliced layer: its whole filter (what the
    variable was) against the slice of trained rows."""
    model = _convert(name)
    m = tflite.read_model(model)
    sg = m.subgraphs[0]
    savings = [s for s in tflm_train.plan(model)["memory_savings"]
               if s["name"].endswith("_SLICED")]
    sliced = [k for k, op in enumerate(sg.operators)
              if tflite.op_name(m, op).endswith("_SLICED")]
    assert len(sliced) >= 1 and [s["op"] for s in savings] == sliced
    for s in savings:
        op = sg.operators[s["op"]]
        rows = sg.tensors[int(op.inputs[4])].shape[0]
        filter_shape = [int(d) for d in sg.tensors[int(op.inputs[1])].shape]
        assert s["was_bytes"] == int(np.prod(filter_shape))
        assert s["now_bytes"] == rows * int(np.prod(filter_shape[1:]))
        assert rows < filter_shape[0]


def test_partial_per_tensor_output_layer_has_one_slot_per_trained_weight():
    """The output layer keeps its whole filter as the variable; with one
    per-tensor scale its optimizer slots still count only the trained
    channels' weights (k * I floats), as the gradient op requires."""
    model = tflm_train.convert(models.tflite_model("mlp", per_tensor_dense=True),
                               {"weight_update": {"classifier": 0.5},
                                "optimizer": {"lr": 0.05, "momentum": 0.9}})
    info = read_training_info(model)
    (weights,) = [t for t in info.trainables if t.kind == 0]
    assert len(weights.scales) == 1 and weights.channels
    sg = tflite.read_model(model).subgraphs[0]
    out_channels, depth = (int(d) for d in sg.tensors[weights.variable].shape)
    assert len(weights.channels) < out_channels
    (velocity,) = [v for v in info.optimizer_state if tflite.name_of(sg.tensors[v]) ==
                   tflite.name_of(sg.tensors[weights.variable]) + "/velocity"]
    assert [int(d) for d in sg.tensors[velocity].shape] == [len(weights.channels) * depth]
    trainer = tflm_train.Trainer(model)
    before = trainer.trainable_weights()
    for x, y in _samples("mlp", 4):
        assert np.isfinite(trainer.step(x, y))
    after = trainer.trainable_weights()
    name = tflite.name_of(sg.tensors[weights.variable])
    frozen = [c for c in range(out_channels) if c not in weights.channels]
    np.testing.assert_array_equal(after[name][frozen], before[name][frozen])
