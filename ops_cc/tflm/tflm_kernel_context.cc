#include "ops_cc/tflm/tflm_kernel_context.h"

#include <cstdarg>
#include <new>

#include "tensorflow/lite/micro/kernels/kernel_util.h"
#include "tensorflow/lite/micro/micro_log.h"

namespace tflite {
namespace micro {
namespace tflm_train_adapter {
namespace {

using ::tflm_train::DataType;
using ::tflm_train::Shape;
using ::tflm_train::Status;

// TfLiteType and the schema's TensorType (DataType's values) differ for
// float32, so the mapping is explicit.
bool ToDataType(TfLiteType type, DataType* out) {
  switch (type) {
    case kTfLiteFloat32: *out = DataType::kFloat32; return true;
    case kTfLiteInt32: *out = DataType::kInt32; return true;
    case kTfLiteUInt8: *out = DataType::kUInt8; return true;
    case kTfLiteInt64: *out = DataType::kInt64; return true;
    case kTfLiteBool: *out = DataType::kBool; return true;
    case kTfLiteInt16: *out = DataType::kInt16; return true;
    case kTfLiteInt8: *out = DataType::kInt8; return true;
    default: return false;
  }
}

// False (and an empty shape) for a rank above ::tflm_train::kMaxRank.
bool ToShape(const TfLiteIntArray* dims, Shape* shape) {
  *shape = Shape();
  if (dims == nullptr || dims->size > ::tflm_train::kMaxRank) return false;
  shape->rank = dims->size;
  for (int d = 0; d < dims->size; ++d) shape->dims[d] = dims->data[d];
  return true;
}

bool IsPresent(const TfLiteIntArray* indices, int i) {
  return i >= 0 && i < indices->size && indices->data[i] >= 0;
}

}  // namespace

// ---- Init -------------------------------------------------------------------

TflmInitContext::TflmInitContext(TfLiteContext* context, const char* buffer,
                                 size_t length)
    : context_(context), buffer_(buffer), length_(length) {}

const uint8_t* TflmInitContext::CustomOptions() const {
  return reinterpret_cast<const uint8_t*>(buffer_);
}

size_t TflmInitContext::CustomOptionsSize() const { return length_; }

void* TflmInitContext::AllocatePersistent(size_t bytes) {
  return GetMicroContext(context_)->AllocatePersistentBuffer(bytes);
}

// ---- Prepare ----------------------------------------------------------------

// Lives in TFLM's temporary arena section next to the temporary tensor.
// TFLM keeps zero points as `int`; the interface hands out int32_t (a
// different type on arm-none-eabi), so they are copied behind this record.
struct TflmPrepareContext::Temporary {
  TfLiteTensor* tensor;
  Temporary* next;
  int32_t* zero_points;
};

TflmPrepareContext::TflmPrepareContext(TfLiteContext* context,
                                       TfLiteNode* node)
    : node_(node), micro_context_(GetMicroContext(context)) {}

TflmPrepareContext::~TflmPrepareContext() {
  while (temporaries_ != nullptr) {
    Temporary* temporary = temporaries_;
    temporaries_ = temporary->next;
    micro_context_->DeallocateTempTfLiteTensor(temporary->tensor);
    micro_context_->DeallocateTempBuffer(
        reinterpret_cast<uint8_t*>(temporary));
  }
}

int TflmPrepareContext::NumInputs() const { return node_->inputs->size; }

int TflmPrepareContext::NumOutputs() const { return node_->outputs->size; }

bool TflmPrepareContext::HasInput(int i) const {
  return IsPresent(node_->inputs, i);
}

bool TflmPrepareContext::HasOutput(int i) const {
  return IsPresent(node_->outputs, i);
}

Status TflmPrepareContext::Input(int i, ::tflm_train::TensorDesc* desc) {
  if (!HasInput(i)) return Fail("input %d is missing", i);
  return Describe(micro_context_->AllocateTempInputTensor(node_, i), desc);
}

Status TflmPrepareContext::Output(int i, ::tflm_train::TensorDesc* desc) {
  if (!HasOutput(i)) return Fail("output %d is missing", i);
  return Describe(micro_context_->AllocateTempOutputTensor(node_, i), desc);
}

Status TflmPrepareContext::Describe(TfLiteTensor* tensor,
                                    ::tflm_train::TensorDesc* desc) {
  *desc = ::tflm_train::TensorDesc();
  if (tensor == nullptr) return Fail("cannot allocate a temporary tensor");
  const auto* quant =
      tensor->quantization.type == kTfLiteAffineQuantization
          ? static_cast<const TfLiteAffineQuantization*>(
                tensor->quantization.params)
          : nullptr;
  const int count =
      quant != nullptr && quant->scale != nullptr ? quant->scale->size : 0;
  uint8_t* memory = micro_context_->AllocateTempBuffer(
      sizeof(Temporary) + sizeof(int32_t) * static_cast<size_t>(count),
      alignof(Temporary));
  if (memory == nullptr) {
    micro_context_->DeallocateTempTfLiteTensor(tensor);
    return Fail("cannot allocate a temporary buffer");
  }
  auto* temporary = new (memory) Temporary{
      tensor, temporaries_,
      reinterpret_cast<int32_t*>(memory + sizeof(Temporary))};
  temporaries_ = temporary;

  if (!ToDataType(tensor->type, &desc->type))
    return Fail("tensor type %d is not supported",
                static_cast<int>(tensor->type));
  if (!ToShape(tensor->dims, &desc->shape))
    return Fail("tensor rank %d is above %d", tensor->dims->size,
                ::tflm_train::kMaxRank);
  // As in the standalone runtime, a tensor with data in the model is a
  // constant even if flagged variable: TFLM reports it as constant during
  // Prepare (kernels may cache data derived from it) but resets its RAM copy
  // to the zero point at allocation.
  desc->is_constant = tensor->allocation_type == kTfLiteMmapRo;
  desc->is_variable = tensor->is_variable && !desc->is_constant;
  if (count > 0) {
    if (quant->zero_point == nullptr || quant->zero_point->size != count)
      return Fail("tensor has %d scales but %d zero points", count,
                  quant->zero_point == nullptr ? 0 : quant->zero_point->size);
    for (int c = 0; c < count; ++c)
      temporary->zero_points[c] = quant->zero_point->data[c];
    desc->quant.scales = quant->scale->data;
    desc->quant.zero_points = temporary->zero_points;
    desc->quant.count = count;
    desc->quant.quantized_dimension = quant->quantized_dimension;
  }
  return Status::kOk;
}

const void* TflmPrepareContext::ConstantInputData(int i) {
  if (!HasInput(i)) return nullptr;
  TfLiteTensor* tensor = micro_context_->AllocateTempInputTensor(node_, i);
  if (tensor == nullptr) return nullptr;
  // Constant data points into the model, so it outlives the temporary.
  const void* data =
      tensor->allocation_type == kTfLiteMmapRo ? tensor->data.data : nullptr;
  micro_context_->DeallocateTempTfLiteTensor(tensor);
  return data;
}

const void* TflmPrepareContext::BuiltinOptions() const { return nullptr; }

void* TflmPrepareContext::OpData() { return node_->user_data; }

void* TflmPrepareContext::AllocatePersistent(size_t bytes) {
  return micro_context_->AllocatePersistentBuffer(bytes);
}

Status TflmPrepareContext::RequestScratch(size_t bytes, int* index) {
  if (micro_context_->RequestScratchBufferInArena(bytes, index) != kTfLiteOk)
    return Fail("cannot request a scratch buffer of %u bytes",
                static_cast<unsigned>(bytes));
  return Status::kOk;
}

Status TflmPrepareContext::Fail(const char* format, ...) {
  va_list args;
  va_start(args, format);
  VMicroPrintf(format, args);
  va_end(args);
  return Status::kError;
}

// ---- Eval -------------------------------------------------------------------

TflmEvalContext::TflmEvalContext(TfLiteContext* context, TfLiteNode* node)
    : context_(context), node_(node) {}

TfLiteEvalTensor* TflmEvalContext::InputTensor(int i) {
  return IsPresent(node_->inputs, i) ? GetMutableEvalInput(context_, node_, i)
                                     : nullptr;
}

TfLiteEvalTensor* TflmEvalContext::OutputTensor(int i) {
  return IsPresent(node_->outputs, i) ? GetEvalOutput(context_, node_, i)
                                      : nullptr;
}

void* TflmEvalContext::InputData(int i) {
  TfLiteEvalTensor* tensor = InputTensor(i);
  return tensor != nullptr ? tensor->data.data : nullptr;
}

void* TflmEvalContext::OutputData(int i) {
  TfLiteEvalTensor* tensor = OutputTensor(i);
  return tensor != nullptr ? tensor->data.data : nullptr;
}

Shape TflmEvalContext::InputShape(int i) {
  Shape shape;
  TfLiteEvalTensor* tensor = InputTensor(i);
  if (tensor != nullptr) ToShape(tensor->dims, &shape);
  return shape;
}

Shape TflmEvalContext::OutputShape(int i) {
  Shape shape;
  TfLiteEvalTensor* tensor = OutputTensor(i);
  if (tensor != nullptr) ToShape(tensor->dims, &shape);
  return shape;
}

void* TflmEvalContext::Scratch(int index) {
  return GetMicroContext(context_)->GetScratchBuffer(index);
}

void* TflmEvalContext::OpData() { return node_->user_data; }

Status TflmEvalContext::Fail(const char* format, ...) {
  va_list args;
  va_start(args, format);
  VMicroPrintf(format, args);
  va_end(args);
  return Status::kError;
}

TfLiteStatus ToTfLiteStatus(Status status) {
  return status == Status::kOk ? kTfLiteOk : kTfLiteError;
}

}  // namespace tflm_train_adapter
}  // namespace micro
}  // namespace tflite
