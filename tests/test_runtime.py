"""The standalone runtime (host simulator) against the real TFLM.

Forward numerics: every intermediate tensor of our runtime must equal, byte
for byte, what the `tflite-micro` wheel (a compiled TFLM with its reference
kernels) computes for the same model and input.
"""
from pathlib import Path

import numpy as np
import pytest
from tflite_micro import runtime as tflm

import models
import tflm_parity
import tflm_train
from tflm_train import _native

ARENA = tflm_parity.ARENA
_tflm_interpreter = tflm_parity.tflm_interpreter
_random_input = tflm_parity.random_input


@pytest.mark.parametrize("float_io", [False, True], ids=["int8_io", "float_io"])
@pytest.mark.parametrize("seed", [0, 1])
def test_every_intermediate_tensor_matches_tflm(architecture, seed, float_io):
    model = models.tflite_model(architecture, seed, float_io)
    assert tflm_parity.assert_every_tensor_matches_tflm(model, samples=4, seed=seed) > 40


def test_per_tensor_fully_connected_weights(architecture):
    """FC weights quantized per tensor: forward bit-exact with TFLM, QAS
    uses the single scale, and training moves the weights."""
    model = models.tflite_model(architecture, per_tensor_dense=True)
    ours = _native.Interpreter(model, ARENA, preserve_all_tensors=True)
    ref = _tflm_interpreter(model)
    x = _random_input(ours.tensor_info(ours.inputs[0]), np.random.default_rng(5))
    ours.set_tensor(ours.inputs[0], x)
    ours.invoke()
    ref.set_input(x, 0)
    ref.invoke()
    np.testing.assert_array_equal(ours.get_tensor(ours.outputs[0]), ref.get_output(0))

    data = tflm_train.convert(model, {"preset": "classifier"})
    trainer = tflm_train.Trainer(data)
    weight = next(t for t in trainer.info.trainables if t.kind == tflm_train.converter.TrainableKind.WEIGHT)
    assert len(weight.scales) == 1
    before = trainer.weights_sha256()
    for i in range(5):
        trainer.step(x, i % models.SHAPES[architecture][1])
    assert trainer.weights_sha256() != before


def test_training_model_infers_like_tflm_before_and_after_training(architecture):
    """Infer mode of the training graph = the inference model on TFLM, both
    for the original weights and, after training, for the exported model
    (converted again: export may have rescaled the output range)."""
    model = models.tflite_model(architecture)
    trainer = tflm_train.Trainer(tflm_train.convert(model, {"preset": "last-k:2"}))
    rng = np.random.default_rng(3)
    xs = [rng.integers(-128, 128, size=trainer.input_shape).astype(np.int8) for _ in range(6)]
    ref = _tflm_interpreter(model)
    for x in xs:
        ref.set_input(x, 0)
        ref.invoke()
        np.testing.assert_array_equal(trainer.predict(x), ref.get_output(0))

    _, classes = models.SHAPES[architecture]
    before = trainer.weights_sha256()
    for i, x in enumerate(xs * 3):
        trainer.step(x, i % classes)
    assert trainer.weights_sha256() != before  # the weights did move

    exported_model = trainer.export_inference_model()
    exported = _tflm_interpreter(exported_model)
    again = tflm_train.Trainer(tflm_train.convert(exported_model, {"preset": "last-k:2"}))
    for x in xs:
        exported.set_input(x, 0)
        exported.invoke()
        np.testing.assert_array_equal(again.predict(x), exported.get_output(0))


def test_reset_restores_initial_weights():
    trainer = tflm_train.Trainer(tflm_train.convert(models.plain_cnn(), {"preset": "classifier"}))
    x = np.zeros(trainer.input_shape, np.int8)
    initial = trainer.weights_sha256()
    first = trainer.step(x, 1)
    for _ in range(5):
        trainer.step(x, 1)
    assert trainer.weights_sha256() != initial
    trainer.reset()
    assert trainer.weights_sha256() == initial
    assert trainer.step(x, 1) == first  # same weights, same sample, same loss


def test_arena_too_small_is_a_clear_error():
    data = tflm_train.convert(models.plain_cnn(), {"preset": "classifier"})
    with pytest.raises(tflm_train.RuntimeModelError, match="arena"):
        tflm_train.Trainer(data, arena_size=512)


