"""The new-classes example as a test (examples/new_classes.py): a model
pretrained on digits 0-4 learns digits 5-9 on the device with a fresh head;
imprinting alone is the cosine nearest-class-mean classifier numpy computes
on the same features, and fine-tuning after it improves on it."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

import new_classes as nc  # noqa: E402

import tflm_train  # noqa: E402


def test_fresh_head_learns_unseen_digits():
    split = nc.load_digits_split(seed=0)
    int8_model = nc.pretrain_int8(0, split["pretrain"])
    support, test = split["support"][5], split["test"]
    _, test_features = nc.tflm_run(int8_model, test.x, features=True)
    _, support_features = nc.tflm_run(int8_model, support.x, features=True)
    ncm = nc.ncm_cosine(support_features, support.y, test_features)

    imprint = tflm_train.Trainer(tflm_train.convert(int8_model, nc.scheme_for(
        "imprint only", 5, 0.01, 0)))
    nc.fit(imprint, support, epochs=1, seed=0)
    real = nc.real_predictions(imprint, test)
    assert np.mean(real == ncm) > 0.9  # int8 rows round the class means
    assert abs(np.mean(real == test.y) - np.mean(ncm == test.y)) < 0.03

    tuned = tflm_train.Trainer(tflm_train.convert(int8_model, nc.scheme_for(
        "imprint + FT", 5, 0.01, 0)))
    nc.fit(tuned, support, epochs=20, seed=0)
    exported = nc.tflm_run(tuned.export_inference_model(), test.x)
    assert exported.shape == (len(test), 5)
    accuracy = np.mean(np.argmax(exported, axis=1) == test.y)
    assert accuracy > 0.55  # chance is 0.2
    assert accuracy > np.mean(ncm == test.y)
