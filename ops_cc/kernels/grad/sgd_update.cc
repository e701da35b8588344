#include "ops_cc/kernels/grad/sgd_update.h"

namespace tflm_train {

int64_t SgdDelta(float grad, float lr, float scale, const SgdRule& rule,
                 const OptimizerSlots& slots, int64_t n) {
  float target;
  if (!sgd_internal::SgdTarget(grad, lr, scale, rule, slots, n, &target) ||
      !IsFinite(target))
    return 0;
  return FloorToInt64(target);
}

int32_t SgdUpdateInt32(int32_t q, float grad, float lr, float scale,
                       const SgdRule& rule, const OptimizerSlots& slots,
                       int64_t n) {
  int64_t v = q + SgdDelta(grad, lr, scale, rule, slots, n);
  if (v < INT32_MIN) v = INT32_MIN;
  if (v > INT32_MAX) v = INT32_MAX;
  return static_cast<int32_t>(v);
}

}  // namespace tflm_train
