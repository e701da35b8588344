#include "ops_cc/ops/forward/forward_kernels.h"

#include "ops_cc/kernels/add.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

// ---- ADD -----------------------------------------------------------------

Status AddPrepare(PrepareContext& c) {
  const char* op = "ADD";
  TT_RETURN_IF_ERROR(RequireOpData(c, op));
  const auto* o = static_cast<const AddOptions*>(c.BuiltinOptions());
  if (o == nullptr) return c.Fail("%s: missing builtin options", op);
  TT_RETURN_IF_ERROR(CheckInputCount(c, op, 2, 2));
  TensorDesc a, b, output;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 0, &a));
  TT_RETURN_IF_ERROR(ReadInput(c, op, 1, &b));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, &output));
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "input 0", a));
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "input 1", b));
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "output", output));
  if (!AddShapesBroadcast(a.shape, b.shape, output.shape)) {
    return c.Fail(
        "%s: input shapes (rank %d, %d) do not broadcast to the "
        "output shape (rank %d)",
        op, a.shape.rank, b.shape.rank, output.shape.rank);
  }
  auto* p = static_cast<AddParams*>(c.OpData());
  if (!ComputeAddParams(Scale(a), ZeroPoint(a), Scale(b), ZeroPoint(b),
                        Scale(output), ZeroPoint(output), p)) {
    return c.Fail("%s: output scale %g is too small for the input scales", op,
                  static_cast<double>(Scale(output)));
  }
  return ActivationRange(c, op, o->activation, output, &p->act_min,
                         &p->act_max);
}

Status AddEval(EvalContext& c) {
  ref::Add(*static_cast<const AddParams*>(c.OpData()), c.InputShape(0),
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

}  // namespace tflm_train
