#include "ops_cc/kernels/grad/depthwise_conv_grad.h"

namespace tflm_train {

void DepthwiseConvInputGrad(const ConvGradArgs& a, float* dx) {
  const int batches = a.x_shape.dims[0];
  const int in_h = a.x_shape.dims[1];
  const int in_w = a.x_shape.dims[2];
  const int in_channels = a.x_shape.dims[3];
  const int channels = a.filter_shape.dims[3];  // in_channels * multiplier
  const int multiplier = channels / in_channels;
  const int filter_h = a.filter_shape.dims[1];
  const int filter_w = a.filter_shape.dims[2];
  const int out_h = a.y_shape.dims[1];
  const int out_w = a.y_shape.dims[2];

  const int64_t n = a.x_shape.FlatSize();
  for (int64_t k = 0; k < n; ++k) dx[k] = 0.0f;

  // g of one output cell for a chunk of channels, read once for all taps.
  // Each dx element still receives its terms in (cell, channel) order (one
  // tap of a cell reaches it), so the sums are those of the tap-outer loop.
  constexpr int kChunk = 64;
  float g[kChunk];
  for (int b = 0; b < batches; ++b) {
    for (int oy = 0; oy < out_h; ++oy) {
      const int y0 = oy * a.stride_h - a.pad_h;
      for (int ox = 0; ox < out_w; ++ox) {
        const int x0 = ox * a.stride_w - a.pad_w;
        const int64_t out = Offset4(a.y_shape, b, oy, ox, 0);
        for (int c0 = 0; c0 < channels; c0 += kChunk) {
          const int len = channels - c0 < kChunk ? channels - c0 : kChunk;
          bool any = false;
          for (int j = 0; j < len; ++j) {
            g[j] = a.g.At(out + c0 + j);
            any = any || g[j] != 0.0f;
          }
          if (!any) continue;
          for (int ky = 0; ky < filter_h; ++ky) {
            const int iy = y0 + ky * a.dilation_h;
            if (iy < 0 || iy >= in_h) continue;
            for (int kx = 0; kx < filter_w; ++kx) {
              const int ix = x0 + kx * a.dilation_w;
              if (ix < 0 || ix >= in_w) continue;
              const int8_t* w =
                  a.filter + Offset4(a.filter_shape, 0, ky, kx, c0);
              float* d = dx + Offset4(a.x_shape, b, iy, ix, 0);
              for (int j = 0; j < len; ++j) {
                if (g[j] == 0.0f) continue;
                const int c = c0 + j;
                d[c / multiplier] +=
                    g[j] * a.filter_scales[c] * static_cast<float>(w[j]);
              }
            }
          }
        }
      }
    }
  }
}

float DepthwiseConvFilterGrad(const ConvGradArgs& a, int ky, int kx, int c) {
  const int multiplier = a.filter_shape.dims[3] / a.x_shape.dims[3];
  return ConvFilterGrad(a, c, ky, kx, c / multiplier);
}

void DepthwiseConvGrad(const ConvGradArgs& a, float* dx,
                       const LayerUpdate& update) {
  if (dx != nullptr) DepthwiseConvInputGrad(a, dx);
  const int channels = a.filter_shape.dims[3];
  if (update.update_weights) {
    const int filter_h = a.filter_shape.dims[1];
    const int filter_w = a.filter_shape.dims[2];
    const int count =
        update.channels != nullptr ? update.num_channels : channels;
    int64_t slot = 0;  // (ky * KW + kx) * count + k
    for (int ky = 0; ky < filter_h; ++ky)
      for (int kx = 0; kx < filter_w; ++kx)
        for (int k = 0; k < count; ++k) {
          const int c = update.channels != nullptr ? update.channels[k] : k;
          int8_t* w = a.filter + Offset4(a.filter_shape, 0, ky, kx, c);
          *w = SgdUpdateInt8(*w, DepthwiseConvFilterGrad(a, ky, kx, c),
                             update.weight_lr, a.filter_scales[c], update.rule,
                             update.weight_slots, slot++);
        }
  }
  if (update.bias != nullptr) {
    for (int c = 0; c < channels; ++c)
      update.bias[c] = SgdUpdateInt32(update.bias[c], ConvBiasGrad(a, c),
                                      update.bias_lr, update.bias_scales[c],
                                      update.rule, update.bias_slots, c);
  }
}

}  // namespace tflm_train
