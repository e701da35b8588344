#include "ops_cc/ops/forward/forward_kernels.h"

#include "ops_cc/kernels/leaky_relu.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

// ---- LEAKY_RELU ------------------------------------------------------------

Status LeakyReluPrepare(PrepareContext& c) {
  const char* op = "LEAKY_RELU";
  TT_RETURN_IF_ERROR(RequireOpData(c, op));
  const auto* o = static_cast<const LeakyReluOptions*>(c.BuiltinOptions());
  if (o == nullptr) return c.Fail("%s: missing builtin options", op);
  TensorDesc input, output;
  TT_RETURN_IF_ERROR(ReadInt8Elementwise(c, op, &input, &output));
  if (!ComputeLeakyReluParams(Scale(input), ZeroPoint(input), o->alpha,
                              Scale(output), ZeroPoint(output),
                              static_cast<LeakyReluParams*>(c.OpData()))) {
    return c.Fail(
        "%s: input scale %g x alpha %g / output scale %g is out of range", op,
        static_cast<double>(Scale(input)), static_cast<double>(o->alpha),
        static_cast<double>(Scale(output)));
  }
  return Status::kOk;
}

Status LeakyReluEval(EvalContext& c) {
  ref::LeakyRelu(*static_cast<const LeakyReluParams*>(c.OpData()),
                 c.Input<const int8_t>(0),
                 static_cast<int>(c.InputShape(0).FlatSize()),
                 c.Output<int8_t>(0));
  return Status::kOk;
}

}  // namespace

extern const OpKernel kLeakyRelu = {
    kBuiltinLeakyRelu,
    nullptr,
    &InitOpData<LeakyReluParams>,
    &LeakyReluPrepare,
    &LeakyReluEval,
    nullptr};

}  // namespace tflm_train
