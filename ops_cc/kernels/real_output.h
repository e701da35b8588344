// The real-valued output of an int8 FULLY_CONNECTED or CONV_2D layer,
// recomputed from its int32 accumulator without requantization or int8
// saturation (TFLMTRAIN_*_REAL_OUTPUT): the values the training losses read,
// so that an output outside the calibrated int8 range still has a gradient.
#ifndef TFLM_TRAIN_KERNELS_REAL_OUTPUT_H_
#define TFLM_TRAIN_KERNELS_REAL_OUTPUT_H_

#include <cstdint>

#include "ops_cc/core/shape.h"
#include "ops_cc/kernels/conv.h"

namespace tflm_train {

// Output channel c's real value is y = act(float(acc) * (s_x * s_w[c])), the
// product s_x * s_w[c] formed in single precision, where acc is the layer's
// int32 accumulator with its bias (whose scale is s_x * s_w[c]) and act
// clamps to [lower, upper] (NONE: no clamp, RELU: [0, inf), RELU6: [0, 6]).
struct RealOutputParams {
  float input_scale = 0.0f;              // s_x
  const float* filter_scales = nullptr;  // s_w: one, or one per channel
  bool per_tensor_filter = false;
  float lower = -3.40282347e38f, upper = 3.40282347e38f;

  float Scale(int c) const {
    return input_scale * filter_scales[per_tensor_filter ? 0 : c];
  }
  float Activate(float y) const {
    return y < lower ? lower : (y > upper ? upper : y);
  }
};

// Real bounds of a fused activation (0 NONE, 1 RELU, 3 RELU6); false if
// unsupported.
bool RealActivationBounds(int activation, float* lower, float* upper);

// input [rows, depth] (int8, offset = -zero point), filter [units, depth],
// bias [units] or null; output [rows, units].
void FullyConnectedRealOutput(const RealOutputParams& params,
                              int32_t input_offset, const int8_t* input,
                              int rows, int depth, int units,
                              const int8_t* filter, const int32_t* bias,
                              float* output);

// Geometry and input offset as ConvPerChannel (conv.h); output [N, OH, OW, O].
void ConvRealOutput(const RealOutputParams& params, const ConvParams& conv,
                    const Shape& input_shape, const int8_t* input,
                    const Shape& filter_shape, const int8_t* filter,
                    const int32_t* bias, const Shape& output_shape,
                    float* output);

// The share of the gap by which the output range contracts per step.
constexpr float kRangeDecay = 1.0f / 128.0f;

// Moves range [min, max] to follow the output: with m, M the smallest and
// largest of values[0, n) (index order), min becomes m if m < min, else
// min + kRangeDecay * (m - min); max likewise (M if M > max, else
// max - kRangeDecay * (max - M)). It widens at once and narrows over about
// 1 / kRangeDecay steps, so it covers what the model outputs now rather than
// what it output early in training.
void TrackRange(const float* values, int64_t n, float* range);

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_REAL_OUTPUT_H_
