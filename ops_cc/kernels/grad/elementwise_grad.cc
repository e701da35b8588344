#include "ops_cc/kernels/grad/elementwise_grad.h"

#include <cstring>

namespace tflm_train {

void AddGrad(const OutputGrad& grad, int64_t n, float* da, float* db) {
  float* first = da != nullptr ? da : db;
  if (first == nullptr) return;
  grad.Values(0, n, first);
  if (db != nullptr && db != first)
    std::memcpy(db, first, static_cast<size_t>(n) * sizeof(float));
}

void AddGradInt8(const OutputGrad& g, int64_t n, int8_t* dq) {
  for (int64_t k = 0; k < n; ++k) dq[k] = g.Passes(k) ? g.dy_q[k] : 0;
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

void PadGrad(const Shape& y_shape, const void* dy, int element_size,
             const int32_t* pad_before, const Shape& x_shape, void* dx) {
  const int rank = x_shape.rank;
  const int64_t n = x_shape.FlatSize();
  const auto* from = static_cast<const uint8_t*>(dy);
  auto* to = static_cast<uint8_t*>(dx);
  if (rank == 0) {
    if (n == 1) std::memcpy(to, from, static_cast<size_t>(element_size));
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
    std::memcpy(to + k * element_size, from + src * element_size,
                static_cast<size_t>(element_size) * row);
    for (int d = rank - 2; d >= 0; --d) {
      if (++index[d] < x_shape.dims[d]) break;
      index[d] = 0;
    }
  }
}

void ReshapeGrad(const void* dy, int64_t n, int element_size, void* dx) {
  if (dx != dy)
    std::memcpy(dx, dy, static_cast<size_t>(n) * static_cast<size_t>(element_size));
}

void MeanGradInt8(const int8_t* dy_q, const Shape& x_shape, int8_t* dq) {
  const int batches = x_shape.dims[0];
  const int cells = x_shape.dims[1] * x_shape.dims[2];
  const int channels = x_shape.dims[3];
  for (int b = 0; b < batches; ++b)
    for (int k = 0; k < cells; ++k)
      std::memcpy(dq + (static_cast<int64_t>(b) * cells + k) * channels,
                  dy_q + static_cast<int64_t>(b) * channels,
                  static_cast<size_t>(channels));
}

void GradSum(const float* const* grads, int num_grads, int64_t n, float* out) {
  for (int64_t k = 0; k < n; ++k) {
    float acc = grads[0][k];
    for (int i = 1; i < num_grads; ++i) acc += grads[i][k];
    out[k] = acc;
  }
}

void GradSumInt8(const int8_t* const* grads, const float* scales, int num_grads,
                 int64_t n, Int8GradOut out) {
  WriteInt8Grad(
      n,
      [&](int64_t k) {
        float acc = static_cast<float>(grads[0][k]) * scales[0];
        for (int i = 1; i < num_grads; ++i)
          acc += static_cast<float>(grads[i][k]) * scales[i];
        return acc;
      },
      out);
}

}  // namespace tflm_train
