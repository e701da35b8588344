#include "ops_cc/ops/forward/forward_kernels.h"

#include "ops_cc/kernels/hard_swish.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

// ---- HARD_SWISH ------------------------------------------------------------

Status HardSwishPrepare(PrepareContext& c) {
  const char* op = "HARD_SWISH";
  TT_RETURN_IF_ERROR(RequireOpData(c, op));
  TensorDesc input, output;
  TT_RETURN_IF_ERROR(ReadInt8Elementwise(c, op, &input, &output));
  if (!ComputeHardSwishParams(Scale(input), ZeroPoint(input), Scale(output),
                              ZeroPoint(output),
                              static_cast<HardSwishParams*>(c.OpData()))) {
    return c.Fail(
        "%s: input scale %g / 128 must be below output scale %g and below "
        "3 * 2^16",
        op, static_cast<double>(Scale(input)),
        static_cast<double>(Scale(output)));
  }
  return Status::kOk;
}

Status HardSwishEval(EvalContext& c) {
  ref::HardSwish(*static_cast<const HardSwishParams*>(c.OpData()),
                 c.Input<const int8_t>(0),
                 static_cast<int>(c.InputShape(0).FlatSize()),
                 c.Output<int8_t>(0));
  return Status::kOk;
}

}  // namespace

extern const OpKernel kHardSwish = {
    kBuiltinHardSwish,
    nullptr,
    &InitOpData<HardSwishParams>,
    &HardSwishPrepare,
    &HardSwishEval,
    nullptr};

}  // namespace tflm_train
