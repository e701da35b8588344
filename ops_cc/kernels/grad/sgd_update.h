// The update rule of a stored integer parameter (docs/format.md, "Numerics
// shared by all training ops"), in one place for every training kernel.
#ifndef TFLM_TRAIN_KERNELS_GRAD_SGD_UPDATE_H_
#define TFLM_TRAIN_KERNELS_GRAD_SGD_UPDATE_H_

#include <cstdint>

namespace tflm_train {

enum class Rounding : int { kNearest = 0, kStochastic = 1 };

struct SgdRule {
  bool qas = false;
  Rounding rounding = Rounding::kNearest;
  // xorshift32 state; required for kStochastic, advanced once per call.
  uint32_t* rng_state = nullptr;
};

// Δq = round(-step), step = lr * (qas ? grad / scale : grad * scale), where
// round(v) is floor(v + 0.5) (nearest) or floor(v + u) with u drawn from the
// rng (stochastic; drawn even when the step is not finite). A non-finite step
// gives 0. Saturated to [-2^62, 2^62].
int64_t SgdDelta(float grad, float lr, float scale, const SgdRule& rule);

// q <- saturate(q + Δq) to [-127, 127].
int8_t SgdUpdateInt8(int8_t q, float grad, float lr, float scale,
                     const SgdRule& rule);

// q <- saturate(q + Δq) to the int32 range.
int32_t SgdUpdateInt32(int32_t q, float grad, float lr, float scale,
                       const SgdRule& rule);

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
};

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_GRAD_SGD_UPDATE_H_
