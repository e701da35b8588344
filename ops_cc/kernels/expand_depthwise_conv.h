// A 1x1 CONV_2D (stride 1) feeding a DEPTHWISE_CONV_2D, run in row bands so
// that the expanded tensor between them never exists whole
// (TFLMTRAIN_EXPAND_DEPTHWISE_CONV_2D, docs/format.md). Each element is
// computed by the two builtins' kernels (ConvPerChannel on one input row,
// DepthwiseConvPerChannel on the band), so the output is bit-identical to
// running them one after the other.
#ifndef TFLM_TRAIN_KERNELS_EXPAND_DEPTHWISE_CONV_H_
#define TFLM_TRAIN_KERNELS_EXPAND_DEPTHWISE_CONV_H_

#include <cstdint>

#include "ops_cc/core/shape.h"
#include "ops_cc/kernels/conv.h"

namespace tflm_train {

// One convolution's operands: filter, bias (may be null) and per-channel
// requantization (see ComputePerChannelMultipliers).
struct ConvOperands {
  ConvParams params;
  Shape filter_shape;
  const int8_t* filter = nullptr;
  const int32_t* bias = nullptr;
  const int32_t* multipliers = nullptr;
  const int32_t* shifts = nullptr;
};

// Rows of the expanded tensor the band holds at most: the depthwise
// window's height (dilated), at most the input's height.
int ExpandDepthwiseBandRows(const ConvParams& depthwise, int filter_h,
                            int in_h);

// input [N, H, W, Cin]; expand: filter [Cmid, 1, 1, Cin / groups], params
// with stride 1 and no padding; depthwise: filter [1, KH, KW, Cout]; output
// [N, OH, OW, Cout]. `band` holds ExpandDepthwiseBandRows x W x Cmid int8.
void ExpandDepthwiseConvPerChannel(const ConvOperands& expand,
                                   const ConvOperands& depthwise,
                                   const Shape& input_shape,
                                   const int8_t* input,
                                   const Shape& output_shape, int8_t* output,
                                   int8_t* band);

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_EXPAND_DEPTHWISE_CONV_H_
