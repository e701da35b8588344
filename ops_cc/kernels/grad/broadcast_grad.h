// Backward of the int8 binary elementwise ops with numpy-style broadcasting:
// MUL (y = a * b) and ADD (y = a + b), each under a fused activation.
#ifndef TFLM_TRAIN_KERNELS_GRAD_BROADCAST_GRAD_H_
#define TFLM_TRAIN_KERNELS_GRAD_BROADCAST_GRAD_H_

#include <cstdint>

#include "ops_cc/core/shape.h"
#include "ops_cc/kernels/grad/activation_grad.h"  // Dequantizer
#include "ops_cc/kernels/grad/grad_common.h"

namespace tflm_train {

// The walk over the output y in row-major order with each operand's element
// alongside: dimensions right-aligned into kMaxRank, an operand dimension of
// 1 having stride 0.
struct BroadcastWalk {
  int32_t dims[kMaxRank] = {1, 1, 1, 1, 1, 1};
  int32_t a_stride[kMaxRank] = {0, 0, 0, 0, 0, 0};
  int32_t b_stride[kMaxRank] = {0, 0, 0, 0, 0, 0};
  int64_t y_size = 0, a_size = 0, b_size = 0;
};

// Fills `walk` for operands of shapes a and b broadcast to y as the forward
// ops broadcast (ShapesBroadcast, ops_cc/kernels/broadcast.h). Returns false
// if they do not, or y has 2^31 elements or more.
bool MakeBroadcastWalk(const Shape& a, const Shape& b, const Shape& y,
                       BroadcastWalk* walk);

// The operands' real values; a null tensor reads as 1 (ADD).
struct BinaryGradArgs {
  const int8_t* a = nullptr;
  Dequantizer a_real;
  const int8_t* b = nullptr;
  Dequantizer b_real;
};

// With g = the masked dy (OutputGrad) over the elements of y in row-major
// order:
//   da[i] = sum of g * b_real over the elements of y that read a[i],
//   db[j] = sum of g * a_real over the elements of y that read b[j],
// each sum accumulated in single precision in that order, starting from 0. For MUL pass a (needed for db) and b (needed for
// da); for ADD neither (the factors are 1). Either output may be null.
void BinaryBroadcastGrad(const BroadcastWalk& walk, const OutputGrad& g,
                         const BinaryGradArgs& args, float* da, float* db);

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_GRAD_BROADCAST_GRAD_H_
