#include "ops_cc/kernels/depthwise_conv.h"

#include "ops_cc/core/quantization.h"

namespace tflm_train {
namespace ref {

void DepthwiseConvPerChannel(const ConvParams& params,
                             const int32_t* output_multiplier,
                             const int32_t* output_shift,
                             const Shape& input_shape, const int8_t* input,
                             const Shape& filter_shape, const int8_t* filter,
                             const int32_t* bias, const Shape& output_shape,
                             int8_t* output) {
  const int batches = input_shape.dims[0];
  const int in_h = input_shape.dims[1];
  const int in_w = input_shape.dims[2];
  const int in_c = input_shape.dims[3];
  const int filter_h = filter_shape.dims[1];
  const int filter_w = filter_shape.dims[2];
  const int out_h = output_shape.dims[1];
  const int out_w = output_shape.dims[2];
  const int out_c = output_shape.dims[3];
  const int depth_multiplier = out_c / in_c;

  for (int b = 0; b < batches; ++b) {
    const int8_t* in_batch = input + b * in_h * in_w * in_c;
    for (int oy = 0; oy < out_h; ++oy) {
      const int y0 = oy * params.stride_h - params.pad_h;
      for (int ox = 0; ox < out_w; ++ox) {
        const int x0 = ox * params.stride_w - params.pad_w;
        int8_t* out_px = output + ((b * out_h + oy) * out_w + ox) * out_c;
        for (int oc = 0; oc < out_c; ++oc) {
          const int ic = oc / depth_multiplier;
          int32_t acc = 0;
          for (int ky = 0; ky < filter_h; ++ky) {
            const int y = y0 + ky * params.dilation_h;
            if (y < 0 || y >= in_h) continue;  // zero padding contributes 0
            for (int kx = 0; kx < filter_w; ++kx) {
              const int x = x0 + kx * params.dilation_w;
              if (x < 0 || x >= in_w) continue;
              const int32_t in_val = in_batch[(y * in_w + x) * in_c + ic];
              const int32_t w = filter[(ky * filter_w + kx) * out_c + oc];
              acc = WrappingAdd(acc, w * (in_val + params.input_offset));
            }
          }
          if (bias != nullptr) acc = WrappingAdd(acc, bias[oc]);
          acc = MultiplyByQuantizedMultiplier(acc, output_multiplier[oc],
                                              output_shift[oc]);
          acc = WrappingAdd(acc, params.output_offset);
          if (acc < params.act_min) acc = params.act_min;
          if (acc > params.act_max) acc = params.act_max;
          out_px[oc] = static_cast<int8_t>(acc);
        }
      }
    }
  }
}

}  // namespace ref
}  // namespace tflm_train
