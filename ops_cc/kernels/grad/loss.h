// Losses on the real-valued model output (TFLMTRAIN_SOFTMAX_CROSS_ENTROPY_V2,
// TFLMTRAIN_MEAN_SQUARED_ERROR, TFLMTRAIN_MEAN_ABSOLUTE_ERROR). Sums run in
// index order; all float math is single precision without contraction.
#ifndef TFLM_TRAIN_KERNELS_GRAD_LOSS_H_
#define TFLM_TRAIN_KERNELS_GRAD_LOSS_H_

#include <cstdint>

namespace tflm_train {

// Logits v_i, C = num_classes. With m the index of the largest v,
// d_i = v_i - v_m are the max-subtracted logits, e_i = ExpF(d_i),
// R = sum of e_i for i != label in index order, S = R + e_label; returns
// loss = LogF(S) - d_label (= -log p_label without underflow to inf). If grad
// is non-null it receives p - onehot(label): e_i / S for i != label and
// -(R / S) (= p_label - 1 without cancellation). A label outside [0, C)
// returns NaN and leaves grad untouched.
float SoftmaxCrossEntropy(const float* logits, int num_classes, int32_t label,
                          float* grad);

// loss = sum((v_i - t_i)^2) / n; grad (if non-null) = (2 / n) * (v_i - t_i).
float MeanSquaredError(const float* values, const float* targets, int64_t n,
                       float* grad);

// loss = sum(|v_i - t_i|) / n; grad (if non-null) = sign(v_i - t_i) / n,
// 0 where v_i == t_i.
float MeanAbsoluteError(const float* values, const float* targets, int64_t n,
                        float* grad);

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_GRAD_LOSS_H_
