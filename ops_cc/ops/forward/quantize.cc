#include "ops_cc/ops/forward/forward_kernels.h"

#include <cmath>
#include "ops_cc/kernels/quantize.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

// ---- QUANTIZE and DEQUANTIZE ---------------------------------------------

struct QuantizeOpData {
  bool from_float = false;  // float32 input, else int8 (requantize)
  float scale = 0.0f;       // output scale
  int32_t zero_point = 0;   // output zero point
  RequantizeParams requantize;
};

Status QuantizePrepare(PrepareContext& c) {
  const char* op = "QUANTIZE";
  TT_RETURN_IF_ERROR(RequireOpData(c, op));
  TT_RETURN_IF_ERROR(CheckInputCount(c, op, 1, 1));
  TensorDesc input, output;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 0, &input));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, &output));
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "output", output));
  if (input.shape.FlatSize() != output.shape.FlatSize()) {
    return c.Fail("%s: input has %ld elements, output %ld", op,
                  static_cast<long>(input.shape.FlatSize()),
                  static_cast<long>(output.shape.FlatSize()));
  }
  auto* d = static_cast<QuantizeOpData*>(c.OpData());
  d->from_float = input.type == DataType::kFloat32;
  d->scale = Scale(output);
  d->zero_point = ZeroPoint(output);
  if (d->from_float) return Status::kOk;
  if (input.type != DataType::kInt8) {
    return c.Fail("%s: input must be float32 or int8, got %s", op,
                  DataTypeName(input.type));
  }
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "input", input));
  RequantizeParams& r = d->requantize;
  r.input_zero_point = ZeroPoint(input);
  r.output_zero_point = ZeroPoint(output);
  QuantizeMultiplier(
      static_cast<double>(Scale(input)) / static_cast<double>(Scale(output)),
      &r.multiplier, &r.shift);
  if (r.shift > 31) {
    return c.Fail("%s: input / output scale ratio is too large", op);
  }
  return Status::kOk;
}

Status QuantizeEval(EvalContext& c) {
  const auto* d = static_cast<const QuantizeOpData*>(c.OpData());
  const int size = static_cast<int>(c.InputShape(0).FlatSize());
  if (d->from_float) {
    ref::Quantize(c.Input<const float>(0), size, d->scale, d->zero_point,
                  c.Output<int8_t>(0));
  } else {
    ref::Requantize(d->requantize, c.Input<const int8_t>(0), size,
                    c.Output<int8_t>(0));
  }
  return Status::kOk;
}

struct DequantizeOpData {
  float scale = 0.0f;
  int32_t zero_point = 0;
};

Status DequantizePrepare(PrepareContext& c) {
  const char* op = "DEQUANTIZE";
  TT_RETURN_IF_ERROR(RequireOpData(c, op));
  TT_RETURN_IF_ERROR(CheckInputCount(c, op, 1, 1));
  TensorDesc input, output;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 0, &input));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, &output));
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "input", input));
  if (output.type != DataType::kFloat32) {
    return c.Fail("%s: output must be float32, got %s", op,
                  DataTypeName(output.type));
  }
  if (input.shape.FlatSize() != output.shape.FlatSize()) {
    return c.Fail("%s: input has %ld elements, output %ld", op,
                  static_cast<long>(input.shape.FlatSize()),
                  static_cast<long>(output.shape.FlatSize()));
  }
  auto* d = static_cast<DequantizeOpData*>(c.OpData());
  d->scale = Scale(input);
  d->zero_point = ZeroPoint(input);
  return Status::kOk;
}

Status DequantizeEval(EvalContext& c) {
  const auto* d = static_cast<const DequantizeOpData*>(c.OpData());
  ref::Dequantize(c.Input<const int8_t>(0),
                  static_cast<int>(c.InputShape(0).FlatSize()), d->scale,
                  d->zero_point, c.Output<float>(0));
  return Status::kOk;
}

}  // namespace

extern const OpKernel kQuantize = {
    kBuiltinQuantize,
    nullptr,
    &InitOpData<QuantizeOpData>,
    &QuantizePrepare,
    &QuantizeEval,
    nullptr};
extern const OpKernel kDequantize = {
    kBuiltinDequantize,
    nullptr,
    &InitOpData<DequantizeOpData>,
    &DequantizePrepare,
    &DequantizeEval,
    nullptr};

}  // namespace tflm_train
