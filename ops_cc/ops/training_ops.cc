#include "ops_cc/ops/training_ops.h"

#include <cstdint>
#include <cstring>
#include <new>

#include "ops_cc/core/flexbuffer.h"
#include "ops_cc/core/float_math.h"
#include "ops_cc/core/quantization.h"
#include "ops_cc/kernels/grad/conv_grad.h"
#include "ops_cc/kernels/grad/depthwise_conv_grad.h"
#include "ops_cc/kernels/grad/elementwise_grad.h"
#include "ops_cc/kernels/grad/fully_connected_grad.h"
#include "ops_cc/kernels/grad/grad_common.h"
#include "ops_cc/kernels/grad/imprint.h"
#include "ops_cc/kernels/grad/loss.h"
#include "ops_cc/kernels/grad/optimizer_schedule.h"
#include "ops_cc/kernels/grad/pooling_grad.h"
#include "ops_cc/kernels/grad/sgd_update.h"
#include "ops_cc/kernels/real_output.h"
#include "ops_cc/ops/builtin_options.h"
#include "ops_cc/ops/forward_ops.h"

namespace tflm_train {
namespace {

constexpr char kInitVariables[] = "TFLMTRAIN_INIT_VARIABLES";
constexpr char kFullyConnectedRealOutput[] =
    "TFLMTRAIN_FULLY_CONNECTED_REAL_OUTPUT";
constexpr char kConvRealOutput[] = "TFLMTRAIN_CONV_2D_REAL_OUTPUT";
constexpr char kSoftmaxCrossEntropy[] = "TFLMTRAIN_SOFTMAX_CROSS_ENTROPY_V2";
constexpr char kMeanSquaredError[] = "TFLMTRAIN_MEAN_SQUARED_ERROR";
constexpr char kMeanAbsoluteError[] = "TFLMTRAIN_MEAN_ABSOLUTE_ERROR";
constexpr char kConvGrad[] = "TFLMTRAIN_CONV_2D_GRAD";
constexpr char kDepthwiseConvGrad[] = "TFLMTRAIN_DEPTHWISE_CONV_2D_GRAD";
constexpr char kFullyConnectedGrad[] = "TFLMTRAIN_FULLY_CONNECTED_GRAD";
constexpr char kAddGrad[] = "TFLMTRAIN_ADD_GRAD";
constexpr char kAveragePoolGrad[] = "TFLMTRAIN_AVERAGE_POOL_2D_GRAD";
constexpr char kMaxPoolGrad[] = "TFLMTRAIN_MAX_POOL_2D_GRAD";
constexpr char kMeanGrad[] = "TFLMTRAIN_MEAN_GRAD";
constexpr char kPadGrad[] = "TFLMTRAIN_PAD_GRAD";
constexpr char kReshapeGrad[] = "TFLMTRAIN_RESHAPE_GRAD";
constexpr char kGradSum[] = "TFLMTRAIN_GRAD_SUM";
constexpr char kOptimizerStep[] = "TFLMTRAIN_OPTIMIZER_STEP";
constexpr char kImprint[] = "TFLMTRAIN_IMPRINT";

// ---- Options ----------------------------------------------------------------

// The first problem met while parsing custom options (key null: none).
struct OptionError {
  const char* key = nullptr;
  FlexStatus status = FlexStatus::kOk;
};

class OptionReader {
 public:
  explicit OptionReader(InitContext& context) {
    const FlexStatus status =
        map_.Open(context.CustomOptions(), context.CustomOptionsSize());
    if (status != FlexStatus::kOk) error_ = OptionError{"(map)", status};
  }

  int Required(const char* key) { return Read(key, 0, true); }
  int Optional(const char* key, int fallback) {
    return Read(key, fallback, false);
  }
  float OptionalFloat(const char* key, float fallback) {
    if (error_.key != nullptr) return fallback;
    float value = fallback;
    const FlexStatus status = map_.GetFloat(key, &value);
    if (status == FlexStatus::kMissing) return fallback;
    if (status != FlexStatus::kOk) {
      error_ = OptionError{key, status};
      return fallback;
    }
    return value;
  }
  const OptionError& error() const { return error_; }

 private:
  int Read(const char* key, int fallback, bool required) {
    if (error_.key != nullptr) return fallback;
    int64_t value = 0;
    FlexStatus status = map_.GetInt(key, &value);
    if (status == FlexStatus::kMissing && !required) return fallback;
    if (status == FlexStatus::kOk && (value < INT32_MIN || value > INT32_MAX))
      status = FlexStatus::kWrongType;
    if (status != FlexStatus::kOk) {
      error_ = OptionError{key, status};
      return fallback;
    }
    return static_cast<int>(value);
  }

