#include "ops_cc/core/quantization.h"

#include <cmath>
#include <cstdint>
#include <limits>

namespace tflm_train {

void QuantizeMultiplier(double real_multiplier, int32_t* quantized_multiplier,
                        int* shift) {
  *quantized_multiplier = 0;
  *shift = 0;
  if (real_multiplier == 0.0 || !std::isfinite(real_multiplier)) return;
  int exponent = 0;
  const double fraction = std::frexp(real_multiplier, &exponent);  // [0.5, 1)
  int64_t q = static_cast<int64_t>(std::round(fraction * 2147483648.0));
  if (q == (int64_t{1} << 31)) {  // fraction rounded up to 1.0
    q /= 2;
    ++exponent;
  }
  // Below 2^-31 every product would be shifted out entirely: flush to zero.
  if (exponent < -31) return;
  *quantized_multiplier = static_cast<int32_t>(q);
  *shift = exponent;
}

namespace {

// zero_point + round(value / scale) in single precision, as TFLite quantizes
// activation bounds; false if the result leaves the int32 range.
bool QuantizeBound(float value, float scale, int32_t zero_point,
                   int32_t* result) {
  const float rounded = std::round(value / scale);
  if (!(rounded >= -2147483648.0f && rounded < 2147483648.0f)) return false;
  const int64_t q = static_cast<int64_t>(zero_point) +
                    static_cast<int64_t>(static_cast<int32_t>(rounded));
  if (q < std::numeric_limits<int32_t>::min() ||
      q > std::numeric_limits<int32_t>::max()) {
    return false;
  }
  *result = static_cast<int32_t>(q);
  return true;
}

}  // namespace

bool CalculateActivationRangeInt8(int activation, float output_scale,
                                  int32_t output_zero_point, int32_t* act_min,
                                  int32_t* act_max) {
  constexpr int32_t kMin = -128, kMax = 127;
  // TFLite ActivationFunctionType: 0 NONE, 1 RELU, 2 RELU_N1_TO_1, 3 RELU6.
  int32_t lo = kMin, hi = kMax, q = 0;
  switch (activation) {
    case 0:
      break;
    case 1:
      if (!QuantizeBound(0.0f, output_scale, output_zero_point, &q)) {
        return false;
      }
      lo = q > kMin ? q : kMin;
      break;
    case 2:
    case 3: {
      const float low = activation == 2 ? -1.0f : 0.0f;
      const float high = activation == 2 ? 1.0f : 6.0f;
      if (!QuantizeBound(low, output_scale, output_zero_point, &q)) {
        return false;
      }
      lo = q > kMin ? q : kMin;
      if (!QuantizeBound(high, output_scale, output_zero_point, &q)) {
        return false;
      }
      hi = q < kMax ? q : kMax;
      break;
    }
    default:
      return false;
  }
  if (lo > hi) return false;
  *act_min = lo;
  *act_max = hi;
  return true;
}

}  // namespace tflm_train
