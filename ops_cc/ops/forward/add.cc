#include "ops_cc/ops/forward/forward_kernels.h"

#include "ops_cc/kernels/add.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

// ---- ADD and SUB -----------------------------------------------------------

// The two differ only in the sign of input 2 (ComputeAddParams says why
// SUB's multipliers are ADD's).
Status AddSubPrepare(PrepareContext& c, const char* op, int activation) {
  TT_RETURN_IF_ERROR(RequireOpData(c, op));
  TensorDesc a, b, output;
  TT_RETURN_IF_ERROR(ReadBroadcastOperands(c, op, &a, &b, &output));
  auto* p = static_cast<AddParams*>(c.OpData());
  if (!ComputeAddParams(Scale(a), ZeroPoint(a), Scale(b), ZeroPoint(b),
                        Scale(output), ZeroPoint(output), p)) {
    return c.Fail("%s: output scale %g is too small for the input scales", op,
                  static_cast<double>(Scale(output)));
  }
  return ActivationRange(c, op, activation, output, &p->act_min, &p->act_max);
}

Status AddPrepare(PrepareContext& c) {
  const auto* o = static_cast<const AddOptions*>(c.BuiltinOptions());
  if (o == nullptr) return c.Fail("ADD: missing builtin options");
  return AddSubPrepare(c, "ADD", o->activation);
}

Status SubPrepare(PrepareContext& c) {
  const auto* o = static_cast<const SubOptions*>(c.BuiltinOptions());
  if (o == nullptr) return c.Fail("SUB: missing builtin options");
  return AddSubPrepare(c, "SUB", o->activation);
}

Status AddEval(EvalContext& c) {
  ref::Add(*static_cast<const AddParams*>(c.OpData()), c.InputShape(0),
           c.Input<const int8_t>(0), c.InputShape(1), c.Input<const int8_t>(1),
           c.OutputShape(0), c.Output<int8_t>(0));
  return Status::kOk;
}

Status SubEval(EvalContext& c) {
  ref::Sub(*static_cast<const AddParams*>(c.OpData()), c.InputShape(0),
           c.Input<const int8_t>(0), c.InputShape(1), c.Input<const int8_t>(1),
           c.OutputShape(0), c.Output<int8_t>(0));
  return Status::kOk;
}

}  // namespace

extern const OpKernel kAdd = {
    kBuiltinAdd,
    nullptr,
    &InitOpData<AddParams>,
    &AddPrepare,
    &AddEval,
    nullptr};

extern const OpKernel kSub = {
    kBuiltinSub,
    nullptr,
    &InitOpData<AddParams>,
    &SubPrepare,
    &SubEval,
    nullptr};

}  // namespace tflm_train
