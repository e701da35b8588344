"""The trained-state format of ops_cc/runtime/state_store.h on the host.

Two slots of `slot_bytes` each; a slot is a 24-byte header ("TTST",
version, sequence, payload bytes, layout CRC, CRC; little-endian uint32s)
and the payload: the state tensors' bytes in order — every trainable
variable in metadata order, then `rng` (with stochastic rounding), then the
output range. `save_state` and `load_state` follow the device's rules, so an
image written here loads in firmware and the reverse.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

from tflm_train.errors import DataError
from tflm_train.runtime import Trainer

MAGIC = b"TTST"
FORMAT_VERSION = 1
HEADER_BYTES = 24
ERASED = 0xFF


def state_tensor_indices(trainer: Trainer) -> list[int]:
    """Tensor indices of the persisted state, in payload order."""
    return trainer.info.state_variables()


def slot_bytes(trainer: Trainer) -> int:
    """Bytes one slot needs (header included)."""
    return HEADER_BYTES + len(_payload(trainer))


def _payload(trainer: Trainer) -> bytes:
    return b"".join(trainer.state_tensor(i).tobytes() for i in state_tensor_indices(trainer))


def _layout_crc(trainer: Trainer) -> int:
    sizes = b"".join(struct.pack("<I", trainer.state_tensor(i).nbytes)
                     for i in state_tensor_indices(trainer))
    return zlib.crc32(sizes)


def _valid_slot(trainer: Trainer, image: bytes, offset: int, size: int):
    """(sequence, payload) of a slot holding a complete state for this model, or None."""
    header = image[offset:offset + HEADER_BYTES]
    if len(header) < HEADER_BYTES or header[:4] != MAGIC:
        return None
    version, sequence, payload_bytes, layout_crc, crc = struct.unpack("<5I", header[4:])
    expected = len(_payload(trainer))
    if (version != FORMAT_VERSION or payload_bytes != expected
            or layout_crc != _layout_crc(trainer) or payload_bytes > size - HEADER_BYTES):
        return None
    payload = image[offset + HEADER_BYTES:offset + HEADER_BYTES + payload_bytes]
    if zlib.crc32(payload, zlib.crc32(header[:20])) != crc:
        return None
    return sequence, payload


def _newest(trainer: Trainer, image: bytes, size: int):
    """(slot, sequence, payload) of the newest valid slot, or None."""
    best = None
    for slot in (0, 1):
        found = _valid_slot(trainer, image, slot * size, size)
        # Sequence numbers compare modulo 2^32, as on the device.
        if found and (best is None or ((found[0] - best[1]) & 0xFFFFFFFF) - 1 < 0x7FFFFFFF):
            best = (slot, *found)
    return best


def save_state(trainer: Trainer, image: bytearray, size: int) -> None:
    """Saves the trainer's state into the older slot of a two-slot `image`
    (bytearray of 2 * size bytes), header last, as the device does."""
    if len(image) != 2 * size or size < slot_bytes(trainer):
        raise DataError(f"state image must be 2 slots of at least {slot_bytes(trainer)} bytes")
    newest = _newest(trainer, bytes(image), size)
    target = 1 if newest is not None and newest[0] == 0 else 0
    sequence = 1 if newest is None else (newest[1] + 1) & 0xFFFFFFFF
    payload = _payload(trainer)
    fields = MAGIC + struct.pack("<4I", FORMAT_VERSION, sequence, len(payload),
                                 _layout_crc(trainer))
    crc = zlib.crc32(payload, zlib.crc32(fields))
    offset = target * size
    image[offset:offset + size] = bytes([ERASED]) * size
    image[offset + HEADER_BYTES:offset + HEADER_BYTES + len(payload)] = payload
    image[offset:offset + HEADER_BYTES] = fields + struct.pack("<I", crc)


def load_state(trainer: Trainer, image: bytes, size: int) -> bool:
    """Restores the newest valid state in `image`; False when there is none."""
    newest = _newest(trainer, bytes(image), size)
    if newest is None:
        return False
    payload, at = newest[2], 0
    for index in state_tensor_indices(trainer):
        current = trainer.state_tensor(index)
        value = np.frombuffer(payload[at:at + current.nbytes], current.dtype).reshape(current.shape)
        trainer.set_state_tensor(index, value)
        at += current.nbytes
    return True
