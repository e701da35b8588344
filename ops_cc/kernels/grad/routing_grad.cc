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

namespace {

// Row-major strides of `shape` (rank >= 1).
void RowMajorStrides(const Shape& shape, int64_t* strides) {
  int64_t s = 1;
  for (int d = shape.rank - 1; d >= 0; --d) {
    strides[d] = s;
    s *= shape.dims[d];
  }
}

// dx[offset + sum_d i_d * step[d]] = dy[k] for the k-th index (i_0, ...) of
// a row-major walk over count[0] x ... x count[rank - 1] (rank >= 1).
void Scatter(int rank, const int32_t* count, const int64_t* step,
             int64_t offset, const float* dy, float* dx) {
  int64_t n = 1;
  for (int d = 0; d < rank; ++d) n *= count[d];
  int32_t index[kMaxRank] = {0, 0, 0, 0, 0, 0};
  for (int64_t k = 0; k < n; ++k) {
    dx[offset] = dy[k];
    for (int d = rank - 1; d >= 0; --d) {
      offset += step[d];
      if (++index[d] < count[d]) break;
      offset -= step[d] * count[d];
      index[d] = 0;
    }
  }
}

}  // namespace

void TransposeGrad(const Shape& y_shape, const float* dy, const int32_t* perm,
                   const Shape& x_shape, float* dx) {
  const int rank = y_shape.rank;
  if (rank == 0) {
    dx[0] = dy[0];
    return;
  }
  // Dimension d of y walks x with x's stride of dimension perm[d].
  int64_t x_stride[kMaxRank], step[kMaxRank];
  RowMajorStrides(x_shape, x_stride);
  for (int d = 0; d < rank; ++d) step[d] = x_stride[perm[d]];
  Scatter(rank, y_shape.dims, step, 0, dy, dx);
}

void StridedSliceGrad(const SliceBox& box, const float* dy,
                      const Shape& x_shape, float* dx) {
  const int64_t x_size = x_shape.FlatSize();
  for (int64_t k = 0; k < x_size; ++k) dx[k] = 0.0f;
  const int rank = box.rank;
  if (rank == 0) {
    dx[0] = dy[0];
    return;
  }
  int64_t x_stride[kMaxRank], step[kMaxRank];
  RowMajorStrides(x_shape, x_stride);
  int64_t offset = 0;
  for (int d = 0; d < rank; ++d) {
    offset += box.begin[d] * x_stride[d];
    step[d] = box.stride[d] * x_stride[d];
  }
  Scatter(rank, box.count, step, offset, dy, dx);
}

}  // namespace tflm_train
