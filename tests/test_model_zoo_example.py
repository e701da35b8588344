"""The model zoo example (examples/model_zoo.py) in its quick mode: ResNet-8
(every scheme converts today) and the LSTM classifier (refused until the
runtime has an LSTM kernel). Whatever each cell reports must be true: the
int8 model's tensors equal the tflite-micro wheel's, a converted scheme's
loss falls and its exported model runs in the wheel, the firmware trains
like the host simulator, and a refusal is the converter's one-line message
naming what it refuses."""
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

import model_zoo as zoo  # noqa: E402

from tflm_train.firmware import TOOLS  # noqa: E402

FIRMWARE = all(shutil.which(t) for t in TOOLS)


@pytest.fixture(scope="module")
def quick_results():
    settings = zoo.settings_for(quick=True, firmware=FIRMWARE)
    return settings, zoo.run(list(zoo.QUICK["models"]), settings, log=lambda *_: None)


def test_every_reported_cell_is_true(quick_results):
    settings, results = quick_results
    assert list(results) == ["resnet8", "lstm"]
    for name, r in results.items():
        parity = r["parity"]
        assert "differs" not in parity, (name, parity)
        if "tensors_equal" in parity:
            assert parity["tensors_equal"] > 10
        assert set(r["schemes"]) == {"classifier", "last-k:2", "sparse"}
        for scheme, cell in r["schemes"].items():
            where = (name, scheme)
            if not cell["converts"]:
                message = cell["refusal"]
                assert "\n" not in message and ("operator" in message or "layer" in message), \
                    where
                continue
            assert "error" not in cell, (where, cell.get("error"))
            t = cell["training"]
            assert t["finite"] and t["falls"] and t["steps"] == settings.steps, (where, t)
            assert cell["export"]["tensors_equal"] > 10, where
            assert 0 < cell["plan"]["peak_ram_bytes"]
            firmware = cell.get("firmware")
            if firmware and firmware["ran"]:
                assert firmware["weights_equal"] and firmware["losses_equal"], where
                assert 0 < firmware["ram_bytes"] <= zoo.RAM_BUDGET_KB * 1024
                assert firmware["instructions_per_train_step"] \
                    > firmware["instructions_per_infer_step"] > 0


def test_what_runs_today(quick_results):
    """ResNet-8 has only operators the runtime always ran: parity holds and
    every scheme trains; one firmware run (the quick mode's) is on it."""
    _, results = quick_results
    resnet = results["resnet8"]
    assert resnet["new_ops"] == []
    assert resnet["parity"]["tensors_equal"] > 30
    cells = resnet["schemes"]
    assert all(cell["converts"] and "training" in cell for cell in cells.values())
    # The permuted labels start far off; even 100 steps at lr 0.01 cut the loss.
    assert cells["classifier"]["training"]["loss_last"] \
        < cells["classifier"]["training"]["loss_first"] - 0.1
    if FIRMWARE:
        assert cells["classifier"]["firmware"]["ran"]
    lstm = results["lstm"]
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in lstm["new_ops"]


def test_the_table_has_a_row_per_model_and_scheme(quick_results):
    settings, results = quick_results
    text = zoo.report(results, settings, quick=True)
    rows = [[c.strip() for c in line.split(" | ")] for line in text.splitlines()
            if line.startswith(("| ResNet-8", "| LSTM"))]
    model_rows, scheme_rows = rows[:2], rows[2:]
    assert len(model_rows) == 2 and len(scheme_rows) == 6
    for row in scheme_rows:
        converts = row[3]
        assert converts == "yes" or converts.startswith("refused: "), row
        if row[0].startswith("| ResNet-8"):
            assert converts == "yes" and row[5].startswith("yes, ")  # the loss fell


def test_a_rerun_reads_the_cache_of_the_same_code(quick_results, tmp_path):
    _, results = quick_results
    path = tmp_path / "zoo.json"
    zoo.save_cache(path, "key", results)
    assert zoo.load_cache(path, "other code") == {}
    cache = zoo.load_cache(path, "key")
    lines = []
    again = zoo.run(list(results), zoo.settings_for(quick=True), cache, log=lines.append)
    assert again == results and lines == [f"{name}: cached" for name in results]
