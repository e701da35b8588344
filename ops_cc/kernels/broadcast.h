// Numpy-style broadcasting of elementwise binary int8 ops (ADD, SUB, MUL,
// MAXIMUM, MINIMUM), as TFLite's reference kernels broadcast: shapes are
// aligned from the right, missing leading dimensions count as 1, and an
// input dimension of 1 is repeated along the output's.
#ifndef TFLM_TRAIN_KERNELS_BROADCAST_H_
#define TFLM_TRAIN_KERNELS_BROADCAST_H_

#include <cstdint>

#include "ops_cc/core/shape.h"

namespace tflm_train {

// Dimension i (0..kMaxRank-1) of `shape` right-aligned into kMaxRank
// dimensions; 1 for the missing leading ones.
inline int32_t AlignedDim(const Shape& shape, int i) {
  const int j = i - (kMaxRank - shape.rank);
  return j < 0 ? 1 : shape.dims[j];
}

// True if the two input shapes broadcast to `output_shape`: the output's
// rank is the larger input rank (at most kMaxRank), every input dimension
// equals the output's or is 1, and every output dimension is one of its
// inputs' (no dimension grows from 1 and 1).
bool ShapesBroadcast(const Shape& input1_shape, const Shape& input2_shape,
                     const Shape& output_shape);

// out[i] = op(in1[...], in2[...]) over the output in row-major order.
// Shapes must satisfy ShapesBroadcast (checked in Prepare).
template <typename Op>
void BroadcastBinary(const Shape& input1_shape, const int8_t* input1,
                     const Shape& input2_shape, const int8_t* input2,
                     const Shape& output_shape, int8_t* output, Op op) {
  const int64_t n = output_shape.FlatSize();
  if (input1_shape == input2_shape) {
    for (int64_t i = 0; i < n; ++i) output[i] = op(input1[i], input2[i]);
    return;
  }
  // An input dimension of 1 (against an output dimension other than 1) has
  // stride 0; an odometer over the output index moves both input offsets.
  int32_t dims[kMaxRank], stride1[kMaxRank], stride2[kMaxRank];
  int64_t s1 = 1, s2 = 1;
  for (int i = kMaxRank - 1; i >= 0; --i) {
    dims[i] = AlignedDim(output_shape, i);
    const int32_t d1 = AlignedDim(input1_shape, i);
    const int32_t d2 = AlignedDim(input2_shape, i);
    stride1[i] = d1 == 1 ? 0 : static_cast<int32_t>(s1);
    stride2[i] = d2 == 1 ? 0 : static_cast<int32_t>(s2);
    s1 *= d1;
    s2 *= d2;
  }
  static_assert(kMaxRank == 6, "index below lists kMaxRank zeros");
  int32_t index[kMaxRank] = {0, 0, 0, 0, 0, 0};
  int64_t off1 = 0, off2 = 0;
  for (int64_t i = 0; i < n; ++i) {
    output[i] = op(input1[off1], input2[off2]);
    for (int d = kMaxRank - 1; d >= 0; --d) {
      off1 += stride1[d];
      off2 += stride2[d];
      if (++index[d] < dims[d]) break;
      off1 -= static_cast<int64_t>(stride1[d]) * dims[d];
      off2 -= static_cast<int64_t>(stride2[d]) * dims[d];
      index[d] = 0;
    }
  }
}

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_BROADCAST_H_
