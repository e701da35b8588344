// Backward of an int8 DEPTHWISE_CONV_2D with depth multiplier M (input
// [N, H, W, C], filter [1, KH, KW, C·M], output [N, OH, OW, C·M]; output
// channel c reads input channel c / M) with the fused SGD update of its
// weights and bias. Arguments as for conv (ConvGradArgs).
#ifndef TFLM_TRAIN_KERNELS_GRAD_DEPTHWISE_CONV_GRAD_H_
#define TFLM_TRAIN_KERNELS_GRAD_DEPTHWISE_CONV_GRAD_H_

#include <cstdint>

#include "ops_cc/kernels/grad/conv_grad.h"
#include "ops_cc/kernels/grad/sgd_update.h"

namespace tflm_train {

// dL/dx, one input cell (n, iy, ix; C values) at a time in increasing cell
// order into `sink` (input_grad.h). Each element (input channel i) sums from
// 0 the terms (g[c] * s_w[c]) * q_w[ky, kx, c] of its output channels
// c = i * M .. i * M + M - 1, over the output cells (n, oy, ox) that read the
// cell in increasing (oy, ox) (so decreasing tap (ky, kx)), then c
// ascending, skipping g == 0: the order of the scatter form "for each
// (n, oy, ox), (ky, kx), c in row-major order with g != 0, add the term to
// input channel c / M of the cell it reads".
template <typename Sink>
void DepthwiseConvInputGradTo(const ConvGradArgs& args, Sink& sink);

// DepthwiseConvInputGradTo into dx (shape of x).
void DepthwiseConvInputGrad(const ConvGradArgs& args, float* dx);

// dL/dW[0, ky, kx, c] = s_x * sum over (n, oy, ox) of g[c] * (q_x[c / M] - z_x).
float DepthwiseConvFilterGrad(const ConvGradArgs& args, int ky, int kx, int c);

// dL/db[c] is ConvBiasGrad(args, c).

// The fused op: dx (if non-null) from the current weights; then each updated
// weight in row-major order of the filter (ky, kx, then the listed channels)
// gets its gradient (DepthwiseConvFilterGrad's value bit for bit, summed for
// up to 8 consecutive listed channels of a tap at once) and its update; then
// the bias of every channel.
void DepthwiseConvGrad(const ConvGradArgs& args, float* dx,
                       const LayerUpdate& update);

namespace depthwise_internal {

// Calls visit(out, w) for the output cells that read input cell (b, iy, ix),
// in increasing (oy, ox) (ForEachReadingTap): out = Offset4(y_shape, b, oy,
// ox, 0) and w = the filter's tap (ky, kx) through which the cell is read.
template <typename Visit>
void ForEachReader(const ConvGradArgs& a, int b, int iy, int ix,
                   const Visit& visit) {
  const int channels = a.filter_shape.dims[3];
  const int filter_w = a.filter_shape.dims[2];
  conv_internal::ForEachReadingTap(a, iy, ix, [&](int oy, int ox, int ky, int kx) {
    visit(Offset4(a.y_shape, b, oy, ox, 0),
          a.filter + (ky * filter_w + kx) * channels);
  });
}

// The output cells reading one input cell, as ForEachReader visits them.
struct Readers {
  static constexpr int kMax = 64;  // taps; larger filters take the generic path
  int count = 0;
  int64_t out[kMax];
  const int8_t* tap[kMax];
};

// Multiplier 1, dy not broadcast: d[0..kBlock) = the sums of channels
// c0 .. c0 + kBlock - 1 of an input cell with these readers, the partial
// sums in registers over all of them. Only masked-out terms are skipped: a
// term with dy == 0 is +-0, and a sum that starts at +0 is never -0
// (x + -x and +0 + -0 round to +0), so adding it changes no bit.
template <int kBlock>
void InputGradBlock(const ConvGradArgs& a, const OutputGrad& g,
                    const Readers& readers, int c0, float* d) {
  float acc[kBlock];
#pragma GCC unroll 16
  for (int j = 0; j < kBlock; ++j) acc[j] = 0.0f;
  const float* s = a.filter_scales + c0;
  for (int r = 0; r < readers.count; ++r) {
    const uint32_t pass = g.PassBits(readers.out[r] + c0, kBlock);
    if (pass == 0) continue;
    const int8_t* w = readers.tap[r] + c0;
    if (g.dy_q != nullptr) {  // an int8 y/grad: dy = q * scale (OutputGrad::DyAt)
      const int8_t* q = g.dy_q + readers.out[r] + c0;
#pragma GCC unroll 16
      for (int j = 0; j < kBlock; ++j) {
        if (((pass >> j) & 1) == 0) continue;
        acc[j] += static_cast<float>(q[j]) * g.dy_scale * s[j] *
                  static_cast<float>(w[j]);
      }
      continue;
    }
    const float* dy = g.dy + readers.out[r] + c0;
#pragma GCC unroll 16
    for (int j = 0; j < kBlock; ++j) {
      if (((pass >> j) & 1) == 0) continue;
      acc[j] += dy[j] * s[j] * static_cast<float>(w[j]);
    }
  }
#pragma GCC unroll 16
  for (int j = 0; j < kBlock; ++j) d[j] = acc[j];
}

// Any multiplier M: d[0] = the sum of input channel i, over the taps, then
// its output channels i * M .. i * M + M - 1.
inline void InputGradChannel(const ConvGradArgs& a, const OutputGrad& g,
                             int b, int iy, int ix, int i, float* d) {
  const int multiplier = a.filter_shape.dims[3] / a.x_shape.dims[3];
  const int c0 = i * multiplier;
  float acc = 0.0f;
  ForEachReader(a, b, iy, ix, [&](int64_t out, const int8_t* tap) {
    for (int c = c0; c < c0 + multiplier; ++c) {
      const float g_c = g.At(out + c);
      if (g_c == 0.0f) continue;
      acc += g_c * a.filter_scales[c] * static_cast<float>(tap[c]);
    }
  });
  *d = acc;
}

}  // namespace depthwise_internal

template <typename Sink>
void DepthwiseConvInputGradTo(const ConvGradArgs& a, Sink& sink) {
  const int batches = a.x_shape.dims[0];
  const int in_h = a.x_shape.dims[1];
  const int in_w = a.x_shape.dims[2];
  const int in_c = a.x_shape.dims[3];
  const OutputGrad g = a.g;
  const bool blocked = a.filter_shape.dims[3] == in_c &&  // multiplier 1
                       g.broadcast_cells == 0 &&
                       a.filter_shape.dims[1] * a.filter_shape.dims[2] <=
                           depthwise_internal::Readers::kMax;
  depthwise_internal::Readers readers;
  int64_t cell = 0;
  for (int b = 0; b < batches; ++b)
    for (int iy = 0; iy < in_h; ++iy)
      for (int ix = 0; ix < in_w; ++ix, ++cell) {
        float* d = sink.Begin(cell);
        int i = 0;
        if (blocked) {
          readers.count = 0;
          depthwise_internal::ForEachReader(
              a, b, iy, ix, [&](int64_t out, const int8_t* tap) {
                readers.out[readers.count] = out;
                readers.tap[readers.count++] = tap;
              });
          for (; i + 8 <= in_c; i += 8)
            depthwise_internal::InputGradBlock<8>(a, g, readers, i, d + i);
        }
        for (; i < in_c; ++i)
          depthwise_internal::InputGradChannel(a, g, b, iy, ix, i, d + i);
        sink.End(cell);
      }
}

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_GRAD_DEPTHWISE_CONV_GRAD_H_
