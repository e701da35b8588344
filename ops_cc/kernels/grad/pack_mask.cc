#include "ops_cc/kernels/grad/grad_common.h"

namespace tflm_train {

void PackMask(const int8_t* q_y, int64_t n, const ActivationMask& range,
              uint8_t* bits) {
  for (int64_t byte = 0; byte * 8 < n; ++byte) {
    uint32_t packed = 0;
    const int64_t end = n - byte * 8 < 8 ? n - byte * 8 : 8;
    for (int64_t b = 0; b < end; ++b)
      packed |= static_cast<uint32_t>(range.Passes(q_y[byte * 8 + b])) << b;
    bits[byte] = static_cast<uint8_t>(packed);
  }
}

}  // namespace tflm_train
