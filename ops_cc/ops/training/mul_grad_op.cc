#include "ops_cc/ops/training/training_kernels.h"

#include "ops_cc/kernels/grad/broadcast_grad.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

constexpr char kMulGrad[] = "TFLMTRAIN_MUL_GRAD";

// ---- TFLMTRAIN_MUL_GRAD -----------------------------------------------------
// y = a * b (real values), broadcast numpy-style, under a fused activation.
// Inputs: 0 mode, 1 y/grad, 2 y (int8: the mask), 3 a (int8; needed for
// b/grad, else may be -1), 4 b (int8; needed for a/grad, else may be -1).
// Outputs: a/grad when grad_a, then b/grad when grad_b.

struct MulGradData {
  OptionError option_error;
  int activation = kActivationNone;
  int grad_a = 0, grad_b = 0;
  ActivationMask mask;
  BroadcastWalk walk;
  Dequantizer a_real, b_real;
};

void* MulGradInit(InitContext& c) {
  MulGradData* data = NewOpData<MulGradData>(c);
  if (data == nullptr) return nullptr;
  OptionReader options(c);
  data->activation = options.Required("activation");
  data->grad_a = options.Required("grad_a");
  data->grad_b = options.Required("grad_b");
  data->option_error = options.error();
  return data;
}

// Operand `name` (input `i`): its shape from the input when present (int8,
// per tensor), else from its gradient output `grad` (null: none). `needed`:
// the other operand's gradient reads it.
Status ReadOperand(PrepareContext& c, const char* op, int i, const char* name,
                   bool needed, const TensorDesc* grad, Shape* shape,
                   Dequantizer* real) {
  if (!c.HasInput(i)) {
    if (needed)
      return c.Fail("%s: input %d (%s) is missing; the other operand's "
                    "gradient needs it", op, i, name);
    *shape = grad->shape;
    return Status::kOk;
  }
  TensorDesc d;
  TT_RETURN_IF_ERROR(ReadInput(c, op, i, name, DataType::kInt8, &d));
  TT_RETURN_IF_ERROR(CheckPerTensor(c, op, name, d));
  if (grad != nullptr && grad->shape != d.shape)
    return c.Fail("%s: %s/grad shape differs from %s shape", op, name, name);
  *shape = d.shape;
  *real = Dequantizer{Scale(d), ZeroPoint(d)};
  return Status::kOk;
}

Status MulGradPrepare(PrepareContext& c) {
  const char* op = kMulGrad;
  MulGradData* data = nullptr;
  TT_RETURN_IF_ERROR(GetOpData(c, op, &data));
  TT_RETURN_IF_ERROR(CheckOptions(c, op, data->option_error));
  if ((data->grad_a != 0 && data->grad_a != 1) ||
      (data->grad_b != 0 && data->grad_b != 1) ||
      data->grad_a + data->grad_b == 0)
    return c.Fail("%s: options grad_a, grad_b must be 0 or 1, not both 0", op);
  const int outputs = data->grad_a + data->grad_b;
  TT_RETURN_IF_ERROR(CheckArity(c, op, 5, outputs));
  TT_RETURN_IF_ERROR(CheckMode(c, op, 0));
  TensorDesc dy, y, da, db;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 1, "y/grad", DataType::kFloat32, &dy));
  TT_RETURN_IF_ERROR(ReadInput(c, op, 2, "y", DataType::kInt8, &y));
  TT_RETURN_IF_ERROR(CheckPerTensor(c, op, "y", y));
  TT_RETURN_IF_ERROR(CheckSameShape(c, op, "y/grad", dy, "y", y.shape));
  if (data->grad_a)
    TT_RETURN_IF_ERROR(ReadOutput(c, op, 0, "a/grad", DataType::kFloat32, &da));
  if (data->grad_b)
    TT_RETURN_IF_ERROR(ReadOutput(c, op, outputs - 1, "b/grad",
                                  DataType::kFloat32, &db));
  Shape a_shape, b_shape;
  TT_RETURN_IF_ERROR(ReadOperand(c, op, 3, "a", data->grad_b != 0,
                                 data->grad_a ? &da : nullptr, &a_shape,
                                 &data->a_real));
  TT_RETURN_IF_ERROR(ReadOperand(c, op, 4, "b", data->grad_a != 0,
                                 data->grad_b ? &db : nullptr, &b_shape,
                                 &data->b_real));
  if (!MakeBroadcastWalk(a_shape, b_shape, y.shape, &data->walk))
    return c.Fail("%s: a (rank %d) and b (rank %d) do not broadcast to y "
                  "(rank %d)", op, a_shape.rank, b_shape.rank, y.shape.rank);
  return MaskFor(c, op, data->activation, y, &data->mask);
}

Status MulGradEval(EvalContext& c) {
  if (!TrainMode(c)) return Status::kOk;
  const auto* data = static_cast<const MulGradData*>(c.OpData());
  BinaryGradArgs args;
  // a/grad reads b, b/grad reads a (the product's factors).
  if (data->grad_a) {
    args.b = c.Input<int8_t>(4);
    args.b_real = data->b_real;
  }
  if (data->grad_b) {
    args.a = c.Input<int8_t>(3);
    args.a_real = data->a_real;
  }
  float* da = data->grad_a ? c.Output<float>(0) : nullptr;
  float* db = data->grad_b ? c.Output<float>(data->grad_a) : nullptr;
  OutputGrad g;
  g.dy = c.Input<float>(1);
  g.q_y = c.Input<int8_t>(2);
  g.range = data->mask;
  BinaryBroadcastGrad(data->walk, g, args, da, db);
  return Status::kOk;
}

}  // namespace

extern const OpKernel kMulGradKernel = {
    -1,
    kMulGrad,
    MulGradInit,
    MulGradPrepare,
    MulGradEval,
    nullptr};

}  // namespace tflm_train
