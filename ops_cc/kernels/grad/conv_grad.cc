#include "ops_cc/kernels/grad/conv_grad.h"

namespace tflm_train {

void ConvInputGrad(const ConvGradArgs& a, float* dx) {
  FloatDxSink sink{dx, a.x_shape.dims[3]};
  ConvInputGradTo(a, sink);
}

namespace {

// Weights of one filter row whose gradients are accumulated together (a
// float each, on the stack).
constexpr int kFilterGradChunk = 64;

// For output channel o, tap (ky, kx) and input channels [i0, i0 + len):
// acc[j] = dL/dW[o, ky, kx, i0 + j] / s_x, each summed in (n, oy, ox) order
// as documented for ConvFilterGrad (its one-weight case), so a chunk's sums
// equal the per-weight ones bit for bit; g is read once per output cell for
// the whole chunk instead of once per weight.
void AccumulateFilterGradChunk(const ConvGradArgs& a, int o, int ky, int kx,
                               int i0, int len, float* acc) {
  const int batches = a.x_shape.dims[0];
  const int in_h = a.x_shape.dims[1];
  const int in_w = a.x_shape.dims[2];
  const int in_c = a.x_shape.dims[3];
  const int out_h = a.y_shape.dims[1];
  const int out_w = a.y_shape.dims[2];
  const int out_c = a.y_shape.dims[3];
  for (int j = 0; j < len; ++j) acc[j] = 0.0f;
  for (int b = 0; b < batches; ++b) {
    const int8_t* x = a.x + b * in_h * in_w * in_c + i0;
    const int y_base = b * out_h * out_w * out_c + o;
    for (int oy = 0; oy < out_h; ++oy) {
      const int iy = oy * a.stride_h - a.pad_h + ky * a.dilation_h;
      if (iy < 0 || iy >= in_h) continue;
      for (int ox = 0; ox < out_w; ++ox) {
        const int ix = ox * a.stride_w - a.pad_w + kx * a.dilation_w;
        if (ix < 0 || ix >= in_w) continue;
        const float g = a.g.At(y_base + (oy * out_w + ox) * out_c);
        if (g == 0.0f) continue;
        const int8_t* xq = x + (iy * in_w + ix) * in_c;
        for (int j = 0; j < len; ++j)
          acc[j] += g * static_cast<float>(static_cast<int32_t>(xq[j]) -
                                           a.input_zero_point);
      }
    }
  }
}

}  // namespace

float ConvFilterGrad(const ConvGradArgs& a, int o, int ky, int kx, int i) {
  float acc = 0.0f;
  AccumulateFilterGradChunk(a, o, ky, kx, i, 1, &acc);
  return acc * a.input_scale;
}

namespace {

// Channels whose bias gradients are summed together (the width of
// OutputGrad::PassBits).
constexpr int kBiasGradChunk = 24;

// sums[j] = dL/db[o0 + j] for j < count <= kBiasGradChunk, each summed over
// the output cells in increasing order. A masked element adds nothing
// instead of +0 (no bit changes: a sum started at +0 is never -0).
void ConvBiasGrads(const ConvGradArgs& a, int o0, int count, float* sums) {
  const int out_c = a.y_shape.dims[3];
  const int64_t cells = a.y_shape.FlatSizeSkipLast();
  const OutputGrad& g = a.g;
  for (int j = 0; j < count; ++j) sums[j] = 0.0f;
  for (int64_t k = 0; k < cells; ++k) {
    const int64_t out = k * out_c + o0;
    if (g.broadcast_cells > 0) {  // At's MEAN division
      for (int j = 0; j < count; ++j) sums[j] += g.At(out + j);
      continue;
    }
    const uint32_t pass = g.PassBits(out, count);
    for (int j = 0; j < count; ++j)
      if ((pass >> j) & 1) sums[j] += g.DyAt(out + j);
  }
}

}  // namespace

float ConvBiasGrad(const ConvGradArgs& a, int o) {
  float sum;
  ConvBiasGrads(a, o, 1, &sum);
  return sum;
}

void UpdateConvBias(const ConvGradArgs& a, const LayerUpdate& update) {
  const int out_c = a.y_shape.dims[3];
  float sums[kBiasGradChunk];
  for (int o0 = 0; o0 < out_c; o0 += kBiasGradChunk) {
    const int count = out_c - o0 < kBiasGradChunk ? out_c - o0 : kBiasGradChunk;
    ConvBiasGrads(a, o0, count, sums);
    for (int j = 0; j < count; ++j) {
      const int o = o0 + j;
      update.bias[o] = SgdUpdateInt32(update.bias[o], sums[j], update.bias_lr,
                                      update.bias_scales[o], update.rule,
                                      update.bias_slots, o);
    }
  }
}


void ConvGrad(const ConvGradArgs& a, float* dx, const LayerUpdate& update) {
  if (dx != nullptr) ConvInputGrad(a, dx);
  const int out_c = a.filter_shape.dims[0];
  if (update.update_weights) {
    const int filter_h = a.filter_shape.dims[1];
    const int filter_w = a.filter_shape.dims[2];
    const int in_c = a.filter_shape.dims[3];
    const int count = update.channels != nullptr ? update.num_channels : out_c;
    float acc[kFilterGradChunk];
    int64_t slot = 0;  // k * (KH * KW * I) + (ky * KW + kx) * I + i
    for (int k = 0; k < count; ++k) {
      const int o = update.channels != nullptr ? update.channels[k] : k;
      const float scale = a.filter_scales[o];
      int8_t* row = a.slice.rows != nullptr
                        ? a.slice.rows + static_cast<int64_t>(k) * filter_h *
                                             filter_w * in_c
                        : a.filter + Offset4(a.filter_shape, o, 0, 0, 0);
      // Row-major (ky, kx, i) order, as ConvFilterGrad's weight-by-weight
      // loop and the update slots go.
      for (int ky = 0; ky < filter_h; ++ky)
        for (int kx = 0; kx < filter_w; ++kx)
          for (int i0 = 0; i0 < in_c; i0 += kFilterGradChunk) {
            const int len =
                in_c - i0 < kFilterGradChunk ? in_c - i0 : kFilterGradChunk;
            AccumulateFilterGradChunk(a, o, ky, kx, i0, len, acc);
            int8_t* w = row + (ky * filter_w + kx) * in_c + i0;
            for (int j = 0; j < len; ++j)
              w[j] = SgdUpdateInt8(w[j], acc[j] * a.input_scale,
                                   update.weight_lr, scale, update.rule,
                                   update.weight_slots, slot++);
          }
    }
  }
  if (update.bias != nullptr) UpdateConvBias(a, update);
}

}  // namespace tflm_train
