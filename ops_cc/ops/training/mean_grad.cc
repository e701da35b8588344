#include "ops_cc/ops/training/training_kernels.h"

#include "ops_cc/kernels/grad/elementwise_grad.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

constexpr char kMeanGrad[] = "TFLMTRAIN_MEAN_GRAD";

// ---- TFLMTRAIN_MEAN_GRAD ----------------------------------------------------

Status MeanGradPrepare(PrepareContext& c) {
  const char* op = kMeanGrad;
  TT_RETURN_IF_ERROR(CheckArity(c, op, 2, 1));
  TT_RETURN_IF_ERROR(CheckMode(c, op, 0));
  TensorDesc dy, dx;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 1, "y/grad", DataType::kFloat32, &dy));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, 0, "x/grad", DataType::kFloat32, &dx));
  TT_RETURN_IF_ERROR(CheckRank(c, op, "x/grad", dx, 4));
  const Shape& x = dx.shape;
  if (x.dims[1] < 1 || x.dims[2] < 1)
    return c.Fail("%s: x/grad has an empty spatial dimension", op);
  if (dy.shape.Last() != x.dims[3] ||
      dy.shape.FlatSize() != static_cast<int64_t>(x.dims[0]) * x.dims[3])
    return c.Fail("%s: y/grad must be [%d, %d] (or [%d, 1, 1, %d])", op,
                  static_cast<int>(x.dims[0]), static_cast<int>(x.dims[3]),
                  static_cast<int>(x.dims[0]), static_cast<int>(x.dims[3]));
  return Status::kOk;
}

Status MeanGradEval(EvalContext& c) {
  if (!TrainMode(c)) return Status::kOk;
  MeanGrad(c.Input<float>(1), c.OutputShape(0), c.Output<float>(0));
  return Status::kOk;
}

}  // namespace

extern const OpKernel kMeanGradKernel = {
    -1,
    kMeanGrad,
    nullptr,
    MeanGradPrepare,
    MeanGradEval,
    nullptr};

}  // namespace tflm_train
