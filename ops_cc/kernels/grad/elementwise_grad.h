// Backward of the shape-only and elementwise forward ops: ADD, QUANTIZE
// (int8 requantize), MEAN over H and W, PAD, RESHAPE, and the sum of
// gradients of a shared tensor.
#ifndef TFLM_TRAIN_KERNELS_GRAD_ELEMENTWISE_GRAD_H_
#define TFLM_TRAIN_KERNELS_GRAD_ELEMENTWISE_GRAD_H_

#include <cstdint>

#include "ops_cc/core/shape.h"
#include "ops_cc/kernels/grad/grad_common.h"
#include "ops_cc/kernels/grad/int8_grad.h"

namespace tflm_train {

// da = db = g (the masked dy) over n elements; either output may be null.
// Also the gradient of an int8 requantize (QUANTIZE), mask = the int8 range.
void AddGrad(const OutputGrad& g, int64_t n, float* da, float* db);

// AddGrad of an int8 y/grad (g.dy_q) into int8 dq of the same scale: dy_q
// where the mask passes, else 0.
void AddGradInt8(const OutputGrad& g, int64_t n, int8_t* dq);

// dx[b, h, w, c] = dy[b, c] / (H * W) for x_shape [N, H, W, C].
void MeanGrad(const float* dy, const Shape& x_shape, float* dx);

// dx = the crop of dy (shape y_shape) starting at pad_before[d] along each
// dimension d, of shape x_shape (same rank); elements of `element_size`
// bytes (float32 or int8 gradients).
void PadGrad(const Shape& y_shape, const void* dy, int element_size,
             const int32_t* pad_before, const Shape& x_shape, void* dx);

// dx = dy (n elements of `element_size` bytes: float32 or int8 gradients).
void ReshapeGrad(const void* dy, int64_t n, int element_size, void* dx);

// MeanGrad of an int8 y/grad: dq[b, h, w, c] = dy_q[b, c] (its scale is
// y/grad's divided by H * W).
void MeanGradInt8(const int8_t* dy_q, const Shape& x_shape, int8_t* dq);

// out = grads[0] + grads[1] + ... accumulated in that order (n elements each).
void GradSum(const float* const* grads, int num_grads, int64_t n, float* out);

// GradSum of int8 gradients (values grads[i][k] * scales[i]), the sum
// written as an int8 gradient.
void GradSumInt8(const int8_t* const* grads, const float* scales, int num_grads,
                 int64_t n, Int8GradOut out);

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_GRAD_ELEMENTWISE_GRAD_H_