  FlexMap map_;
  OptionError error_;
};

// ---- Prepare helpers --------------------------------------------------------

template <typename T>
T* NewOpData(InitContext& context) {
  void* memory = context.AllocatePersistent(sizeof(T));
  return memory == nullptr ? nullptr : new (memory) T();
}

template <typename T>
Status GetOpData(PrepareContext& c, const char* op, T** data) {
  *data = static_cast<T*>(c.OpData());
  if (*data == nullptr) return c.Fail("%s: op data was not allocated", op);
  return Status::kOk;
}

Status CheckOptions(PrepareContext& c, const char* op, const OptionError& e) {
  if (e.key == nullptr) return Status::kOk;
  return c.Fail("%s: custom option '%s': %s", op, e.key,
                FlexStatusName(e.status));
}

Status CheckArity(PrepareContext& c, const char* op, int inputs, int outputs) {
  if (c.NumInputs() != inputs || c.NumOutputs() != outputs)
    return c.Fail("%s: expected %d inputs and %d outputs, got %d and %d", op,
                  inputs, outputs, c.NumInputs(), c.NumOutputs());
  return Status::kOk;
}

// For ops whose trailing outputs are omitted when nothing needs them (the
// model lists no -1 outputs: TFLM's planner cannot handle them).
Status CheckArity(PrepareContext& c, const char* op, int inputs,
                  int min_outputs, int max_outputs) {
  if (c.NumInputs() != inputs || c.NumOutputs() < min_outputs ||
      c.NumOutputs() > max_outputs)
    return c.Fail("%s: expected %d inputs and %d to %d outputs, got %d and %d",
                  op, inputs, min_outputs, max_outputs, c.NumInputs(),
                  c.NumOutputs());
  return Status::kOk;
}

Status CheckType(PrepareContext& c, const char* op, const char* name,
                 const TensorDesc& d, DataType type) {
  if (d.type != type)
    return c.Fail("%s: %s must be %s, got %s", op, name, DataTypeName(type),
                  DataTypeName(d.type));
  return Status::kOk;
}

Status ReadInput(PrepareContext& c, const char* op, int i, const char* name,
                 DataType type, TensorDesc* d) {
  if (!c.HasInput(i))
    return c.Fail("%s: input %d (%s) is missing", op, i, name);
  if (c.Input(i, d) != Status::kOk)
    return c.Fail("%s: cannot read input %d (%s)", op, i, name);
  return CheckType(c, op, name, *d, type);
}

Status ReadOutput(PrepareContext& c, const char* op, int i, const char* name,
                  DataType type, TensorDesc* d) {
  if (!c.HasOutput(i))
    return c.Fail("%s: output %d (%s) is missing", op, i, name);
  if (c.Output(i, d) != Status::kOk)
    return c.Fail("%s: cannot read output %d (%s)", op, i, name);
  return CheckType(c, op, name, *d, type);
}

Status CheckElements(PrepareContext& c, const char* op, const char* name,
                     const TensorDesc& d, int64_t count) {
  if (d.shape.FlatSize() != count)
    return c.Fail("%s: %s must have %ld elements, got %ld", op, name,
                  static_cast<long>(count),
                  static_cast<long>(d.shape.FlatSize()));
  return Status::kOk;
}

Status CheckSameShape(PrepareContext& c, const char* op, const char* name,
                      const TensorDesc& d, const char* other_name,
                      const Shape& other) {
  if (d.shape != other)
    return c.Fail("%s: %s shape differs from %s shape", op, name, other_name);
  return Status::kOk;
}

Status CheckRank(PrepareContext& c, const char* op, const char* name,
                 const TensorDesc& d, int rank) {
  if (d.shape.rank != rank)
    return c.Fail("%s: %s must have rank %d, got %d", op, name, rank,
                  d.shape.rank);
  return Status::kOk;
}

Status CheckVariable(PrepareContext& c, const char* op, const char* name,
                     const TensorDesc& d) {
  if (!d.is_variable)
    return c.Fail("%s: %s is updated but is not a variable tensor", op, name);
  return Status::kOk;
}


// An int8 tensor with one positive scale and an int8 zero point.
Status CheckPerTensor(PrepareContext& c, const char* op, const char* name,
                      const TensorDesc& d) {
  if (d.quant.count != 1)
    return c.Fail("%s: %s must be quantized per tensor, got %d scales", op,
                  name, d.quant.count);
  if (!IsValidScale(d.quant.scales[0]))
    return c.Fail("%s: %s scale must be a finite positive normal float", op, name);
  if (d.quant.zero_points[0] < -128 || d.quant.zero_points[0] > 127)
    return c.Fail("%s: %s zero point is outside int8", op, name);
  return Status::kOk;
}

// Symmetric int8 weights: one scale, or one per output channel along
// `channel_dim`; positive scales, zero points 0.
Status CheckFilterScales(PrepareContext& c, const char* op,
                         const TensorDesc& filter, int channels,
                         int channel_dim) {
  const QuantParams& q = filter.quant;
  if (q.count != 1 &&
      (q.count != channels || q.quantized_dimension != channel_dim))
    return c.Fail("%s: filter needs 1 scale or %d along dimension %d, got %d",
                  op, channels, channel_dim, q.count);
  for (int k = 0; k < q.count; ++k) {
    if (!IsValidScale(q.scales[k]) || q.zero_points[k] != 0)
      return c.Fail("%s: filter channel %d needs a finite positive normal scale and zero "
                    "point 0", op, k);
  }
  return Status::kOk;
}

// Mode tensor: int32 [1].
Status CheckMode(PrepareContext& c, const char* op, int i) {
  TensorDesc d;
  TT_RETURN_IF_ERROR(ReadInput(c, op, i, "mode", DataType::kInt32, &d));
  return CheckElements(c, op, "mode", d, 1);
}

// The activation mask of int8 output `y` (already checked per tensor).
Status MaskFor(PrepareContext& c, const char* op, int activation,
               const TensorDesc& y, ActivationMask* mask) {
  if (!CalculateActivationRangeInt8(activation, y.quant.scales[0],
                                    y.quant.zero_points[0], &mask->act_min,
                                    &mask->act_max))
    return c.Fail("%s: unsupported activation %d", op, activation);
  return Status::kOk;
}

// Leading padding of a window op; checks the output height and width.
Status Window(PrepareContext& c, const char* op, int padding, int stride_h,
              int stride_w, int dilation_h, int dilation_w, int filter_h,
              int filter_w, const Shape& x, const Shape& y, int* pad_h,
              int* pad_w) {
  int out_h = 0, out_w = 0;
  if (!ComputeWindowGeometry(padding, x.dims[1], filter_h, stride_h,
                             dilation_h, &out_h, pad_h) ||
      !ComputeWindowGeometry(padding, x.dims[2], filter_w, stride_w,
                             dilation_w, &out_w, pad_w))
    return c.Fail(
        "%s: invalid window (padding %d, stride %dx%d, dilation %dx%d, "
        "filter %dx%d)",
        op, padding, stride_h, stride_w, dilation_h, dilation_w, filter_h,
        filter_w);
  if (y.dims[1] != out_h || y.dims[2] != out_w)
    return c.Fail("%s: y is %dx%d but x and the window give %dx%d", op,
                  static_cast<int>(y.dims[1]), static_cast<int>(y.dims[2]),
                  out_h, out_w);
  if (y.dims[0] != x.dims[0])
    return c.Fail("%s: y batch %d differs from x batch %d", op,
                  static_cast<int>(y.dims[0]), static_cast<int>(x.dims[0]));
  return Status::kOk;
}

bool TrainMode(EvalContext& c) { return *c.Input<int32_t>(0) != 0; }

// ---- TFLMTRAIN_INIT_VARIABLES -----------------------------------------------

struct InitVariablesData {
  bool initialized = false;
  int count = 0;
  uint32_t* bytes = nullptr;  // per pair: the destination's size
  // per pair: the source's size; one element smaller than the destination
  // fills it (optimizer state starts at 0 without a flash copy per element)
  uint32_t* source_bytes = nullptr;
};

void* InitVariablesInit(InitContext& c) {
  return NewOpData<InitVariablesData>(c);
}

Status InitVariablesPrepare(PrepareContext& c) {
  const char* op = kInitVariables;
  InitVariablesData* data = nullptr;
  TT_RETURN_IF_ERROR(GetOpData(c, op, &data));
  const int n = c.NumInputs();
  if (c.NumOutputs() != n)
    return c.Fail("%s: %d inputs but %d outputs", op, n, c.NumOutputs());
  if (n > 0) {
    data->bytes = static_cast<uint32_t*>(
        c.AllocatePersistent(2 * sizeof(uint32_t) * static_cast<size_t>(n)));
    if (data->bytes == nullptr)
      return c.Fail("%s: out of persistent memory", op);
    data->source_bytes = data->bytes + n;
  }
  for (int i = 0; i < n; ++i) {
    TensorDesc src, dst;
    if (!c.HasInput(i) || !c.HasOutput(i) || c.Input(i, &src) != Status::kOk ||
        c.Output(i, &dst) != Status::kOk)
      return c.Fail("%s: pair %d is missing a tensor", op, i);
    if (!src.is_constant)
      return c.Fail("%s: source %d is not a constant", op, i);
    if (!dst.is_variable)
      return c.Fail("%s: destination %d is not a variable", op, i);
    const int64_t element = static_cast<int64_t>(DataTypeSize(src.type));
    const int64_t source_bytes = src.shape.FlatSize() * element;
    const int64_t bytes = dst.shape.FlatSize() * element;
    if (src.type != dst.type || element == 0 ||
        (source_bytes != bytes && source_bytes != element))
      return c.Fail("%s: pair %d differs in type or size (the source must "
                    "match the destination or be one element)", op, i);
    if (bytes > INT32_MAX) return c.Fail("%s: pair %d is too large", op, i);
    data->bytes[i] = static_cast<uint32_t>(bytes);
    data->source_bytes[i] = static_cast<uint32_t>(source_bytes);
  }
  data->count = n;
  data->initialized = false;
  return Status::kOk;
}

Status InitVariablesEval(EvalContext& c) {
  auto* data = static_cast<InitVariablesData*>(c.OpData());
  if (data->initialized) return Status::kOk;
  for (int i = 0; i < data->count; ++i) {
    auto* dst = static_cast<uint8_t*>(c.OutputData(i));
    const uint32_t step = data->source_bytes[i];
    for (uint32_t at = 0; at < data->bytes[i]; at += step)
      std::memcpy(dst + at, c.InputData(i), step);
  }
  data->initialized = true;
  return Status::kOk;
}

void InitVariablesReset(void* op_data) {
  if (op_data != nullptr)
    static_cast<InitVariablesData*>(op_data)->initialized = false;
}

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

// ---- TFLMTRAIN_IMPRINT ------------------------------------------------------
//
// Inputs: 0 mode, 1 label (int32 [1]), 2 x (the head's int8 input, d
// elements), 3 filter (int8 variable, N rows of d), 4 bias (int32 [N] variable),
// 5 counts (int32 [N] variable), 6 sums (float32 [N, d] variable), 7 the
// output range (float32 [2] variable). Output:
// imprinted (int32 [1]). Option: shots. In train mode, ImprintSample; the
// output says whether it imprinted (then the sample takes no SGD step).

enum ImprintInput {
  kImprintMode = 0,
  kImprintLabel,
  kImprintX,
  kImprintFilter,
  kImprintBias,
  kImprintCounts,
  kImprintSums,
  kImprintRange,
  kImprintNumInputs,
};

struct ImprintData {
  OptionError option_error;
  int shots = 0;
  int num_classes = 0, depth = 0;
  int32_t x_zero_point = 0;
  float x_scale = 0.0f;
  int mean_scratch = -1;
  const float* filter_scales = nullptr;  // in the model
};

void* ImprintInit(InitContext& c) {
  ImprintData* data = NewOpData<ImprintData>(c);
  if (data == nullptr) return nullptr;
  OptionReader options(c);
  data->shots = options.Required("shots");
  data->option_error = options.error();
  return data;
}

Status ImprintPrepare(PrepareContext& c) {
  const char* op = kImprint;
  ImprintData* data = nullptr;
  TT_RETURN_IF_ERROR(GetOpData(c, op, &data));
  TT_RETURN_IF_ERROR(CheckOptions(c, op, data->option_error));
  TT_RETURN_IF_ERROR(CheckArity(c, op, kImprintNumInputs, 1));
  if (data->shots < 1)
    return c.Fail("%s: shots must be >= 1, got %d", op, data->shots);
  TT_RETURN_IF_ERROR(CheckMode(c, op, kImprintMode));
  TensorDesc label, x, filter, bias, counts, sums, out;
  TT_RETURN_IF_ERROR(
      ReadInput(c, op, kImprintLabel, "label", DataType::kInt32, &label));
  TT_RETURN_IF_ERROR(CheckElements(c, op, "label", label, 1));
  TT_RETURN_IF_ERROR(ReadInput(c, op, kImprintX, "x", DataType::kInt8, &x));
  TT_RETURN_IF_ERROR(CheckPerTensor(c, op, "x", x));
  TT_RETURN_IF_ERROR(
      ReadInput(c, op, kImprintFilter, "filter", DataType::kInt8, &filter));
  // [N, d] (FULLY_CONNECTED) or [N, KH, KW, C] of a CONV_2D whose window
  // covers its whole input: row n is the N-th class's weights over x.
  if (filter.shape.rank != 2 && filter.shape.rank != 4)
    return c.Fail("%s: filter must have rank 2 or 4, got %d", op,
                  filter.shape.rank);
  const int n = filter.shape.dims[0];
  if (n < 1 || filter.shape.FlatSize() < 1)
    return c.Fail("%s: filter has a zero dimension", op);
  const int64_t row = filter.shape.FlatSize() / n;
  if (row > INT32_MAX) return c.Fail("%s: filter rows are too long", op);
  const int d = static_cast<int>(row);
  TT_RETURN_IF_ERROR(CheckElements(c, op, "x", x, d));
  TT_RETURN_IF_ERROR(CheckVariable(c, op, "filter", filter));
  TT_RETURN_IF_ERROR(
      ReadInput(c, op, kImprintBias, "bias", DataType::kInt32, &bias));
  TT_RETURN_IF_ERROR(CheckElements(c, op, "bias", bias, n));
  TT_RETURN_IF_ERROR(CheckVariable(c, op, "bias", bias));
  TT_RETURN_IF_ERROR(
      ReadInput(c, op, kImprintCounts, "counts", DataType::kInt32, &counts));
  TT_RETURN_IF_ERROR(CheckElements(c, op, "counts", counts, n));
  TT_RETURN_IF_ERROR(CheckVariable(c, op, "counts", counts));
  TT_RETURN_IF_ERROR(
      ReadInput(c, op, kImprintSums, "sums", DataType::kFloat32, &sums));
  TT_RETURN_IF_ERROR(CheckElements(c, op, "sums", sums, static_cast<int64_t>(n) * d));
  TT_RETURN_IF_ERROR(CheckVariable(c, op, "sums", sums));
  TensorDesc range;
  TT_RETURN_IF_ERROR(
      ReadInput(c, op, kImprintRange, "output range", DataType::kFloat32, &range));
  TT_RETURN_IF_ERROR(CheckElements(c, op, "output range", range, 2));
  TT_RETURN_IF_ERROR(CheckVariable(c, op, "output range", range));
  // One scale per class (the converter gives a fresh head equal ones).
  TT_RETURN_IF_ERROR(CheckFilterScales(c, op, filter, n, 0));
  if (filter.quant.count != n)
    return c.Fail("%s: filter needs one scale per class", op);
  data->filter_scales = filter.quant.scales;
  TT_RETURN_IF_ERROR(ReadOutput(c, op, 0, "imprinted", DataType::kInt32, &out));
  TT_RETURN_IF_ERROR(CheckElements(c, op, "imprinted", out, 1));
  data->num_classes = n;
  data->depth = d;
  data->x_scale = x.quant.scales[0];
  data->x_zero_point = x.quant.zero_points[0];
  return c.RequestScratch(sizeof(float) * static_cast<size_t>(d),
                          &data->mean_scratch);
}

Status ImprintEval(EvalContext& c) {
  const auto* data = static_cast<const ImprintData*>(c.OpData());
  int32_t* imprinted = c.Output<int32_t>(0);
  *imprinted = 0;
  if (!TrainMode(c)) return Status::kOk;
  ImprintArgs a;
  a.num_classes = data->num_classes;
  a.depth = data->depth;
  a.x = c.Input<int8_t>(kImprintX);
  a.x_zero_point = data->x_zero_point;
  a.x_scale = data->x_scale;
  a.shots = data->shots;
  a.filter = c.Input<int8_t>(kImprintFilter);
  a.bias = c.Input<int32_t>(kImprintBias);
  a.counts = c.Input<int32_t>(kImprintCounts);
  a.sums = c.Input<float>(kImprintSums);
  a.mean_scratch = static_cast<float*>(c.Scratch(data->mean_scratch));
  a.filter_scales = data->filter_scales;
  a.output_range = c.Input<float>(kImprintRange);
  *imprinted = ImprintSample(a, *c.Input<int32_t>(kImprintLabel)) ? 1 : 0;
  return Status::kOk;
}

// ---- TFLMTRAIN_FULLY_CONNECTED_REAL_OUTPUT / TFLMTRAIN_CONV_2D_REAL_OUTPUT --

enum RealOutputInput {
  kRealMode = 0,
  kRealX,
  kRealFilter,
  kRealBias,
  kRealRange,
  kRealNumInputs,
};

struct RealOutputData {
  OptionError option_error;
  bool conv = false;
  int padding = kPaddingSame;
  int activation = kActivationNone;
  ConvParams geometry;  // strides, dilations, padding, input offset
  RealOutputParams params;
};

void* RealOutputInit(InitContext& c, bool conv) {
  RealOutputData* data = NewOpData<RealOutputData>(c);
  if (data == nullptr) return nullptr;
  data->conv = conv;
  OptionReader options(c);
  if (conv) {
    data->geometry.stride_h = options.Required("stride_h");
    data->geometry.stride_w = options.Required("stride_w");
    data->geometry.dilation_h = options.Optional("dilation_h", 1);
    data->geometry.dilation_w = options.Optional("dilation_w", 1);
    data->padding = options.Required("padding");
  }
  data->activation = options.Required("activation");
  data->option_error = options.error();
  return data;
}

void* FullyConnectedRealOutputInit(InitContext& c) {
  return RealOutputInit(c, false);
}
void* ConvRealOutputInit(InitContext& c) { return RealOutputInit(c, true); }

Status RealOutputPrepare(PrepareContext& c, const char* op) {
  RealOutputData* data = nullptr;
  TT_RETURN_IF_ERROR(GetOpData(c, op, &data));
  TT_RETURN_IF_ERROR(CheckOptions(c, op, data->option_error));
  TT_RETURN_IF_ERROR(CheckArity(c, op, kRealNumInputs, 1));
  TT_RETURN_IF_ERROR(CheckMode(c, op, kRealMode));
  TensorDesc x, filter, y;
  TT_RETURN_IF_ERROR(ReadInput(c, op, kRealX, "x", DataType::kInt8, &x));
  TT_RETURN_IF_ERROR(CheckPerTensor(c, op, "x", x));
  TT_RETURN_IF_ERROR(
      ReadInput(c, op, kRealFilter, "filter", DataType::kInt8, &filter));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, 0, "y", DataType::kFloat32, &y));
  int channels = 0;
  if (data->conv) {
    TT_RETURN_IF_ERROR(CheckRank(c, op, "x", x, 4));
    TT_RETURN_IF_ERROR(CheckRank(c, op, "filter", filter, 4));
    TT_RETURN_IF_ERROR(CheckRank(c, op, "y", y, 4));
    channels = filter.shape.dims[0];
    if (channels < 1 || filter.shape.dims[3] != x.shape.dims[3] ||
        y.shape.dims[3] != channels)
      return c.Fail("%s: filter must be [%d, KH, KW, %d]", op,
                    static_cast<int>(y.shape.dims[3]),
                    static_cast<int>(x.shape.dims[3]));
    ConvParams& g = data->geometry;
    TT_RETURN_IF_ERROR(Window(c, op, data->padding, g.stride_h, g.stride_w,
                              g.dilation_h, g.dilation_w, filter.shape.dims[1],
                              filter.shape.dims[2], x.shape, y.shape, &g.pad_h,
                              &g.pad_w));
  } else {
    TT_RETURN_IF_ERROR(CheckRank(c, op, "filter", filter, 2));
    channels = filter.shape.dims[0];
    const int depth = filter.shape.dims[1];
    if (channels < 1 || depth < 1 || x.shape.FlatSize() % depth != 0 ||
        y.shape.Last() != channels ||
        y.shape.FlatSize() != x.shape.FlatSize() / depth * channels)
      return c.Fail("%s: x, filter [%d, %d] and y disagree in shape", op,
                    channels, depth);
  }
  TT_RETURN_IF_ERROR(CheckFilterScales(c, op, filter, channels, 0));
  const QuantParams& q = filter.quant;
  if (c.HasInput(kRealBias)) {
    TensorDesc bias;
    TT_RETURN_IF_ERROR(
        ReadInput(c, op, kRealBias, "bias", DataType::kInt32, &bias));
    TT_RETURN_IF_ERROR(CheckElements(c, op, "bias", bias, channels));
  }
  if (c.HasInput(kRealRange)) {
    TensorDesc range;
    TT_RETURN_IF_ERROR(
        ReadInput(c, op, kRealRange, "range", DataType::kFloat32, &range));
    TT_RETURN_IF_ERROR(CheckElements(c, op, "range", range, 2));
    TT_RETURN_IF_ERROR(CheckVariable(c, op, "range", range));
  }
  RealOutputParams& p = data->params;
  if (!RealActivationBounds(data->activation, &p.lower, &p.upper))
    return c.Fail("%s: unsupported activation %d", op, data->activation);
  p.input_scale = x.quant.scales[0];
  p.filter_scales = q.scales;
  p.per_tensor_filter = q.count == 1;
  data->geometry.input_offset = -x.quant.zero_points[0];
  return Status::kOk;
}

