"""Trained-state persistence in the device's two-slot format on the host
(tflm_train/state_store.py). The device side and the power-cut test are in
ops_cc/tests/training_session_test.cc, which also loads an image this
module wrote (ops_cc/tests/data/cnn_train.state)."""
import numpy as np
import pytest

import models
import tflm_train
from tflm_train import state_store

SCHEME = {"bias_update_layers": 2, "weight_update": {"conv_b": 0.5},
          "optimizer": {"lr": 0.05, "rounding": "stochastic"}}


def _samples(count=10):
    rng = np.random.default_rng(12)
    _, classes = models.SHAPES["cnn"]
    return [(rng.integers(-128, 128, (1, 8, 8, 1)).astype(np.int8), i % classes)
            for i in range(count)]


def test_saved_state_continues_like_an_unbroken_run():
    model = tflm_train.convert(models.plain_cnn(), SCHEME)
    samples = _samples()
    unbroken = tflm_train.Trainer(model)
    losses = [unbroken.step(x, y) for x, y in samples]

    trainer = tflm_train.Trainer(model)
    size = state_store.slot_bytes(trainer)
    image = bytearray([0xFF]) * (2 * size)
    assert not state_store.load_state(trainer, image, size)  # first boot
    resumed = [trainer.step(x, y) for x, y in samples[:4]]
    state_store.save_state(trainer, image, size)
    trainer.step(*samples[4])  # a step that the reboot loses
    state_store.save_state(trainer, image, size)  # the newer slot...
    image[size:size + 1] = b"\x00"  # ...made invalid: its magic is gone

    rebooted = tflm_train.Trainer(model)
    assert state_store.load_state(rebooted, image, size)
    resumed += [rebooted.step(x, y) for x, y in samples[4:]]
    assert resumed == losses
    assert rebooted.weights_sha256() == unbroken.weights_sha256()


def test_slots_alternate_and_the_newest_valid_one_loads():
    model = tflm_train.convert(models.plain_cnn(), SCHEME)
    trainer = tflm_train.Trainer(model)
    size = state_store.slot_bytes(trainer) + 16
    image = bytearray([0xFF]) * (2 * size)
    digests = []
    for x, y in _samples(3):
        trainer.step(x, y)
        state_store.save_state(trainer, image, size)
        digests.append(trainer.weights_sha256())
    # Three saves: slot 0, slot 1, slot 0 again (sequence 3).
    assert image[8:12] == (3).to_bytes(4, "little")
    assert image[size + 8:size + 12] == (2).to_bytes(4, "little")
    loaded = tflm_train.Trainer(model)
    assert state_store.load_state(loaded, image, size)
    assert loaded.weights_sha256() == digests[-1]
    image[state_store.HEADER_BYTES + 3] ^= 0x01  # corrupt slot 0's payload
    loaded = tflm_train.Trainer(model)
    assert state_store.load_state(loaded, image, size)
    assert loaded.weights_sha256() == digests[-2]


def test_another_models_state_does_not_load():
    trainer = tflm_train.Trainer(tflm_train.convert(models.plain_cnn(), SCHEME))
    size = state_store.slot_bytes(trainer)
    image = bytearray([0xFF]) * (2 * size)
    state_store.save_state(trainer, image, size)
    other = tflm_train.Trainer(tflm_train.convert(models.plain_cnn(), {"preset": "classifier"}))
    assert not state_store.load_state(other, image, size)
    with pytest.raises(tflm_train.DataError, match="2 slots of at least"):
        state_store.save_state(trainer, bytearray(10), 5)
