#include "ops_cc/ops/training/training_kernels.h"

#include "ops_cc/kernels/grad/pooling_grad.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

constexpr char kAveragePoolGrad[] = "TFLMTRAIN_AVERAGE_POOL_2D_GRAD";
constexpr char kMaxPoolGrad[] = "TFLMTRAIN_MAX_POOL_2D_GRAD";

// ---- TFLMTRAIN_AVERAGE_POOL_2D_GRAD / TFLMTRAIN_MAX_POOL_2D_GRAD ------------

struct PoolGradData {
  OptionError option_error;
  int padding = kPaddingSame;
  int activation = kActivationNone;
  PoolGradParams params;
  OutputMaskDesc mask;  // input 2: the int8 y or its packed mask
  // AVERAGE_POOL_2D: float32 gradients, or int8 ones whose scales follow the
  // op's inputs (input 3) and output (output 1).
  bool int8 = false;
  // Option grad_rounding (op_util.h), AVERAGE_POOL_2D with int8 gradients
  // only: 1 rounds x/grad stochastically, drawing from the rng (input 4).
  int grad_rounding = 0;
};

constexpr int kPoolGradRng = 4;

void* PoolGradInit(InitContext& c) {
  PoolGradData* data = NewOpData<PoolGradData>(c);
  if (data == nullptr) return nullptr;
  OptionReader options(c);
  data->padding = options.Required("padding");
  data->params.stride_h = options.Required("stride_h");
  data->params.stride_w = options.Required("stride_w");
  data->params.filter_h = options.Required("filter_h");
  data->params.filter_w = options.Required("filter_w");
  data->activation = options.Required("activation");
  data->grad_rounding = options.Optional("grad_rounding", 0);
  data->option_error = options.error();
  return data;
}

Status PoolGradPrepare(PrepareContext& c, const char* op, bool max_pool) {
  PoolGradData* data = nullptr;
  TT_RETURN_IF_ERROR(GetOpData(c, op, &data));
  TT_RETURN_IF_ERROR(CheckOptions(c, op, data->option_error));
  TT_RETURN_IF_ERROR(CheckMode(c, op, 0));
  TensorDesc dy, dx;
  if (max_pool) {
    TT_RETURN_IF_ERROR(CheckArity(c, op, 4, 1));
    TT_RETURN_IF_ERROR(ReadInput(c, op, 1, "y/grad", DataType::kFloat32, &dy));
    TT_RETURN_IF_ERROR(ReadOutput(c, op, 0, "x/grad", DataType::kFloat32, &dx));
  } else {
    TT_RETURN_IF_ERROR(ReadGradPair(c, op, 3, &dy, &dx, &data->int8,
                                    data->grad_rounding == 1 ? 1 : 0));
  }
  TT_RETURN_IF_ERROR(
      CheckGradRounding(c, op, data->grad_rounding, data->int8));
  if (data->grad_rounding == 1)
    TT_RETURN_IF_ERROR(ReadRngInput(c, op, kPoolGradRng));
  TT_RETURN_IF_ERROR(CheckRank(c, op, "y/grad", dy, 4));
  TT_RETURN_IF_ERROR(
      ReadOutputMask(c, op, 2, data->activation, dy.shape, &data->mask));
  const Shape& y_shape = dy.shape;
  TT_RETURN_IF_ERROR(CheckRank(c, op, "x/grad", dx, 4));
  if (dx.shape.dims[3] != y_shape.dims[3])
    return c.Fail("%s: x/grad and y differ in channels", op);
  if (max_pool) {
    TensorDesc x;
    TT_RETURN_IF_ERROR(ReadInput(c, op, 3, "x", DataType::kInt8, &x));
    TT_RETURN_IF_ERROR(CheckSameShape(c, op, "x", x, "x/grad", dx.shape));
  }
  PoolGradParams& p = data->params;
  TT_RETURN_IF_ERROR(WindowPadding(c, op, data->padding, p.stride_h, p.stride_w, 1, 1,
                            p.filter_h, p.filter_w, dx.shape, y_shape,
                            &p.pad_h, &p.pad_w));
  return Status::kOk;
}

Status AveragePoolGradPrepare(PrepareContext& c) {
  return PoolGradPrepare(c, kAveragePoolGrad, false);
}
Status MaxPoolGradPrepare(PrepareContext& c) {
  return PoolGradPrepare(c, kMaxPoolGrad, true);
}

Status AveragePoolGradEval(EvalContext& c) {
  if (!TrainMode(c)) return Status::kOk;
  const auto* data = static_cast<const PoolGradData*>(c.OpData());
  const OutputGrad g =
      MaskedOutputGrad(c, GradSlot{1, data->int8 ? 3 : -1}, 2, data->mask);
  if (data->int8) {
    const bool stochastic = data->grad_rounding == 1;
    uint32_t rng_state = stochastic ? LoadRng(c, kPoolGradRng) : 0;
    AveragePoolGradInt8(
        data->params, c.InputShape(1), g, c.OutputShape(0),
        Int8Output(c, GradSlot{0, 1},
                   GradRoundingOf(data->grad_rounding, &rng_state)));
    if (stochastic) StoreRng(c, kPoolGradRng, rng_state);
  } else {
    AveragePoolGrad(data->params, c.InputShape(1), g, c.OutputShape(0),
                    c.Output<float>(0));
  }
  return Status::kOk;
}

Status MaxPoolGradEval(EvalContext& c) {
  if (!TrainMode(c)) return Status::kOk;
  const auto* data = static_cast<const PoolGradData*>(c.OpData());
  MaxPoolGrad(data->params, c.InputShape(1),
              MaskedOutputGrad(c, GradSlot{1, -1}, 2, data->mask),
              c.OutputShape(0), c.Input<int8_t>(3), c.Output<float>(0));
  return Status::kOk;
}

}  // namespace

extern const OpKernel kAveragePoolGradKernel = {
    -1,
    kAveragePoolGrad,
    PoolGradInit,
    AveragePoolGradPrepare,
    AveragePoolGradEval,
    nullptr};
extern const OpKernel kMaxPoolGradKernel = {
    -1,
    kMaxPoolGrad,
    PoolGradInit,
    MaxPoolGradPrepare,
    MaxPoolGradEval,
    nullptr};

}  // namespace tflm_train
