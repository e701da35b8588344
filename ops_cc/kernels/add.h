// ADD and SUB of two int8 tensors with different quantization (TFLite
// Micro's reference numerics), with numpy-style broadcasting
// (ops_cc/kernels/broadcast.h).
#ifndef TFLM_TRAIN_KERNELS_ADD_H_
#define TFLM_TRAIN_KERNELS_ADD_H_

#include <cstdint>

#include "ops_cc/core/shape.h"

namespace tflm_train {

// Each input, offset by its zero point, is shifted left by `left_shift`
// bits and scaled by its multiplier (s_i / (2 max(s_1, s_2))); the sum (or
// difference) is scaled by the output multiplier
// (2 max(s_1, s_2) / (2^left_shift s_out)). All shifts are <= 0 (right
// shifts).
struct AddParams {
  int32_t input1_offset = 0, input2_offset = 0;  // -(zero points)
  int32_t output_offset = 0;                     // output zero point
  int left_shift = 20;
  int32_t input1_multiplier = 0, input2_multiplier = 0, output_multiplier = 0;
  int input1_shift = 0, input2_shift = 0, output_shift = 0;
  int32_t act_min = -128, act_max = 127;
};

// Fills everything but the activation range, for ADD and SUB alike: the
// real multipliers are formed in double precision. Returns false if a scale
// is not positive or a multiplier is not in (0, 1).
//
// TFLM's SUB source (sub_common.cc) writes the SUB ratios as float
// divisions widened to double; the tflite-micro wheel, our oracle, is built
// so that they are evaluated in double (its machine code divides in double),
// which equals ADD's computation. A build of that source that divides in
// float (e.g. gcc without fast-math, as on a Cortex-M) can differ in a
// multiplier's last bits and, rarely, by one in an output (see
// SUB_FLOAT_CASE in tests/test_forward_binary.py).
bool ComputeAddParams(float input1_scale, int32_t input1_zero_point,
                      float input2_scale, int32_t input2_zero_point,
                      float output_scale, int32_t output_zero_point,
                      AddParams* params);

// Shapes must satisfy ShapesBroadcast (ops_cc/kernels/broadcast.h).
namespace ref {

void Add(const AddParams& params, const Shape& input1_shape,
         const int8_t* input1, const Shape& input2_shape, const int8_t* input2,
         const Shape& output_shape, int8_t* output);

// input1 - input2.
void Sub(const AddParams& params, const Shape& input1_shape,
         const int8_t* input1, const Shape& input2_shape, const int8_t* input2,
         const Shape& output_shape, int8_t* output);

}  // namespace ref
}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_ADD_H_
