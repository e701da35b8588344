#include "ops_cc/ops/training/training_kernels.h"

#include "ops_cc/kernels/grad/elementwise_grad.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

constexpr char kMeanGrad[] = "TFLMTRAIN_MEAN_GRAD";

// ---- TFLMTRAIN_MEAN_GRAD ----------------------------------------------------

// y/grad float32, or int8 with its scale as input 2 and x/grad int8 with
// its scale (y/grad's / (H * W)) as output 1.
Status MeanGradPrepare(PrepareContext& c) {
  const char* op = kMeanGrad;
  GradTypeData* data = nullptr;
  TT_RETURN_IF_ERROR(GetOpData(c, op, &data));
  TT_RETURN_IF_ERROR(CheckMode(c, op, 0));
  TensorDesc dy, dx;
  TT_RETURN_IF_ERROR(ReadGradPair(c, op, 2, &dy, &dx, &data->int8));
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
  const Shape x = c.OutputShape(0);
  if (static_cast<const GradTypeData*>(c.OpData())->int8) {
    MeanGradInt8(c.Input<int8_t>(1), x, c.Output<int8_t>(0));
    *c.Output<float>(1) =
        *c.Input<float>(2) / static_cast<float>(x.dims[1] * x.dims[2]);
    return Status::kOk;
  }
  MeanGrad(c.Input<float>(1), x, c.Output<float>(0));
  return Status::kOk;
}

}  // namespace

extern const OpKernel kMeanGradKernel = {
    -1,
    kMeanGrad,
    InitOpData<GradTypeData>,
    MeanGradPrepare,
    MeanGradEval,
    nullptr};

}  // namespace tflm_train