Status FullyConnectedRealOutputPrepare(PrepareContext& c) {
  return RealOutputPrepare(c, kFullyConnectedRealOutput);
}
Status ConvRealOutputPrepare(PrepareContext& c) {
  return RealOutputPrepare(c, kConvRealOutput);
}

Status RealOutputEval(EvalContext& c) {
  const auto* data = static_cast<const RealOutputData*>(c.OpData());
  const Shape x_shape = c.InputShape(kRealX);
  const Shape filter_shape = c.InputShape(kRealFilter);
  const Shape y_shape = c.OutputShape(0);
  float* y = c.Output<float>(0);
  if (data->conv) {
    ConvRealOutput(data->params, data->geometry, x_shape, c.Input<int8_t>(kRealX),
                   filter_shape, c.Input<int8_t>(kRealFilter),
                   c.Input<int32_t>(kRealBias), y_shape, y);
  } else {
    const int depth = filter_shape.dims[1];
    FullyConnectedRealOutput(
        data->params, data->geometry.input_offset, c.Input<int8_t>(kRealX),
        static_cast<int>(x_shape.FlatSize() / depth), depth,
        filter_shape.dims[0], c.Input<int8_t>(kRealFilter),
        c.Input<int32_t>(kRealBias), y);
  }
  float* range = c.Input<float>(kRealRange);
  if (range != nullptr && TrainMode(c)) TrackRange(y, y_shape.FlatSize(), range);
  return Status::kOk;
}

