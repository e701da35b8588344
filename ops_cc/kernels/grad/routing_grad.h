// Backward of the int8 ops that only move values (TFLM requires equal input
// and output quantization for them, so no value is requantized or clamped
// and the gradient is routed unchanged): CONCATENATION, TRANSPOSE and
// STRIDED_SLICE.
#ifndef TFLM_TRAIN_KERNELS_GRAD_ROUTING_GRAD_H_
#define TFLM_TRAIN_KERNELS_GRAD_ROUTING_GRAD_H_

#include <cstdint>

#include "ops_cc/core/shape.h"

namespace tflm_train {

// dx = the part of dy at positions offset .. offset + x.dims[axis] - 1 along
// `axis`; x_shape equals y_shape in every other dimension, and
// 0 <= offset <= y.dims[axis] - x.dims[axis] (one CONCATENATION input).
void ConcatenationGrad(const Shape& y_shape, const float* dy, int axis,
                       int32_t offset, const Shape& x_shape, float* dx);

// y = transpose(x, perm), y.dims[d] = x.dims[perm[d]]: dx is dy permuted
// back. perm is a permutation of 0 .. rank - 1.
void TransposeGrad(const Shape& y_shape, const float* dy, const int32_t* perm,
                   const Shape& x_shape, float* dx);

// The elements of x a STRIDED_SLICE reads, in the order it writes them: in
// each dimension d of x, count[d] positions begin[d] + k * stride[d]
// (k = 0 .. count[d] - 1), all inside x; dimensions in row-major order.
struct SliceBox {
  int rank = 0;
  int32_t begin[kMaxRank] = {0, 0, 0, 0, 0, 0};
  int32_t stride[kMaxRank] = {1, 1, 1, 1, 1, 1};
  int32_t count[kMaxRank] = {0, 0, 0, 0, 0, 0};
};

// dx = 0 except at the box's elements, which receive dy in order (dy has the
// box's element count; the positions are distinct).
void StridedSliceGrad(const SliceBox& box, const float* dy,
                      const Shape& x_shape, float* dx);

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_GRAD_ROUTING_GRAD_H_
