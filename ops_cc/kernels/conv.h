// CONV_2D with int8 activations and int8 weights quantized per output
// channel (TFLite Micro's reference ConvPerChannel numerics).
#ifndef TFLM_TRAIN_KERNELS_CONV_H_
#define TFLM_TRAIN_KERNELS_CONV_H_

#include <cstdint>

#include "ops_cc/core/shape.h"

namespace tflm_train {

// Shared by CONV_2D and DEPTHWISE_CONV_2D.
struct ConvParams {
  int stride_h = 1, stride_w = 1;
  int dilation_h = 1, dilation_w = 1;
  // Implicit zero-valued rows above / columns left of the input.
  int pad_h = 0, pad_w = 0;
  int32_t input_offset = 0;   // -(input zero point)
  int32_t output_offset = 0;  // output zero point
  int32_t act_min = -128, act_max = 127;
};

// Per-channel requantization multipliers round(input_scale * filter_scale[c]
// / output_scale) as (Q31 significand, shift), computed in double precision.
// `num_filter_scales` is 1 (per-tensor weights, broadcast) or
// `num_channels`. Returns false if a multiplier is negative or needs a
// left shift above 31.
bool ComputePerChannelMultipliers(float input_scale, const float* filter_scales,
                                  int num_filter_scales, float output_scale,
                                  int num_channels, int32_t* multipliers,
                                  int32_t* shifts);

namespace ref {

// input [N, H, W, Cin], filter [Cout, KH, KW, Cin / groups], bias [Cout] (may
// be null), output [N, OH, OW, Cout]; groups = Cin / filter depth, each group
// of Cout / groups output channels reads its own slice of input channels.
// Weights are symmetric (zero point 0).
void ConvPerChannel(const ConvParams& params, const int32_t* output_multiplier,
                    const int32_t* output_shift, const Shape& input_shape,
                    const int8_t* input, const Shape& filter_shape,
                    const int8_t* filter, const int32_t* bias,
                    const Shape& output_shape, int8_t* output);

}  // namespace ref
}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_CONV_H_
