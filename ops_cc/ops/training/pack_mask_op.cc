#include "ops_cc/ops/training/training_kernels.h"

#include "ops_cc/kernels/grad/grad_common.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

constexpr char kPackMask[] = "TFLMTRAIN_PACK_MASK";

// ---- TFLMTRAIN_PACK_MASK ----------------------------------------------------
// Inputs: 0 mode, 1 y (int8). Output 0: uint8 [ceil(n / 8)], bit k % 8 (LSB
// first) of byte k / 8 = act_min < y[k] < act_max (options: the activation
// range of y's gradient op). Runs after the last forward reader of y, so y
// need not stay alive until the backward pass: the gradient op reads these
// bits instead (1 bit per element instead of 8). Nothing in infer mode.

struct PackMaskData {
  OptionError option_error;
  ActivationMask range;
};

void* PackMaskInit(InitContext& c) {
  PackMaskData* data = NewOpData<PackMaskData>(c);
  if (data == nullptr) return nullptr;
  OptionReader options(c);
  data->range.act_min = options.Required("act_min");
  data->range.act_max = options.Required("act_max");
  data->option_error = options.error();
  return data;
}

Status PackMaskPrepare(PrepareContext& c) {
  const char* op = kPackMask;
  PackMaskData* data = nullptr;
  TT_RETURN_IF_ERROR(GetOpData(c, op, &data));
  TT_RETURN_IF_ERROR(CheckOptions(c, op, data->option_error));
  TT_RETURN_IF_ERROR(CheckArity(c, op, 2, 1));
  TT_RETURN_IF_ERROR(CheckMode(c, op, 0));
  const ActivationMask& r = data->range;
  if (r.act_min < -128 || r.act_min > r.act_max || r.act_max > 127)
    return c.Fail("%s: act_min %d and act_max %d must satisfy -128 <= act_min "
                  "<= act_max <= 127", op, static_cast<int>(r.act_min),
                  static_cast<int>(r.act_max));
  TensorDesc y, bits;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 1, "y", DataType::kInt8, &y));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, 0, "mask", DataType::kUInt8, &bits));
  return CheckElements(c, op, "mask", bits, (y.shape.FlatSize() + 7) / 8);
}

Status PackMaskEval(EvalContext& c) {
  if (!TrainMode(c)) return Status::kOk;
  const auto* data = static_cast<const PackMaskData*>(c.OpData());
  PackMask(c.Input<int8_t>(1), c.InputShape(1).FlatSize(), data->range,
           c.Output<uint8_t>(0));
  return Status::kOk;
}

}  // namespace

extern const OpKernel kPackMaskKernel = {
    -1,
    kPackMask,
    PackMaskInit,
    PackMaskPrepare,
    PackMaskEval,
    nullptr};

}  // namespace tflm_train
