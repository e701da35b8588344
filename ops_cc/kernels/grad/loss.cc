#include "ops_cc/kernels/grad/loss.h"

#include "ops_cc/core/float_math.h"

namespace tflm_train {

float SoftmaxCrossEntropy(const int8_t* logits, int num_classes, float scale,
                          int32_t label, float* grad) {
  if (label < 0 || label >= num_classes) return BitsToFloat(0x7fc00000u);
  int32_t q_max = logits[0];
  for (int i = 1; i < num_classes; ++i)
    if (logits[i] > q_max) q_max = logits[i];

  // The label's term is kept apart so that p_label - 1 = -others / sum is
  // computed without cancellation.
  float others = 0.0f, own = 0.0f;
  for (int i = 0; i < num_classes; ++i) {
    const float e = ExpF(scale * static_cast<float>(logits[i] - q_max));
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
  return LogF(sum) - scale * static_cast<float>(logits[label] - q_max);
}

}  // namespace tflm_train