// ---- Losses: TFLMTRAIN_SOFTMAX_CROSS_ENTROPY_V2, TFLMTRAIN_MEAN_SQUARED_ERROR,
// ---- TFLMTRAIN_MEAN_ABSOLUTE_ERROR ------------------------------------------

enum class Loss { kCrossEntropy, kSquaredError, kAbsoluteError };

struct LossData {
  Loss loss = Loss::kCrossEntropy;
  int64_t count = 0;  // elements of the output (classes for cross-entropy)
};

void* LossInit(InitContext& c, Loss loss) {
  LossData* data = NewOpData<LossData>(c);
  if (data != nullptr) data->loss = loss;
  return data;
}
void* CrossEntropyInit(InitContext& c) {
  return LossInit(c, Loss::kCrossEntropy);
}
void* SquaredErrorInit(InitContext& c) {
  return LossInit(c, Loss::kSquaredError);
}
void* AbsoluteErrorInit(InitContext& c) {
  return LossInit(c, Loss::kAbsoluteError);
}

// Inputs: 0 the real-valued output (float32), 1 the label (int32 [1]) or
// target (float32, as many elements as the output), 2 mode. Outputs: 0 loss
// (float32 [1]), 1 (optional) the output's gradient.
Status LossPrepare(PrepareContext& c, const char* op) {
  LossData* data = nullptr;
  TT_RETURN_IF_ERROR(GetOpData(c, op, &data));
  TT_RETURN_IF_ERROR(CheckArity(c, op, 3, 1, 2));
  TensorDesc values, target, loss;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 0, "output", DataType::kFloat32, &values));
  data->count = values.shape.FlatSize();
  if (data->loss == Loss::kCrossEntropy) {
    if (values.shape.rank < 1 || values.shape.FlatSizeSkipLast() != 1 ||
        values.shape.Last() < 2)
      return c.Fail("%s: logits must be [1, ..., C] with C >= 2", op);
    TT_RETURN_IF_ERROR(ReadInput(c, op, 1, "label", DataType::kInt32, &target));
    TT_RETURN_IF_ERROR(CheckElements(c, op, "label", target, 1));
  } else {
    if (data->count < 1) return c.Fail("%s: the output is empty", op);
    TT_RETURN_IF_ERROR(
        ReadInput(c, op, 1, "target", DataType::kFloat32, &target));
    TT_RETURN_IF_ERROR(CheckElements(c, op, "target", target, data->count));
  }
  TT_RETURN_IF_ERROR(CheckMode(c, op, 2));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, 0, "loss", DataType::kFloat32, &loss));
  TT_RETURN_IF_ERROR(CheckElements(c, op, "loss", loss, 1));
  if (c.HasOutput(1)) {
    TensorDesc grad;
    TT_RETURN_IF_ERROR(
        ReadOutput(c, op, 1, "output/grad", DataType::kFloat32, &grad));
    TT_RETURN_IF_ERROR(
        CheckSameShape(c, op, "output/grad", grad, "output", values.shape));
  }
  return Status::kOk;
}

Status CrossEntropyPrepare(PrepareContext& c) {
  return LossPrepare(c, kSoftmaxCrossEntropy);
}
Status SquaredErrorPrepare(PrepareContext& c) {
  return LossPrepare(c, kMeanSquaredError);
}
Status AbsoluteErrorPrepare(PrepareContext& c) {
  return LossPrepare(c, kMeanAbsoluteError);
}

Status LossEval(EvalContext& c) {
  const auto* data = static_cast<const LossData*>(c.OpData());
  const bool train = *c.Input<int32_t>(2) != 0;
  float* grad = train ? c.Output<float>(1) : nullptr;
  const float* values = c.Input<float>(0);
  float loss = 0.0f;
  switch (data->loss) {
    case Loss::kCrossEntropy: {
      const int32_t label = *c.Input<int32_t>(1);
      const int classes = static_cast<int>(data->count);
      if (train && (label < 0 || label >= classes)) {
        c.Fail("%s: label %ld is outside [0, %d)", kSoftmaxCrossEntropy,
               static_cast<long>(label), classes);
        return Status::kBadInput;
      }
      loss = SoftmaxCrossEntropy(values, classes, label, grad);
      break;
    }
    case Loss::kSquaredError:
      loss = MeanSquaredError(values, c.Input<float>(1), data->count, grad);
      break;
    case Loss::kAbsoluteError:
      loss = MeanAbsoluteError(values, c.Input<float>(1), data->count, grad);
      break;
  }
  *c.Output<float>(0) = loss;
  return Status::kOk;
}

// ---- CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED gradients ----------------

enum class Layer { kConv, kDepthwise, kFullyConnected };

enum LayerInput {
  kLayerMode = 0,
  kLayerHparams,
  kLayerDy,
  kLayerY,
  kLayerX,
  kLayerFilter,
  kLayerBias,
  kLayerChannels,
  kLayerRng,
  // Optimizer state (optional float32 variables): mini-batch accumulators
  // and momentum velocities, one per trained weight / bias element.
  kLayerWeightAccumulator,
  kLayerWeightVelocity,
  kLayerBiasAccumulator,
  kLayerBiasVelocity,
  kLayerNumInputs,
};

struct LayerGradData {
  OptionError option_error;
  int stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  int padding = kPaddingSame;
  int depth_multiplier = 1;
  int activation = kActivationNone;
  bool update_weights = false, update_bias = false, qas = false;
  int rounding = 0;
  int batch_size = 1;
  float momentum = 0.0f;
  // s_x: the `input_scale` option when x is absent, else x's scale (Prepare).
  float input_scale = 0.0f;
  // Filled by Prepare.
  int pad_h = 0, pad_w = 0;
  ActivationMask mask;
  // y is the real-valued output (float32) of the output layer: no int8 mask;
  // with a fused activation, dy is masked by the real bounds into
  // `masked_dy_scratch` first.
  bool real_y = false;
  float real_lower = 0.0f, real_upper = 0.0f;
  int masked_dy_scratch = -1;
  int32_t input_zero_point = 0;
  int channels = 0;
  // The filter's scales s_w, in the model (kernel_context.h): one per output
  // channel, or one for the whole filter.
  const float* filter_scales = nullptr;
  bool per_tensor_filter = false;
  // Scratch formed at each Eval instead of persistent copies: the per-tensor
  // scale broadcast to every channel, then the bias scales s_x * s_w[c].
  int scales_scratch = -1;
  bool uses_rng = false;
};

