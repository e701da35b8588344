#include "ops_cc/ops/forward/forward_kernels.h"

#include "ops_cc/kernels/logistic_tanh.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

// ---- LOGISTIC and TANH -----------------------------------------------------

// Both rescale the input to Q4.27 the same way; their outputs have fixed
// quantizations (TFLite's converter always writes these; TFLM ignores a
// different output scale and would mislabel the results, so it is refused).
Status PrepareLogisticTanh(PrepareContext& c, const char* op,
                           float output_scale, int32_t output_zero_point) {
  TT_RETURN_IF_ERROR(RequireOpData(c, op));
  TensorDesc input, output;
  TT_RETURN_IF_ERROR(ReadInt8Elementwise(c, op, &input, &output));
  if (Scale(output) != output_scale || ZeroPoint(output) != output_zero_point) {
    return c.Fail("%s: output must have scale 1/%g and zero point %ld, got %g and %ld",
                  op, 1.0 / static_cast<double>(output_scale),
                  static_cast<long>(output_zero_point),
                  static_cast<double>(Scale(output)),
                  static_cast<long>(ZeroPoint(output)));
  }
  if (!ComputeLogisticTanhParams(Scale(input), ZeroPoint(input),
                                 static_cast<LogisticTanhParams*>(c.OpData()))) {
    return c.Fail("%s: input scale %g is out of range [2^-28, 2^36)", op,
                  static_cast<double>(Scale(input)));
  }
  return Status::kOk;
}

Status LogisticPrepare(PrepareContext& c) {
  return PrepareLogisticTanh(c, "LOGISTIC", 1.0f / 256, -128);
}

Status TanhPrepare(PrepareContext& c) {
  return PrepareLogisticTanh(c, "TANH", 1.0f / 128, 0);
}

Status LogisticEval(EvalContext& c) {
  ref::Logistic(*static_cast<const LogisticTanhParams*>(c.OpData()),
                c.Input<const int8_t>(0),
                static_cast<int>(c.InputShape(0).FlatSize()),
                c.Output<int8_t>(0));
  return Status::kOk;
}

Status TanhEval(EvalContext& c) {
  ref::Tanh(*static_cast<const LogisticTanhParams*>(c.OpData()),
            c.Input<const int8_t>(0),
            static_cast<int>(c.InputShape(0).FlatSize()), c.Output<int8_t>(0));
  return Status::kOk;
}

}  // namespace

extern const OpKernel kLogistic = {
    kBuiltinLogistic,
    nullptr,
    &InitOpData<LogisticTanhParams>,
    &LogisticPrepare,
    &LogisticEval,
    nullptr};
extern const OpKernel kTanh = {
    kBuiltinTanh,
    nullptr,
    &InitOpData<LogisticTanhParams>,
    &TanhPrepare,
    &TanhEval,
    nullptr};

}  // namespace tflm_train
