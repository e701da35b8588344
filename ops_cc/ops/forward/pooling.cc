#include "ops_cc/ops/forward/forward_kernels.h"

#include <cmath>

#include "ops_cc/kernels/pooling.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

// ---- AVERAGE_POOL_2D and MAX_POOL_2D -------------------------------------

Status PreparePool(PrepareContext& c, const char* op) {
  TT_RETURN_IF_ERROR(RequireOpData(c, op));
  const auto* o = static_cast<const PoolOptions*>(c.BuiltinOptions());
  if (o == nullptr) return c.Fail("%s: missing builtin options", op);
  TT_RETURN_IF_ERROR(CheckInputCount(c, op, 1, 1));
  TensorDesc input, output;
  TT_RETURN_IF_ERROR(ReadInt8InputOutput(c, op, &input, &output));
  TT_RETURN_IF_ERROR(CheckRank(c, op, "input", input, 4));
  TT_RETURN_IF_ERROR(CheckRank(c, op, "output", output, 4));
  // TFLM's tolerance for "the same" scale.
  if (std::fabs(static_cast<double>(Scale(input) - Scale(output))) > 1.0e-6 ||
      ZeroPoint(input) != ZeroPoint(output)) {
    return c.Fail("%s: input and output quantization must match", op);
  }
  if (input.shape.dims[3] != output.shape.dims[3]) {
    return c.Fail("%s: input has %d channels, output %d", op,
                  static_cast<int>(input.shape.dims[3]),
                  static_cast<int>(output.shape.dims[3]));
  }
  auto* p = static_cast<PoolParams*>(c.OpData());
  p->stride_h = o->stride_h;
  p->stride_w = o->stride_w;
  p->filter_h = o->filter_h;
  p->filter_w = o->filter_w;
  TT_RETURN_IF_ERROR(WindowPadding(c, op, o->padding, o->stride_h, o->stride_w,
                                   1, 1, o->filter_h, o->filter_w, input.shape,
                                   output.shape, &p->pad_h, &p->pad_w));
  return ActivationRange(c, op, o->activation, output, &p->act_min,
                         &p->act_max);
}

Status AveragePoolPrepare(PrepareContext& c) {
  return PreparePool(c, "AVERAGE_POOL_2D");
}

Status AveragePoolEval(EvalContext& c) {
  if (!ref::AveragePool(*static_cast<const PoolParams*>(c.OpData()),
                        c.InputShape(0), c.Input<const int8_t>(0),
                        c.OutputShape(0), c.Output<int8_t>(0))) {
    return c.Fail("AVERAGE_POOL_2D: a window lies entirely in the padding");
  }
  return Status::kOk;
}

Status MaxPoolPrepare(PrepareContext& c) {
  return PreparePool(c, "MAX_POOL_2D");
}

Status MaxPoolEval(EvalContext& c) {
  ref::MaxPool(*static_cast<const PoolParams*>(c.OpData()), c.InputShape(0),
               c.Input<const int8_t>(0), c.OutputShape(0), c.Output<int8_t>(0));
  return Status::kOk;
}

}  // namespace

extern const OpKernel kAveragePool2D = {
    kBuiltinAveragePool2D,
    nullptr,
    &InitOpData<PoolParams>,
    &AveragePoolPrepare,
    &AveragePoolEval,
    nullptr};
extern const OpKernel kMaxPool2D = {
    kBuiltinMaxPool2D,
    nullptr,
    &InitOpData<PoolParams>,
    &MaxPoolPrepare,
    &MaxPoolEval,
    nullptr};

}  // namespace tflm_train
