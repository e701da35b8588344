// Backward of an int8 DEPTHWISE_CONV_2D with depth multiplier M (input
// [N, H, W, C], filter [1, KH, KW, C·M], output [N, OH, OW, C·M]; output
// channel c reads input channel c / M) with the fused SGD update of its
// weights and bias. Arguments as for conv (ConvGradArgs).
#ifndef TFLM_TRAIN_KERNELS_GRAD_DEPTHWISE_CONV_GRAD_H_
#define TFLM_TRAIN_KERNELS_GRAD_DEPTHWISE_CONV_GRAD_H_

#include <cstdint>

#include "ops_cc/kernels/grad/conv_grad.h"
#include "ops_cc/kernels/grad/sgd_update.h"

namespace tflm_train {

// dL/dx: zeroed, then for each (n, oy, ox), (ky, kx), output channel c in
// row-major order with g != 0, g * s_w[c] * q_w[ky, kx, c] is added to input
// channel c / M of its cell. (A cell reaches each dx element through one tap,
// so each element's sum runs over cells, then channels; g is read once per
// cell and channel.)
void DepthwiseConvInputGrad(const ConvGradArgs& args, float* dx);

// dL/dW[0, ky, kx, c] = s_x * sum over (n, oy, ox) of g[c] * (q_x[c / M] - z_x).
float DepthwiseConvFilterGrad(const ConvGradArgs& args, int ky, int kx, int c);

// dL/db[c] is ConvBiasGrad(args, c).

// The fused op: dx (if non-null) from the current weights; then each updated
// weight in row-major order of the filter (ky, kx, then the listed channels)
// gets its gradient and update at once; then the bias of every channel.
void DepthwiseConvGrad(const ConvGradArgs& args, float* dx,
                       const LayerUpdate& update);

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_GRAD_DEPTHWISE_CONV_GRAD_H_
