// Backward of the shape-only and elementwise forward ops: ADD, QUANTIZE
// (int8 requantize), MEAN over H and W, PAD, RESHAPE, and the sum of
// gradients of a shared tensor.
#ifndef TFLM_TRAIN_KERNELS_GRAD_ELEMENTWISE_GRAD_H_
#define TFLM_TRAIN_KERNELS_GRAD_ELEMENTWISE_GRAD_H_

#include <cstdint>

#include "ops_cc/core/shape.h"
#include "ops_cc/kernels/grad/grad_common.h"

namespace tflm_train {

// da = db = g (the masked dy) over n elements; either output may be null.
// Also the gradient of an int8 requantize (QUANTIZE), mask = the int8 range.
void AddGrad(const OutputGrad& g, int64_t n, float* da, float* db);

// dx[b, h, w, c] = dy[b, c] / (H * W) for x_shape [N, H, W, C].
void MeanGrad(const float* dy, const Shape& x_shape, float* dx);

// dx = the crop of dy (shape y_shape) starting at pad_before[d] along each
// dimension d, of shape x_shape (same rank).
void PadGrad(const Shape& y_shape, const float* dy, const int32_t* pad_before,
             const Shape& x_shape, float* dx);

// dx = dy (n elements).
void ReshapeGrad(const float* dy, int64_t n, float* dx);

// out = grads[0] + grads[1] + ... accumulated in that order (n elements each).
void GradSum(const float* const* grads, int num_grads, int64_t n, float* out);

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_GRAD_ELEMENTWISE_GRAD_H_
