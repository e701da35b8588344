"""Reading and writing .tflite flatbuffers with TensorFlow's generated schema.

TensorFlow ships the generated object API for the stock TFLite schema
(`tensorflow/lite/python/schema_py_generated.py`). Importing it through the
`tensorflow` package would import all of TensorFlow (seconds), so the module
is loaded straight from its file; it only needs `flatbuffers` and numpy.
"""
import functools
import importlib.util
import os
import struct

import flatbuffers
import numpy as np

from .errors import ConversionError

TFLITE_FILE_IDENTIFIER = b"TFL3"
# TFLite aligns constant buffer data like this (TFLM reads it in place).
BUFFER_ALIGNMENT = 16

# TensorType values used here.
FLOAT32, INT32, UINT8, INT16, INT8 = 0, 2, 3, 7, 9
TYPE_NAMES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64",
              6: "bool", 7: "int16", 9: "int8", 10: "float64"}
NUMPY_TYPES = {FLOAT32: np.float32, INT32: np.int32, INT16: np.int16, INT8: np.int8}


@functools.cache
def schema():
    """TensorFlow's generated TFLite schema module (`schema_py_generated`)."""
    spec = importlib.util.find_spec("tensorflow")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(root, "lite", "python", "schema_py_generated.py")
        if os.path.exists(path):
            file_spec = importlib.util.spec_from_file_location("tflm_train_tflite_schema", path)
            module = importlib.util.module_from_spec(file_spec)
            file_spec.loader.exec_module(module)
            return module
    raise ImportError("reading .tflite files needs tensorflow "
                      "(tensorflow/lite/python/schema_py_generated.py)")


@functools.cache
def builtin_names():
    """BuiltinOperator value -> name."""
    ops = schema().BuiltinOperator
    return {v: k for k, v in vars(ops).items() if not k.startswith("_")}


def read_model(data):
    """Unpacks .tflite bytes into a mutable `ModelT`."""
    data = bytearray(data)  # numpy fields of the ModelT are views of it: keep them writable
    if len(data) < 8 or bytes(data[4:8]) != TFLITE_FILE_IDENTIFIER:
        raise ConversionError("not a .tflite flatbuffer (file identifier is not TFL3)")
    try:
        return schema().ModelT.InitFromPackedBuf(data, 0)
    except (struct.error, IndexError, ValueError, TypeError) as e:
        # The generated reader does not verify offsets: a truncated or corrupt
        # file surfaces as a failed unpack somewhere inside it.
        raise ConversionError(f"not a valid .tflite flatbuffer: truncated or corrupt "
                              f"({len(data)} bytes; {e})") from None


class _AlignedBuffer:
    """Packs a BufferT with its data aligned like TFLite's own writer does."""

    def __init__(self, buffer):
        self._buffer = buffer

    def Pack(self, builder):  # noqa: N802 - the generated API's spelling
        s = schema()
        data = None
        if self._buffer.data is not None and len(self._buffer.data):
            payload = np.asarray(self._buffer.data, dtype=np.uint8).tobytes()
            builder.StartVector(1, len(payload), BUFFER_ALIGNMENT)
            builder.head -= len(payload)
            builder.Bytes[builder.head:builder.head + len(payload)] = payload
            data = builder.EndVector()
        s.BufferStart(builder)
        if data is not None:
            s.BufferAddData(builder, data)
        s.BufferAddOffset(builder, self._buffer.offset)
        s.BufferAddSize(builder, self._buffer.size)
        return s.BufferEnd(builder)


def write_model(model):
    """Packs a `ModelT` into .tflite bytes (buffer data 16-byte aligned)."""
    buffers = model.buffers
    model.buffers = [_AlignedBuffer(b) for b in buffers]
    try:
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=TFLITE_FILE_IDENTIFIER)
    finally:
        model.buffers = buffers
    return bytes(builder.Output())


def op_name(model, op):
    """The builtin operator name, or the custom code of a CUSTOM operator."""
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    if builtin == schema().BuiltinOperator.CUSTOM:
        return _text(code.customCode)
    return builtin_names().get(builtin, f"BUILTIN_{builtin}")


def name_of(obj):
    """The `name` of a tensor, metadata entry, ... as str."""
    return _text(obj.name)


def _text(value):
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def tensor_data(model, tensor):
    """The constant data of a tensor as a numpy array of its shape, or None."""
    data = model.buffers[tensor.buffer].data
    if data is None or len(data) == 0:
        return None
    dtype = NUMPY_TYPES.get(tensor.type)
    if dtype is None:
        return None
    return np.frombuffer(np.asarray(data, dtype=np.uint8).tobytes(),
                         dtype=np.dtype(dtype).newbyteorder("<")).reshape(
                             [int(d) for d in tensor.shape])


def set_buffer_data(buffer, array):
    """Stores an array little-endian into a BufferT."""
    array = np.ascontiguousarray(array)
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    buffer.data = np.frombuffer(little.tobytes(), dtype=np.uint8)


def new_buffer(model, array=None):
    """Appends a BufferT (holding `array` if given) and returns its index."""
    buffer = schema().BufferT()
    if array is not None:
        set_buffer_data(buffer, array)
    model.buffers.append(buffer)
    return len(model.buffers) - 1


def drop_unused_buffers(model):
    """Removes buffers no tensor or metadata entry refers to; keeps buffer 0.

    Buffer 0 is TFLite's empty sentinel and stays first.
    """
    used = {0}
    for subgraph in model.subgraphs:
        used.update(t.buffer for t in subgraph.tensors)
    used.update(m.buffer for m in model.metadata or [])
    used.update(int(b) for b in (model.metadataBuffer if model.metadataBuffer is not None else []))
    order = sorted(used)
    new_index = {old: new for new, old in enumerate(order)}
    model.buffers = [model.buffers[i] for i in order]
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            tensor.buffer = new_index[tensor.buffer]
    for entry in model.metadata or []:
        entry.buffer = new_index[entry.buffer]
    if model.metadataBuffer is not None:
        model.metadataBuffer = [new_index[int(b)] for b in model.metadataBuffer]


def metadata_bytes(model, name):
    """The data of the metadata entry `name`, or None."""
    for entry in model.metadata or []:
        if _text(entry.name) == name:
            data = model.buffers[entry.buffer].data
            return b"" if data is None else np.asarray(data, dtype=np.uint8).tobytes()
    return None