void* LayerGradInit(InitContext& c, Layer layer) {
  LayerGradData* data = NewOpData<LayerGradData>(c);
  if (data == nullptr) return nullptr;
  OptionReader options(c);
  if (layer != Layer::kFullyConnected) {
    data->stride_h = options.Required("stride_h");
    data->stride_w = options.Required("stride_w");
    data->dilation_h = options.Optional("dilation_h", 1);
    data->dilation_w = options.Optional("dilation_w", 1);
    data->padding = options.Required("padding");
  }
  if (layer == Layer::kDepthwise)
    data->depth_multiplier = options.Optional("depth_multiplier", 1);
  data->activation = options.Required("activation");
  data->update_weights = options.Required("update_weights") != 0;
  data->update_bias = options.Required("update_bias") != 0;
  data->qas = options.Required("qas") != 0;
  data->rounding = options.Required("rounding");
  data->input_scale = options.OptionalFloat("input_scale", 0.0f);
  data->batch_size = options.Optional("batch_size", 1);
  data->momentum = options.OptionalFloat("momentum", 0.0f);
  data->option_error = options.error();
  return data;
}

void* ConvGradInit(InitContext& c) { return LayerGradInit(c, Layer::kConv); }
void* DepthwiseConvGradInit(InitContext& c) {
  return LayerGradInit(c, Layer::kDepthwise);
}
void* FullyConnectedGradInit(InitContext& c) {
  return LayerGradInit(c, Layer::kFullyConnected);
}

// Checks the filter against y and, unless null (neither x nor x/grad is
// present), against the shape of x; returns the output channel count.
Status CheckLayerShapes(PrepareContext& c, const char* op, Layer layer,
                        LayerGradData* data, const Shape* x,
                        const TensorDesc& filter, const TensorDesc& y,
                        int* channels) {
  if (layer == Layer::kFullyConnected) {
    TT_RETURN_IF_ERROR(CheckRank(c, op, "filter", filter, 2));
    const int out = filter.shape.dims[0];
    const int in = filter.shape.dims[1];
    if (in < 1 || out < 1) return c.Fail("%s: filter has a zero dimension", op);
    if (x != nullptr) {
      if (x->FlatSize() % in != 0)
        return c.Fail("%s: x has %ld elements, not a multiple of %d", op,
                      static_cast<long>(x->FlatSize()), in);
      const int64_t batches = x->FlatSize() / in;
      if (y.shape.Last() != out || y.shape.FlatSize() != batches * out)
        return c.Fail("%s: y must be [%ld, %d]", op,
                      static_cast<long>(batches), out);
    } else if (y.shape.rank < 1 || y.shape.Last() != out) {
      return c.Fail("%s: y must be [B, %d]", op, out);
    }
    *channels = out;
    return Status::kOk;
  }
  if (x != nullptr && x->rank != 4)
    return c.Fail("%s: x must have rank 4, got %d", op, x->rank);
  TT_RETURN_IF_ERROR(CheckRank(c, op, "filter", filter, 4));
  TT_RETURN_IF_ERROR(CheckRank(c, op, "y", y, 4));
  const int out = y.shape.dims[3];
  if (layer == Layer::kConv) {
    if (filter.shape.dims[0] != out ||
        (x != nullptr && filter.shape.dims[3] != x->dims[3]))
      return c.Fail("%s: filter must be [%d, KH, KW, %d]", op, out,
                    static_cast<int>(x != nullptr ? x->dims[3]
                                                  : filter.shape.dims[3]));
  } else {
    if (data->depth_multiplier != 1)
      return c.Fail("%s: depth_multiplier must be 1, got %d", op,
                    data->depth_multiplier);
    if (filter.shape.dims[0] != 1 || filter.shape.dims[3] != out ||
        (x != nullptr && x->dims[3] != out))
      return c.Fail("%s: filter must be [1, KH, KW, %d] and x must have %d "
                    "channels", op, out, out);
  }
  if (out < 1) return c.Fail("%s: y has no channels", op);
  if (x != nullptr)
    TT_RETURN_IF_ERROR(Window(c, op, data->padding, data->stride_h,
                              data->stride_w, data->dilation_h,
                              data->dilation_w, filter.shape.dims[1],
                              filter.shape.dims[2], *x, y.shape, &data->pad_h,
                              &data->pad_w));
  *channels = out;
  return Status::kOk;
}

