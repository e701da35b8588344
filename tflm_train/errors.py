"""Exceptions raised by tflm_train."""


class TflmTrainError(Exception):
    """A user-facing error: the message is one line naming what is wrong."""


class RuntimeModelError(TflmTrainError):
    """The native runtime rejected a model or failed while running it."""


class DataError(TflmTrainError, ValueError):
    """A data file or array is malformed (shape, dtype, labels, NaN)."""
