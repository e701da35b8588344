"""The Keras-style API: Trainer.fit / Trainer.evaluate over a data set give
exactly what tflm_train.train / tflm_train.evaluate give, and the per-sample
call is Trainer.evaluate_sample."""
from pathlib import Path

import numpy as np
import pytest

import tflm_train

MODEL = Path(__file__).resolve().parent.parent / "ops_cc" / "tests" / "data" / "cnn_train.tflite"


def _data(trainer, count=10, seed=4):
    rng = np.random.default_rng(seed)
    return tflm_train.Dataset(
        rng.normal(0, 1, (count,) + trainer.input_shape[1:]).astype(np.float32),
        rng.integers(0, trainer.num_classes, count))


def test_exports():
    for name in ("Dataset", "train", "evaluate", "Trainer", "plan"):
        assert name in tflm_train.__all__ and hasattr(tflm_train, name)


@pytest.mark.parametrize("kwargs", [{"epochs": 2, "seed": 3}, {"steps": 7, "seed": 1}])
def test_fit_and_evaluate_equal_the_functions(tmp_path, kwargs):
    model = MODEL.read_bytes()
    keras_style, functional = tflm_train.Trainer(model), tflm_train.Trainer(model)
    data = _data(functional)
    quiet = {"progress": False, "log": lambda *_: None}

    fitted = keras_style.fit(data, **kwargs, **quiet)
    assert fitted == tflm_train.train(functional, data, **kwargs, **quiet)
    assert keras_style.weights_sha256() == functional.weights_sha256()

    test = _data(functional, seed=9)
    assert keras_style.evaluate(test) == tflm_train.evaluate(functional, test)
    np.savez(tmp_path / "test.npz", x=test.x, y=test.y)  # a DATA.npz path works too
    assert keras_style.evaluate(tmp_path / "test.npz") == tflm_train.evaluate(functional, test)


def test_fit_defaults_to_one_epoch():
    trainer = tflm_train.Trainer(MODEL.read_bytes())
    data = _data(trainer)
    result = trainer.fit(data, progress=False, log=lambda *_: None)
    assert result["steps"] == len(data) and len(result["epochs"]) == 1


def test_evaluate_sample_is_one_infer_step():
    trainer = tflm_train.Trainer(MODEL.read_bytes())
    data = _data(trainer, count=1)
    before = trainer.weights_sha256()
    loss, output = trainer.evaluate_sample(data.x[0], data.y[0])
    assert trainer.weights_sha256() == before
    assert loss == tflm_train.evaluate(trainer, data)["loss"]
    assert output.dtype == np.int8


def test_intermediate_tensors_with_preserve_all_tensors():
    model = MODEL.read_bytes()
    plain, preserved = tflm_train.Trainer(model), tflm_train.Trainer(model, preserve_all_tensors=True)
    data = _data(plain, count=3)
    for x, y in zip(data.x, data.y):
        assert plain.step(x, y) == preserved.step(x, y)  # same results
    assert plain.weights_sha256() == preserved.weights_sha256()
    index = preserved.tensor_index(preserved.tensor_info(preserved.info.input)["name"])
    assert index == preserved.info.input
    np.testing.assert_array_equal(preserved.tensor(index), preserved.prepare_input(data.x[-1]))


def test_result_records_are_typed_and_read_as_mappings():
    """plan(), train() and run_firmware() return dataclasses whose fields
    are also readable as a mapping, and to_dict() is plain JSON."""
    import dataclasses
    import json

    import models

    model = tflm_train.convert(models.tflite_model("cnn"), {"preset": "last-k:2"})
    report = tflm_train.plan(model)
    assert isinstance(report, tflm_train.Plan) and dataclasses.is_dataclass(report)
    assert report.peak_ram_bytes == report["peak_ram_bytes"] == (
        report.peak_arena_bytes + report.persistent_bytes)
    assert dict(report) == report.to_dict() and "timeline" in report
    assert json.loads(json.dumps(report.to_dict()))["flash_bytes"] == len(model)
    with pytest.raises(KeyError):
        report["no_such_field"]
    trainer = tflm_train.Trainer(model)
    rng = np.random.default_rng(0)
    shape = tuple(trainer.input_shape[1:])
    data = tflm_train.Dataset(rng.normal(0, 1, (4,) + shape).astype(np.float32),
                              rng.integers(0, trainer.num_classes, 4))
    history = trainer.fit(data, epochs=1, progress=False, log=lambda *_: None)
    assert isinstance(history, tflm_train.TrainResult)
    assert history.steps == len(history["loss_history"]) == 4
    assert history.weights_sha256 == trainer.weights_sha256()
