#include "ops_cc/ops/training/training_kernels.h"

#include "ops_cc/kernels/grad/elementwise_grad.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

constexpr char kReshapeGrad[] = "TFLMTRAIN_RESHAPE_GRAD";

// ---- TFLMTRAIN_RESHAPE_GRAD -------------------------------------------------

Status ReshapeGradPrepare(PrepareContext& c) {
  const char* op = kReshapeGrad;
  TT_RETURN_IF_ERROR(CheckArity(c, op, 2, 1));
  TT_RETURN_IF_ERROR(CheckMode(c, op, 0));
  TensorDesc dy, dx;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 1, "y/grad", DataType::kFloat32, &dy));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, 0, "x/grad", DataType::kFloat32, &dx));
  return CheckElements(c, op, "x/grad", dx, dy.shape.FlatSize());
}

Status ReshapeGradEval(EvalContext& c) {
  if (!TrainMode(c)) return Status::kOk;
  ReshapeGrad(c.Input<float>(1), c.OutputShape(0).FlatSize(),
              c.Output<float>(0));
  return Status::kOk;
}

}  // namespace

extern const OpKernel kReshapeGradKernel = {
    -1,
    kReshapeGrad,
    nullptr,
    ReshapeGradPrepare,
    ReshapeGradEval,
    nullptr};

}  // namespace tflm_train
