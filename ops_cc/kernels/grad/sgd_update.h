// The update rule of a stored integer parameter (docs/format.md, "Numerics
// shared by all training ops"), in one place for every training kernel.
#ifndef TFLM_TRAIN_KERNELS_GRAD_SGD_UPDATE_H_
#define TFLM_TRAIN_KERNELS_GRAD_SGD_UPDATE_H_

#include <cstdint>

#include "ops_cc/core/float_math.h"
#include "ops_cc/kernels/grad/optimizer_schedule.h"
#include "ops_cc/kernels/grad/rounding.h"

namespace tflm_train {

struct SgdRule {
  bool qas = false;
  Rounding rounding = Rounding::kNearest;
  // xorshift32 state; required for kStochastic, advanced once per applied
  // update.
  uint32_t* rng_state = nullptr;
  // kAccumulate only adds to the accumulators; kApply steps (kSkip never
  // reaches the kernels).
  UpdatePhase phase = UpdatePhase::kApply;
  float batch_size = 1.0f;  // the accumulated sum is divided by it
  float momentum = 0.0f;
};

// Optimizer state of one trained tensor: one float per trained element, in
// the order the layer's kernel visits them (null: not kept).
struct OptimizerSlots {
  float* accumulator = nullptr;  // gradient sum of the current mini-batch
  float* velocity = nullptr;     // momentum, in stored-integer units
};

// Δq of trained element n, with Keras SGD semantics:
//   g = grad, or with an accumulator acc[n] += grad (finite grads only) and,
//       on kApply, g = acc[n] / batch_size, acc[n] = 0 (kAccumulate: Δq = 0);
//   step = lr * (qas ? g / scale : g * scale);
//   with a velocity: v[n] = momentum * v[n] - step (0 if not finite),
//       step = -v[n];
//   Δq = round(-step): floor(-step + 0.5) (nearest) or floor(-step + u), u
//       drawn from the rng (stochastic; drawn for every applied update, even
//       when the step is not finite). A non-finite step gives 0. Saturated
//       to [-2^62, 2^62].
// Without slots this is plain SGD, unchanged since format version 1.
int64_t SgdDelta(float grad, float lr, float scale, const SgdRule& rule,
                 const OptimizerSlots& slots = OptimizerSlots(),
                 int64_t n = 0);

namespace sgd_internal {

// SgdDelta up to the rounding: false when the phase only accumulates (Δq =
// 0), else *target = -step + offset, whose floor is Δq (not finite when the
// step is not: then Δq = 0). Inline: the int8 update runs once per trained
// weight.
inline bool SgdTarget(float grad, float lr, float scale, const SgdRule& rule,
                      const OptimizerSlots& slots, int64_t n, float* target) {
  if (slots.accumulator != nullptr) {
    float* acc = slots.accumulator + n;
    if (IsFinite(grad)) *acc += grad;
    if (rule.phase != UpdatePhase::kApply) return false;
    grad = *acc / rule.batch_size;
    *acc = 0.0f;
  } else if (rule.phase != UpdatePhase::kApply) {
    return false;
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
  *target = -step + offset;
  return true;
}

}  // namespace sgd_internal

// q <- saturate(q + Δq) to [-127, 127]. A Δq beyond +-254 saturates any q,
// so the floor is taken in 32 bits of the target clamped to +-256 (the same
// result as SgdDelta's 64-bit one).
inline int8_t SgdUpdateInt8(int8_t q, float grad, float lr, float scale,
                            const SgdRule& rule,
                            const OptimizerSlots& slots = OptimizerSlots(),
                            int64_t n = 0) {
  float t;
  if (!sgd_internal::SgdTarget(grad, lr, scale, rule, slots, n, &t) ||
      !IsFinite(t))
    return q;
  t = t < -256.0f ? -256.0f : (t > 256.0f ? 256.0f : t);
  int32_t delta = static_cast<int32_t>(t);  // truncates toward zero
  if (static_cast<float>(delta) > t) --delta;
  const int32_t v = q + delta;
  return static_cast<int8_t>(v < -127 ? -127 : (v > 127 ? 127 : v));
}

// q <- saturate(q + Δq) to the int32 range.
int32_t SgdUpdateInt32(int32_t q, float grad, float lr, float scale,
                       const SgdRule& rule,
                       const OptimizerSlots& slots = OptimizerSlots(),
                       int64_t n = 0);

// What a fused CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED gradient op
// updates in place, besides its input gradient. Weights step with the
// layer's per-channel weight scales s_w[c].
struct LayerUpdate {
  bool update_weights = false;
  // Output channels whose weights update, strictly increasing; null = all.
  const int32_t* channels = nullptr;
  int num_channels = 0;
  float weight_lr = 0.0f;
  // Bias [O] updated for every channel; null = no bias update.
  int32_t* bias = nullptr;
  const float* bias_scales = nullptr;  // s_x * s_w[c]
  float bias_lr = 0.0f;
  SgdRule rule;
  // Weights: one slot per element of the trained channels, channel-major
  // in the kernel's loop order; bias: one per output channel.
  OptimizerSlots weight_slots, bias_slots;
};

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_GRAD_SGD_UPDATE_H_
