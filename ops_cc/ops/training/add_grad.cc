#include "ops_cc/ops/training/training_kernels.h"

#include "ops_cc/kernels/grad/broadcast_grad.h"
#include "ops_cc/kernels/grad/elementwise_grad.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

constexpr char kAddGrad[] = "TFLMTRAIN_ADD_GRAD";
constexpr char kQuantizeGrad[] = "TFLMTRAIN_QUANTIZE_GRAD";

// ---- TFLMTRAIN_ADD_GRAD, TFLMTRAIN_QUANTIZE_GRAD ----------------------------
// Both forward ops pass their input through to a clamped int8 output (ADD
// both operands, under its fused activation; QUANTIZE an int8 requantize,
// clamped to int8), so both gradients are the masked pass-through
// dx = mask(y) * dy, one output per input that needs it (input 2 is the
// int8 y or its packed mask, ReadOutputMask). An ADD operand that
// broadcasts (its output is shaped like it) gets that summed over the
// elements of y that repeat it (BinaryBroadcastGrad). An int8 y/grad gives
// int8 outputs with its scale.

struct PassThroughGradData {
  const char* op = kAddGrad;
  int max_outputs = 2;
  OptionError option_error;
  int activation = kActivationNone;
  OutputMaskDesc mask;
  GradSlot dy;
  GradSlot dx[2];
  int num_outputs = 0;
  bool reduce[2] = {false, false};  // output i is a broadcast operand's
};

void* AddGradInit(InitContext& c) {
  PassThroughGradData* data = NewOpData<PassThroughGradData>(c);
  if (data == nullptr) return nullptr;
  OptionReader options(c);
  data->activation = options.Required("activation");
  data->option_error = options.error();
  return data;
}

// A requantize has no activation: its mask is the int8 range.
void* QuantizeGradInit(InitContext& c) {
  PassThroughGradData* data = NewOpData<PassThroughGradData>(c);
  if (data == nullptr) return nullptr;
  data->op = kQuantizeGrad;
  data->max_outputs = 1;
  return data;
}

Status PassThroughGradPrepare(PrepareContext& c) {
  PassThroughGradData* data = nullptr;
  // The op name is in the op data; without it, report it as the family.
  TT_RETURN_IF_ERROR(GetOpData(c, "TFLMTRAIN_ADD_GRAD/QUANTIZE_GRAD", &data));
  const char* op = data->op;
  TT_RETURN_IF_ERROR(CheckOptions(c, op, data->option_error));
  TT_RETURN_IF_ERROR(CheckMode(c, op, 0));
  TensorDesc dy;
  int next_input = 3;
  TT_RETURN_IF_ERROR(
      ReadGradInput(c, op, 1, "y/grad", &next_input, &dy, &data->dy));
  // The outputs have y/grad's type; int8 ones are followed by their scales.
  const int outputs = data->dy.is_int8() ? c.NumOutputs() / 2 : c.NumOutputs();
  if (c.NumInputs() != next_input || outputs < 1 ||
      outputs > data->max_outputs ||
      (data->dy.is_int8() && c.NumOutputs() % 2 != 0))
    return c.Fail("%s: expected %d inputs and 1 to %d gradient outputs (each "
                  "int8 one followed by its scale), got %d and %d", op,
                  next_input, data->max_outputs, c.NumInputs(), c.NumOutputs());
  TT_RETURN_IF_ERROR(
      ReadOutputMask(c, op, 2, data->activation, dy.shape, &data->mask));
  const Shape& y_shape = dy.shape;
  int next_output = outputs;
  data->num_outputs = outputs;
  for (int i = 0; i < outputs; ++i) {
    TensorDesc d;
    const char* name = i == 0 ? "output 0" : "output 1";
    TT_RETURN_IF_ERROR(
        ReadGradOutput(c, op, i, name, &next_output, &d, &data->dx[i]));
    if (d.type != dy.type)
      return c.Fail("%s: %s must have y/grad's type", op, name);
    // ADD: an operand that broadcasts gets the sum over its repeats.
    BroadcastWalk walk;
    data->reduce[i] = data->op == kAddGrad && d.shape != y_shape &&
                      MakeBroadcastWalk(d.shape, y_shape, y_shape, &walk);
    if (data->reduce[i] && d.type == DataType::kInt8)
      return c.Fail("%s: %s is an int8 gradient of a broadcast operand, which "
                    "is not supported", op, name);
    if (!data->reduce[i])
      TT_RETURN_IF_ERROR(CheckSameShape(c, op, name, d, "y", y_shape));
  }
  return Status::kOk;
}

Status PassThroughGradEval(EvalContext& c) {
  if (!TrainMode(c)) return Status::kOk;
  const auto* data = static_cast<const PassThroughGradData*>(c.OpData());
  const OutputGrad g = MaskedOutputGrad(c, data->dy, 2, data->mask);
  const Shape y_shape = c.InputShape(1);
  if (data->dy.is_int8()) {  // same scale, masked values
    for (int i = 0; i < data->num_outputs; ++i) {
      const Int8GradOut dx = Int8Output(c, data->dx[i]);
      AddGradInt8(g, y_shape.FlatSize(), dx.q);
      *dx.scale = g.dy_scale;
    }
    return Status::kOk;
  }
  if (!data->reduce[0] && !data->reduce[1]) {
    AddGrad(g, y_shape.FlatSize(), c.Output<float>(0), c.Output<float>(1));
    return Status::kOk;
  }
  for (int i = 0; i < data->num_outputs; ++i) {
    float* dx = c.Output<float>(i);
    if (!data->reduce[i]) {
      AddGrad(g, y_shape.FlatSize(), dx, nullptr);
      continue;
    }
    // The walk is formed here (checked in Prepare) rather than kept in the
    // op data of every ADD gradient.
    BroadcastWalk walk;
    MakeBroadcastWalk(c.OutputShape(i), y_shape, y_shape, &walk);
    BinaryBroadcastGrad(walk, g, BinaryGradArgs{}, dx, nullptr);
  }
  return Status::kOk;
}

}  // namespace

extern const OpKernel kAddGradKernel = {
    -1,
    kAddGrad,
    AddGradInit,
    PassThroughGradPrepare,
    PassThroughGradEval,
    nullptr};

extern const OpKernel kQuantizeGradKernel = {
    -1,
    kQuantizeGrad,
    QuantizeGradInit,
    PassThroughGradPrepare,
    PassThroughGradEval,
    nullptr};

}  // namespace tflm_train
