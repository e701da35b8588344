#include "ops_cc/ops/training/training_kernels.h"

#include "ops_cc/kernels/grad/elementwise_grad.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

constexpr char kGradSum[] = "TFLMTRAIN_GRAD_SUM";

// ---- TFLMTRAIN_GRAD_SUM -----------------------------------------------------

struct GradSumData {
  int count = 0;
  const float** grads = nullptr;  // filled at each Eval
};

void* GradSumInit(InitContext& c) { return NewOpData<GradSumData>(c); }

Status GradSumPrepare(PrepareContext& c) {
  const char* op = kGradSum;
  GradSumData* data = nullptr;
  TT_RETURN_IF_ERROR(GetOpData(c, op, &data));
  const int n = c.NumInputs() - 1;
  if (n < 1 || c.NumOutputs() != 1)
    return c.Fail("%s: expected mode, at least one gradient and one output",
                  op);
  TT_RETURN_IF_ERROR(CheckMode(c, op, 0));
  TensorDesc out;
  TT_RETURN_IF_ERROR(ReadOutput(c, op, 0, "sum", DataType::kFloat32, &out));
  for (int i = 1; i <= n; ++i) {
    TensorDesc g;
    TT_RETURN_IF_ERROR(ReadInput(c, op, i, "gradient", DataType::kFloat32, &g));
    if (g.shape != out.shape)
      return c.Fail("%s: gradient %d differs in shape from the sum", op, i);
  }
  data->grads = static_cast<const float**>(
      c.AllocatePersistent(sizeof(const float*) * static_cast<size_t>(n)));
  if (data->grads == nullptr) return c.Fail("%s: out of persistent memory", op);
  data->count = n;
  return Status::kOk;
}

Status GradSumEval(EvalContext& c) {
  if (!TrainMode(c)) return Status::kOk;
  auto* data = static_cast<GradSumData*>(c.OpData());
  for (int i = 0; i < data->count; ++i) data->grads[i] = c.Input<float>(i + 1);
  GradSum(data->grads, data->count, c.OutputShape(0).FlatSize(),
          c.Output<float>(0));
  return Status::kOk;
}

}  // namespace

extern const OpKernel kGradSumKernel = {
    -1,
    kGradSum,
    GradSumInit,
    GradSumPrepare,
    GradSumEval,
    nullptr};

}  // namespace tflm_train
