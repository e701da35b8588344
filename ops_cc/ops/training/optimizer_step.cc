#include "ops_cc/ops/training/training_kernels.h"

#include "ops_cc/kernels/grad/optimizer_schedule.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

constexpr char kOptimizerStep[] = "TFLMTRAIN_OPTIMIZER_STEP";

// ---- TFLMTRAIN_OPTIMIZER_STEP ---------------------------------------------
//
// Inputs: 0 mode, 1 hparams (float32 [2]: base weight and bias learning
// rates), 2 step (int32 [1] variable: training samples counted so far),
// 3 imprinted (optional int32 [1], TFLMTRAIN_IMPRINT's output). Output:
// float32 [3] = this sample's [weight lr, bias lr, phase] (UpdatePhase).
// In train mode, unless the sample was imprinted: sample s = step belongs to
// optimizer update t = s / batch_size, applied at its last sample; the
// learning rates are the base ones times LrFactor(t); step advances by one.

enum OptimizerStepInput {
  kStepMode = 0,
  kStepHparams,
  kStepCounter,
  kStepImprinted,
  kStepNumInputs,
};

struct OptimizerStepData {
  OptionError option_error;
  LrSchedule schedule;
  int batch_size = 1;
};

void* OptimizerStepInit(InitContext& c) {
  OptimizerStepData* data = NewOpData<OptimizerStepData>(c);
  if (data == nullptr) return nullptr;
  OptionReader options(c);
  data->schedule.kind = static_cast<ScheduleKind>(options.Optional("schedule", 0));
  data->schedule.warmup_steps = options.Optional("warmup_steps", 0);
  data->schedule.decay_steps = options.Optional("decay_steps", 1);
  data->schedule.alpha = options.OptionalFloat("alpha", 0.0f);
  data->schedule.decay_rate = options.OptionalFloat("decay_rate", 0.1f);
  data->batch_size = options.Optional("batch_size", 1);
  data->option_error = options.error();
  return data;
}

Status OptimizerStepPrepare(PrepareContext& c) {
  const char* op = kOptimizerStep;
  OptimizerStepData* data = nullptr;
  TT_RETURN_IF_ERROR(GetOpData(c, op, &data));
  TT_RETURN_IF_ERROR(CheckOptions(c, op, data->option_error));
  TT_RETURN_IF_ERROR(CheckArity(c, op, kStepNumInputs, 1));
  const LrSchedule& s = data->schedule;
  const int kind = static_cast<int>(s.kind);
  if (kind < 0 || kind > 2)
    return c.Fail("%s: schedule must be 0, 1 or 2, got %d", op, kind);
  if (s.warmup_steps < 0 || s.decay_steps < 1 || data->batch_size < 1)
    return c.Fail("%s: needs warmup_steps >= 0, decay_steps >= 1 and "
                  "batch_size >= 1", op);
  if (!(s.alpha >= 0.0f && s.alpha <= 1.0f) ||
      !(s.decay_rate > 0.0f && s.decay_rate <= 1.0f))
    return c.Fail("%s: needs alpha in [0, 1] and decay_rate in (0, 1]", op);
  TT_RETURN_IF_ERROR(CheckMode(c, op, kStepMode));
  TensorDesc hparams, counter, out;
  TT_RETURN_IF_ERROR(ReadInput(c, op, kStepHparams, "hparams",
                               DataType::kFloat32, &hparams));
  TT_RETURN_IF_ERROR(CheckElements(c, op, "hparams", hparams, 2));
  TT_RETURN_IF_ERROR(
      ReadInput(c, op, kStepCounter, "step", DataType::kInt32, &counter));
  TT_RETURN_IF_ERROR(CheckElements(c, op, "step", counter, 1));
  TT_RETURN_IF_ERROR(CheckVariable(c, op, "step", counter));
  if (c.HasInput(kStepImprinted)) {
    TensorDesc imprinted;
    TT_RETURN_IF_ERROR(ReadInput(c, op, kStepImprinted, "imprinted",
                                 DataType::kInt32, &imprinted));
    TT_RETURN_IF_ERROR(CheckElements(c, op, "imprinted", imprinted, 1));
  }
  TT_RETURN_IF_ERROR(
      ReadOutput(c, op, 0, "optimizer_step", DataType::kFloat32, &out));
  return CheckElements(c, op, "optimizer_step", out, 3);
}

Status OptimizerStepEval(EvalContext& c) {
  const auto* data = static_cast<const OptimizerStepData*>(c.OpData());
  float* out = c.Output<float>(0);
  out[0] = out[1] = 0.0f;
  out[2] = static_cast<float>(UpdatePhase::kSkip);
  if (!TrainMode(c)) return Status::kOk;
  const int32_t* imprinted = c.Input<int32_t>(kStepImprinted);
  if (imprinted != nullptr && *imprinted != 0) return Status::kOk;
  int32_t* step = c.Input<int32_t>(kStepCounter);
  const int32_t sample = *step < 0 ? 0 : *step;
  const float factor = LrFactor(data->schedule, sample / data->batch_size);
  const float* hparams = c.Input<float>(kStepHparams);
  out[0] = hparams[0] * factor;
  out[1] = hparams[1] * factor;
  out[2] = static_cast<float>(sample % data->batch_size == data->batch_size - 1
                                  ? UpdatePhase::kApply
                                  : UpdatePhase::kAccumulate);
  if (sample < INT32_MAX) *step = sample + 1;
  return Status::kOk;
}

}  // namespace

extern const OpKernel kOptimizerStepKernel = {
    -1,
    kOptimizerStep,
    OptimizerStepInit,
    OptimizerStepPrepare,
    OptimizerStepEval,
    nullptr};

}  // namespace tflm_train