Status LayerGradPrepare(PrepareContext& c, const char* op, Layer layer) {
  LayerGradData* data = nullptr;
  TT_RETURN_IF_ERROR(GetOpData(c, op, &data));
  TT_RETURN_IF_ERROR(CheckOptions(c, op, data->option_error));
  TT_RETURN_IF_ERROR(CheckArity(c, op, kLayerNumInputs, 0, 1));
  if (data->rounding != 0 && data->rounding != 1)
    return c.Fail("%s: rounding must be 0 or 1, got %d", op, data->rounding);

  if (data->batch_size < 1)
    return c.Fail("%s: batch_size must be >= 1, got %d", op, data->batch_size);
  if (!(data->momentum >= 0.0f && data->momentum < 1.0f))
    return c.Fail("%s: momentum must be in [0, 1)", op);

  TensorDesc hparams, dy, y, x, dx, filter;
  TT_RETURN_IF_ERROR(CheckMode(c, op, kLayerMode));
  TT_RETURN_IF_ERROR(ReadInput(c, op, kLayerHparams, "optimizer_step",
                               DataType::kFloat32, &hparams));
  TT_RETURN_IF_ERROR(CheckElements(c, op, "optimizer_step", hparams, 3));
  TT_RETURN_IF_ERROR(
      ReadInput(c, op, kLayerDy, "y/grad", DataType::kFloat32, &dy));
  if (!c.HasInput(kLayerY) || c.Input(kLayerY, &y) != Status::kOk)
    return c.Fail("%s: input %d (y) is missing", op, kLayerY);
  data->real_y = y.type == DataType::kFloat32;
  if (data->real_y) {
    if (!RealActivationBounds(data->activation, &data->real_lower,
                              &data->real_upper))
      return c.Fail("%s: unsupported activation %d", op, data->activation);
    if (data->activation != kActivationNone)
      TT_RETURN_IF_ERROR(c.RequestScratch(
          sizeof(float) * static_cast<size_t>(y.shape.FlatSize()),
          &data->masked_dy_scratch));
  } else {
    TT_RETURN_IF_ERROR(CheckType(c, op, "y", y, DataType::kInt8));
    TT_RETURN_IF_ERROR(CheckPerTensor(c, op, "y", y));
  }
  TT_RETURN_IF_ERROR(CheckSameShape(c, op, "y/grad", dy, "y", y.shape));
  // x is read only by the weight gradient; without it, x/grad (if any) gives
  // its shape and the `input_scale` option s_x for the bias update.
  const bool has_x = data->update_weights || c.HasInput(kLayerX);
  if (has_x) {
    TT_RETURN_IF_ERROR(ReadInput(c, op, kLayerX, "x", DataType::kInt8, &x));
    TT_RETURN_IF_ERROR(CheckPerTensor(c, op, "x", x));
  }
  if (c.HasOutput(0)) {
    TT_RETURN_IF_ERROR(ReadOutput(c, op, 0, "x/grad", DataType::kFloat32, &dx));
    if (has_x)
      TT_RETURN_IF_ERROR(CheckSameShape(c, op, "x/grad", dx, "x", x.shape));
  }
  const Shape* x_shape =
      has_x ? &x.shape : (c.HasOutput(0) ? &dx.shape : nullptr);
  TT_RETURN_IF_ERROR(
      ReadInput(c, op, kLayerFilter, "filter", DataType::kInt8, &filter));
  int channels = 0;
  TT_RETURN_IF_ERROR(
      CheckLayerShapes(c, op, layer, data, x_shape, filter, y, &channels));
  if (!data->real_y)
    TT_RETURN_IF_ERROR(MaskFor(c, op, data->activation, y, &data->mask));
  if (has_x) {
    data->input_scale = x.quant.scales[0];
    data->input_zero_point = x.quant.zero_points[0];
  } else if (data->update_bias && !IsValidScale(data->input_scale)) {
    return c.Fail("%s: without x, updating the bias needs a positive "
                  "input_scale option", op);
  }

  TT_RETURN_IF_ERROR(CheckFilterScales(
      c, op, filter, channels, layer == Layer::kDepthwise ? 3 : 0));
  const QuantParams& q = filter.quant;
  // The bias steps divide by s_x * s_w[c] (formed as in Eval), which can
  // underflow to zero although both factors are valid.
  if (data->update_bias) {
    for (int k = 0; k < channels; ++k) {
      const float bias_scale = data->input_scale * q.scales[q.count == 1 ? 0 : k];
      if (!IsValidScale(bias_scale))
        return c.Fail("%s: bias scale s_x * s_w[%d] = %g is not a finite "
                      "positive normal float", op, k,
                      static_cast<double>(bias_scale));
    }
  }
  data->channels = channels;
  data->filter_scales = q.scales;
  data->per_tensor_filter = q.count == 1;
  const int scratch_floats = (data->per_tensor_filter ? channels : 0) +
                             (data->update_bias ? channels : 0);
  if (scratch_floats > 0)
    TT_RETURN_IF_ERROR(c.RequestScratch(
        sizeof(float) * static_cast<size_t>(scratch_floats),
        &data->scales_scratch));
  if (data->update_weights)
    TT_RETURN_IF_ERROR(CheckVariable(c, op, "filter", filter));

  if (c.HasInput(kLayerBias)) {
    TensorDesc bias;
    TT_RETURN_IF_ERROR(
        ReadInput(c, op, kLayerBias, "bias", DataType::kInt32, &bias));
    TT_RETURN_IF_ERROR(CheckElements(c, op, "bias", bias, channels));
    if (data->update_bias)
      TT_RETURN_IF_ERROR(CheckVariable(c, op, "bias", bias));
  } else if (data->update_bias) {
    return c.Fail("%s: update_bias is set but there is no bias", op);
  }

  if (c.HasInput(kLayerChannels)) {
    TensorDesc list;
    TT_RETURN_IF_ERROR(ReadInput(c, op, kLayerChannels, "channels",
                                 DataType::kInt32, &list));
    const auto* index =
        static_cast<const int32_t*>(c.ConstantInputData(kLayerChannels));
    if (list.shape.rank != 1 || index == nullptr)
      return c.Fail("%s: channels must be a constant int32 [k]", op);
    for (int k = 0; k < list.shape.dims[0]; ++k) {
      if (index[k] < 0 || index[k] >= channels ||
          (k > 0 && index[k] <= index[k - 1]))
        return c.Fail("%s: channels must be increasing and in [0, %d)", op,
                      channels);
    }
  }

  // The optimizer state each updated tensor needs, sized by its trained
  // elements: all of the bias; the trained channels of the filter.
  int64_t trained_channels = channels;
  if (c.HasInput(kLayerChannels)) {
    TensorDesc list;
    TT_RETURN_IF_ERROR(c.Input(kLayerChannels, &list));
    trained_channels = list.shape.FlatSize();
  }
  const int64_t weight_slots =
      filter.shape.FlatSize() / channels * trained_channels;
  struct {
    int input;
    const char* name;
    bool needed;
    int64_t elements;
  } const slots[] = {
      {kLayerWeightAccumulator, "weight accumulator",
       data->update_weights && data->batch_size > 1, weight_slots},
      {kLayerWeightVelocity, "weight velocity",
       data->update_weights && data->momentum > 0.0f, weight_slots},
      {kLayerBiasAccumulator, "bias accumulator",
       data->update_bias && data->batch_size > 1, channels},
      {kLayerBiasVelocity, "bias velocity",
       data->update_bias && data->momentum > 0.0f, channels},
  };
  for (const auto& slot : slots) {
    if (!slot.needed) {
      if (c.HasInput(slot.input))
        return c.Fail("%s: input %d (%s) is given but not used", op,
                      slot.input, slot.name);
      continue;
    }
    TensorDesc state;
    TT_RETURN_IF_ERROR(
        ReadInput(c, op, slot.input, slot.name, DataType::kFloat32, &state));
    TT_RETURN_IF_ERROR(CheckElements(c, op, slot.name, state, slot.elements));
    TT_RETURN_IF_ERROR(CheckVariable(c, op, slot.name, state));
  }

  data->uses_rng =
      data->rounding == 1 && (data->update_weights || data->update_bias);
  if (c.HasInput(kLayerRng) || data->uses_rng) {
    TensorDesc rng;
    TT_RETURN_IF_ERROR(
        ReadInput(c, op, kLayerRng, "rng", DataType::kInt32, &rng));
    TT_RETURN_IF_ERROR(CheckElements(c, op, "rng", rng, 1));
    if (data->uses_rng) TT_RETURN_IF_ERROR(CheckVariable(c, op, "rng", rng));
  }
  return Status::kOk;
}

Status ConvGradPrepare(PrepareContext& c) {
  return LayerGradPrepare(c, kConvGrad, Layer::kConv);
}
Status DepthwiseConvGradPrepare(PrepareContext& c) {
  return LayerGradPrepare(c, kDepthwiseConvGrad, Layer::kDepthwise);
}
Status FullyConnectedGradPrepare(PrepareContext& c) {
  return LayerGradPrepare(c, kFullyConnectedGrad, Layer::kFullyConnected);
}

Status LayerGradEval(EvalContext& c, Layer layer) {
  if (!TrainMode(c)) return Status::kOk;
  const auto* data = static_cast<const LayerGradData*>(c.OpData());
  // [weight lr, bias lr, phase] of this sample (TFLMTRAIN_OPTIMIZER_STEP).
  const float* hparams = c.Input<float>(kLayerHparams);
  const UpdatePhase phase =
      hparams[2] == 2.0f ? UpdatePhase::kApply
                         : (hparams[2] == 1.0f ? UpdatePhase::kAccumulate
                                               : UpdatePhase::kSkip);
  if (phase == UpdatePhase::kSkip) return Status::kOk;
  if (phase == UpdatePhase::kAccumulate && data->batch_size == 1)
    return c.Fail("%s: a mini-batch phase reached a layer with batch_size 1",
                  layer == Layer::kConv ? kConvGrad
                  : layer == Layer::kDepthwise ? kDepthwiseConvGrad
                                               : kFullyConnectedGrad);

  const float* weight_scales = data->filter_scales;
  const float* bias_scales = nullptr;
  if (data->scales_scratch >= 0) {
    auto* scratch = static_cast<float*>(c.Scratch(data->scales_scratch));
    if (data->per_tensor_filter) {
      for (int k = 0; k < data->channels; ++k) scratch[k] = weight_scales[0];
      weight_scales = scratch;
      scratch += data->channels;
    }
    if (data->update_bias) {
      for (int k = 0; k < data->channels; ++k)
        scratch[k] = data->input_scale * weight_scales[k];
      bias_scales = scratch;
    }
  }

  uint32_t rng_state = 0;
  if (data->uses_rng) std::memcpy(&rng_state, c.InputData(kLayerRng), 4);
  LayerUpdate update;
  update.update_weights = data->update_weights;
  update.channels = c.Input<int32_t>(kLayerChannels);
  update.num_channels =
      static_cast<int>(c.InputShape(kLayerChannels).FlatSize());
  update.weight_lr = hparams[0];
  update.bias = data->update_bias ? c.Input<int32_t>(kLayerBias) : nullptr;
  update.bias_scales = bias_scales;
  update.bias_lr = hparams[1];
  update.rule.qas = data->qas;
  update.rule.rounding =
      data->rounding == 1 ? Rounding::kStochastic : Rounding::kNearest;
  update.rule.rng_state = &rng_state;
  update.rule.phase = phase;
  update.rule.batch_size = static_cast<float>(data->batch_size);
  update.rule.momentum = data->momentum;
  update.weight_slots.accumulator = c.Input<float>(kLayerWeightAccumulator);
  update.weight_slots.velocity = c.Input<float>(kLayerWeightVelocity);
  update.bias_slots.accumulator = c.Input<float>(kLayerBiasAccumulator);
  update.bias_slots.velocity = c.Input<float>(kLayerBiasVelocity);

  // The output layer's y is its real-valued output: masked here by the real
  // activation bounds (if any), then no int8 mask in the kernels.
  const int8_t* y = data->real_y ? nullptr : c.Input<int8_t>(kLayerY);
  const float* dy = c.Input<float>(kLayerDy);
  if (data->masked_dy_scratch >= 0) {
    auto* masked = static_cast<float*>(c.Scratch(data->masked_dy_scratch));
    const float* real_y = c.Input<float>(kLayerY);
    const int64_t n = c.InputShape(kLayerY).FlatSize();
    for (int64_t k = 0; k < n; ++k)
      masked[k] = real_y[k] > data->real_lower && real_y[k] < data->real_upper
                      ? dy[k]
                      : 0.0f;
    dy = masked;
  }

  float* dx = c.Output<float>(0);
  if (layer == Layer::kFullyConnected) {
    FullyConnectedGradArgs a;
    const Shape filter_shape = c.InputShape(kLayerFilter);
    a.output_depth = filter_shape.dims[0];
    a.input_depth = filter_shape.dims[1];
    a.batches =
        static_cast<int>(c.InputShape(kLayerY).FlatSize() / a.output_depth);
    a.input_scale = data->input_scale;
    a.input_zero_point = data->input_zero_point;
    a.mask = data->mask;
    a.x = c.Input<int8_t>(kLayerX);
    a.filter = c.Input<int8_t>(kLayerFilter);
    a.filter_scales = weight_scales;
    a.y = y;
    a.dy = dy;
    FullyConnectedGrad(a, dx, update);
  } else {
    ConvGradArgs a;
    a.stride_h = data->stride_h;
    a.stride_w = data->stride_w;
    a.dilation_h = data->dilation_h;
    a.dilation_w = data->dilation_w;
    a.pad_h = data->pad_h;
    a.pad_w = data->pad_w;
    a.input_scale = data->input_scale;
    a.input_zero_point = data->input_zero_point;
    a.mask = data->mask;
    a.x = c.Input<int8_t>(kLayerX);
    a.x_shape = a.x != nullptr ? c.InputShape(kLayerX) : c.OutputShape(0);
    a.filter_shape = c.InputShape(kLayerFilter);
    a.filter = c.Input<int8_t>(kLayerFilter);
    a.filter_scales = weight_scales;
    a.y_shape = c.InputShape(kLayerY);
    a.y = y;
    a.dy = dy;
    if (layer == Layer::kConv)
      ConvGrad(a, dx, update);
    else
      DepthwiseConvGrad(a, dx, update);
  }
  if (data->uses_rng) std::memcpy(c.InputData(kLayerRng), &rng_state, 4);
  return Status::kOk;
}

