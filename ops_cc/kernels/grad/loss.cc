#include "ops_cc/kernels/grad/loss.h"

#include "ops_cc/core/float_math.h"

namespace tflm_train {

float SoftmaxCrossEntropy(const float* logits, int num_classes, int32_t label,
                          float* grad) {
  if (label < 0 || label >= num_classes) return BitsToFloat(0x7fc00000u);
  float v_max = logits[0];
  for (int i = 1; i < num_classes; ++i)
    if (logits[i] > v_max) v_max = logits[i];

  // The label's term is kept apart so that p_label - 1 = -others / sum is
  // computed without cancellation.
  float others = 0.0f, own = 0.0f;
  for (int i = 0; i < num_classes; ++i) {
    const float e = ExpF(logits[i] - v_max);
    if (grad != nullptr) grad[i] = e;
    if (i == label)
      own = e;
    else
      others += e;
  }
  const float sum = others + own;
  if (grad != nullptr) {
    for (int i = 0; i < num_classes; ++i)
      grad[i] = i == label ? -(others / sum) : grad[i] / sum;
  }
  return LogF(sum) - (logits[label] - v_max);
}

float MeanSquaredError(const float* values, const float* targets, int64_t n,
                       float* grad) {
  const float inv_n = 1.0f / static_cast<float>(n);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    const float e = values[i] - targets[i];
    sum += e * e;
    if (grad != nullptr) grad[i] = (2.0f * inv_n) * e;
  }
  return sum * inv_n;
}

float MeanAbsoluteError(const float* values, const float* targets, int64_t n,
                        float* grad) {
  const float inv_n = 1.0f / static_cast<float>(n);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    const float e = values[i] - targets[i];
    sum += e < 0.0f ? -e : e;
    if (grad != nullptr) grad[i] = e > 0.0f ? inv_n : (e < 0.0f ? -inv_n : 0.0f);
  }
  return sum * inv_n;
}

}  // namespace tflm_train
