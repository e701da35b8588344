#include "ops_cc/kernels/real_output.h"

#include "ops_cc/kernels/fully_connected.h"

namespace tflm_train {

bool RealActivationBounds(int activation, float* lower, float* upper) {
  const RealOutputParams none;
  switch (activation) {
    case 0:  // NONE
      *lower = none.lower;
      *upper = none.upper;
      return true;
    case 1:  // RELU
      *lower = 0.0f;
      *upper = none.upper;
      return true;
    case 3:  // RELU6
      *lower = 0.0f;
      *upper = 6.0f;
      return true;
    default:
      return false;
  }
}

void FullyConnectedRealOutput(const RealOutputParams& params,
                              int32_t input_offset, const int8_t* input,
                              int rows, int depth, int units,
                              const int8_t* filter, const int32_t* bias,
                              float* output) {
  for (int r = 0; r < rows; ++r) {
    const int8_t* in_row = input + r * depth;
    for (int u = 0; u < units; ++u) {
      const int32_t acc = FullyConnectedAccumulator(input_offset, in_row,
                                                    depth, filter, bias, u);
      output[r * units + u] =
          params.Activate(static_cast<float>(acc) * params.Scale(u));
    }
  }
}

void ConvRealOutput(const RealOutputParams& params, const ConvParams& conv,
                    const Shape& input_shape, const int8_t* input,
                    const Shape& filter_shape, const int8_t* filter,
                    const int32_t* bias, const Shape& output_shape,
                    float* output) {
  const int in_h = input_shape.dims[1];
  const int in_w = input_shape.dims[2];
  const int in_c = input_shape.dims[3];
  const int out_c = filter_shape.dims[0];
  const int filter_h = filter_shape.dims[1];
  const int filter_w = filter_shape.dims[2];
  const int filter_c = filter_shape.dims[3];
  int64_t k = 0;
  for (int b = 0; b < output_shape.dims[0]; ++b) {
    const int8_t* in_batch = input + b * in_h * in_w * in_c;
    for (int oy = 0; oy < output_shape.dims[1]; ++oy) {
      const int y0 = oy * conv.stride_h - conv.pad_h;
      for (int ox = 0; ox < output_shape.dims[2]; ++ox) {
        const int x0 = ox * conv.stride_w - conv.pad_w;
        for (int oc = 0; oc < out_c; ++oc, ++k) {
          int32_t acc = ConvWindowSum(
              conv, in_batch, in_h, in_w, in_c,
              filter + oc * filter_h * filter_w * filter_c, filter_h,
              filter_w, filter_c, y0, x0);
          if (bias != nullptr) acc = WrappingAdd(acc, bias[oc]);
          output[k] = params.Activate(static_cast<float>(acc) * params.Scale(oc));
        }
      }
    }
  }
}

void TrackRange(const float* values, int64_t n, float* range) {
  if (n < 1) return;
  float low = values[0], high = values[0];
  for (int64_t i = 1; i < n; ++i) {
    if (values[i] < low) low = values[i];
    if (values[i] > high) high = values[i];
  }
  range[0] = low < range[0] ? low : range[0] + kRangeDecay * (low - range[0]);
  range[1] = high > range[1] ? high : range[1] - kRangeDecay * (range[1] - high);
}

}  // namespace tflm_train
