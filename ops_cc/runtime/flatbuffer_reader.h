// A bounds-checked reader of FlatBuffers binary data.
//
// Every accessor validates offsets, sizes and alignment against the buffer
// it was created from, so a truncated or malicious model yields `false` /
// an invalid view instead of an out-of-bounds read. Schemas are not needed:
// callers name fields by their slot (declaration order, starting at 0).
#ifndef TFLM_TRAIN_RUNTIME_FLATBUFFER_READER_H_
#define TFLM_TRAIN_RUNTIME_FLATBUFFER_READER_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace tflm_train {

class FbVector;

// A table inside a buffer. Default-constructed tables are invalid.
class FbTable {
 public:
  FbTable() = default;
  // The root table of a finished buffer.
  static FbTable Root(const uint8_t* buffer, size_t size);

  bool valid() const { return buffer_ != nullptr; }

  // True when the field is present (and fits inside the table).
  bool Has(int slot) const { return FieldOffset(slot, 1) != 0; }

  // Scalars: returns `default_value` when absent. `ok` (optional) is set to
  // false when the field exists but does not fit.
  template <typename T>
  T Scalar(int slot, T default_value) const {
    const uint32_t off = FieldOffset(slot, sizeof(T));
    if (off == 0) return default_value;
    T value;
    memcpy(&value, buffer_ + pos_ + off, sizeof(T));
    return value;
  }

  // Sub-table, vector and string fields; invalid views when absent or bad.
  FbTable Table(int slot) const;
  FbVector Vector(int slot, size_t element_size) const;
  // Null when absent or not a valid NUL-terminated string.
  const char* String(int slot, uint32_t* length = nullptr) const;

 private:
  friend class FbVector;
  static FbTable At(const uint8_t* buffer, size_t size, size_t pos);
  // Offset of the field inside the table, 0 if absent or if `field_size`
  // bytes do not fit in the table.
  uint32_t FieldOffset(int slot, size_t field_size) const;
  // Follows a uoffset stored at absolute position `at`; 0 on failure.
  size_t Follow(size_t at) const;

  const uint8_t* buffer_ = nullptr;
  size_t size_ = 0;
  size_t pos_ = 0;      // table start
  size_t vtable_ = 0;   // vtable start
  uint16_t vtable_size_ = 0;
  uint16_t table_size_ = 0;
};

// A vector of scalars, tables or strings. Invalid views have length 0.
class FbVector {
 public:
  FbVector() = default;
  bool valid() const { return buffer_ != nullptr; }
  uint32_t length() const { return length_; }
  // Pointer to the first element (aligned to the element size).
  const uint8_t* data() const { return buffer_ + data_pos_; }

  template <typename T>
  T Get(uint32_t i) const {
    T value;
    memcpy(&value, data() + static_cast<size_t>(i) * sizeof(T), sizeof(T));
    return value;
  }
  // Elements of a vector of tables.
  FbTable TableAt(uint32_t i) const;
  const char* StringAt(uint32_t i, uint32_t* length = nullptr) const;

 private:
  friend class FbTable;
  const uint8_t* buffer_ = nullptr;
  size_t size_ = 0;
  size_t data_pos_ = 0;
  uint32_t length_ = 0;
};

}  // namespace tflm_train

#endif  // TFLM_TRAIN_RUNTIME_FLATBUFFER_READER_H_
