#include "ops_cc/kernels/grad/elementwise_grad.h"

#include <cstring>

namespace tflm_train {

void AddGrad(const OutputGrad& grad, int64_t n, float* da, float* db) {
  for (int64_t k = 0; k < n; ++k) {
    const float g = grad.At(k);
    if (da != nullptr) da[k] = g;
    if (db != nullptr) db[k] = g;
  }
}

void MeanGrad(const float* dy, const Shape& x_shape, float* dx) {
  const int batches = x_shape.dims[0];
  const int cells = x_shape.dims[1] * x_shape.dims[2];
  const int channels = x_shape.dims[3];
  if (cells == 0) return;
  const float count = static_cast<float>(cells);
  for (int b = 0; b < batches; ++b) {
    float* d = dx + static_cast<int64_t>(b) * cells * channels;
    const float* g = dy + static_cast<int64_t>(b) * channels;
    for (int c = 0; c < channels; ++c) d[c] = g[c] / count;
    for (int k = 1; k < cells; ++k)
      std::memcpy(d + k * channels, d, sizeof(float) * channels);
  }
}

void PadGrad(const Shape& y_shape, const float* dy, const int32_t* pad_before,
             const Shape& x_shape, float* dx) {
  const int rank = x_shape.rank;
  const int64_t n = x_shape.FlatSize();
  if (rank == 0) {
    if (n == 1) dx[0] = dy[0];
    return;
  }
  // Row-major index into x, carried over dimension by dimension; each
  // innermost row is one contiguous copy.
  int32_t index[kMaxRank] = {0};
  const int row = x_shape.dims[rank - 1];
  for (int64_t k = 0; k < n; k += row) {
    int64_t src = 0;
    for (int d = 0; d < rank; ++d)
      src = src * y_shape.dims[d] + index[d] + pad_before[d];
    std::memcpy(dx + k, dy + src, sizeof(float) * row);
    for (int d = rank - 2; d >= 0; --d) {
      if (++index[d] < x_shape.dims[d]) break;
      index[d] = 0;
    }
  }
}

void ReshapeGrad(const float* dy, int64_t n, float* dx) {
  if (dx != dy) std::memcpy(dx, dy, sizeof(float) * static_cast<size_t>(n));
}

void GradSum(const float* const* grads, int num_grads, int64_t n, float* out) {
  for (int64_t k = 0; k < n; ++k) {
    float acc = grads[0][k];
    for (int i = 1; i < num_grads; ++i) acc += grads[i][k];
    out[k] = acc;
  }
}

}  // namespace tflm_train
