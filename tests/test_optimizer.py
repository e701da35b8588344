"""Learning-rate schedules, momentum and mini-batches (scheme "optimizer"):
the device's schedule against its formula in float64, and whole training
steps against tf_keras' SGD optimizer on the same real-valued classifier."""
import math

import numpy as np
import pytest

import models
import tflm_train
from tflm_train._native import testing as K
from tflm_train.converter import ConversionError, Scheme, tflite

KINDS = {"constant": 0, "cosine": 1, "step": 2}


def _factor(kind, warmup, decay, alpha, rate, t):
    """docs/scheme.md's f(t), in float64."""
    if t < warmup:
        return (t + 1) / warmup
    after = t - warmup
    if kind == "cosine":
        return alpha + (1 - alpha) * 0.5 * (1 + math.cos(math.pi * min(after, decay) / decay))
    if kind == "step":
        return rate ** (after // decay)
    return 1.0


@pytest.mark.parametrize("kind,warmup,decay,alpha,rate", [
    ("constant", 0, 1, 0.0, 0.1), ("constant", 7, 1, 0.0, 0.1), ("cosine", 0, 50, 0.0, 0.1),
    ("cosine", 10, 90, 0.1, 0.1), ("cosine", 3, 1, 0.0, 0.1), ("step", 0, 4, 0.0, 0.5),
    ("step", 5, 30, 0.0, 0.1)])
def test_lr_factor_follows_the_documented_formula(kind, warmup, decay, alpha, rate):
    for t in list(range(0, 200)) + [10**6, 2**31 - 1]:
        got = K.lr_factor(KINDS[kind], warmup, decay, np.float32(alpha), np.float32(rate), t)
        want = _factor(kind, warmup, decay, float(np.float32(alpha)), float(np.float32(rate)), t)
        assert abs(got - want) <= 3e-7 * max(1.0, abs(want)) + 1e-30, (t, got, want)


def test_cos_pi_and_sqrt_are_accurate():
    u = np.linspace(0, 1, 100001, dtype=np.float32)
    assert np.max(np.abs(K.cos_pi(u) - np.cos(np.pi * u.astype(np.float64)))) < 3e-7
    x = np.concatenate([np.geomspace(1e-30, 1e30, 20001), np.arange(1, 5000)]).astype(np.float32)
    got = K.sqrt_f(x).astype(np.float64)
    want = np.sqrt(x.astype(np.float64))
    assert np.max(np.abs(got - want) / want) <= 2**-23  # one ulp
    assert K.sqrt_f(np.float32(0)) == 0 and K.sqrt_f(np.float32(-1)) == 0


class _KerasSchedule:
    """f(t) as a tf.keras LearningRateSchedule."""

    @staticmethod
    def make(lr, opt):
        import tensorflow as tf

        class Schedule(tf.keras.optimizers.schedules.LearningRateSchedule):
            def __call__(self, step):
                t = tf.cast(step, tf.float64)
                w = float(opt.get("warmup_steps", 0))
                d = float(opt.get("decay_steps", 1))
                kind = opt.get("schedule", "constant")
                after = t - w
                if kind == "cosine":
                    a = opt.get("alpha", 0.0)
                    f = a + (1 - a) * 0.5 * (1 + tf.cos(math.pi * tf.minimum(after, d) / d))
                elif kind == "step":
                    f = tf.pow(tf.constant(opt.get("decay_rate", 0.1), tf.float64),
                               tf.floor(after / d))
                else:
                    f = tf.constant(1.0, tf.float64)
                if w > 0:
                    f = tf.where(t < w, (t + 1) / w, f)
                return tf.cast(lr * f, tf.float32)

            def get_config(self):
                return {}

        return Schedule()


@pytest.mark.parametrize("per_tensor_dense", [False, True])
@pytest.mark.parametrize("opt", [
    {"momentum": 0.9},
    {"batch_size": 4},
    {"momentum": 0.5, "batch_size": 3, "schedule": "cosine", "warmup_steps": 1,
     "decay_steps": 3},
    {"schedule": "step", "decay_steps": 6, "decay_rate": 0.5, "momentum": 0.7},
], ids=["momentum", "batch4", "cosine-momentum-batch3", "step-momentum"])
def test_classifier_updates_match_keras_sgd(opt, per_tensor_dense):
    """Every update of the classifier preset against tf.keras.optimizers.SGD
    (momentum, learning-rate schedule) on a Dense layer that holds the
    device's current real weights, fed the same real features as mini-batches
    of batch_size consecutive samples: the int8 weights land on Keras'
    weights divided by s_w, rounded (nearest) and saturated to +-127, within
    one unit at rounding ties; Keras' velocity (its own state) and ours
    follow the same recurrence."""
    import tensorflow as tf

    lr = 0.05
    model = models.tflite_model("mlp", per_tensor_dense=per_tensor_dense)
    training = tflm_train.convert(model, {"preset": "classifier", "optimizer": dict(
        opt, lr=lr, rounding="nearest")})
    trainer = tflm_train.Trainer(training)
    head = models.output_layer(training, trainer)
    s_x, s_w, w_name, b_name = head.s_x, head.s_w, head.weight_name, head.bias_name
    rng = np.random.default_rng(7)
    samples = rng.integers(-128, 128, (24,) + tuple(trainer.input_shape[1:])).astype(np.int8)
    labels = rng.integers(0, trainer.num_classes, len(samples))
    features = head.features(trainer, samples)  # independent of the classifier
    start = trainer.trainable_weights()
    kernel = tf.Variable(np.zeros(start[w_name].shape[::-1], np.float32))
    bias = tf.Variable(np.zeros(start[b_name].shape, np.float32))
    sgd = tf.keras.optimizers.SGD(_KerasSchedule.make(lr, opt), momentum=opt.get("momentum", 0))
    batch = opt.get("batch_size", 1)
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    moved = 0.0
    for first in range(0, len(samples), batch):
        current = trainer.trainable_weights()
        kernel.assign((current[w_name].astype(np.float32) * s_w[:, None]).T)
        bias.assign(current[b_name].astype(np.float32) * (s_x * s_w))
        for sample, label in zip(samples[first:first + batch], labels[first:first + batch]):
            trainer.step(sample, int(label))
        with tf.GradientTape() as tape:
            logits = tf.matmul(np.array(features[first:first + batch]), kernel) + bias
            loss = loss_fn(labels[first:first + batch], logits)
        sgd.apply_gradients(zip(tape.gradient(loss, [kernel, bias]), [kernel, bias]))
        got = trainer.trainable_weights()
        want_w = np.clip(kernel.numpy().T / s_w[:, None], -127, 127)
        want_b = bias.numpy() / (s_x * s_w)
        assert np.max(np.abs(got[w_name] - want_w)) <= 1.0, first
        assert np.max(np.abs(got[b_name] - want_b)) <= 1.0, first
        assert np.mean(got[w_name] == np.round(want_w)) > 0.97, first
        moved += np.mean(got[w_name] != current[w_name])
    assert moved / (len(samples) // batch) > 0.1  # the updates were not trivially zero


def test_trailing_partial_batch_is_not_applied():
    training = tflm_train.convert(models.tflite_model("cnn"), {
        "preset": "last-k:2", "optimizer": {"batch_size": 4, "lr": 0.1}})
    trainer = tflm_train.Trainer(training)
    rng = np.random.default_rng(1)
    shape = tuple(trainer.input_shape[1:])
    for k in range(7):
        trainer.step(rng.integers(-128, 128, shape).astype(np.int8), k % trainer.num_classes)
        if k == 3:
            after_first_batch = trainer.weights_sha256()
        if k in (0, 1, 2):
            assert trainer.weights_sha256() == tflm_train.Trainer(training).weights_sha256()
    assert trainer.weights_sha256() == after_first_batch  # samples 4-6 only accumulate
    step = trainer.state_tensor(trainer.info.step)
    assert step.tolist() == [7]


def test_plan_counts_the_optimizer_state_and_convert_enforces_a_budget():
    model = models.tflite_model("cnn")
    base = {"preset": "last-k:2"}
    plain = tflm_train.plan(tflm_train.convert(model, base))
    rich = tflm_train.convert(model, dict(base, optimizer={"momentum": 0.9, "batch_size": 8}))
    report = tflm_train.plan(rich)
    info = tflm_train.converter.read_training_info(rich)
    # Elements of every trained tensor (last-k trains all channels): one
    # float32 velocity and one accumulator each.
    sizes = [int(np.prod(s)) for s in _trained_shapes(rich, info)]
    assert report["state_breakdown"]["momentum"] == 4 * sum(sizes)
    assert report["state_breakdown"]["batch_accumulators"] == 4 * sum(sizes)
    assert report["state_breakdown"]["step_counter"] == 4
    assert plain["state_breakdown"]["momentum"] == plain["state_breakdown"]["batch_accumulators"] == 0
    assert report["peak_ram_bytes"] - plain["peak_ram_bytes"] >= 8 * sum(sizes)
    with pytest.raises(ConversionError, match=r"ram_budget is 4000 bytes but a training step "
                                              rf"needs {report['peak_ram_bytes']} .*momentum "
                                              rf"{4 * sum(sizes)}"):
        tflm_train.convert(model, dict(base, optimizer={"momentum": 0.9, "batch_size": 8},
                                       ram_budget=4000))
    tflm_train.convert(model, dict(base, ram_budget=plain["peak_ram_bytes"]))


def _trained_shapes(training, info):
    sg = tflite.read_model(training).subgraphs[0]
    return [tuple(int(d) for d in sg.tensors[t.variable].shape) for t in info.trainables]


def test_resuming_from_to_bytes_equals_an_unbroken_run():
    """Step counter, accumulators, velocities and imprinting sums travel
    with the weights."""
    scheme = {"preset": "last-k:2", "head": {"num_classes": 3, "init": "imprint", "shots": 2},
              "optimizer": {"momentum": 0.8, "batch_size": 3, "schedule": "cosine",
                            "warmup_steps": 1, "decay_steps": 4}}
    training = tflm_train.convert(models.tflite_model("cnn"), scheme)
    rng = np.random.default_rng(3)
    shape = tuple(tflm_train.Trainer(training).input_shape[1:])
    samples = rng.integers(-128, 128, (20,) + shape).astype(np.int8)
    labels = rng.integers(0, 3, 20)
    unbroken = tflm_train.Trainer(training)
    for s, y in zip(samples, labels):
        unbroken.step(s, int(y))
    for cut in (4, 7, 11):
        first = tflm_train.Trainer(training)
        for s, y in zip(samples[:cut], labels[:cut]):
            first.step(s, int(y))
        resumed = tflm_train.Trainer(first.to_bytes())
        for s, y in zip(samples[cut:], labels[cut:]):
            resumed.step(s, int(y))
        assert resumed.weights_sha256() == unbroken.weights_sha256(), cut
        for index in unbroken.info.optimizer_state:
            np.testing.assert_array_equal(resumed.state_tensor(index),
                                          unbroken.state_tensor(index))


@pytest.mark.parametrize("field,value,message", [
    ("momentum", 1.0, r"optimizer.momentum' must be a number in \[0, 1\)"),
    ("batch_size", 0, "optimizer.batch_size' must be an integer >= 1"),
    ("schedule", "linear", "optimizer.schedule' must be one of constant, cosine, step"),
    ("decay_steps", 0, "optimizer.decay_steps' must be an integer >= 1"),
    ("decay_rate", 0.0, r"optimizer.decay_rate' must be a number in \(0, 1\]"),
    ("alpha", 1.5, r"optimizer.alpha' must be a number in \[0, 1\]"),
])
def test_bad_optimizer_fields_are_named(field, value, message):
    with pytest.raises(ConversionError, match=message):
        Scheme.from_dict({"preset": "classifier", "optimizer": {field: value}})
