// The activation mask shared by the backward kernels.
#ifndef TFLM_TRAIN_KERNELS_GRAD_GRAD_COMMON_H_
#define TFLM_TRAIN_KERNELS_GRAD_GRAD_COMMON_H_

#include <cstdint>

namespace tflm_train {

// Straight-through estimator of a clamped int8 output: the gradient passes
// where act_min < q_y < act_max and is zero elsewhere (a select, so a
// non-finite gradient at a masked position also becomes 0).
struct ActivationMask {
  int32_t act_min = -128;
  int32_t act_max = 127;

  float Apply(float grad, int8_t q_y) const {
    return (q_y > act_min && q_y < act_max) ? grad : 0.0f;
  }
};

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_GRAD_GRAD_COMMON_H_
