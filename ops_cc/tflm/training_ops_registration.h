// Registers the TFLMTRAIN_* training ops with TensorFlow Lite Micro.
//
//   #include "ops_cc/tflm/training_ops_registration.h"
//
//   constexpr int kBuiltinOps = 12;  // AddConv2D(), AddFullyConnected(), ...
//   tflite::MicroMutableOpResolver<kBuiltinOps + tflm_train::kTrainingOpCount>
//       resolver;
//   resolver.AddConv2D();
//   ...
//   if (tflm_train::AddTrainingOps(resolver) != kTfLiteOk) { /* too small */ }
//
// Compile every file that includes this header with the same
// TF_LITE_STATIC_MEMORY setting as the TFLM library (it changes the layout of
// TfLiteTensor and TfLiteNode). See docs/tflm_integration.md.
#ifndef TFLM_TRAIN_TFLM_TRAINING_OPS_REGISTRATION_H_
#define TFLM_TRAIN_TFLM_TRAINING_OPS_REGISTRATION_H_

#include "ops_cc/ops/training_ops.h"
#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/micro_common.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"

// Inside tflite::micro so that TFLM's names resolve whether they live in the
// global namespace and `tflite` (older TFLM) or in `tflite::micro` (newer);
// see ops_cc/tflm/tflm_kernel_context.h.
namespace tflite {
namespace micro {
namespace tflm_train_adapter {

// The registration of the i-th training op (0 <= i < kNumTrainingOps):
// init/prepare/invoke/reset run the op's tflm_train::OpKernel through the
// TFLM kernel contexts; free is null (all memory comes from the arena).
// All fields are null for an index out of range.
TFLMRegistration TrainingOpRegistration(int i);

// The custom op name of the i-th training op ("TFLMTRAIN_..."), a string
// with static storage; null for an index out of range.
const char* TrainingOpName(int i);

// See tflm_train::AddTrainingOps.
template <unsigned int tOpCount>
TfLiteStatus AddTrainingOps(MicroMutableOpResolver<tOpCount>& resolver) {
  for (int i = 0; i < ::tflm_train::kNumTrainingOps; ++i) {
    // AddCustom copies the registration and keeps the name pointer.
    const TFLMRegistration registration = TrainingOpRegistration(i);
    const TfLiteStatus status =
        resolver.AddCustom(TrainingOpName(i), &registration);
    if (status != kTfLiteOk) return status;
  }
  return kTfLiteOk;
}

}  // namespace tflm_train_adapter
}  // namespace micro
}  // namespace tflite

namespace tflm_train {

// Resolver slots the training ops take: size the resolver as
// MicroMutableOpResolver<(builtin ops you add) + kTrainingOpCount>.
constexpr int kTrainingOpCount = kNumTrainingOps;

// template <unsigned int N>
// TfLiteStatus AddTrainingOps(tflite::MicroMutableOpResolver<N>& resolver);
//
// Adds every TFLMTRAIN_* custom op to `resolver` (kTrainingOpCount slots).
// Returns kTfLiteOk, or the first AddCustom error: the resolver is full or
// an op of the same name was already added (TFLM logs which).
using ::tflite::micro::tflm_train_adapter::AddTrainingOps;

}  // namespace tflm_train

#endif  // TFLM_TRAIN_TFLM_TRAINING_OPS_REGISTRATION_H_
