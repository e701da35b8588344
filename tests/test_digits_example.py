"""The adaptation example as a test: on-device training must recover
accuracy on the shifted digits domain (examples/digits_adaptation.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

import digits_adaptation  # noqa: E402

import tflm_train  # noqa: E402
from tflm_train.training import evaluate, train  # noqa: E402


def test_host_training_adapts_to_the_shifted_domain():
    _, int8_model, target_train, target_test = digits_adaptation.prepare(seed=0)
    scheme, _ = digits_adaptation.SCHEMES["sparse"]
    trainer = tflm_train.Trainer(tflm_train.convert(
        int8_model, dict(scheme, optimizer={"type": "sgd", "lr": digits_adaptation.LR})))
    before = evaluate(trainer, target_test)
    history = train(trainer, target_train, epochs=2, seed=0, progress=False,
                    log=lambda *_: None)
    after = evaluate(trainer, target_test)
    # The shift makes the pretrained model near chance (10 classes); two
    # epochs of the sparse scheme must recover most of it.
    assert before["accuracy"] < 0.3
    assert after["accuracy"] > before["accuracy"] + 0.4
    assert after["loss"] < before["loss"]
    losses = history["loss_history"]
    assert sum(losses[-200:]) < sum(losses[:200]) / 2
