#include "ops_cc/ops/training/training_kernels.h"

#include "ops_cc/kernels/grad/elementwise_grad.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

constexpr char kGradSum[] = "TFLMTRAIN_GRAD_SUM";

// ---- TFLMTRAIN_GRAD_SUM -----------------------------------------------------

// Its gradients are float32, or int8 each followed by its scale after the
// gradients (int8_grad.h): inputs mode, g_1..g_n[, scale_1..scale_n];
// outputs sum[, its scale].
struct GradSumData {
  int count = 0;
  bool int8 = false;
  // Filled at each Eval: the gradients' data (const float* or const
  // int8_t*), and for int8 their scales.
  const void** grads = nullptr;
  float* scales = nullptr;
};

void* GradSumInit(InitContext& c) { return NewOpData<GradSumData>(c); }

Status GradSumPrepare(PrepareContext& c) {
  const char* op = kGradSum;
  GradSumData* data = nullptr;
  TT_RETURN_IF_ERROR(GetOpData(c, op, &data));
  TT_RETURN_IF_ERROR(CheckMode(c, op, 0));
  TensorDesc first;
  if (c.NumInputs() >= 2 && c.Input(1, &first) == Status::kOk)
    data->int8 = first.type == DataType::kInt8;
  const int n = data->int8 ? (c.NumInputs() - 1) / 2 : c.NumInputs() - 1;
  if (n < 1 || c.NumInputs() != 1 + (data->int8 ? 2 * n : n) ||
      c.NumOutputs() != (data->int8 ? 2 : 1))
    return c.Fail("%s: expected mode, at least one gradient (int8 ones "
                  "followed by their scales) and the sum", op);
  TensorDesc out;
  GradSlot slot;
  int next_output = 1, next_input = 1 + n;
  TT_RETURN_IF_ERROR(
      ReadGradOutput(c, op, 0, "sum", &next_output, &out, &slot));
  for (int i = 1; i <= n; ++i) {
    TensorDesc g;
    TT_RETURN_IF_ERROR(
        ReadGradInput(c, op, i, "gradient", &next_input, &g, &slot));
    if (g.type != out.type)
      return c.Fail("%s: gradient %d differs in type from the sum", op, i);
    if (g.shape != out.shape)
      return c.Fail("%s: gradient %d differs in shape from the sum", op, i);
  }
  data->grads = static_cast<const void**>(
      c.AllocatePersistent(sizeof(const void*) * static_cast<size_t>(n)));
  if (data->int8)
    data->scales = static_cast<float*>(
        c.AllocatePersistent(sizeof(float) * static_cast<size_t>(n)));
  if (data->grads == nullptr || (data->int8 && data->scales == nullptr))
    return c.Fail("%s: out of persistent memory", op);
  data->count = n;
  return Status::kOk;
}

Status GradSumEval(EvalContext& c) {
  if (!TrainMode(c)) return Status::kOk;
  auto* data = static_cast<GradSumData*>(c.OpData());
  const int n = data->count;
  for (int i = 0; i < n; ++i) data->grads[i] = c.InputData(i + 1);
  const int64_t elements = c.OutputShape(0).FlatSize();
  if (data->int8) {
    for (int i = 0; i < n; ++i) data->scales[i] = *c.Input<float>(1 + n + i);
    GradSumInt8(reinterpret_cast<const int8_t* const*>(data->grads),
                data->scales, n, elements,
                Int8GradOut{c.Output<int8_t>(0), c.Output<float>(1)});
  } else {
    GradSum(reinterpret_cast<const float* const*>(data->grads), n, elements,
            c.Output<float>(0));
  }
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
