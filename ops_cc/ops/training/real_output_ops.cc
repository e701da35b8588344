#include "ops_cc/ops/training/training_kernels.h"

#include "ops_cc/kernels/real_output.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

constexpr char kFullyConnectedRealOutput[] =
    "TFLMTRAIN_FULLY_CONNECTED_REAL_OUTPUT";
constexpr char kConvRealOutput[] = "TFLMTRAIN_CONV_2D_REAL_OUTPUT";

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
    TT_RETURN_IF_ERROR(WindowPadding(c, op, data->padding, g.stride_h, g.stride_w,
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

}  // namespace

extern const OpKernel kFullyConnectedRealOutputKernel = {
    -1,
    kFullyConnectedRealOutput,
    FullyConnectedRealOutputInit,
    FullyConnectedRealOutputPrepare,
    RealOutputEval,
    nullptr};
extern const OpKernel kConvRealOutputKernel = {
    -1,
    kConvRealOutput,
    ConvRealOutputInit,
    ConvRealOutputPrepare,
    RealOutputEval,
    nullptr};

}  // namespace tflm_train
