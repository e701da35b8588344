#include "ops_cc/ops/training/training_kernels.h"

#include "ops_cc/kernels/grad/elementwise_grad.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

constexpr char kGradSum[] = "TFLMTRAIN_GRAD_SUM";

// ---- TFLMTRAIN_GRAD_SUM -----------------------------------------------------

// Its gradients are float32, or int8 each followed by its scale after the
// gradients (int8_grad.h): inputs mode, g_1..g_n[, scale_1..scale_n[, rng]];
// outputs sum[, its scale]. Option grad_rounding (op_util.h): 1 rounds the
// int8 sum stochastically, drawing from the rng (the last input).
struct GradSumData {
  OptionError option_error;
  int grad_rounding = 0;
  int count = 0;
  bool int8 = false;
  // Filled at each Eval: the gradients' data (const float* or const
  // int8_t*), and for int8 their scales.
  const void** grads = nullptr;
  float* scales = nullptr;
};

void* GradSumInit(InitContext& c) {
  GradSumData* data = NewOpData<GradSumData>(c);
  if (data == nullptr) return nullptr;
  if (c.CustomOptionsSize() == 0) return data;  // no options: the defaults
  OptionReader options(c);
  data->grad_rounding = options.Optional("grad_rounding", 0);
  data->option_error = options.error();
  return data;
}

Status GradSumPrepare(PrepareContext& c) {
  const char* op = kGradSum;
  GradSumData* data = nullptr;
  TT_RETURN_IF_ERROR(GetOpData(c, op, &data));
  TT_RETURN_IF_ERROR(CheckOptions(c, op, data->option_error));
  TT_RETURN_IF_ERROR(CheckMode(c, op, 0));
  TensorDesc first;
  if (c.NumInputs() >= 2 && c.Input(1, &first) == Status::kOk)
    data->int8 = first.type == DataType::kInt8;
  TT_RETURN_IF_ERROR(
      CheckGradRounding(c, op, data->grad_rounding, data->int8));
  const int rng = data->grad_rounding == 1 ? 1 : 0;  // the last input
  const int n =
      data->int8 ? (c.NumInputs() - 1 - rng) / 2 : c.NumInputs() - 1;
  if (n < 1 || c.NumInputs() != 1 + (data->int8 ? 2 * n : n) + rng ||
      c.NumOutputs() != (data->int8 ? 2 : 1))
    return c.Fail("%s: expected mode, at least one gradient (int8 ones "
                  "followed by their scales%s) and the sum", op,
                  rng ? ", then the rng" : "");
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
  if (rng) TT_RETURN_IF_ERROR(ReadRngInput(c, op, c.NumInputs() - 1));
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
    const bool stochastic = data->grad_rounding == 1;
    const int rng_input = 1 + 2 * n;
    uint32_t rng_state = stochastic ? LoadRng(c, rng_input) : 0;
    GradSumInt8(reinterpret_cast<const int8_t* const*>(data->grads),
                data->scales, n, elements,
                Int8Output(c, GradSlot{0, 1},
                           GradRoundingOf(data->grad_rounding, &rng_state)));
    if (stochastic) StoreRng(c, rng_input, rng_state);
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
