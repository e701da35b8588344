#include "ops_cc/kernels/quantize.h"

#include <cmath>

#include "ops_cc/core/quantization.h"

namespace tflm_train {
namespace ref {

void Quantize(const float* input, int size, float scale, int32_t zero_point,
              int8_t* output) {
  for (int i = 0; i < size; ++i) {
    const float rounded = std::round(input[i] / scale);
    int64_t q = zero_point;
    if (rounded >= 2147483648.0f) {
      q += INT32_MAX;
    } else if (rounded < -2147483648.0f) {
      q += INT32_MIN;
    } else if (rounded == rounded) {  // not NaN
      q += static_cast<int32_t>(rounded);
    }
    output[i] = static_cast<int8_t>(q < -128 ? -128 : (q > 127 ? 127 : q));
  }
}

void Dequantize(const int8_t* input, int size, float scale, int32_t zero_point,
                float* output) {
  // The reference multiplies in double; the exact product of a float and a
  // 9-bit integer fits a double, so one float multiply rounds identically.
  for (int i = 0; i < size; ++i) {
    output[i] = scale * static_cast<float>(input[i] - zero_point);
  }
}

void Requantize(const RequantizeParams& params, const int8_t* input, int size,
                int8_t* output) {
  for (int i = 0; i < size; ++i) {
    int32_t q =
        MultiplyByQuantizedMultiplier(input[i] - params.input_zero_point,
                                      params.multiplier, params.shift) +
        params.output_zero_point;
    if (q < -128) q = -128;
    if (q > 127) q = 127;
    output[i] = static_cast<int8_t>(q);
  }
}

}  // namespace ref
}  // namespace tflm_train
