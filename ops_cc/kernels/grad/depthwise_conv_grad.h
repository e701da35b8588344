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
// gets its gradient and update at once; then the bias of every channel.
void DepthwiseConvGrad(const ConvGradArgs& args, float* dx,
                       const LayerUpdate& update);

namespace depthwise_internal {

// d[0..kBlock) = the sums of input channels i0 .. i0 + kBlock - 1 of input
// cell (b, iy, ix), each in the order documented above; the kBlock partial
// sums stay in registers over all taps.
template <int kBlock>
void InputGradBlock(const ConvGradArgs& a, const OutputGrad& g, int b, int iy,
                    int ix, int i0, float* d) {
  const int channels = a.filter_shape.dims[3];
  const int multiplier = channels / a.x_shape.dims[3];
  const int filter_h = a.filter_shape.dims[1];
  const int filter_w = a.filter_shape.dims[2];
  float acc[kBlock];
#pragma GCC unroll 16
  for (int j = 0; j < kBlock; ++j) acc[j] = 0.0f;
  // Output row oy reads input row iy through tap ky when
  // oy * stride - pad + ky * dilation == iy; oy grows as ky falls.
  for (int ky = filter_h - 1; ky >= 0; --ky) {
    const int ty = iy + a.pad_h - ky * a.dilation_h;
    if (ty < 0 || ty % a.stride_h != 0 || ty / a.stride_h >= a.y_shape.dims[1])
      continue;
    for (int kx = filter_w - 1; kx >= 0; --kx) {
      const int tx = ix + a.pad_w - kx * a.dilation_w;
      if (tx < 0 || tx % a.stride_w != 0 ||
          tx / a.stride_w >= a.y_shape.dims[2])
        continue;
      const int c0 = i0 * multiplier;
      const int64_t out =
          Offset4(a.y_shape, b, ty / a.stride_h, tx / a.stride_w, c0);
      const int8_t* w = a.filter + (ky * filter_w + kx) * channels + c0;
      const float* s = a.filter_scales + c0;
#pragma GCC unroll 16
      for (int j = 0; j < kBlock; ++j)
        for (int m = 0; m < multiplier; ++m) {
          const int k = j * multiplier + m;
          const float g_c = g.At(out + k);
          if (g_c == 0.0f) continue;
          acc[j] += g_c * s[k] * static_cast<float>(w[k]);
        }
    }
  }
#pragma GCC unroll 16
  for (int j = 0; j < kBlock; ++j) d[j] = acc[j];
}

}  // namespace depthwise_internal

template <typename Sink>
void DepthwiseConvInputGradTo(const ConvGradArgs& a, Sink& sink) {
  const int batches = a.x_shape.dims[0];
  const int in_h = a.x_shape.dims[1];
  const int in_w = a.x_shape.dims[2];
  const int in_c = a.x_shape.dims[3];
  const OutputGrad g = a.g;
  int64_t cell = 0;
  for (int b = 0; b < batches; ++b)
    for (int iy = 0; iy < in_h; ++iy)
      for (int ix = 0; ix < in_w; ++ix, ++cell) {
        float* d = sink.Begin(cell);
        int i = 0;
        for (; i + 8 <= in_c; i += 8)
          depthwise_internal::InputGradBlock<8>(a, g, b, iy, ix, i, d + i);
        for (; i < in_c; ++i)
          depthwise_internal::InputGradBlock<1>(a, g, b, iy, ix, i, d + i);
        sink.End(cell);
      }
}

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_GRAD_DEPTHWISE_CONV_GRAD_H_
