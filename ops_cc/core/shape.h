// Tensor shapes (row-major, NHWC for images) and element types.
#ifndef TFLM_TRAIN_CORE_SHAPE_H_
#define TFLM_TRAIN_CORE_SHAPE_H_

#include <cstddef>
#include <cstdint>

namespace tflm_train {

// Element types; the values are TFLite's TensorType enum values so the
// runtime and the TFLM adapter can pass them through unchanged.
enum class DataType : int8_t {
  kFloat32 = 0,
  kInt32 = 2,
  kUInt8 = 3,
  kInt64 = 4,
  kBool = 6,
  kInt16 = 7,
  kInt8 = 9,
};

// Size in bytes of one element, 0 for unsupported types.
size_t DataTypeSize(DataType type);
const char* DataTypeName(DataType type);

constexpr int kMaxRank = 6;

struct Shape {
  int rank = 0;
  int32_t dims[kMaxRank] = {0, 0, 0, 0, 0, 0};

  int32_t Dim(int i) const { return dims[i]; }
  // Number of elements; 1 for a scalar.
  int64_t FlatSize() const {
    int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= dims[i];
    return n;
  }
  // Product of all dimensions except the last (the "batch x rows" of FC).
  int64_t FlatSizeSkipLast() const {
    int64_t n = 1;
    for (int i = 0; i + 1 < rank; ++i) n *= dims[i];
    return n;
  }
  int32_t Last() const { return rank > 0 ? dims[rank - 1] : 1; }
  bool operator==(const Shape& o) const {
    if (rank != o.rank) return false;
    for (int i = 0; i < rank; ++i)
      if (dims[i] != o.dims[i]) return false;
    return true;
  }
  bool operator!=(const Shape& o) const { return !(*this == o); }
};

// Offset of element (b, y, x, c) in a rank-4 NHWC shape.
inline int64_t Offset4(const Shape& s, int b, int y, int x, int c) {
  return ((static_cast<int64_t>(b) * s.dims[1] + y) * s.dims[2] + x) *
             s.dims[3] +
         c;
}

}  // namespace tflm_train

#endif  // TFLM_TRAIN_CORE_SHAPE_H_
