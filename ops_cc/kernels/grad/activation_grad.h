// Backward of the int8 elementwise activations HARD_SWISH, LOGISTIC, TANH
// and LEAKY_RELU. Gradients are taken with respect to the real input and
// masked where the int8 output sits at its limits (the straight-through
// gradient of the output clamp, ActivationMask over the int8 range).
#ifndef TFLM_TRAIN_KERNELS_GRAD_ACTIVATION_GRAD_H_
#define TFLM_TRAIN_KERNELS_GRAD_ACTIVATION_GRAD_H_

#include <cstdint>

#include "ops_cc/kernels/grad/grad_common.h"

namespace tflm_train {

// An int8 tensor's real value: scale * (q - zero_point), in single precision.
struct Dequantizer {
  float scale = 1.0f;
  int32_t zero_point = 0;

  float operator()(int8_t q) const {
    return scale * static_cast<float>(static_cast<int32_t>(q) - zero_point);
  }
};

// The derivative of hard_swish(v) = v * relu6(v + 3) / 6: 0 for v <= -3,
// (2v + 3) / 6 inside, 1 for v >= 3 (TF's convention at the kinks).
float HardSwishDerivative(float v);

// dx = mask(y) * dy * HardSwishDerivative(x_real), n elements.
void HardSwishGrad(const float* dy, const int8_t* x, const Dequantizer& x_real,
                   const int8_t* y, const ActivationMask& mask, int64_t n,
                   float* dx);

// dx = mask(y) * dy * v * (1 - v) with v = y_real: the sigmoid's derivative
// from its int8 output.
void LogisticGrad(const float* dy, const int8_t* y, const Dequantizer& y_real,
                  const ActivationMask& mask, int64_t n, float* dx);

// dx = mask(y) * dy * (1 - v) * (1 + v) with v = y_real: tanh's derivative
// (1 - v^2) from its int8 output.
void TanhGrad(const float* dy, const int8_t* y, const Dequantizer& y_real,
              const ActivationMask& mask, int64_t n, float* dx);

// dx = mask(y) * dy * (x_real >= 0 ? 1 : alpha). x_real >= 0 is
// q_x >= x_zero_point: TFLM's forward takes the identity branch at 0.
void LeakyReluGrad(const float* dy, const int8_t* x, int32_t x_zero_point,
                   float alpha, const int8_t* y, const ActivationMask& mask,
                   int64_t n, float* dx);

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_GRAD_ACTIVATION_GRAD_H_
