"""Shared pytest fixtures. The models themselves are built in tests/models.py."""
import os

# Before anything imports TensorFlow: Keras 2 for tfmot, quiet TF logs.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

import models  # noqa: E402


@pytest.fixture(scope="session", params=sorted(models.ARCHITECTURES))
def architecture(request):
    """Name of each small test architecture in turn (see models.SHAPES)."""
    return request.param


@pytest.fixture(scope="session")
def int8_model(architecture):
    """int8 .tflite bytes of `architecture` (cached per session)."""
    return models.tflite_model(architecture)
