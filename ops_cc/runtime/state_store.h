// Power-fail-safe persistence of a TrainingSession's trained state (weights
// and biases, the stochastic-rounding state, the output range) in two
// alternating slots of non-volatile memory, through callbacks the firmware
// supplies (flash pages, EEPROM, a file).
//
// Slot layout (little-endian), at offset 0 and at slot_bytes:
//   0  "TTST"              magic
//   4  uint32 version      kStateFormatVersion
//   8  uint32 sequence     incremented by every save
//   12 uint32 payload bytes
//   16 uint32 layout CRC   CRC-32 of the state tensors' byte sizes (uint32
//                          each, in order): a different model never loads
//   20 uint32 CRC          CRC-32 of bytes [0, 20) and of the payload
//   24 payload             the state tensors' bytes, in
//                          TrainingSession::state_tensor order
// A save erases the slot that does not hold the newest valid state, writes
// the payload, then the header: until its last byte is written the slot's
// CRC does not match, so a power cut at any point leaves the previous state
// the newest valid one. tflm_train/state_store.py reads and writes the same
// format on the host.
#ifndef TFLM_TRAIN_RUNTIME_STATE_STORE_H_
#define TFLM_TRAIN_RUNTIME_STATE_STORE_H_

#include <cstddef>
#include <cstdint>

#include "ops_cc/core/status.h"
#include "ops_cc/runtime/training_session.h"

namespace tflm_train {

constexpr uint32_t kStateFormatVersion = 1;
constexpr uint32_t kStateHeaderBytes = 24;

// Offsets are from the start of the storage region (two slots); each call
// returns true on success. erase sets a range to the erased state (any
// content); write may assume an erased range.
struct StateStorage {
  void* user = nullptr;
  bool (*read)(void* user, uint32_t offset, void* data, uint32_t bytes) = nullptr;
  bool (*write)(void* user, uint32_t offset, const void* data, uint32_t bytes) = nullptr;
  bool (*erase)(void* user, uint32_t offset, uint32_t bytes) = nullptr;
  uint32_t slot_bytes = 0;  // each slot; at least StateSlotBytes(session)
};

// Bytes one slot needs for this session's state (header included).
size_t StateSlotBytes(TrainingSession& session);

// Saves the current state into the older slot (kStorageError if a callback
// fails: the previous state stays loadable).
Status SaveState(TrainingSession& session, const StateStorage& storage);

// Loads the newest valid slot made for this model into the session
// (materializing its variables first); kNotFound when there is none (first
// boot), leaving the session as it was.
Status LoadState(TrainingSession& session, const StateStorage& storage);

}  // namespace tflm_train

#endif  // TFLM_TRAIN_RUNTIME_STATE_STORE_H_
