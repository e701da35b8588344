#include "ops_cc/kernels/grad/sgd_update.h"

#include "ops_cc/core/float_math.h"

namespace tflm_train {

int64_t SgdDelta(float grad, float lr, float scale, const SgdRule& rule,
                 const OptimizerSlots& slots, int64_t n) {
  if (slots.accumulator != nullptr) {
    float* acc = slots.accumulator + n;
    if (IsFinite(grad)) *acc += grad;
    if (rule.phase != UpdatePhase::kApply) return 0;
    grad = *acc / rule.batch_size;
    *acc = 0.0f;
  } else if (rule.phase != UpdatePhase::kApply) {
    return 0;
  }
  float step = lr * (rule.qas ? grad / scale : grad * scale);
  if (slots.velocity != nullptr) {
    float v = rule.momentum * slots.velocity[n] - step;
    if (!IsFinite(v)) v = 0.0f;
    slots.velocity[n] = v;
    step = -v;
  }
  const float offset = rule.rounding == Rounding::kStochastic
                           ? Xorshift32Uniform(rule.rng_state)
                           : 0.5f;
  if (!IsFinite(step)) return 0;
  return FloorToInt64(-step + offset);
}

int8_t SgdUpdateInt8(int8_t q, float grad, float lr, float scale,
                     const SgdRule& rule, const OptimizerSlots& slots,
                     int64_t n) {
  int64_t v = q + SgdDelta(grad, lr, scale, rule, slots, n);
  if (v < -127) v = -127;
  if (v > 127) v = 127;
  return static_cast<int8_t>(v);
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
