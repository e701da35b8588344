// Backward of int8 AVERAGE_POOL_2D and MAX_POOL_2D (NHWC).
#ifndef TFLM_TRAIN_KERNELS_GRAD_POOLING_GRAD_H_
#define TFLM_TRAIN_KERNELS_GRAD_POOLING_GRAD_H_

#include <cstdint>

#include "ops_cc/core/shape.h"
#include "ops_cc/kernels/grad/grad_common.h"
#include "ops_cc/kernels/grad/int8_grad.h"

namespace tflm_train {

struct PoolGradParams {
  int stride_h = 1, stride_w = 1;
  int filter_h = 1, filter_w = 1;
  int pad_h = 0, pad_w = 0;  // window rows above / columns left of the input
};

// dx zeroed, then for each output cell (n, oy, ox, c) in row-major order,
// g / n is added to each of the n window cells inside the input.
void AveragePoolGrad(const PoolGradParams& params, const Shape& y_shape,
                     const OutputGrad& g, const Shape& x_shape, float* dx);

// AveragePoolGrad written as an int8 gradient: each element summed as there
// (its window shares in increasing output-cell order), once for the scale and
// once to quantize.
void AveragePoolGradInt8(const PoolGradParams& params, const Shape& y_shape,
                         const OutputGrad& g, const Shape& x_shape,
                         Int8GradOut dx);

// dx zeroed, then for each output cell in row-major order, g is added to the
// first window cell (row-major) inside the input holding the window's
// maximum of x.
void MaxPoolGrad(const PoolGradParams& params, const Shape& y_shape,
                 const OutputGrad& g, const Shape& x_shape, const int8_t* x,
                 float* dx);

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_GRAD_POOLING_GRAD_H_
