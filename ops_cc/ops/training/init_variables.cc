#include "ops_cc/ops/training/training_kernels.h"

#include <cstring>
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

constexpr char kInitVariables[] = "TFLMTRAIN_INIT_VARIABLES";

// ---- TFLMTRAIN_INIT_VARIABLES -----------------------------------------------

struct InitVariablesData {
  OptionError option_error;
  // Option every_invoke: fill on every Invoke, not only the first (the
  // converter clears recurrent states this way, so no sample sees the
  // previous sample's LSTM state).
  bool every_invoke = false;
  bool initialized = false;
  int count = 0;
  uint32_t* bytes = nullptr;  // per pair: the destination's size
  // per pair: the source's size; one element smaller than the destination
  // fills it (optimizer state starts at 0 without a flash copy per element)
  uint32_t* source_bytes = nullptr;
};

void* InitVariablesInit(InitContext& c) {
  InitVariablesData* data = NewOpData<InitVariablesData>(c);
  if (data == nullptr) return nullptr;
  if (c.CustomOptionsSize() == 0) return data;  // no options: the defaults
  OptionReader options(c);
  data->every_invoke = options.Optional("every_invoke", 0) != 0;
  data->option_error = options.error();
  return data;
}

Status InitVariablesPrepare(PrepareContext& c) {
  const char* op = kInitVariables;
  InitVariablesData* data = nullptr;
  TT_RETURN_IF_ERROR(GetOpData(c, op, &data));
  TT_RETURN_IF_ERROR(CheckOptions(c, op, data->option_error));
  const int n = c.NumInputs();
  if (c.NumOutputs() != n)
    return c.Fail("%s: %d inputs but %d outputs", op, n, c.NumOutputs());
  if (n > 0) {
    data->bytes = static_cast<uint32_t*>(
        c.AllocatePersistent(2 * sizeof(uint32_t) * static_cast<size_t>(n)));
    if (data->bytes == nullptr)
      return c.Fail("%s: out of persistent memory", op);
    data->source_bytes = data->bytes + n;
  }
  for (int i = 0; i < n; ++i) {
    TensorDesc src, dst;
    if (!c.HasInput(i) || !c.HasOutput(i) || c.Input(i, &src) != Status::kOk ||
        c.Output(i, &dst) != Status::kOk)
      return c.Fail("%s: pair %d is missing a tensor", op, i);
    if (!src.is_constant)
      return c.Fail("%s: source %d is not a constant", op, i);
    if (!dst.is_variable)
      return c.Fail("%s: destination %d is not a variable", op, i);
    const int64_t element = static_cast<int64_t>(DataTypeSize(src.type));
    const int64_t source_bytes = src.shape.FlatSize() * element;
    const int64_t bytes = dst.shape.FlatSize() * element;
    if (src.type != dst.type || element == 0 ||
        (source_bytes != bytes && source_bytes != element))
      return c.Fail("%s: pair %d differs in type or size (the source must "
                    "match the destination or be one element)", op, i);
    if (bytes > INT32_MAX) return c.Fail("%s: pair %d is too large", op, i);
    data->bytes[i] = static_cast<uint32_t>(bytes);
    data->source_bytes[i] = static_cast<uint32_t>(source_bytes);
  }
  data->count = n;
  data->initialized = false;
  return Status::kOk;
}

Status InitVariablesEval(EvalContext& c) {
  auto* data = static_cast<InitVariablesData*>(c.OpData());
  if (data->initialized && !data->every_invoke) return Status::kOk;
  for (int i = 0; i < data->count; ++i) {
    auto* dst = static_cast<uint8_t*>(c.OutputData(i));
    const uint32_t step = data->source_bytes[i];
    for (uint32_t at = 0; at < data->bytes[i]; at += step)
      std::memcpy(dst + at, c.InputData(i), step);
  }
  data->initialized = true;
  return Status::kOk;
}

void InitVariablesReset(void* op_data) {
  if (op_data != nullptr)
    static_cast<InitVariablesData*>(op_data)->initialized = false;
}

}  // namespace

extern const OpKernel kInitVariablesKernel = {
    -1,
    kInitVariables,
    InitVariablesInit,
    InitVariablesPrepare,
    InitVariablesEval,
    InitVariablesReset};

}  // namespace tflm_train
