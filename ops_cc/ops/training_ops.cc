#include "ops_cc/ops/training_ops.h"

#include <cstring>

#include "ops_cc/ops/training/training_kernels.h"

namespace tflm_train {
namespace {

// Registration order (TrainingKernel(i)); the TFLM adapter registers them in it.
const OpKernel* const kKernels[kNumTrainingOps] = {
    &kInitVariablesKernel,
    &kFullyConnectedRealOutputKernel,
    &kConvRealOutputKernel,
    &kSoftmaxCrossEntropyKernel,
    &kMeanSquaredErrorKernel,
    &kMeanAbsoluteErrorKernel,
    &kConvGradKernel,
    &kDepthwiseConvGradKernel,
    &kFullyConnectedGradKernel,
    &kAddGradKernel,
    &kAveragePoolGradKernel,
    &kMaxPoolGradKernel,
    &kMeanGradKernel,
    &kPadGradKernel,
    &kReshapeGradKernel,
    &kGradSumKernel,
    &kOptimizerStepKernel,
    &kImprintKernel,
    &kQuantizeGradKernel,
    &kHardSwishGradKernel,
    &kLogisticGradKernel,
    &kTanhGradKernel,
    &kLeakyReluGradKernel,
    &kMulGradKernel,
    &kConcatenationGradKernel,
    &kTransposeGradKernel,
    &kStridedSliceGradKernel,
    &kPackMaskKernel,
    &kConvSlicedKernel,
    &kFullyConnectedSlicedKernel,
    &kExpandDepthwiseConvKernel,
};

}  // namespace

const OpKernel* TrainingKernel(int i) {
  return i >= 0 && i < kNumTrainingOps ? kKernels[i] : nullptr;
}

const OpKernel* FindTrainingKernel(const char* custom_name) {
  if (custom_name == nullptr) return nullptr;
  for (const OpKernel* kernel : kKernels)
    if (std::strcmp(kernel->custom_name, custom_name) == 0) return kernel;
  return nullptr;
}

}  // namespace tflm_train
