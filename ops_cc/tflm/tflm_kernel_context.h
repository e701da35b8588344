// The kernel-context interface (ops_cc/ops/kernel_context.h) implemented over
// TensorFlow Lite Micro: MicroContext for memory and temporary tensors,
// kernel_util for tensors during Eval. Compiled only against a TFLM tree.
//
// Namespace: TFLM is moving its C types (TfLiteContext, TfLiteTensor, ...)
// and classes (MicroContext, TFLMRegistration, MicroMutableOpResolver) from
// the global namespace and `tflite` into `tflite::micro`. Unqualified names
// used inside `tflite::micro` resolve in both layouts, so the adapter lives
// in `tflite::micro::tflm_train_adapter` and never spells `::TfLiteContext`
// or `tflite::MicroContext`.
#ifndef TFLM_TRAIN_TFLM_TFLM_KERNEL_CONTEXT_H_
#define TFLM_TRAIN_TFLM_TFLM_KERNEL_CONTEXT_H_

#include <cstddef>
#include <cstdint>

#include "ops_cc/ops/kernel_context.h"
#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/micro_context.h"

namespace tflite {
namespace micro {
namespace tflm_train_adapter {

class TflmInitContext final : public ::tflm_train::InitContext {
 public:
  // `buffer`/`length`: what TFLM passes to a custom op's init (its
  // custom_options).
  TflmInitContext(TfLiteContext* context, const char* buffer, size_t length);

  const uint8_t* CustomOptions() const override;
  size_t CustomOptionsSize() const override;
  void* AllocatePersistent(size_t bytes) override;

 private:
  TfLiteContext* context_;
  const char* buffer_;
  size_t length_;
};

class TflmPrepareContext final : public ::tflm_train::PrepareContext {
 public:
  TflmPrepareContext(TfLiteContext* context, TfLiteNode* node);
  // Releases every temporary tensor Input()/Output() took: TFLM's
  // AllocateTensors() fails if one is left after Prepare.
  ~TflmPrepareContext() override;
  TflmPrepareContext(const TflmPrepareContext&) = delete;
  TflmPrepareContext& operator=(const TflmPrepareContext&) = delete;

  int NumInputs() const override;
  int NumOutputs() const override;
  bool HasInput(int i) const override;
  bool HasOutput(int i) const override;
  // The descriptor's quantization stays valid until this context is
  // destroyed (the end of Prepare).
  ::tflm_train::Status Input(int i, ::tflm_train::TensorDesc* desc) override;
  ::tflm_train::Status Output(int i, ::tflm_train::TensorDesc* desc) override;
  const void* ConstantInputData(int i) override;
  const void* BuiltinOptions() const override;
  void* OpData() override;
  void* AllocatePersistent(size_t bytes) override;
  ::tflm_train::Status RequestScratch(size_t bytes, int* index) override;
  ::tflm_train::Status Fail(const char* format, ...) override;

 private:
  struct Temporary;  // a described tensor, held until the destructor

  ::tflm_train::Status Describe(TfLiteTensor* tensor,
                                ::tflm_train::TensorDesc* desc);

  TfLiteNode* node_;
  MicroContext* micro_context_;
  Temporary* temporaries_ = nullptr;
};

class TflmEvalContext final : public ::tflm_train::EvalContext {
 public:
  TflmEvalContext(TfLiteContext* context, TfLiteNode* node);

  void* InputData(int i) override;
  void* OutputData(int i) override;
  ::tflm_train::Shape InputShape(int i) override;
  ::tflm_train::Shape OutputShape(int i) override;
  void* Scratch(int index) override;
  void* OpData() override;
  ::tflm_train::Status Fail(const char* format, ...) override;

 private:
  TfLiteEvalTensor* InputTensor(int i);
  TfLiteEvalTensor* OutputTensor(int i);

  TfLiteContext* context_;
  TfLiteNode* node_;
};

// kTfLiteOk for Status::kOk, kTfLiteError for every other status.
TfLiteStatus ToTfLiteStatus(::tflm_train::Status status);

}  // namespace tflm_train_adapter
}  // namespace micro
}  // namespace tflite

#endif  // TFLM_TRAIN_TFLM_TFLM_KERNEL_CONTEXT_H_
