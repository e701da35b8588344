// Backward of an int8 CONV_2D (NHWC input, filter [O, KH, KW, I]) with the
// fused SGD update of its weights and bias.
//
// Real values: x = s_x (q_x - z_x), W[o] = s_w[o] q_w[o], the output gradient
// g = OutputGrad::At (the masked dy, grad_common.h). Float sums run in the loop orders documented below.
#ifndef TFLM_TRAIN_KERNELS_GRAD_CONV_GRAD_H_
#define TFLM_TRAIN_KERNELS_GRAD_CONV_GRAD_H_

#include <cstdint>

#include "ops_cc/core/shape.h"
#include "ops_cc/kernels/filter_slice.h"
#include "ops_cc/kernels/grad/grad_common.h"
#include "ops_cc/kernels/grad/sgd_update.h"

namespace tflm_train {

// Forward tensors and geometry of the layer (shared with depthwise conv,
// whose filter is [1, KH, KW, C]).
struct ConvGradArgs {
  int stride_h = 1, stride_w = 1;
  int dilation_h = 1, dilation_w = 1;
  int pad_h = 0, pad_w = 0;  // implicit zero rows above / columns left
  float input_scale = 0.0f;
  int32_t input_zero_point = 0;
  Shape x_shape;             // [N, H, W, I]
  const int8_t* x = nullptr;
  Shape filter_shape;
  int8_t* filter = nullptr;  // updated in place by ConvGrad (no slice)
  // With a slice (CONV_2D only): the weights are the merged filter, the
  // filter is frozen and the update writes the slice's rows instead, which
  // must be update.channels.
  FilterSlice slice;
  const float* filter_scales = nullptr;  // s_w per output channel
  Shape y_shape;             // [N, OH, OW, O]
  OutputGrad g;              // of y
};

// dL/dx, written to dx (shape of x): zeroed, then for each (n, oy, ox, o) in
// row-major order with g != 0, g * s_w[o] * q_w[o, ky, kx, i] is added to the
// input cell it came from, for (ky, kx, i) in row-major order.
void ConvInputGrad(const ConvGradArgs& args, float* dx);

// dL/dW[o, ky, kx, i] = s_x * sum over (n, oy, ox) of
// g[n, oy, ox, o] * (q_x[n, iy, ix, i] - z_x), summed in that order (padding
// cells contribute nothing). Only x and y/dy are read, so it also serves
// depthwise conv (o = i = the channel).
float ConvFilterGrad(const ConvGradArgs& args, int o, int ky, int kx, int i);

// dL/db[o] = sum over (n, oy, ox) of g.
float ConvBiasGrad(const ConvGradArgs& args, int o);

// The fused op: dx (if non-null) from the current weights; then, for each
// updated channel in list order, each of its weights in row-major order gets
// its gradient (ConvFilterGrad's value bit for bit, accumulated for up to 64
// input channels of a tap at once, so g is read once per output cell and
// chunk rather than per weight) and its update; then the bias of every
// channel.
void ConvGrad(const ConvGradArgs& args, float* dx, const LayerUpdate& update);

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_GRAD_CONV_GRAD_H_