Status ConvGradEval(EvalContext& c) { return LayerGradEval(c, Layer::kConv); }
Status DepthwiseConvGradEval(EvalContext& c) {
  return LayerGradEval(c, Layer::kDepthwise);
}
Status FullyConnectedGradEval(EvalContext& c) {
  return LayerGradEval(c, Layer::kFullyConnected);
}

// ---- TFLMTRAIN_ADD_GRAD -----------------------------------------------------

struct AddGradData {
  OptionError option_error;
  int activation = kActivationNone;
  ActivationMask mask;
};

void* AddGradInit(InitContext& c) {
  AddGradData* data = NewOpData<AddGradData>(c);
  if (data == nullptr) return nullptr;
  OptionReader options(c);
  data->activation = options.Required("activation");
  data->option_error = options.error();
  return data;
}

Status AddGradPrepare(PrepareContext& c) {
  const char* op = kAddGrad;
  AddGradData* data = nullptr;
  TT_RETURN_IF_ERROR(GetOpData(c, op, &data));
  TT_RETURN_IF_ERROR(CheckOptions(c, op, data->option_error));
  TT_RETURN_IF_ERROR(CheckArity(c, op, 3, 1, 2));
  TT_RETURN_IF_ERROR(CheckMode(c, op, 0));
  TensorDesc dy, y;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 1, "y/grad", DataType::kFloat32, &dy));
  TT_RETURN_IF_ERROR(ReadInput(c, op, 2, "y", DataType::kInt8, &y));
  TT_RETURN_IF_ERROR(CheckPerTensor(c, op, "y", y));
  TT_RETURN_IF_ERROR(CheckSameShape(c, op, "y/grad", dy, "y", y.shape));
  for (int i = 0; i < 2; ++i) {
    if (!c.HasOutput(i)) continue;
    TensorDesc d;
    const char* name = i == 0 ? "output 0" : "output 1";
    TT_RETURN_IF_ERROR(ReadOutput(c, op, i, name, DataType::kFloat32, &d));
    TT_RETURN_IF_ERROR(CheckSameShape(c, op, name, d, "y", y.shape));
  }
  return MaskFor(c, op, data->activation, y, &data->mask);
}

Status AddGradEval(EvalContext& c) {
  if (!TrainMode(c)) return Status::kOk;
  const auto* data = static_cast<const AddGradData*>(c.OpData());
  AddGrad(c.Input<float>(1), c.Input<int8_t>(2), c.InputShape(2).FlatSize(),
          data->mask, c.Output<float>(0), c.Output<float>(1));
  return Status::kOk;
}

// ---- TFLMTRAIN_AVERAGE_POOL_2D_GRAD / TFLMTRAIN_MAX_POOL_2D_GRAD ------------

struct PoolGradData {
  OptionError option_error;
  int padding = kPaddingSame;
  int activation = kActivationNone;
  PoolGradParams params;
};

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
  data->option_error = options.error();
  return data;
}

Status PoolGradPrepare(PrepareContext& c, const char* op, bool max_pool) {
  PoolGradData* data = nullptr;
  TT_RETURN_IF_ERROR(GetOpData(c, op, &data));
  TT_RETURN_IF_ERROR(CheckOptions(c, op, data->option_error));
  TT_RETURN_IF_ERROR(CheckArity(c, op, max_pool ? 4 : 3, 1));
  TT_RETURN_IF_ERROR(CheckMode(c, op, 0));
  TensorDesc dy, y, dx;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 1, "y/grad", DataType::kFloat32, &dy));
  TT_RETURN_IF_ERROR(ReadInput(c, op, 2, "y", DataType::kInt8, &y));
  TT_RETURN_IF_ERROR(CheckPerTensor(c, op, "y", y));
  TT_RETURN_IF_ERROR(CheckRank(c, op, "y", y, 4));
  TT_RETURN_IF_ERROR(CheckSameShape(c, op, "y/grad", dy, "y", y.shape));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, 0, "x/grad", DataType::kFloat32, &dx));
  TT_RETURN_IF_ERROR(CheckRank(c, op, "x/grad", dx, 4));
  if (dx.shape.dims[3] != y.shape.dims[3])
    return c.Fail("%s: x/grad and y differ in channels", op);
  if (max_pool) {
    TensorDesc x;
    TT_RETURN_IF_ERROR(ReadInput(c, op, 3, "x", DataType::kInt8, &x));
    TT_RETURN_IF_ERROR(CheckSameShape(c, op, "x", x, "x/grad", dx.shape));
  }
  PoolGradParams& p = data->params;
  TT_RETURN_IF_ERROR(Window(c, op, data->padding, p.stride_h, p.stride_w, 1, 1,
                            p.filter_h, p.filter_w, dx.shape, y.shape,
                            &p.pad_h, &p.pad_w));
  return MaskFor(c, op, data->activation, y, &p.mask);
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
  AveragePoolGrad(data->params, c.InputShape(2), c.Input<float>(1),
                  c.Input<int8_t>(2), c.OutputShape(0), c.Output<float>(0));
  return Status::kOk;
}

Status MaxPoolGradEval(EvalContext& c) {
  if (!TrainMode(c)) return Status::kOk;
  const auto* data = static_cast<const PoolGradData*>(c.OpData());
  MaxPoolGrad(data->params, c.InputShape(2), c.Input<float>(1),
              c.Input<int8_t>(2), c.OutputShape(0), c.Input<int8_t>(3),
              c.Output<float>(0));
  return Status::kOk;
}

// ---- TFLMTRAIN_MEAN_GRAD ----------------------------------------------------

Status MeanGradPrepare(PrepareContext& c) {
  const char* op = kMeanGrad;
  TT_RETURN_IF_ERROR(CheckArity(c, op, 2, 1));
  TT_RETURN_IF_ERROR(CheckMode(c, op, 0));
  TensorDesc dy, dx;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 1, "y/grad", DataType::kFloat32, &dy));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, 0, "x/grad", DataType::kFloat32, &dx));
  TT_RETURN_IF_ERROR(CheckRank(c, op, "x/grad", dx, 4));
  const Shape& x = dx.shape;
  if (x.dims[1] < 1 || x.dims[2] < 1)
    return c.Fail("%s: x/grad has an empty spatial dimension", op);
  if (dy.shape.Last() != x.dims[3] ||
      dy.shape.FlatSize() != static_cast<int64_t>(x.dims[0]) * x.dims[3])
    return c.Fail("%s: y/grad must be [%d, %d] (or [%d, 1, 1, %d])", op,
                  static_cast<int>(x.dims[0]), static_cast<int>(x.dims[3]),
                  static_cast<int>(x.dims[0]), static_cast<int>(x.dims[3]));
  return Status::kOk;
}

