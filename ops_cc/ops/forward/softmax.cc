#include "ops_cc/ops/forward/forward_kernels.h"

#include "ops_cc/kernels/softmax.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

// ---- SOFTMAX -------------------------------------------------------------

Status SoftmaxPrepare(PrepareContext& c) {
  const char* op = "SOFTMAX";
  TT_RETURN_IF_ERROR(RequireOpData(c, op));
  const auto* o = static_cast<const SoftmaxOptions*>(c.BuiltinOptions());
  if (o == nullptr) return c.Fail("%s: missing builtin options", op);
  TT_RETURN_IF_ERROR(CheckInputCount(c, op, 1, 1));
  TensorDesc input, output;
  TT_RETURN_IF_ERROR(ReadInt8InputOutput(c, op, &input, &output));
  if (input.shape.rank < 1 || input.shape != output.shape) {
    return c.Fail("%s: input and output must have the same non-scalar shape",
                  op);
  }
  if (ZeroPoint(output) != -128 || Scale(output) != 1.0f / 256) {
    return c.Fail(
        "%s: output must have scale 1/256 and zero point -128, got "
        "%g and %ld",
        op, static_cast<double>(Scale(output)),
        static_cast<long>(ZeroPoint(output)));
  }
  if (!ComputeSoftmaxParams(o->beta, Scale(input),
                            static_cast<SoftmaxParams*>(c.OpData()))) {
    return c.Fail("%s: beta %g x input scale %g is out of range", op,
                  static_cast<double>(o->beta),
                  static_cast<double>(Scale(input)));
  }
  return Status::kOk;
}

Status SoftmaxEval(EvalContext& c) {
  if (!ref::Softmax(*static_cast<const SoftmaxParams*>(c.OpData()),
                    c.InputShape(0), c.Input<const int8_t>(0),
                    c.Output<int8_t>(0))) {
    return c.Fail("SOFTMAX: sum of exponentials is too large for int8 output");
  }
  return Status::kOk;
}

}  // namespace

extern const OpKernel kSoftmax = {
    kBuiltinSoftmax,
    nullptr,
    &InitOpData<SoftmaxParams>,
    &SoftmaxPrepare,
    &SoftmaxEval,
    nullptr};

}  // namespace tflm_train
