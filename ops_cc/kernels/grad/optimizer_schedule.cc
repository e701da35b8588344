#include "ops_cc/kernels/grad/optimizer_schedule.h"

#include "ops_cc/core/float_math.h"

namespace tflm_train {
namespace {

// base^n by repeated squaring (a fixed sequence of float multiplies).
float PowInt(float base, int32_t n) {
  float result = 1.0f;
  while (n > 0) {
    if (n & 1) result *= base;
    base *= base;
    n >>= 1;
  }
  return result;
}

}  // namespace

float LrFactor(const LrSchedule& s, int32_t t) {
  if (t < 0) t = 0;
  if (t < s.warmup_steps)
    return static_cast<float>(t + 1) / static_cast<float>(s.warmup_steps);
  const int32_t after = t - s.warmup_steps;
  const int32_t period = s.decay_steps > 0 ? s.decay_steps : 1;
  switch (s.kind) {
    case ScheduleKind::kCosine: {
      const int32_t done = after < period ? after : period;
      const float u = static_cast<float>(done) / static_cast<float>(period);
      return s.alpha + (1.0f - s.alpha) * (0.5f * (1.0f + CosPi(u)));
    }
    case ScheduleKind::kStep:
      return PowInt(s.decay_rate, after / period);
    case ScheduleKind::kConstant:
    default:
      return 1.0f;
  }
}

}  // namespace tflm_train
