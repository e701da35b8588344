#include "ops_cc/kernels/grad/depthwise_conv_grad.h"

namespace tflm_train {

void DepthwiseConvInputGrad(const ConvGradArgs& a, float* dx) {
  FloatDxSink sink{dx, a.x_shape.dims[3]};
  DepthwiseConvInputGradTo(a, sink);
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
  if (update.bias != nullptr) UpdateConvBias(a, update);
}

}  // namespace tflm_train