@pytest.mark.parametrize("cut", [8, 100, 1000, -16])
def test_truncated_model_is_rejected(cut):
    data = tflm_train.convert(models.plain_cnn(), {"preset": "classifier"})
    with pytest.raises(RuntimeError):
        _native.Interpreter(data[:cut], ARENA)


def test_unknown_custom_op_is_named():
    from tflm_train.converter.tflite import read_model, write_model

    model = read_model(tflm_train.convert(models.plain_cnn(), {"preset": "classifier"}))
    for code in model.operatorCodes:
        if code.customCode == b"TFLMTRAIN_SOFTMAX_CROSS_ENTROPY_V2":
            code.customCode = b"TFLMTRAIN_NOT_AN_OP"
    with pytest.raises(RuntimeError, match="TFLMTRAIN_NOT_AN_OP"):
        _native.Interpreter(write_model(model), ARENA)


def test_wrong_input_shape_and_label_are_rejected():
    trainer = tflm_train.Trainer(tflm_train.convert(models.plain_cnn(), {"preset": "classifier"}))
    with pytest.raises(tflm_train.DataError, match="shape"):
        trainer.step(np.zeros((3, 3, 1), np.int8), 0)
    with pytest.raises(tflm_train.DataError, match="label"):
        trainer.step(np.zeros(trainer.input_shape, np.int8), trainer.num_classes)
    # Labels that only look like integers are not coerced.
    for label in (1.5, "1", True, None):
        with pytest.raises(tflm_train.DataError, match="not an integer class index"):
            trainer.step(np.zeros(trainer.input_shape, np.int8), label)


@pytest.mark.parametrize("float_io", [False, True])
def test_non_finite_samples_are_rejected(float_io):
    """NaN became the zero point and trained silently (float-input models)."""
    trainer = tflm_train.Trainer(tflm_train.convert(models.plain_cnn(float_io=float_io),
                                                    {"preset": "classifier"}))
    before = trainer.weights_sha256()
    for bad in (np.nan, np.inf):
        sample = np.zeros(trainer.input_shape, np.float32)
        sample.flat[3] = bad
        with pytest.raises(tflm_train.DataError, match="NaN, infinity"):
            trainer.step(sample, 1)
    assert trainer.weights_sha256() == before


@pytest.mark.parametrize("name", ["sine", "cnn"])
def test_an_arena_of_arena_used_bytes_allocates(name):
    """arena_used_bytes is what the firmware sizes its arena by: it must
    cover the planner's work arrays too, which outgrow the planned tensors
    of a tiny model (hello_world-sized: it failed at any RAM budget)."""
    source = models.regression_model("sine") if name == "sine" else models.plain_cnn()
    scheme = {"preset": "classifier", "loss": "mse"} if name == "sine" else {"preset": "last-k:2"}
    model = tflm_train.convert(source, scheme)
    used = tflm_train.Trainer(model).memory()["arena_used_bytes"]
    _native.Interpreter(model, used)
    with pytest.raises(RuntimeError, match="arena too small"):
        _native.Interpreter(model, used - 16)


def _malformed(mutate):
    """A converted training model (cnn, last-k:2) changed by `mutate(model)`."""
    from tflm_train.converter.tflite import read_model, write_model

    model = read_model(tflm_train.convert(models.plain_cnn(), {"preset": "last-k:2"}))
    mutate(model)
    return write_model(model)


def _ops_named(model, name):
    from tflm_train.converter.tflite import op_name

    return [op for op in model.subgraphs[0].operators if op_name(model, op) == name]


def test_window_options_that_overflow_int_are_rejected():
    """The audit's UB: dilation 2^30 passed validation (checked in int64) and
    overflowed int index arithmetic in the conv kernels, forward and backward."""
    from flatbuffers import flexbuffers

    def huge_forward_dilation(model):
        _ops_named(model, "CONV_2D")[-1].builtinOptions.dilationHFactor = 1 << 30

    def huge_gradient_dilation(model):
        op = _ops_named(model, "TFLMTRAIN_CONV_2D_GRAD")[0]
        options = flexbuffers.Loads(bytes(op.customOptions))
        options["dilation_h"] = 1 << 30
        op.customOptions = np.frombuffer(bytes(flexbuffers.Dumps(options)), np.uint8)

    for mutate, op in ((huge_forward_dilation, "CONV_2D"),
                       (huge_gradient_dilation, "TFLMTRAIN_CONV_2D_GRAD")):
        with pytest.raises(RuntimeError, match=f"{op}: invalid window"):
            _native.Interpreter(_malformed(mutate), ARENA)


