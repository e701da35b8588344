#include "ops_cc/kernels/grad/grad_common.h"

namespace tflm_train {

void PackMask(const int8_t* q_y, int64_t n, const ActivationMask& range,
              uint8_t* bits) {
  // act_min < q < act_max as one unsigned compare: q - (act_min + 1) below
  // the number of passing values (the bounds clamped to just outside the
  // int8 range first, which changes no int8 q's answer).
  const auto clamp = [](int32_t v) { return v < -129 ? -129 : (v > 128 ? 128 : v); };
  const int32_t act_min = clamp(range.act_min);
  const int32_t act_max = clamp(range.act_max);
  const int32_t low = act_min + 1;
  const uint32_t passing =
      act_max > low ? static_cast<uint32_t>(act_max - low) : 0u;
  const auto pass = [&](int8_t q) {
    return static_cast<uint32_t>(static_cast<uint32_t>(q - low) < passing);
  };
  const int64_t full_bytes = n / 8;
  for (int64_t byte = 0; byte < full_bytes; ++byte) {
    const int8_t* q = q_y + byte * 8;
    uint32_t packed = 0;
#pragma GCC unroll 8
    for (int b = 0; b < 8; ++b) packed |= pass(q[b]) << b;
    bits[byte] = static_cast<uint8_t>(packed);
  }
  if (n % 8 != 0) {
    uint32_t packed = 0;
    for (int b = 0; b < n % 8; ++b) packed |= pass(q_y[full_bytes * 8 + b]) << b;
    bits[full_bytes] = static_cast<uint8_t>(packed);
  }
}

}  // namespace tflm_train
