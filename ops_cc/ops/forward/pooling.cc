#include "ops_cc/ops/forward/forward_kernels.h"

#include <cmath>

#include "ops_cc/kernels/pooling.h"
#include "ops_cc/ops/forward/cmsis_nn.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

// ---- AVERAGE_POOL_2D and MAX_POOL_2D -------------------------------------

struct PoolOpData {
  PoolParams params;
#ifdef TFLM_TRAIN_CMSIS_NN
  cmsis::Choice cmsis;
#endif
};

#ifdef TFLM_TRAIN_CMSIS_NN
// arm_avgpool_s8 and arm_max_pool_s8 take every int8 pool whose dimensions
// fit (the same window clipping, and for the average the same rounding of
// sum / count, ties away from zero).
Status PrepareCmsisPool(PrepareContext& c, bool average, PoolOpData* d) {
  TensorDesc input, output;
  TT_RETURN_IF_ERROR(c.Input(0, &input));
  TT_RETURN_IF_ERROR(c.Output(0, &output));
  if (!cmsis::FitsDims(input.shape) || !cmsis::FitsDims(output.shape) ||
      d->params.pad_h < 0 || d->params.pad_w < 0)
    return Status::kOk;
  return cmsis::Use(c,
                    average ? arm_avgpool_s8_get_buffer_size(output.shape.dims[2],
                                                             output.shape.dims[3])
                            : 0,
                    &d->cmsis);
}

arm_cmsis_nn_status CmsisPool(EvalContext& c, const PoolOpData& d,
                              bool average) {
  const PoolParams& p = d.params;
  const cmsis_nn_context ctx = cmsis::Context(c, d.cmsis);
  const cmsis_nn_pool_params params = {
      cmsis_nn_tile{p.stride_w, p.stride_h}, cmsis_nn_tile{p.pad_w, p.pad_h},
      cmsis_nn_activation{p.act_min, p.act_max}};
  const cmsis_nn_dims in = cmsis::Dims(c.InputShape(0));
  const cmsis_nn_dims filter = {1, p.filter_h, p.filter_w, 1};
  const cmsis_nn_dims out = cmsis::Dims(c.OutputShape(0));
  return average ? arm_avgpool_s8(&ctx, &params, &in, c.Input<const int8_t>(0),
                                  &filter, &out, c.Output<int8_t>(0))
                 : arm_max_pool_s8(&ctx, &params, &in,
                                   c.Input<const int8_t>(0), &filter, &out,
                                   c.Output<int8_t>(0));
}
#endif  // TFLM_TRAIN_CMSIS_NN

Status PreparePool(PrepareContext& c, const char* op, bool average) {
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
  auto* d = static_cast<PoolOpData*>(c.OpData());
  PoolParams* p = &d->params;
  p->stride_h = o->stride_h;
  p->stride_w = o->stride_w;
  p->filter_h = o->filter_h;
  p->filter_w = o->filter_w;
  TT_RETURN_IF_ERROR(WindowPadding(c, op, o->padding, o->stride_h, o->stride_w,
                                   1, 1, o->filter_h, o->filter_w, input.shape,
                                   output.shape, &p->pad_h, &p->pad_w));
  TT_RETURN_IF_ERROR(ActivationRange(c, op, o->activation, output,
                                     &p->act_min, &p->act_max));
#ifdef TFLM_TRAIN_CMSIS_NN
  return PrepareCmsisPool(c, average, d);
#else
  (void)average;
  return Status::kOk;
#endif
}

Status AveragePoolPrepare(PrepareContext& c) {
  return PreparePool(c, "AVERAGE_POOL_2D", true);
}

Status AveragePoolEval(EvalContext& c) {
  const auto* d = static_cast<const PoolOpData*>(c.OpData());
#ifdef TFLM_TRAIN_CMSIS_NN
  // CMSIS-NN's only failure here is a window entirely in the padding.
  if (d->cmsis.use && CmsisPool(c, *d, true) == ARM_CMSIS_NN_SUCCESS)
    return Status::kOk;
  if (d->cmsis.use)
    return c.Fail("AVERAGE_POOL_2D: a window lies entirely in the padding");
#endif
  if (!ref::AveragePool(d->params,
                        c.InputShape(0), c.Input<const int8_t>(0),
                        c.OutputShape(0), c.Output<int8_t>(0))) {
    return c.Fail("AVERAGE_POOL_2D: a window lies entirely in the padding");
  }
  return Status::kOk;
}

Status MaxPoolPrepare(PrepareContext& c) {
  return PreparePool(c, "MAX_POOL_2D", false);
}

Status MaxPoolEval(EvalContext& c) {
  const auto* d = static_cast<const PoolOpData*>(c.OpData());
#ifdef TFLM_TRAIN_CMSIS_NN
  if (d->cmsis.use) {
    const arm_cmsis_nn_status status = CmsisPool(c, *d, false);
    if (status != ARM_CMSIS_NN_SUCCESS)
      return c.Fail("MAX_POOL_2D: arm_max_pool_s8 failed (%d)",
                    static_cast<int>(status));
    return Status::kOk;
  }
#endif
  ref::MaxPool(d->params, c.InputShape(0),
               c.Input<const int8_t>(0), c.OutputShape(0), c.Output<int8_t>(0));
  return Status::kOk;
}

}  // namespace

extern const OpKernel kAveragePool2D = {
    kBuiltinAveragePool2D,
    nullptr,
    &InitOpData<PoolOpData>,
    &AveragePoolPrepare,
    &AveragePoolEval,
    nullptr};
extern const OpKernel kMaxPool2D = {
    kBuiltinMaxPool2D,
    nullptr,
    &InitOpData<PoolOpData>,
    &MaxPoolPrepare,
    &MaxPoolEval,
    nullptr};

}  // namespace tflm_train
