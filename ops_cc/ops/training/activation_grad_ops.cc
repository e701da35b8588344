#include "ops_cc/ops/training/training_kernels.h"

#include "ops_cc/core/float_math.h"
#include "ops_cc/kernels/grad/activation_grad.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

constexpr char kHardSwishGrad[] = "TFLMTRAIN_HARD_SWISH_GRAD";
constexpr char kLogisticGrad[] = "TFLMTRAIN_LOGISTIC_GRAD";
constexpr char kTanhGrad[] = "TFLMTRAIN_TANH_GRAD";
constexpr char kLeakyReluGrad[] = "TFLMTRAIN_LEAKY_RELU_GRAD";

// ---- The elementwise activations --------------------------------------------
// Inputs: 0 mode, 1 y/grad, then x (HARD_SWISH, LEAKY_RELU: the derivative
// reads the input) and y (the int8 output: the mask; LOGISTIC and TANH also
// read their derivative from it). Output: 0 x/grad. Every tensor has y's
// shape.

struct ActivationGradData {
  OptionError option_error;
  float alpha = 0.0f;  // LEAKY_RELU
  Dequantizer x_real;
  Dequantizer y_real;
  ActivationMask mask;  // the int8 range
};

// Reads and checks the tensors; `with_x` says whether input 2 is x (then y
// is input 3).
Status PrepareActivationGrad(PrepareContext& c, const char* op, bool with_x,
                             ActivationGradData** data) {
  TT_RETURN_IF_ERROR(GetOpData(c, op, data));
  TT_RETURN_IF_ERROR(CheckOptions(c, op, (*data)->option_error));
  const int y_index = with_x ? 3 : 2;
  TT_RETURN_IF_ERROR(CheckArity(c, op, y_index + 1, 1));
  TT_RETURN_IF_ERROR(CheckMode(c, op, 0));
  TensorDesc dy, y, dx;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 1, "y/grad", DataType::kFloat32, &dy));
  TT_RETURN_IF_ERROR(ReadInput(c, op, y_index, "y", DataType::kInt8, &y));
  TT_RETURN_IF_ERROR(CheckPerTensor(c, op, "y", y));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, 0, "x/grad", DataType::kFloat32, &dx));
  TT_RETURN_IF_ERROR(CheckSameShape(c, op, "y/grad", dy, "y", y.shape));
  TT_RETURN_IF_ERROR(CheckSameShape(c, op, "x/grad", dx, "y", y.shape));
  if (with_x) {
    TensorDesc x;
    TT_RETURN_IF_ERROR(ReadInput(c, op, 2, "x", DataType::kInt8, &x));
    TT_RETURN_IF_ERROR(CheckPerTensor(c, op, "x", x));
    TT_RETURN_IF_ERROR(CheckSameShape(c, op, "x", x, "y", y.shape));
    (*data)->x_real = Dequantizer{Scale(x), ZeroPoint(x)};
  }
  (*data)->y_real = Dequantizer{Scale(y), ZeroPoint(y)};
  (*data)->mask = ActivationMask{};
  return Status::kOk;
}

const ActivationGradData& Data(EvalContext& c) {
  return *static_cast<const ActivationGradData*>(c.OpData());
}

// ---- TFLMTRAIN_HARD_SWISH_GRAD ------------------------------------------------

Status HardSwishGradPrepare(PrepareContext& c) {
  ActivationGradData* data = nullptr;
  return PrepareActivationGrad(c, kHardSwishGrad, true, &data);
}

Status HardSwishGradEval(EvalContext& c) {
  if (!TrainMode(c)) return Status::kOk;
  const ActivationGradData& d = Data(c);
  HardSwishGrad(c.Input<float>(1), c.Input<int8_t>(2), d.x_real,
                c.Input<int8_t>(3), d.mask, c.InputShape(3).FlatSize(),
                c.Output<float>(0));
  return Status::kOk;
}

// ---- TFLMTRAIN_LOGISTIC_GRAD, TFLMTRAIN_TANH_GRAD -----------------------------

Status LogisticGradPrepare(PrepareContext& c) {
  ActivationGradData* data = nullptr;
  return PrepareActivationGrad(c, kLogisticGrad, false, &data);
}

Status LogisticGradEval(EvalContext& c) {
  if (!TrainMode(c)) return Status::kOk;
  const ActivationGradData& d = Data(c);
  LogisticGrad(c.Input<float>(1), c.Input<int8_t>(2), d.y_real, d.mask,
               c.InputShape(2).FlatSize(), c.Output<float>(0));
  return Status::kOk;
}

Status TanhGradPrepare(PrepareContext& c) {
  ActivationGradData* data = nullptr;
  return PrepareActivationGrad(c, kTanhGrad, false, &data);
}

Status TanhGradEval(EvalContext& c) {
  if (!TrainMode(c)) return Status::kOk;
  const ActivationGradData& d = Data(c);
  TanhGrad(c.Input<float>(1), c.Input<int8_t>(2), d.y_real, d.mask,
           c.InputShape(2).FlatSize(), c.Output<float>(0));
  return Status::kOk;
}

// ---- TFLMTRAIN_LEAKY_RELU_GRAD ------------------------------------------------

void* LeakyReluGradInit(InitContext& c) {
  ActivationGradData* data = NewOpData<ActivationGradData>(c);
  if (data == nullptr) return nullptr;
  OptionReader options(c);
  // Required: a missing alpha reads as NaN, which Prepare refuses.
  data->alpha = options.OptionalFloat("alpha", BitsToFloat(0x7fc00000u));
  data->option_error = options.error();
  return data;
}

Status LeakyReluGradPrepare(PrepareContext& c) {
  const char* op = kLeakyReluGrad;
  ActivationGradData* data = nullptr;
  TT_RETURN_IF_ERROR(PrepareActivationGrad(c, op, true, &data));
  if (!IsFinite(data->alpha))
    return c.Fail("%s: custom option 'alpha' must be a finite float", op);
  return Status::kOk;
}

Status LeakyReluGradEval(EvalContext& c) {
  if (!TrainMode(c)) return Status::kOk;
  const ActivationGradData& d = Data(c);
  LeakyReluGrad(c.Input<float>(1), c.Input<int8_t>(2), d.x_real.zero_point,
                d.alpha, c.Input<int8_t>(3), d.mask,
                c.InputShape(3).FlatSize(), c.Output<float>(0));
  return Status::kOk;
}

}  // namespace

extern const OpKernel kHardSwishGradKernel = {
    -1,
    kHardSwishGrad,
    InitOpData<ActivationGradData>,
    HardSwishGradPrepare,
    HardSwishGradEval,
    nullptr};

extern const OpKernel kLogisticGradKernel = {
    -1,
    kLogisticGrad,
    InitOpData<ActivationGradData>,
    LogisticGradPrepare,
    LogisticGradEval,
    nullptr};

extern const OpKernel kTanhGradKernel = {
    -1,
    kTanhGrad,
    InitOpData<ActivationGradData>,
    TanhGradPrepare,
    TanhGradEval,
    nullptr};

extern const OpKernel kLeakyReluGradKernel = {
    -1,
    kLeakyReluGrad,
    LeakyReluGradInit,
    LeakyReluGradPrepare,
    LeakyReluGradEval,
    nullptr};

}  // namespace tflm_train
