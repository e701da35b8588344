#include "ops_cc/kernels/logistic_tanh.h"

#include <cmath>

#include "ops_cc/core/fixed_point.h"
#include "ops_cc/core/quantization.h"

namespace tflm_train {
namespace {

// The input is rescaled to Q4.27: |x| < 16.
constexpr int kInputIntegerBits = 4;

int8_t Clamp8(int32_t q) {
  return static_cast<int8_t>(q < -128 ? -128 : (q > 127 ? 127 : q));
}

// q - zero point in Q4.27, or false when it lies at or beyond the radius
// (*saturated then holds the sign: -1 or +1).
bool ScaledInput(const LogisticTanhParams& p, int8_t q, int32_t* scaled,
                 int* saturated) {
  const int32_t x = q - p.input_zero_point;
  if (x <= -p.input_range_radius) {
    *saturated = -1;
    return false;
  }
  if (x >= p.input_range_radius) {
    *saturated = 1;
    return false;
  }
  *scaled =
      MultiplyByQuantizedMultiplier(x, p.input_multiplier, p.input_left_shift);
  return true;
}

}  // namespace

bool ComputeLogisticTanhParams(float input_scale, int32_t input_zero_point,
                               LogisticTanhParams* params) {
  const double real = static_cast<double>(input_scale) *
                      static_cast<double>(1 << (31 - kInputIntegerBits));
  int shift = 0;
  const double fraction = std::frexp(real, &shift);  // [0.5, 1)
  if (!(real > 0.0) || shift < 0 || shift > 62) return false;
  params->input_zero_point = input_zero_point;
  // A float scale has a 24-bit significand: this stays below 2^31.
  params->input_multiplier =
      static_cast<int32_t>(std::round(fraction * 2147483648.0));
  params->input_left_shift = shift;
  // floor((2^4 - 1) * 2^27 / 2^shift): the largest |q - zero point| whose
  // Q4.27 image stays below 15 (exact in double).
  params->input_range_radius = static_cast<int32_t>(std::floor(std::ldexp(
      static_cast<double>(((1 << kInputIntegerBits) - 1) *
                          (int64_t{1} << (31 - kInputIntegerBits))),
      -shift)));
  return true;
}

namespace ref {

void Logistic(const LogisticTanhParams& params, const int8_t* input, int size,
              int8_t* output) {
  for (int i = 0; i < size; ++i) {
    int32_t scaled = 0;
    int saturated = 0;
    if (!ScaledInput(params, input[i], &scaled, &saturated)) {
      output[i] = saturated < 0 ? -128 : 127;
      continue;
    }
    // Q0.31 in [0, 1] to scale 1/256 with zero point -128.
    const int32_t y = FixedPointLogistic(scaled, kInputIntegerBits);
    output[i] = Clamp8(RoundingDivideByPOT(y, 31 - 8) - 128);
  }
}

void Tanh(const LogisticTanhParams& params, const int8_t* input, int size,
          int8_t* output) {
  for (int i = 0; i < size; ++i) {
    int32_t scaled = 0;
    int saturated = 0;
    if (!ScaledInput(params, input[i], &scaled, &saturated)) {
      output[i] = saturated < 0 ? -128 : 127;
      continue;
    }
    // Q0.31 in [-1, 1] to scale 1/128 with zero point 0.
    const int32_t y = FixedPointTanh(scaled, kInputIntegerBits);
    output[i] = Clamp8(RoundingDivideByPOT(y, 31 - 7));
  }
}

}  // namespace ref
}  // namespace tflm_train
