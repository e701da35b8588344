#include "ops_cc/kernels/conv.h"

#include "ops_cc/core/quantization.h"

namespace tflm_train {

bool ComputePerChannelMultipliers(float input_scale, const float* filter_scales,
                                  int num_filter_scales, float output_scale,
                                  int num_channels, int32_t* multipliers,
                                  int32_t* shifts) {
  for (int c = 0; c < num_channels; ++c) {
    const float filter_scale = filter_scales[num_filter_scales == 1 ? 0 : c];
    const double real = static_cast<double>(input_scale) *
                        static_cast<double>(filter_scale) /
                        static_cast<double>(output_scale);
    int shift = 0;
    QuantizeMultiplier(real, &multipliers[c], &shift);
    if (multipliers[c] < 0 || shift > 31) return false;
    shifts[c] = shift;
  }
  return true;
}

namespace ref {

void ConvPerChannel(const ConvParams& params, const int32_t* output_multiplier,
                    const int32_t* output_shift, const Shape& input_shape,
                    const int8_t* input, const Shape& filter_shape,
                    const int8_t* filter, const int32_t* bias,
                    const Shape& output_shape, int8_t* output,
                    const FilterSlice& slice) {
  const int batches = input_shape.dims[0];
  const int in_h = input_shape.dims[1];
  const int in_w = input_shape.dims[2];
  const int in_c = input_shape.dims[3];
  const int out_c = filter_shape.dims[0];
  const int filter_h = filter_shape.dims[1];
  const int filter_w = filter_shape.dims[2];
  const int filter_c = filter_shape.dims[3];
  const int out_h = output_shape.dims[1];
  const int out_w = output_shape.dims[2];
  const int filters_per_group = out_c / (in_c / filter_c);
  const int64_t row_size = static_cast<int64_t>(filter_h) * filter_w * filter_c;

  // A 1x1 window is one pixel: its sum is one dot product (0 in the padding).
  const bool pointwise = filter_h == 1 && filter_w == 1;

  for (int b = 0; b < batches; ++b) {
    const int8_t* in_batch = input + b * in_h * in_w * in_c;
    for (int oy = 0; oy < out_h; ++oy) {
      const int y0 = oy * params.stride_h - params.pad_h;
      for (int ox = 0; ox < out_w; ++ox) {
        const int x0 = ox * params.stride_w - params.pad_w;
        const bool inside = y0 >= 0 && y0 < in_h && x0 >= 0 && x0 < in_w;
        const int8_t* in_px = inside ? in_batch + (y0 * in_w + x0) * in_c : in_batch;
        int8_t* out_px = output + ((b * out_h + oy) * out_w + ox) * out_c;
        int cursor = 0;
        for (int oc = 0; oc < out_c; ++oc) {
          const int group_c = (oc / filters_per_group) * filter_c;
          const int8_t* filter_oc =
              MergedFilterRow(filter, row_size, slice, oc, &cursor);
          int32_t acc = 0;
          if (!pointwise) {
            acc = ConvWindowSum(params, in_batch + group_c, in_h, in_w, in_c,
                                filter_oc, filter_h, filter_w, filter_c, y0, x0);
          } else if (inside) {
            acc = DotInt8(in_px + group_c, filter_oc, filter_c,
                          params.input_offset, 0);
          }
          if (bias != nullptr) acc = WrappingAdd(acc, bias[oc]);
          out_px[oc] = ConvOutputInt8(params, acc, output_multiplier[oc],
                                      output_shift[oc]);
        }
      }
    }
  }
}

}  // namespace ref
}  // namespace tflm_train
