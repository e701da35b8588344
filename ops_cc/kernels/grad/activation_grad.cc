#include "ops_cc/kernels/grad/activation_grad.h"

namespace tflm_train {

float HardSwishDerivative(float v) {
  if (v <= -3.0f) return 0.0f;
  if (v >= 3.0f) return 1.0f;
  return (v * 2.0f + 3.0f) / 6.0f;
}

void HardSwishGrad(const float* dy, const int8_t* x, const Dequantizer& x_real,
                   const int8_t* y, const ActivationMask& mask, int64_t n,
                   float* dx) {
  for (int64_t k = 0; k < n; ++k)
    dx[k] = mask.Apply(dy[k] * HardSwishDerivative(x_real(x[k])), y[k]);
}

void LogisticGrad(const float* dy, const int8_t* y, const Dequantizer& y_real,
                  const ActivationMask& mask, int64_t n, float* dx) {
  for (int64_t k = 0; k < n; ++k) {
    const float v = y_real(y[k]);
    dx[k] = mask.Apply(dy[k] * (v * (1.0f - v)), y[k]);
  }
}

void TanhGrad(const float* dy, const int8_t* y, const Dequantizer& y_real,
              const ActivationMask& mask, int64_t n, float* dx) {
  for (int64_t k = 0; k < n; ++k) {
    const float v = y_real(y[k]);
    dx[k] = mask.Apply(dy[k] * ((1.0f - v) * (1.0f + v)), y[k]);
  }
}

void LeakyReluGrad(const float* dy, const int8_t* x, int32_t x_zero_point,
                   float alpha, const int8_t* y, const ActivationMask& mask,
                   int64_t n, float* dx) {
  for (int64_t k = 0; k < n; ++k) {
    const bool identity = static_cast<int32_t>(x[k]) >= x_zero_point;
    dx[k] = mask.Apply(identity ? dy[k] : dy[k] * alpha, y[k]);
  }
}

}  // namespace tflm_train
