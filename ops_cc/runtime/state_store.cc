#include "ops_cc/runtime/state_store.h"

#include <cstring>

#include "ops_cc/core/crc32.h"

namespace tflm_train {
namespace {

constexpr uint8_t kMagic[4] = {'T', 'T', 'S', 'T'};

struct Header {
  uint32_t version = 0, sequence = 0, payload_bytes = 0, layout_crc = 0, crc = 0;
};

void PutU32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

uint32_t GetU32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

uint32_t PayloadBytes(TrainingSession& s) {
  size_t total = 0;
  for (int i = 0; i < s.num_state_tensors(); ++i) {
    size_t bytes = 0;
    s.state_tensor(i, &bytes);
    total += bytes;
  }
  return static_cast<uint32_t>(total);
}

uint32_t LayoutCrc(TrainingSession& s) {
  uint32_t crc = 0;
  for (int i = 0; i < s.num_state_tensors(); ++i) {
    size_t bytes = 0;
    s.state_tensor(i, &bytes);
    uint8_t size[4];
    PutU32(size, static_cast<uint32_t>(bytes));
    crc = Crc32(crc, size, sizeof(size));
  }
  return crc;
}

void EncodeHeader(const Header& h, uint8_t out[kStateHeaderBytes]) {
  std::memcpy(out, kMagic, 4);
  PutU32(out + 4, h.version);
  PutU32(out + 8, h.sequence);
  PutU32(out + 12, h.payload_bytes);
  PutU32(out + 16, h.layout_crc);
  PutU32(out + 20, h.crc);
}

// The slot's header if it holds a complete state for this layout.
bool ValidSlot(TrainingSession& s, const StateStorage& st, uint32_t offset,
               Header* h) {
  uint8_t raw[kStateHeaderBytes];
  if (!st.read(st.user, offset, raw, sizeof(raw))) return false;
  if (std::memcmp(raw, kMagic, 4) != 0) return false;
  h->version = GetU32(raw + 4);
  h->sequence = GetU32(raw + 8);
  h->payload_bytes = GetU32(raw + 12);
  h->layout_crc = GetU32(raw + 16);
  h->crc = GetU32(raw + 20);
  if (h->version != kStateFormatVersion || h->payload_bytes != PayloadBytes(s) ||
      h->layout_crc != LayoutCrc(s) ||
      h->payload_bytes > st.slot_bytes - kStateHeaderBytes)
    return false;
  // CRC of the header fields, then of the payload read in small chunks.
  uint32_t crc = Crc32(0, raw, 20);
  uint8_t chunk[64];
  for (uint32_t done = 0; done < h->payload_bytes;) {
    const uint32_t n = h->payload_bytes - done < sizeof(chunk)
                           ? h->payload_bytes - done
                           : static_cast<uint32_t>(sizeof(chunk));
    if (!st.read(st.user, offset + kStateHeaderBytes + done, chunk, n)) return false;
    crc = Crc32(crc, chunk, n);
    done += n;
  }
  return crc == h->crc;
}

// Index (0 or 1) of the newest valid slot, or -1.
int NewestSlot(TrainingSession& s, const StateStorage& st, Header* newest) {
  int best = -1;
  for (int slot = 0; slot < 2; ++slot) {
    Header h;
    if (!ValidSlot(s, st, static_cast<uint32_t>(slot) * st.slot_bytes, &h)) continue;
    // Sequence numbers compare modulo 2^32 (they may wrap).
    if (best < 0 || static_cast<int32_t>(h.sequence - newest->sequence) > 0) {
      best = slot;
      *newest = h;
    }
  }
  return best;
}

Status CheckStorage(TrainingSession& s, const StateStorage& st) {
  if (st.read == nullptr || st.write == nullptr || st.erase == nullptr ||
      st.slot_bytes < StateSlotBytes(s) || s.num_state_tensors() == 0)
    return Status::kError;
  return Status::kOk;
}

}  // namespace

size_t StateSlotBytes(TrainingSession& session) {
  return kStateHeaderBytes + PayloadBytes(session);
}

Status SaveState(TrainingSession& s, const StateStorage& st) {
  TT_RETURN_IF_ERROR(CheckStorage(s, st));
  TT_RETURN_IF_ERROR(s.MaterializeState());
  Header newest;
  const int current = NewestSlot(s, st, &newest);
  const uint32_t target = current == 0 ? 1u : 0u;
  const uint32_t offset = target * st.slot_bytes;
  Header h;
  h.version = kStateFormatVersion;
  h.sequence = current < 0 ? 1u : newest.sequence + 1u;
  h.payload_bytes = PayloadBytes(s);
  h.layout_crc = LayoutCrc(s);
  uint8_t raw[kStateHeaderBytes];
  EncodeHeader(h, raw);
  uint32_t crc = Crc32(0, raw, 20);

  if (!st.erase(st.user, offset, st.slot_bytes)) return Status::kStorageError;
  uint32_t at = offset + kStateHeaderBytes;
  for (int i = 0; i < s.num_state_tensors(); ++i) {
    size_t bytes = 0;
    const uint8_t* data = s.state_tensor(i, &bytes);
    if (!st.write(st.user, at, data, static_cast<uint32_t>(bytes)))
      return Status::kStorageError;
    crc = Crc32(crc, data, bytes);
    at += static_cast<uint32_t>(bytes);
  }
  // The header last: it commits the slot.
  h.crc = crc;
  EncodeHeader(h, raw);
  if (!st.write(st.user, offset, raw, sizeof(raw))) return Status::kStorageError;
  return Status::kOk;
}

Status LoadState(TrainingSession& s, const StateStorage& st) {
  TT_RETURN_IF_ERROR(CheckStorage(s, st));
  Header newest;
  const int slot = NewestSlot(s, st, &newest);
  if (slot < 0) return Status::kNotFound;
  TT_RETURN_IF_ERROR(s.MaterializeState());
  uint32_t at = static_cast<uint32_t>(slot) * st.slot_bytes + kStateHeaderBytes;
  for (int i = 0; i < s.num_state_tensors(); ++i) {
    size_t bytes = 0;
    uint8_t* data = s.state_tensor(i, &bytes);
    if (!st.read(st.user, at, data, static_cast<uint32_t>(bytes)))
      return Status::kStorageError;
    at += static_cast<uint32_t>(bytes);
  }
  return Status::kOk;
}

}  // namespace tflm_train
