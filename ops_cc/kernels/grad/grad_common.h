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

// The masked gradient of element k of a layer output. A null q_y means no
// mask: the output layer, whose loss reads its real-valued output
// (TFLMTRAIN_*_REAL_OUTPUT) instead of the clamped int8 one.
inline float MaskedGrad(const ActivationMask& mask, const float* dy,
                        const int8_t* q_y, int64_t k) {
  return q_y == nullptr ? dy[k] : mask.Apply(dy[k], q_y[k]);
}

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_GRAD_GRAD_COMMON_H_
