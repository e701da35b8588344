// A small, bounds-checked reader for the root map of a flexbuffer (the
// custom_options of the training ops, written by Python's
// flatbuffers.flexbuffers.Dumps(dict)). Only scalar values are read.
//
// Any byte string is safe to open: every offset and length is checked
// against the buffer before it is followed, so malformed options give
// kMalformed instead of an out-of-bounds read.
#ifndef TFLM_TRAIN_CORE_FLEXBUFFER_H_
#define TFLM_TRAIN_CORE_FLEXBUFFER_H_

#include <cstddef>
#include <cstdint>

namespace tflm_train {

enum class FlexStatus : uint8_t {
  kOk = 0,
  kMissing,    // the map has no such key
  kWrongType,  // the value is not a number (or does not fit an int64)
  kMalformed,  // the bytes are not a well-formed flexbuffer map
};

const char* FlexStatusName(FlexStatus status);

class FlexMap {
 public:
  // Checks that `data` holds a flexbuffer whose root is a map with valid,
  // NUL-terminated keys. The bytes must outlive the reader.
  FlexStatus Open(const uint8_t* data, size_t size);

  // Number of entries (0 before a successful Open).
  int size() const { return static_cast<int>(count_); }

  // INT, UINT and BOOL values, inline or indirect, of width 1, 2, 4 or 8.
  FlexStatus GetInt(const char* key, int64_t* value) const;
  // FLOAT values of width 4 or 8 (rounded to float) and integer values.
  FlexStatus GetFloat(const char* key, float* value) const;

 private:
  struct Scalar {
    uint8_t type;  // flexbuffer type of the value after following indirects
    uint64_t bits;  // raw little-endian bits, `width` bytes
    int width;
  };
  FlexStatus Find(const char* key, Scalar* value) const;

  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t values_ = 0;  // position of the first value of the map
  size_t keys_ = 0;    // position of the first key offset
  size_t count_ = 0;
  int width_ = 0;      // byte width of the map's values
  int key_width_ = 0;  // byte width of the key offsets
};

}  // namespace tflm_train

#endif  // TFLM_TRAIN_CORE_FLEXBUFFER_H_
