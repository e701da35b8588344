// CONV_2D with int8 activations and int8 weights quantized per output
// channel (TFLite Micro's reference ConvPerChannel numerics).
#ifndef TFLM_TRAIN_KERNELS_CONV_H_
#define TFLM_TRAIN_KERNELS_CONV_H_

#include <cstdint>

#include "ops_cc/core/quantization.h"
#include "ops_cc/core/shape.h"
#include "ops_cc/kernels/filter_slice.h"
#include "ops_cc/kernels/int8_mac.h"

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

// The int32 sum over one output cell's window, before bias and
// requantization (wrapping on overflow as TFLM's int32 arithmetic does in
// practice): in_group points at the batch's first pixel, at the first input
// channel of the output channel's group; filter_oc at that channel's
// [KH, KW, filter_c] weights; (y0, x0) is the window's top-left input
// position (negative inside the padding). Shared by ConvPerChannel and the
// real-valued output of the training graph.
inline int32_t ConvWindowSum(const ConvParams& params, const int8_t* in_group,
                             int in_h, int in_w, int in_c,
                             const int8_t* filter_oc, int filter_h,
                             int filter_w, int filter_c, int y0, int x0) {
  int32_t acc = 0;
  for (int ky = 0; ky < filter_h; ++ky) {
    const int y = y0 + ky * params.dilation_h;
    if (y < 0 || y >= in_h) continue;  // zero padding contributes 0
    for (int kx = 0; kx < filter_w; ++kx) {
      const int x = x0 + kx * params.dilation_w;
      if (x < 0 || x >= in_w) continue;
      acc = DotInt8(in_group + (y * in_w + x) * in_c,
                    filter_oc + (ky * filter_w + kx) * filter_c, filter_c,
                    params.input_offset, acc);
    }
  }
  return acc;
}

// A convolution's int32 sum (bias included) as the output's int8: the
// channel's requantization, the output zero point, the activation clamp.
inline int8_t ConvOutputInt8(const ConvParams& params, int32_t acc,
                             int32_t multiplier, int32_t shift) {
  acc = MultiplyByQuantizedMultiplier(acc, multiplier, shift);
  acc = WrappingAdd(acc, params.output_offset);
  if (acc < params.act_min) acc = params.act_min;
  if (acc > params.act_max) acc = params.act_max;
  return static_cast<int8_t>(acc);
}

namespace ref {

// input [N, H, W, Cin], filter [Cout, KH, KW, Cin / groups], bias [Cout] (may
// be null), output [N, OH, OW, Cout]; groups = Cin / filter depth, each group
// of Cout / groups output channels reads its own slice of input channels.
// Weights are symmetric (zero point 0). With a slice, the weights are the
// merged filter (filter_slice.h).
void ConvPerChannel(const ConvParams& params, const int32_t* output_multiplier,
                    const int32_t* output_shift, const Shape& input_shape,
                    const int8_t* input, const Shape& filter_shape,
                    const int8_t* filter, const int32_t* bias,
                    const Shape& output_shape, int8_t* output,
                    const FilterSlice& slice = FilterSlice());

}  // namespace ref
}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_CONV_H_