@pytest.mark.parametrize("scale", [1e-40, 0.0, -1.0, float("nan"), float("inf")])
def test_denormal_zero_and_non_finite_scales_are_rejected(scale):
    def bad_filter_scale(model):
        op = _ops_named(model, "FULLY_CONNECTED")[0]
        model.subgraphs[0].tensors[op.inputs[1]].quantization.scale[0] = scale

    # The model reader refuses it before any kernel divides by it.
    with pytest.raises(RuntimeError, match=r"scale 0 \(.*\) is not a finite positive normal"):
        _native.Interpreter(_malformed(bad_filter_scale), ARENA)


def test_fuzz_corpus_is_current():
    """The fuzzer's seeds must load, or fuzzing only exercises the reader's
    rejections (regenerate with ops_cc/fuzz/make_corpus.py)."""
    corpus = sorted((Path(__file__).resolve().parent.parent / "ops_cc" / "fuzz" / "corpus")
                    .glob("*.tflite"))
    assert len(corpus) >= 7
    for path in corpus:
        trainer = tflm_train.Trainer(path.read_bytes())
        x = np.zeros(trainer.input_shape, np.float32)
        trainer.step(x, 0 if trainer.is_classifier else None)


def test_malformed_training_models_give_one_line_errors_on_every_host_path():
    """Every host entry point that opens a training model runs the device's
    checks first: a corrupt file is a TflmTrainError with a one-line message
    there, never a traceback from a Python reader (the audit found 5.5 % of
    malformed models raising struct.error, IndexError, TypeError ...)."""
    from tflm_train import converter

    good = tflm_train.convert(models.plain_cnn(), {"preset": "last-k:2"})
    rng = np.random.default_rng(17)
    entry_points = (converter.read_training_info, converter.export_inference_model,
                    tflm_train.plan, tflm_train.Trainer,
                    lambda data: converter.set_hparams(data, lr=0.1))
    refused = 0
    for _ in range(150):
        data = bytearray(good)
        for i in rng.integers(0, len(data), int(rng.integers(1, 6))):
            data[i] = int(rng.integers(0, 256))
        if rng.random() < 0.2:
            data = data[:int(rng.integers(8, len(data)))]
        for entry in entry_points:
            try:
                entry(bytes(data))
            except tflm_train.TflmTrainError as e:
                assert "\n" not in str(e) and str(e)
                refused += 1
    assert refused > 0


@pytest.mark.parametrize("rounding", ["stochastic", "nearest"])
def test_training_continues_from_to_bytes_exactly(rounding):
    """to_bytes (train --out) keeps the whole trained state — weights, the
    stochastic-rounding rng and the output range — so N steps, save, reload
    and M more equal N + M unbroken steps bit for bit."""
    model = tflm_train.convert(models.plain_cnn(), {
        "bias_update_layers": 2, "weight_update": {"conv_b": 0.5},
        "optimizer": {"lr": 0.05, "rounding": rounding}})
    rng = np.random.default_rng(8)
    _, classes = models.SHAPES["cnn"]
    samples = [(rng.integers(-128, 128, (1, 8, 8, 1)).astype(np.int8), i % classes)
               for i in range(12)]
    unbroken = tflm_train.Trainer(model)
    losses = [unbroken.step(x, y) for x, y in samples]

    first = tflm_train.Trainer(model)
    resumed_losses = [first.step(x, y) for x, y in samples[:5]]
    second = tflm_train.Trainer(first.to_bytes())
    resumed_losses += [second.step(x, y) for x, y in samples[5:]]
    assert resumed_losses == losses
    assert second.weights_sha256() == unbroken.weights_sha256()
    np.testing.assert_array_equal(second.output_range(), unbroken.output_range())
