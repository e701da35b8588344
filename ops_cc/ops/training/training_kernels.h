// The TFLMTRAIN_* training kernels, one op (or one family sharing an
// implementation) per file in this folder; ops_cc/ops/training_ops.cc
// lists them.
#ifndef TFLM_TRAIN_OPS_TRAINING_TRAINING_KERNELS_H_
#define TFLM_TRAIN_OPS_TRAINING_TRAINING_KERNELS_H_

#include "ops_cc/ops/kernel_context.h"

namespace tflm_train {

extern const OpKernel kInitVariablesKernel;
extern const OpKernel kFullyConnectedRealOutputKernel;
extern const OpKernel kConvRealOutputKernel;
extern const OpKernel kSoftmaxCrossEntropyKernel;
extern const OpKernel kMeanSquaredErrorKernel;
extern const OpKernel kMeanAbsoluteErrorKernel;
extern const OpKernel kConvGradKernel;
extern const OpKernel kDepthwiseConvGradKernel;
extern const OpKernel kFullyConnectedGradKernel;
extern const OpKernel kAddGradKernel;
extern const OpKernel kQuantizeGradKernel;
extern const OpKernel kAveragePoolGradKernel;
extern const OpKernel kMaxPoolGradKernel;
extern const OpKernel kMeanGradKernel;
extern const OpKernel kPadGradKernel;
extern const OpKernel kReshapeGradKernel;
extern const OpKernel kGradSumKernel;
extern const OpKernel kOptimizerStepKernel;
extern const OpKernel kImprintKernel;
extern const OpKernel kHardSwishGradKernel;
extern const OpKernel kLogisticGradKernel;
extern const OpKernel kTanhGradKernel;
extern const OpKernel kLeakyReluGradKernel;
extern const OpKernel kMulGradKernel;
extern const OpKernel kConcatenationGradKernel;
extern const OpKernel kTransposeGradKernel;
extern const OpKernel kStridedSliceGradKernel;
extern const OpKernel kPackMaskKernel;
extern const OpKernel kConvSlicedKernel;
extern const OpKernel kFullyConnectedSlicedKernel;
extern const OpKernel kExpandDepthwiseConvKernel;

}  // namespace tflm_train

#endif  // TFLM_TRAIN_OPS_TRAINING_TRAINING_KERNELS_H_
