"""The one exception type the converter raises for bad input."""

from tflm_train.errors import TflmTrainError


class ConversionError(TflmTrainError, ValueError):
    """A model, scheme or training file the converter cannot handle.

    The message is one line and names the culprit (operator, tensor, layer,
    file or field).
    """
