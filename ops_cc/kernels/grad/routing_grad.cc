#include "ops_cc/kernels/grad/routing_grad.h"

#include <cstring>

namespace tflm_train {

void ConcatenationGrad(const Shape& y_shape, const float* dy, int axis,
                       int32_t offset, const Shape& x_shape, float* dx) {
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= x_shape.dims[d];
  for (int d = axis + 1; d < x_shape.rank; ++d) inner *= x_shape.dims[d];
  const int64_t x_row = x_shape.dims[axis] * inner;
  const int64_t y_row = y_shape.dims[axis] * inner;
  if (x_row == 0) return;
  for (int64_t o = 0; o < outer; ++o)
    std::memcpy(dx + o * x_row, dy + o * y_row + offset * inner,
                sizeof(float) * static_cast<size_t>(x_row));
}

void TransposeGrad(const Shape& y_shape, const float* dy, const int32_t* perm,
                   const Shape& x_shape, float* dx) {
  const int rank = y_shape.rank;
  const int64_t n = y_shape.FlatSize();
  if (rank == 0) {
    if (n == 1) dx[0] = dy[0];
    return;
  }
  // Stride in x of each dimension of y.
  int64_t x_stride[kMaxRank];
  int64_t s = 1;
  for (int d = rank - 1; d >= 0; --d) {
    x_stride[d] = s;
    s *= x_shape.dims[d];
  }
  int64_t stride[kMaxRank];
  for (int d = 0; d < rank; ++d) stride[d] = x_stride[perm[d]];
  int32_t index[kMaxRank] = {0, 0, 0, 0, 0, 0};
  int64_t offset = 0;
  for (int64_t k = 0; k < n; ++k) {
    dx[offset] = dy[k];
    for (int d = rank - 1; d >= 0; --d) {
      offset += stride[d];
      if (++index[d] < y_shape.dims[d]) break;
      offset -= stride[d] * y_shape.dims[d];
      index[d] = 0;
    }
  }
}

void StridedSliceGrad(const SliceBox& box, const float* dy,
                      const Shape& x_shape, float* dx) {
  const int64_t x_size = x_shape.FlatSize();
  for (int64_t k = 0; k < x_size; ++k) dx[k] = 0.0f;
  const int rank = box.rank;
  int64_t n = 1;
  for (int d = 0; d < rank; ++d) n *= box.count[d];
  if (n == 0) return;
  if (rank == 0) {
    dx[0] = dy[0];
    return;
  }
  int64_t x_stride[kMaxRank];
  int64_t s = 1;
  for (int d = rank - 1; d >= 0; --d) {
    x_stride[d] = s;
    s *= x_shape.dims[d];
  }
  int64_t offset = 0;
  for (int d = 0; d < rank; ++d) offset += box.begin[d] * x_stride[d];
  int32_t index[kMaxRank] = {0, 0, 0, 0, 0, 0};
  for (int64_t k = 0; k < n; ++k) {
    dx[offset] = dy[k];
    for (int d = rank - 1; d >= 0; --d) {
      const int64_t step = static_cast<int64_t>(box.stride[d]) * x_stride[d];
      offset += step;
      if (++index[d] < box.count[d]) break;
      offset -= step * box.count[d];
      index[d] = 0;
    }
  }
}

}  // namespace tflm_train
