// FULLY_CONNECTED with int8 activations and symmetric int8 weights quantized
// per tensor or per output unit (TFLite Micro's reference numerics).
#ifndef TFLM_TRAIN_KERNELS_FULLY_CONNECTED_H_
#define TFLM_TRAIN_KERNELS_FULLY_CONNECTED_H_

#include <cstdint>

#include "ops_cc/core/quantization.h"
#include "ops_cc/core/shape.h"
#include "ops_cc/kernels/filter_slice.h"

namespace tflm_train {

struct FullyConnectedParams {
  int32_t input_offset = 0;   // -(input zero point)
  int32_t output_offset = 0;  // output zero point
  int32_t act_min = -128, act_max = 127;
  // True: one multiplier/shift per output unit; false: a single pair.
  bool per_channel = false;
};

// The per-tensor multiplier input_scale * filter_scale / output_scale, in
// double throughout: the tflite-micro wheel's FULLY_CONNECTED gives the
// double product's result where a single-precision product would move the
// multiplier enough to round some outputs differently
// (tests/test_forward_lstm.py). Per-channel weights use
// ComputePerChannelMultipliers. Returns false if the multiplier is negative
// or needs a left shift above 31.
bool ComputeFullyConnectedMultiplier(float input_scale, float filter_scale,
                                     float output_scale, int32_t* multiplier,
                                     int32_t* shift);

// The int32 accumulator of output unit u of input row `in_row` (depth
// elements), bias included, before requantization (wrapping on overflow).
inline int32_t FullyConnectedAccumulator(int32_t input_offset,
                                         const int8_t* in_row, int depth,
                                         const int8_t* filter,
                                         const int32_t* bias, int u) {
  const int8_t* w = filter + u * depth;
  int32_t acc = 0;
  for (int d = 0; d < depth; ++d) {
    acc = WrappingAdd(acc, static_cast<int32_t>(w[d]) *
                               (static_cast<int32_t>(in_row[d]) + input_offset));
  }
  if (bias != nullptr) acc = WrappingAdd(acc, bias[u]);
  return acc;
}

namespace ref {

// filter [units, depth], bias [units] (may be null), output [..., units]; the
// input is read as [rows, depth] with rows = output elements / units. With a
// slice, the weights are the merged filter (filter_slice.h).
void FullyConnected(const FullyConnectedParams& params,
                    const int32_t* output_multiplier,
                    const int32_t* output_shift, const int8_t* input,
                    const Shape& filter_shape, const int8_t* filter,
                    const int32_t* bias, const Shape& output_shape,
                    int8_t* output, const FilterSlice& slice = FilterSlice());

}  // namespace ref
}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_FULLY_CONNECTED_H_
