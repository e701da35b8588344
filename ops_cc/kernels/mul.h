// MUL of two int8 tensors (TFLite Micro's reference numerics), with
// numpy-style broadcasting (ops_cc/kernels/broadcast.h): the product of the
// zero-point-offset inputs is requantized by s_1 s_2 / s_out.
#ifndef TFLM_TRAIN_KERNELS_MUL_H_
#define TFLM_TRAIN_KERNELS_MUL_H_

#include <cstdint>

#include "ops_cc/core/shape.h"

namespace tflm_train {

struct MulParams {
  int32_t input1_offset = 0, input2_offset = 0;  // -(zero points)
  int32_t output_offset = 0;                     // output zero point
  int32_t output_multiplier = 0;
  int output_shift = 0;  // may be positive (a left shift)
  int32_t act_min = -128, act_max = 127;
};

// Fills everything but the activation range; the real multiplier is formed
// in double precision as TFLM does. Returns false if a scale is not
// positive or the multiplier's shift leaves [-31, 31] on the left (a ratio
// of 2^31 or more).
bool ComputeMulParams(float input1_scale, int32_t input1_zero_point,
                      float input2_scale, int32_t input2_zero_point,
                      float output_scale, int32_t output_zero_point,
                      MulParams* params);

namespace ref {

// Shapes must satisfy ShapesBroadcast.
void Mul(const MulParams& params, const Shape& input1_shape,
         const int8_t* input1, const Shape& input2_shape, const int8_t* input2,
         const Shape& output_shape, int8_t* output);

}  // namespace ref
}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_MUL_H_
