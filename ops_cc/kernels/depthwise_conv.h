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

// In place: `data` holds the input [1, H, W, C] and receives the output
// [1, OH, OW, C] (depth multiplier 1, output no larger than the input).
// Each output row is computed from the intact input into a ring of
// `DepthwiseInPlaceRows` rows of `row_buffer` (OW * C bytes each) and copied
// to its place once no later output row reads the input bytes it covers;
// the results equal DepthwiseConvPerChannel's.
void DepthwiseConvPerChannelInPlace(const ConvParams& params,
                                    const int32_t* output_multiplier,
                                    const int32_t* output_shift,
                                    const Shape& input_shape, int8_t* data,
                                    const Shape& filter_shape,
                                    const int8_t* filter, const int32_t* bias,
                                    const Shape& output_shape,
                                    int8_t* row_buffer);

}  // namespace ref

// Rows of output the in-place depthwise convolution holds at once (its
// row_buffer is this many output rows).
int DepthwiseInPlaceRows(const ConvParams& params, const Shape& input_shape,
                         const Shape& output_shape);

// Computes output row `oy` ([1, 1, OW, C]) of a depthwise convolution from
// the input in `data` (every input row that output row reads is intact)
// into `row`; false stops the convolution.
using DepthwiseRowFunction = bool (*)(void* context, int oy,
                                      const int8_t* data, int8_t* row);

// DepthwiseConvPerChannelInPlace's schedule with `row` computing each output
// row (another kernel, e.g. CMSIS-NN's): rows go to the ring in
// `row_buffer` and are copied over consumed input rows. False if `row`
// returned false.
bool DepthwiseInPlace(const ConvParams& params, const Shape& input_shape,
                      int8_t* data, const Shape& output_shape,
                      int8_t* row_buffer, DepthwiseRowFunction row,
                      void* context);

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_DEPTHWISE_CONV_H_
