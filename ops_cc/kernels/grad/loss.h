// Softmax cross-entropy of int8 logits (TFLMTRAIN_SOFTMAX_CROSS_ENTROPY).
#ifndef TFLM_TRAIN_KERNELS_GRAD_LOSS_H_
#define TFLM_TRAIN_KERNELS_GRAD_LOSS_H_

#include <cstdint>

namespace tflm_train {

// Logits v_i = scale * (q_i - zero_point), C = num_classes. With m the index
// of the largest q, d_i = scale * (q_i - q_m) are the max-subtracted logits
// (the zero point cancels, so it is not an argument),
// e_i = ExpF(d_i), R = sum of e_i for i != label in index order,
// S = R + e_label; returns loss = LogF(S) - d_label (= -log p_label without
// underflow to inf). If grad is non-null it receives p - onehot(label):
// e_i / S for i != label and -(R / S) (= p_label - 1 without cancellation).
// A label outside [0, C) returns NaN and leaves grad untouched.
float SoftmaxCrossEntropy(const int8_t* logits, int num_classes, float scale,
                          int32_t label, float* grad);

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_GRAD_LOSS_H_
