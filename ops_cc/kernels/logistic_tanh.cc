#include "ops_cc/kernels/logistic_tanh.h"

#include <cmath>

#include "ops_cc/core/fixed_point.h"
#include "ops_cc/core/quantization.h"

namespace tflm_train {
namespace {

// The input is rescaled to Q4.27: |x| < 16.
constexpr int kInputIntegerBits = 4;

// Saturates beyond the radius, else maps q - zero point to Q4.27 and
// `function` (Q0.31 result) to the output: a rounding right shift by
// `output_shift` plus `output_zero_point`, clamped to int8.
template <typename Function>
void Apply(const LogisticTanhParams& p, Function function, int output_shift,
           int32_t output_zero_point, const int8_t* input, int size,
           int8_t* output) {
  for (int i = 0; i < size; ++i) {
    const int32_t x = input[i] - p.input_zero_point;
    if (x <= -p.input_range_radius) {
      output[i] = -128;
    } else if (x >= p.input_range_radius) {
      output[i] = 127;
    } else {
      const int32_t y = function(MultiplyByQuantizedMultiplier(
          x, p.input_multiplier, p.input_left_shift));
      const int32_t q = RoundingDivideByPOT(y, output_shift) + output_zero_point;
      output[i] = static_cast<int8_t>(q < -128 ? -128 : (q > 127 ? 127 : q));
    }
  }
}

int32_t Logistic4(int32_t x) { return FixedPointLogistic(x, kInputIntegerBits); }
int32_t Tanh4(int32_t x) { return FixedPointTanh(x, kInputIntegerBits); }

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

// Q0.31 in [0, 1] to scale 1/256 with zero point -128.
void Logistic(const LogisticTanhParams& params, const int8_t* input, int size,
              int8_t* output) {
  Apply(params, Logistic4, 31 - 8, -128, input, size, output);
}

// Q0.31 in [-1, 1] to scale 1/128 with zero point 0.
void Tanh(const LogisticTanhParams& params, const int8_t* input, int size,
          int8_t* output) {
  Apply(params, Tanh4, 31 - 7, 0, input, size, output);
}

}  // namespace ref
}  // namespace tflm_train
