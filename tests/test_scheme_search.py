"""Automatic scheme search (tflm_train/scheme_search.py, `tflm-train scheme`)."""
import json

import numpy as np
import pytest

import models
import tflm_train
from tflm_train import cli
from tflm_train.scheme_search import BudgetError, analyze, choose, write_scheme

LR = 0.05


def _data(count=40, seed=0):
    """Samples whose label is the quadrant with the largest mean, in the cnn's
    input shape and class range (5 classes; class 4 unused)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (count, 8, 8, 1)).astype(np.float32)
    quadrants = x.reshape(count, 2, 4, 2, 4).mean(axis=(2, 4)).reshape(count, 4)
    return tflm_train.data.Dataset(x, np.argmax(quadrants, axis=1))


@pytest.fixture(scope="module")
def model():
    return models.plain_cnn()


@pytest.fixture(scope="module", params=["contribution", "fisher"])
def analysis(request, model):
    return analyze(model, _data(), method=request.param, seed=0, lr=LR, epochs=1)


def _peak(model, scheme):
    return tflm_train.plan(tflm_train.convert(model, scheme))["peak_ram_bytes"]


def _budgets(analysis, model):
    everything = _peak(model, {"preset": f"last-k:{len(analysis.layers)}"})
    return np.linspace(analysis.classifier_ram, everything + 256, 12).astype(int)


def test_chosen_scheme_fits_the_budget_per_the_planner(analysis, model):
    for budget in _budgets(analysis, model):
        result = choose(analysis, int(budget))
        assert result.peak_ram_bytes == _peak(model, result.scheme)
        assert result.peak_ram_bytes <= budget
        assert result.predicted_gain == pytest.approx(sum(c.gain for c in result.chosen))


def test_bigger_budget_never_predicts_less(analysis, model):
    gains = [choose(analysis, int(b)).predicted_gain for b in _budgets(analysis, model)]
    assert gains == sorted(gains)
    assert gains[-1] > 0  # the largest budget buys something over classifier-only


def test_unreachable_budget_names_the_minimum(model):
    minimum = _peak(model, {"preset": "classifier", "optimizer": {"lr": LR}})
    with pytest.raises(BudgetError) as e:
        tflm_train.search_scheme(model, _data(), minimum - 1, lr=LR)
    message = str(e.value)
    assert "\n" not in message
    assert f"classifier only needs {np.ceil(minimum / 102.4) / 10:.1f} KB ({minimum} B)" in message
    kb = float(message.split("needs ")[1].split(" KB")[0])
    assert kb * 1024 >= minimum  # the KB figure printed is enough
    result = tflm_train.search_scheme(model, _data(), int(kb * 1024), lr=LR, method="fisher")
    assert result.peak_ram_bytes <= kb * 1024


def test_written_scheme_converts_and_carries_its_evidence(analysis, model, tmp_path):
    budget = int(_budgets(analysis, model)[6])
    result = choose(analysis, budget)
    evidence_path = write_scheme(result, tmp_path / "found.json")
    assert evidence_path == tmp_path / "found.evidence.json"
    training = tflm_train.convert(model, tmp_path / "found.json")
    assert tflm_train.plan(training)["peak_ram_bytes"] == result.peak_ram_bytes <= budget
    evidence = json.loads(evidence_path.read_text())
    assert evidence["scheme"] == json.loads((tmp_path / "found.json").read_text())
    assert evidence["peak_ram_bytes"] == result.peak_ram_bytes
    assert [c["gain"] for c in evidence["chosen"]] == [c.gain for c in result.chosen]
    assert all(c["peak_ram_bytes"] > 0 for c in evidence["candidates"])


def test_fisher_ranking_is_deterministic_for_a_seed(model):
    def gains(seed):
        a = analyze(model, _data(), method="fisher", seed=seed, lr=LR, fisher_samples=8)
        return [c.gain for c in a.bias + a.weights]

    first = gains(3)
    assert first == gains(3)
    assert all(g >= 0 for g in first) and any(g > 0 for g in first)
    assert first != gains(4)  # other samples, other Fisher information


def test_cli_scheme(model, tmp_path, capsys):
    model_path, data_path = tmp_path / "m.tflite", tmp_path / "d.npz"
    model_path.write_bytes(model)
    data = _data()
    np.savez(data_path, x=data.x, y=data.y)
    out = tmp_path / "s.json"
    args = ["scheme", str(model_path), "--data", str(data_path), "--method", "fisher",
            "--lr", str(LR)]
    assert cli.main(args + ["--budget-kb", "64", "--out", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["scheme"] == json.loads(out.read_text())
    assert (tmp_path / "s.evidence.json").is_file()
    tflm_train.convert(model, out)

    assert cli.main(args + ["--budget-kb", "0.5", "--out", str(tmp_path / "no.json")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tflm-train: error: budget 0.5 KB") and err.count("\n") == 1
    assert not (tmp_path / "no.json").exists()

    assert cli.main(["scheme", str(model_path), "--data", str(tmp_path / "missing.npz"),
                     "--budget-kb", "64"]) == 1
    assert "no such data file" in capsys.readouterr().err
    assert cli.main(args + ["--budget-kb", "0"]) == 2


def test_fisher_reads_the_gradient_a_fused_mean_leaves(model, monkeypatch):
    """conv_b feeds a spatial MEAN whose gradient its own gradient op computes
    (no [H, W, C] gradient tensor exists): the Fisher figures equal those of
    the same model converted without that fusion, where dL/dy is a tensor."""
    from tflm_train.converter import build, graph, tflite
    from tflm_train.scheme_search import _output_gradient
    int8 = tflite.read_model(model)
    layers = graph.analyze(int8).layers
    trainer = tflm_train.Trainer(
        tflm_train.convert(model, {"preset": f"last-k:{len(layers)}"}))
    assert [_output_gradient(trainer, int8, layer)[1] for layer in layers[:-1]] == [1, 3 * 3]  # conv_b: [1, 3, 3, C]
    fused = analyze(model, _data(), method="fisher", seed=0, lr=LR, epochs=1).reference
    monkeypatch.setattr(build, "_FUSE_MEAN_GRADS", False)
    unfused = analyze(model, _data(), method="fisher", seed=0, lr=LR, epochs=1).reference
    for key in ("fisher_weights_per_layer", "fisher_bias_per_layer"):
        assert any(v > 0 for v in fused[key])
        np.testing.assert_allclose(fused[key], unfused[key], rtol=1e-5)
