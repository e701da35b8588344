#include "ops_cc/ops/forward/forward_kernels.h"

#include "ops_cc/kernels/maximum_minimum.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

// ---- MAXIMUM and MINIMUM ---------------------------------------------------

// TFLM compares raw int8 values and has no Prepare: the result means the
// real-valued max/min only when every tensor has the output's quantization,
// which the TFLite converter guarantees. A model where they differ is
// refused rather than run with a meaningless result.
Status CheckSameQuantization(PrepareContext& c, const char* op,
                             const char* name, const TensorDesc& input,
                             const TensorDesc& output) {
  if (Scale(input) != Scale(output) || ZeroPoint(input) != ZeroPoint(output)) {
    return c.Fail(
        "%s: %s quantization (scale %g, zero point %ld) differs from the "
        "output's (scale %g, zero point %ld)",
        op, name, static_cast<double>(Scale(input)),
        static_cast<long>(ZeroPoint(input)), static_cast<double>(Scale(output)),
        static_cast<long>(ZeroPoint(output)));
  }
  return Status::kOk;
}

Status MaximumMinimumPrepare(PrepareContext& c, const char* op) {
  TensorDesc a, b, output;
  TT_RETURN_IF_ERROR(ReadBroadcastOperands(c, op, &a, &b, &output));
  TT_RETURN_IF_ERROR(CheckSameQuantization(c, op, "input 0", a, output));
  return CheckSameQuantization(c, op, "input 1", b, output);
}

Status MaximumPrepare(PrepareContext& c) {
  return MaximumMinimumPrepare(c, "MAXIMUM");
}

Status MinimumPrepare(PrepareContext& c) {
  return MaximumMinimumPrepare(c, "MINIMUM");
}

Status MaximumEval(EvalContext& c) {
  ref::Maximum(c.InputShape(0), c.Input<const int8_t>(0), c.InputShape(1),
               c.Input<const int8_t>(1), c.OutputShape(0),
               c.Output<int8_t>(0));
  return Status::kOk;
}

Status MinimumEval(EvalContext& c) {
  ref::Minimum(c.InputShape(0), c.Input<const int8_t>(0), c.InputShape(1),
               c.Input<const int8_t>(1), c.OutputShape(0),
               c.Output<int8_t>(0));
  return Status::kOk;
}

}  // namespace

extern const OpKernel kMaximum = {
    kBuiltinMaximum,
    nullptr,
    nullptr,
    &MaximumPrepare,
    &MaximumEval,
    nullptr};

extern const OpKernel kMinimum = {
    kBuiltinMinimum,
    nullptr,
    nullptr,
    &MinimumPrepare,
    &MinimumEval,
    nullptr};

}  // namespace tflm_train
