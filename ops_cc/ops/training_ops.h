// Op wrappers for the custom training operators of docs/format.md
// (TFLMTRAIN_*): variable initialisation, the output layer's real-valued
// output, the losses, and the backward ops
// with their fused in-place SGD updates.
#ifndef TFLM_TRAIN_OPS_TRAINING_OPS_H_
#define TFLM_TRAIN_OPS_TRAINING_OPS_H_

#include "ops_cc/ops/kernel_context.h"

namespace tflm_train {

constexpr int kNumTrainingOps = 31;

// The i-th training kernel (0 <= i < kNumTrainingOps), null otherwise; for
// registering all of them with a host.
const OpKernel* TrainingKernel(int i);

// The kernel of a TFLMTRAIN_* custom operator, or null when unknown.
const OpKernel* FindTrainingKernel(const char* custom_name);

}  // namespace tflm_train

#endif  // TFLM_TRAIN_OPS_TRAINING_OPS_H_