Status MeanGradEval(EvalContext& c) {
  if (!TrainMode(c)) return Status::kOk;
  MeanGrad(c.Input<float>(1), c.OutputShape(0), c.Output<float>(0));
  return Status::kOk;
}

// ---- TFLMTRAIN_PAD_GRAD -----------------------------------------------------

struct PadGradData {
  int32_t pad_before[kMaxRank] = {0};
};

void* PadGradInit(InitContext& c) { return NewOpData<PadGradData>(c); }

Status PadGradPrepare(PrepareContext& c) {
  const char* op = kPadGrad;
  PadGradData* data = nullptr;
  TT_RETURN_IF_ERROR(GetOpData(c, op, &data));
  TT_RETURN_IF_ERROR(CheckArity(c, op, 3, 1));
  TT_RETURN_IF_ERROR(CheckMode(c, op, 0));
  TensorDesc dy, paddings, dx;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 1, "y/grad", DataType::kFloat32, &dy));
  TT_RETURN_IF_ERROR(
      ReadInput(c, op, 2, "paddings", DataType::kInt32, &paddings));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, 0, "x/grad", DataType::kFloat32, &dx));
  const int rank = dx.shape.rank;
  if (dy.shape.rank != rank)
    return c.Fail("%s: y/grad and x/grad differ in rank", op);
  const auto* pads = static_cast<const int32_t*>(c.ConstantInputData(2));
  if (pads == nullptr || paddings.shape.rank != 2 ||
      paddings.shape.dims[0] != rank || paddings.shape.dims[1] != 2)
    return c.Fail("%s: paddings must be a constant int32 [%d, 2]", op, rank);
  for (int d = 0; d < rank; ++d) {
    const int32_t before = pads[2 * d];
    const int32_t after = pads[2 * d + 1];
    if (before < 0 || after < 0 ||
        static_cast<int64_t>(dx.shape.dims[d]) + before + after !=
            dy.shape.dims[d])
      return c.Fail("%s: dimension %d: x/grad %d + paddings %ld, %ld != "
                    "y/grad %d", op, d, static_cast<int>(dx.shape.dims[d]),
                    static_cast<long>(before), static_cast<long>(after),
                    static_cast<int>(dy.shape.dims[d]));
    data->pad_before[d] = before;
  }
  return Status::kOk;
}

Status PadGradEval(EvalContext& c) {
  if (!TrainMode(c)) return Status::kOk;
  const auto* data = static_cast<const PadGradData*>(c.OpData());
  PadGrad(c.InputShape(1), c.Input<float>(1), data->pad_before,
          c.OutputShape(0), c.Output<float>(0));
  return Status::kOk;
}

// ---- TFLMTRAIN_RESHAPE_GRAD -------------------------------------------------

Status ReshapeGradPrepare(PrepareContext& c) {
  const char* op = kReshapeGrad;
  TT_RETURN_IF_ERROR(CheckArity(c, op, 2, 1));
  TT_RETURN_IF_ERROR(CheckMode(c, op, 0));
  TensorDesc dy, dx;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 1, "y/grad", DataType::kFloat32, &dy));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, 0, "x/grad", DataType::kFloat32, &dx));
  return CheckElements(c, op, "x/grad", dx, dy.shape.FlatSize());
}

Status ReshapeGradEval(EvalContext& c) {
  if (!TrainMode(c)) return Status::kOk;
  ReshapeGrad(c.Input<float>(1), c.OutputShape(0).FlatSize(),
              c.Output<float>(0));
  return Status::kOk;
}

// ---- TFLMTRAIN_GRAD_SUM -----------------------------------------------------

struct GradSumData {
  int count = 0;
  const float** grads = nullptr;  // filled at each Eval
};

void* GradSumInit(InitContext& c) { return NewOpData<GradSumData>(c); }

Status GradSumPrepare(PrepareContext& c) {
  const char* op = kGradSum;
  GradSumData* data = nullptr;
  TT_RETURN_IF_ERROR(GetOpData(c, op, &data));
  const int n = c.NumInputs() - 1;
  if (n < 1 || c.NumOutputs() != 1)
    return c.Fail("%s: expected mode, at least one gradient and one output",
                  op);
  TT_RETURN_IF_ERROR(CheckMode(c, op, 0));
  TensorDesc out;
  TT_RETURN_IF_ERROR(ReadOutput(c, op, 0, "sum", DataType::kFloat32, &out));
  for (int i = 1; i <= n; ++i) {
    TensorDesc g;
    TT_RETURN_IF_ERROR(ReadInput(c, op, i, "gradient", DataType::kFloat32, &g));
    if (g.shape != out.shape)
      return c.Fail("%s: gradient %d differs in shape from the sum", op, i);
  }
  data->grads = static_cast<const float**>(
      c.AllocatePersistent(sizeof(const float*) * static_cast<size_t>(n)));
  if (data->grads == nullptr) return c.Fail("%s: out of persistent memory", op);
  data->count = n;
  return Status::kOk;
}

Status GradSumEval(EvalContext& c) {
  if (!TrainMode(c)) return Status::kOk;
  auto* data = static_cast<GradSumData*>(c.OpData());
  for (int i = 0; i < data->count; ++i) data->grads[i] = c.Input<float>(i + 1);
  GradSum(data->grads, data->count, c.OutputShape(0).FlatSize(),
          c.Output<float>(0));
  return Status::kOk;
}

// ---- Registry ---------------------------------------------------------------

const OpKernel kKernels[kNumTrainingOps] = {
    {-1, kInitVariables, InitVariablesInit, InitVariablesPrepare,
     InitVariablesEval, InitVariablesReset},
    {-1, kFullyConnectedRealOutput, FullyConnectedRealOutputInit,
     FullyConnectedRealOutputPrepare, RealOutputEval, nullptr},
    {-1, kConvRealOutput, ConvRealOutputInit, ConvRealOutputPrepare,
     RealOutputEval, nullptr},
    {-1, kSoftmaxCrossEntropy, CrossEntropyInit, CrossEntropyPrepare, LossEval,
     nullptr},
    {-1, kMeanSquaredError, SquaredErrorInit, SquaredErrorPrepare, LossEval,
     nullptr},
    {-1, kMeanAbsoluteError, AbsoluteErrorInit, AbsoluteErrorPrepare, LossEval,
     nullptr},
    {-1, kConvGrad, ConvGradInit, ConvGradPrepare, ConvGradEval, nullptr},
    {-1, kDepthwiseConvGrad, DepthwiseConvGradInit, DepthwiseConvGradPrepare,
     DepthwiseConvGradEval, nullptr},
    {-1, kFullyConnectedGrad, FullyConnectedGradInit,
     FullyConnectedGradPrepare, FullyConnectedGradEval, nullptr},
    {-1, kAddGrad, AddGradInit, AddGradPrepare, AddGradEval, nullptr},
    {-1, kAveragePoolGrad, PoolGradInit, AveragePoolGradPrepare,
     AveragePoolGradEval, nullptr},
    {-1, kMaxPoolGrad, PoolGradInit, MaxPoolGradPrepare, MaxPoolGradEval,
     nullptr},
    {-1, kMeanGrad, nullptr, MeanGradPrepare, MeanGradEval, nullptr},
    {-1, kPadGrad, PadGradInit, PadGradPrepare, PadGradEval, nullptr},
    {-1, kReshapeGrad, nullptr, ReshapeGradPrepare, ReshapeGradEval, nullptr},
    {-1, kGradSum, GradSumInit, GradSumPrepare, GradSumEval, nullptr},
    {-1, kOptimizerStep, OptimizerStepInit, OptimizerStepPrepare,
     OptimizerStepEval, nullptr},
    {-1, kImprint, ImprintInit, ImprintPrepare, ImprintEval, nullptr},
};

}  // namespace

const OpKernel* TrainingKernel(int i) {
  return i >= 0 && i < kNumTrainingOps ? &kKernels[i] : nullptr;
}

const OpKernel* FindTrainingKernel(const char* custom_name) {
  if (custom_name == nullptr) return nullptr;
  for (const OpKernel& kernel : kKernels)
    if (std::strcmp(kernel.custom_name, custom_name) == 0) return &kernel;
  return nullptr;
}

}  // namespace tflm_train
