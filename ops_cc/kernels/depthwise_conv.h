// DEPTHWISE_CONV_2D with int8 activations and per-channel int8 weights
// (TFLite Micro's reference DepthwiseConvPerChannel numerics).
#ifndef TFLM_TRAIN_KERNELS_DEPTHWISE_CONV_H_
#define TFLM_TRAIN_KERNELS_DEPTHWISE_CONV_H_

#include <cstdint>

#include "ops_cc/core/shape.h"
#include "ops_cc/kernels/conv.h"

namespace tflm_train {
namespace ref {

// input [N, H, W, Cin], filter [1, KH, KW, Cout], bias [Cout] (may be null),
// output [N, OH, OW, Cout] with Cout = Cin * depth_multiplier; output channel
// c * depth_multiplier + m reads input channel c. Multipliers/shifts are per
// output channel (see ComputePerChannelMultipliers).
void DepthwiseConvPerChannel(const ConvParams& params,
                             const int32_t* output_multiplier,
                             const int32_t* output_shift,
                             const Shape& input_shape, const int8_t* input,
                             const Shape& filter_shape, const int8_t* filter,
                             const int32_t* bias, const Shape& output_shape,
                             int8_t* output);

}  // namespace ref
}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_DEPTHWISE_CONV_H_
