// The learning-rate schedule and mini-batch phase of one training sample
// (docs/format.md, "TFLMTRAIN_OPTIMIZER_STEP"), framework-free.
#ifndef TFLM_TRAIN_KERNELS_GRAD_OPTIMIZER_SCHEDULE_H_
#define TFLM_TRAIN_KERNELS_GRAD_OPTIMIZER_SCHEDULE_H_

#include <cstdint>

namespace tflm_train {

enum class ScheduleKind : int { kConstant = 0, kCosine = 1, kStep = 2 };

struct LrSchedule {
  ScheduleKind kind = ScheduleKind::kConstant;
  int32_t warmup_steps = 0;  // W
  int32_t decay_steps = 1;   // D (cosine: length of the decay; step: period)
  float alpha = 0.0f;        // cosine: final factor
  float decay_rate = 0.1f;   // step: factor per period
};

// The factor f(t) of the base learning rate at optimizer update t >= 0:
//   t < W: (t + 1) / W
//   constant: 1
//   cosine: alpha + (1 - alpha) * (1 + cos(pi * min(t - W, D) / D)) / 2
//   step: decay_rate ^ floor((t - W) / D)
// Only IEEE + - * / (float_math.h), so host and device agree bit for bit.
float LrFactor(const LrSchedule& schedule, int32_t t);

// What the layers' update ops do with one training sample's gradient.
enum class UpdatePhase : int {
  kSkip = 0,        // nothing (infer mode, or the sample was imprinted)
  kAccumulate = 1,  // add it to the batch accumulators
  kApply = 2,       // last sample of the batch: step the parameters
};

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_GRAD_OPTIMIZER_SCHEDULE_H_
