#include "ops_cc/ops/forward/forward_kernels.h"

#include <cstring>
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

// ---- RESHAPE -------------------------------------------------------------

struct ReshapeOpData {
  size_t bytes = 0;
};

Status ReshapePrepare(PrepareContext& c) {
  const char* op = "RESHAPE";
  TT_RETURN_IF_ERROR(RequireOpData(c, op));
  TT_RETURN_IF_ERROR(CheckInputCount(c, op, 1, 2));
  TensorDesc input, output;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 0, &input));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, &output));
  if (input.type != output.type) {
    return c.Fail("%s: input is %s, output %s", op, DataTypeName(input.type),
                  DataTypeName(output.type));
  }
  if (input.shape.FlatSize() != output.shape.FlatSize()) {
    return c.Fail("%s: input has %ld elements, output %ld", op,
                  static_cast<long>(input.shape.FlatSize()),
                  static_cast<long>(output.shape.FlatSize()));
  }
  static_cast<ReshapeOpData*>(c.OpData())->bytes =
      static_cast<size_t>(input.shape.FlatSize()) * DataTypeSize(input.type);
  return Status::kOk;
}

Status ReshapeEval(EvalContext& c) {
  const void* in = c.InputData(0);
  void* out = c.OutputData(0);
  if (in != out) {
    std::memcpy(out, in, static_cast<const ReshapeOpData*>(c.OpData())->bytes);
  }
  return Status::kOk;
}

}  // namespace

extern const OpKernel kReshape = {
    kBuiltinReshape,
    nullptr,
    &InitOpData<ReshapeOpData>,
    &ReshapePrepare,
    &ReshapeEval,
    nullptr};

}  // namespace tflm_train
