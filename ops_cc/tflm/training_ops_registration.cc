#include "ops_cc/tflm/training_ops_registration.h"

#include <array>
#include <cstddef>
#include <utility>

#include "ops_cc/tflm/tflm_kernel_context.h"
#include "tensorflow/lite/micro/kernels/kernel_util.h"

namespace tflite {
namespace micro {
namespace tflm_train_adapter {
namespace {

using ::tflm_train::OpKernel;

// TFLM's hooks carry no op identity besides node->user_data (the op data),
// so each training op gets its own instantiation of the four hooks.
template <size_t kIndex>
const OpKernel& Kernel() {
  return *::tflm_train::TrainingKernel(static_cast<int>(kIndex));
}

template <size_t kIndex>
void* Init(TfLiteContext* context, const char* buffer, size_t length) {
  const OpKernel& kernel = Kernel<kIndex>();
  if (kernel.init == nullptr) return nullptr;
  TflmInitContext init_context(context, buffer, length);
  return kernel.init(init_context);
}

template <size_t kIndex>
TfLiteStatus Prepare(TfLiteContext* context, TfLiteNode* node) {
  // Destroying the context releases the temporary tensors before TFLM
  // checks that none is left.
  TflmPrepareContext prepare_context(context, node);
  return ToTfLiteStatus(Kernel<kIndex>().prepare(prepare_context));
}

template <size_t kIndex>
TfLiteStatus Invoke(TfLiteContext* context, TfLiteNode* node) {
  TflmEvalContext eval_context(context, node);
  return ToTfLiteStatus(Kernel<kIndex>().eval(eval_context));
}

template <size_t kIndex>
void Reset(TfLiteContext*, void* op_data) {
  Kernel<kIndex>().reset(op_data);
}

struct Hooks {
  void* (*init)(TfLiteContext*, const char*, size_t);
  TfLiteStatus (*prepare)(TfLiteContext*, TfLiteNode*);
  TfLiteStatus (*invoke)(TfLiteContext*, TfLiteNode*);
  void (*reset)(TfLiteContext*, void*);
};

template <size_t... kIndices>
constexpr std::array<Hooks, sizeof...(kIndices)> MakeHooks(
    std::index_sequence<kIndices...>) {
  return {{Hooks{&Init<kIndices>, &Prepare<kIndices>, &Invoke<kIndices>,
                 &Reset<kIndices>}...}};
}

constexpr std::array<Hooks, ::tflm_train::kNumTrainingOps> kHooks =
    MakeHooks(std::make_index_sequence<::tflm_train::kNumTrainingOps>());

}  // namespace

TFLMRegistration TrainingOpRegistration(int i) {
  const OpKernel* kernel = ::tflm_train::TrainingKernel(i);
  if (kernel == nullptr) return TFLMRegistration{};
  const Hooks& hooks = kHooks[static_cast<size_t>(i)];
  return RegisterOp(hooks.init,
                    kernel->prepare != nullptr ? hooks.prepare : nullptr,
                    hooks.invoke, /*free=*/nullptr,
                    kernel->reset != nullptr ? hooks.reset : nullptr);
}

const char* TrainingOpName(int i) {
  const OpKernel* kernel = ::tflm_train::TrainingKernel(i);
  return kernel != nullptr ? kernel->custom_name : nullptr;
}

}  // namespace tflm_train_adapter
}  // namespace micro
}  // namespace tflite
