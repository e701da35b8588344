#include "ops_cc/ops/training/training_kernels.h"

#include "ops_cc/kernels/grad/imprint.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

constexpr char kImprint[] = "TFLMTRAIN_IMPRINT";

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

}  // namespace

extern const OpKernel kImprintKernel = {
    -1,
    kImprint,
    ImprintInit,
    ImprintPrepare,
    ImprintEval,
    nullptr};

}  // namespace tflm_train
