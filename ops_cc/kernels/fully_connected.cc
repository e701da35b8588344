#include "ops_cc/kernels/fully_connected.h"

#include "ops_cc/core/quantization.h"

namespace tflm_train {

bool ComputeFullyConnectedMultiplier(float input_scale, float filter_scale,
                                     float output_scale, int32_t* multiplier,
                                     int32_t* shift) {
  const double real = static_cast<double>(input_scale) *
                      static_cast<double>(filter_scale) /
                      static_cast<double>(output_scale);
  int s = 0;
  QuantizeMultiplier(real, multiplier, &s);
  *shift = s;
  return *multiplier >= 0 && s <= 31;
}

namespace ref {

void FullyConnected(const FullyConnectedParams& params,
                    const int32_t* output_multiplier,
                    const int32_t* output_shift, const int8_t* input,
                    const Shape& filter_shape, const int8_t* filter,
                    const int32_t* bias, const Shape& output_shape,
                    int8_t* output, const FilterSlice& slice) {
  const int units = output_shape.Last();
  const int rows = static_cast<int>(output_shape.FlatSizeSkipLast());
  const int depth = filter_shape.dims[1];
  for (int r = 0; r < rows; ++r) {
    const int8_t* in_row = input + r * depth;
    int cursor = 0;
    for (int u = 0; u < units; ++u) {
      // The accumulator indexes row u of its filter argument: hand it the
      // merged row as row 0, and u's bias.
      const int8_t* row = MergedFilterRow(filter, depth, slice, u, &cursor);
      int32_t acc = FullyConnectedAccumulator(params.input_offset, in_row,
                                              depth, row, nullptr, 0);
      if (bias != nullptr) acc = WrappingAdd(acc, bias[u]);
      const int q = params.per_channel ? u : 0;
      acc = MultiplyByQuantizedMultiplier(acc, output_multiplier[q],
                                          output_shift[q]);
      acc = WrappingAdd(acc, params.output_offset);
      if (acc < params.act_min) acc = params.act_min;
      if (acc > params.act_max) acc = params.act_max;
      output[r * units + u] = static_cast<int8_t>(acc);
    }
  }
}

}  // namespace ref
}  // namespace tflm_train
