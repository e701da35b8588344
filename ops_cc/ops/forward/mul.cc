#include "ops_cc/ops/forward/forward_kernels.h"

#include "ops_cc/kernels/mul.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

// ---- MUL -------------------------------------------------------------------

Status MulPrepare(PrepareContext& c) {
  const char* op = "MUL";
  TT_RETURN_IF_ERROR(RequireOpData(c, op));
  const auto* o = static_cast<const MulOptions*>(c.BuiltinOptions());
  if (o == nullptr) return c.Fail("%s: missing builtin options", op);
  TensorDesc a, b, output;
  TT_RETURN_IF_ERROR(ReadBroadcastOperands(c, op, &a, &b, &output));
  auto* p = static_cast<MulParams*>(c.OpData());
  if (!ComputeMulParams(Scale(a), ZeroPoint(a), Scale(b), ZeroPoint(b),
                        Scale(output), ZeroPoint(output), p)) {
    return c.Fail("%s: input scales %g * %g over output scale %g is too large",
                  op, static_cast<double>(Scale(a)),
                  static_cast<double>(Scale(b)),
                  static_cast<double>(Scale(output)));
  }
  return ActivationRange(c, op, o->activation, output, &p->act_min,
                         &p->act_max);
}

Status MulEval(EvalContext& c) {
  ref::Mul(*static_cast<const MulParams*>(c.OpData()), c.InputShape(0),
           c.Input<const int8_t>(0), c.InputShape(1), c.Input<const int8_t>(1),
           c.OutputShape(0), c.Output<int8_t>(0));
  return Status::kOk;
}

}  // namespace

extern const OpKernel kMul = {
    kBuiltinMul,
    nullptr,
    &InitOpData<MulParams>,
    &MulPrepare,
    &MulEval,
    nullptr};

}  // namespace tflm_train
