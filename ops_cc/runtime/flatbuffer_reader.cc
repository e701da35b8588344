#include "ops_cc/runtime/flatbuffer_reader.h"

namespace tflm_train {
namespace {

uint32_t ReadU32(const uint8_t* p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
uint16_t ReadU16(const uint8_t* p) {
  uint16_t v;
  memcpy(&v, p, 2);
  return v;
}

// Length-prefixed vector at absolute position `pos`: validates and fills
// the view. Elements must be aligned to their size (flatbuffers guarantees
// it for buffers aligned to 8 bytes; the runtime requires that).
bool MakeVector(const uint8_t* buffer, size_t size, size_t pos,
                size_t element_size, size_t* data_pos, uint32_t* length) {
  if (pos == 0 || pos % 4 != 0 || pos > size || size - pos < 4) return false;
  const uint32_t n = ReadU32(buffer + pos);
  const size_t start = pos + 4;
  if (element_size != 0 && n > (size - start) / element_size) return false;
  if (element_size > 1 &&
      (reinterpret_cast<uintptr_t>(buffer + start) % element_size) != 0)
    return false;
  *data_pos = start;
  *length = n;
  return true;
}

}  // namespace

FbTable FbTable::At(const uint8_t* buffer, size_t size, size_t pos) {
  FbTable t;
  if (buffer == nullptr || pos == 0 || pos % 4 != 0 || pos > size ||
      size - pos < 4)
    return t;
  int32_t soffset;
  memcpy(&soffset, buffer + pos, 4);
  // vtable = pos - soffset, computed without overflow.
  const int64_t vtable = static_cast<int64_t>(pos) - soffset;
  if (vtable < 0 || vtable % 2 != 0 ||
      vtable + 4 > static_cast<int64_t>(size))
    return t;
  const uint16_t vtable_size = ReadU16(buffer + vtable);
  const uint16_t table_size = ReadU16(buffer + vtable + 2);
  if (vtable_size < 4 || vtable_size % 2 != 0 ||
      vtable + vtable_size > static_cast<int64_t>(size) || table_size < 4 ||
      pos + table_size > size)
    return t;
  t.buffer_ = buffer;
  t.size_ = size;
  t.pos_ = pos;
  t.vtable_ = static_cast<size_t>(vtable);
  t.vtable_size_ = vtable_size;
  t.table_size_ = table_size;
  return t;
}

FbTable FbTable::Root(const uint8_t* buffer, size_t size) {
  if (buffer == nullptr || size < 8) return FbTable();
  return At(buffer, size, ReadU32(buffer));
}

uint32_t FbTable::FieldOffset(int slot, size_t field_size) const {
  if (!valid() || slot < 0) return 0;
  const size_t entry = 4 + 2 * static_cast<size_t>(slot);
  if (entry + 2 > vtable_size_) return 0;
  const uint16_t off = ReadU16(buffer_ + vtable_ + entry);
  if (off == 0 || off < 4 || off + field_size > table_size_) return 0;
  return off;
}

size_t FbTable::Follow(size_t at) const {
  const uint32_t rel = ReadU32(buffer_ + at);
  if (rel == 0 || rel > size_ - at) return 0;
  return at + rel;
}

FbTable FbTable::Table(int slot) const {
  const uint32_t off = FieldOffset(slot, 4);
  if (off == 0) return FbTable();
  const size_t target = Follow(pos_ + off);
  return At(buffer_, size_, target);
}

FbVector FbTable::Vector(int slot, size_t element_size) const {
  FbVector v;
  const uint32_t off = FieldOffset(slot, 4);
  if (off == 0) return v;
  const size_t target = Follow(pos_ + off);
  if (MakeVector(buffer_, size_, target, element_size, &v.data_pos_,
                 &v.length_)) {
    v.buffer_ = buffer_;
    v.size_ = size_;
  } else {
    v = FbVector();
  }
  return v;
}

const char* FbTable::String(int slot, uint32_t* length) const {
  FbVector v = Vector(slot, 1);
  if (!v.valid()) return nullptr;
  // The terminating NUL must be inside the buffer.
  const size_t end = v.data_pos_ + v.length_;
  if (end >= size_ || buffer_[end] != 0) return nullptr;
  if (length != nullptr) *length = v.length_;
  return reinterpret_cast<const char*>(buffer_ + v.data_pos_);
}

FbTable FbVector::TableAt(uint32_t i) const {
  if (i >= length_) return FbTable();
  FbTable holder;
  holder.buffer_ = buffer_;
  holder.size_ = size_;
  const size_t at = data_pos_ + static_cast<size_t>(i) * 4;
  return FbTable::At(buffer_, size_, holder.Follow(at));
}

const char* FbVector::StringAt(uint32_t i, uint32_t* length) const {
  if (i >= length_) return nullptr;
  FbTable holder;
  holder.buffer_ = buffer_;
  holder.size_ = size_;
  const size_t target = holder.Follow(data_pos_ + static_cast<size_t>(i) * 4);
  FbVector s;
  if (!MakeVector(buffer_, size_, target, 1, &s.data_pos_, &s.length_))
    return nullptr;
  const size_t end = s.data_pos_ + s.length_;
  if (end >= size_ || buffer_[end] != 0) return nullptr;
  if (length != nullptr) *length = s.length_;
  return reinterpret_cast<const char*>(buffer_ + s.data_pos_);
}

}  // namespace tflm_train
