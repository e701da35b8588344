#include "ops_cc/ops/training/training_kernels.h"

#include "ops_cc/kernels/grad/elementwise_grad.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

constexpr char kReshapeGrad[] = "TFLMTRAIN_RESHAPE_GRAD";

// ---- TFLMTRAIN_RESHAPE_GRAD -------------------------------------------------

// y/grad float32, or int8 with its scale as input 2; x/grad then int8 with
// the same scale as output 1.
Status ReshapeGradPrepare(PrepareContext& c) {
  const char* op = kReshapeGrad;
  GradTypeData* data = nullptr;
  TT_RETURN_IF_ERROR(GetOpData(c, op, &data));
  TT_RETURN_IF_ERROR(CheckMode(c, op, 0));
  TensorDesc dy, dx;
  TT_RETURN_IF_ERROR(ReadGradPair(c, op, 2, &dy, &dx, &data->int8));
  return CheckElements(c, op, "x/grad", dx, dy.shape.FlatSize());
}

Status ReshapeGradEval(EvalContext& c) {
  if (!TrainMode(c)) return Status::kOk;
  const bool int8 = static_cast<const GradTypeData*>(c.OpData())->int8;
  ReshapeGrad(c.InputData(1), c.OutputShape(0).FlatSize(),
              int8 ? 1 : static_cast<int>(sizeof(float)), c.OutputData(0));
  if (int8) *c.Output<float>(1) = *c.Input<float>(2);
  return Status::kOk;
}

}  // namespace

extern const OpKernel kReshapeGradKernel = {
    -1,
    kReshapeGrad,
    InitOpData<GradTypeData>,
    ReshapeGradPrepare,
    ReshapeGradEval,
    nullptr};

}  // namespace tflm_train
