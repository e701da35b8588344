#include "ops_cc/ops/op_util.h"

#include <cstdio>
#include <cstring>

#include "ops_cc/kernels/broadcast.h"

namespace tflm_train {

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

namespace {

// The scale of an int8 gradient: float32 [1] at input (or output) *next.
Status ReadGradScale(PrepareContext& c, const char* op, const char* name,
                     bool is_input, int* next, GradSlot* slot) {
  TensorDesc scale;
  const int i = (*next)++;
  const bool present = is_input ? c.HasInput(i) : c.HasOutput(i);
  if (!present ||
      (is_input ? c.Input(i, &scale) : c.Output(i, &scale)) != Status::kOk)
    return c.Fail("%s: %s is int8 but its scale (%s %d) is missing", op, name,
                  is_input ? "input" : "output", i);
  if (scale.type != DataType::kFloat32 || scale.shape.FlatSize() != 1)
    return c.Fail("%s: the scale of int8 %s (%s %d) must be float32 [1]", op,
                  name, is_input ? "input" : "output", i);
  slot->scale = i;
  return Status::kOk;
}

Status CheckGradType(PrepareContext& c, const char* op, const char* name,
                     const TensorDesc& d) {
  if (d.type != DataType::kFloat32 && d.type != DataType::kInt8)
    return c.Fail("%s: %s must be float32 or int8, got %s", op, name,
                  DataTypeName(d.type));
  return Status::kOk;
}

}  // namespace

namespace {

// ReadGradInput / ReadGradOutput: input (is_input) or output i.
Status ReadGrad(PrepareContext& c, const char* op, bool is_input, int i,
                const char* name, int* next_scale, TensorDesc* d,
                GradSlot* slot) {
  const char* kind = is_input ? "input" : "output";
  *slot = GradSlot{i, -1};
  if (!(is_input ? c.HasInput(i) : c.HasOutput(i)))
    return c.Fail("%s: %s %d (%s) is missing", op, kind, i, name);
  if ((is_input ? c.Input(i, d) : c.Output(i, d)) != Status::kOk)
    return c.Fail("%s: cannot read %s %d (%s)", op, kind, i, name);
  TT_RETURN_IF_ERROR(CheckGradType(c, op, name, *d));
  if (d->type != DataType::kInt8) return Status::kOk;
  return ReadGradScale(c, op, name, is_input, next_scale, slot);
}

}  // namespace

Status ReadGradInput(PrepareContext& c, const char* op, int i,
                     const char* name, int* next_scale, TensorDesc* d,
                     GradSlot* slot) {
  return ReadGrad(c, op, true, i, name, next_scale, d, slot);
}

Status ReadGradOutput(PrepareContext& c, const char* op, int i,
                      const char* name, int* next_scale, TensorDesc* d,
                      GradSlot* slot) {
  return ReadGrad(c, op, false, i, name, next_scale, d, slot);
}

Status ReadGradPair(PrepareContext& c, const char* op, int num_inputs,
                    TensorDesc* dy, TensorDesc* dx, bool* int8,
                    int trailing_inputs) {
  GradSlot dy_slot, dx_slot;
  int next_input = num_inputs, next_output = 1;
  TT_RETURN_IF_ERROR(
      ReadGradInput(c, op, 1, "y/grad", &next_input, dy, &dy_slot));
  TT_RETURN_IF_ERROR(
      ReadGradOutput(c, op, 0, "x/grad", &next_output, dx, &dx_slot));
  TT_RETURN_IF_ERROR(
      CheckArity(c, op, next_input + trailing_inputs, next_output));
  if (dx->type != dy->type)
    return c.Fail("%s: x/grad must have y/grad's type", op);
  *int8 = dx->type == DataType::kInt8;
  return Status::kOk;
}

Status CheckGradRounding(PrepareContext& c, const char* op, int grad_rounding,
                         bool int8_output) {
  if (grad_rounding != 0 && grad_rounding != 1)
    return c.Fail("%s: grad_rounding must be 0 or 1, got %d", op,
                  grad_rounding);
  if (grad_rounding == 1 && !int8_output)
    return c.Fail("%s: grad_rounding 1 (stochastic) needs an int8 gradient "
                  "output", op);
  return Status::kOk;
}

Status ReadRngInput(PrepareContext& c, const char* op, int i) {
  TensorDesc rng;
  TT_RETURN_IF_ERROR(ReadInput(c, op, i, "rng", DataType::kInt32, &rng));
  TT_RETURN_IF_ERROR(CheckElements(c, op, "rng", rng, 1));
  return CheckVariable(c, op, "rng", rng);
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

Status CheckPerTensor(PrepareContext& c, const char* op, const char* name,
                      const TensorDesc& d) {
  if (d.quant.count != 1)
    return c.Fail("%s: %s must be quantized per tensor, got %d scales", op,
                  name, d.quant.count);
  if (!IsValidScale(d.quant.scales[0]))
    return c.Fail("%s: %s scale must be a finite positive normal float, got %g",
                  op, name, static_cast<double>(d.quant.scales[0]));
  if (d.quant.zero_points[0] < -128 || d.quant.zero_points[0] > 127)
    return c.Fail("%s: %s zero point %ld is outside int8", op, name,
                  static_cast<long>(d.quant.zero_points[0]));
  return Status::kOk;
}

Status CheckMode(PrepareContext& c, const char* op, int i) {
  TensorDesc d;
  TT_RETURN_IF_ERROR(ReadInput(c, op, i, "mode", DataType::kInt32, &d));
  return CheckElements(c, op, "mode", d, 1);
}

Status MaskFor(PrepareContext& c, const char* op, int activation,
               const TensorDesc& y, ActivationMask* mask) {
  if (!CalculateActivationRangeInt8(activation, y.quant.scales[0],
                                    y.quant.zero_points[0], &mask->act_min,
                                    &mask->act_max))
    return c.Fail("%s: unsupported activation %d", op, activation);
  return Status::kOk;
}

Status ReadOutputMask(PrepareContext& c, const char* op, int i, int activation,
                      const Shape& y_shape, OutputMaskDesc* mask) {
  TensorDesc y;
  TT_RETURN_IF_ERROR(ReadInput(c, op, i, &y));
  mask->packed = y.type == DataType::kUInt8;
  if (mask->packed) {
    const int64_t bytes = (y_shape.FlatSize() + 7) / 8;
    if (y.shape.FlatSize() != bytes)
      return c.Fail("%s: packed mask (input %d) has %ld bytes, expected %ld "
                    "for the %ld elements of y", op, i,
                    static_cast<long>(y.shape.FlatSize()),
                    static_cast<long>(bytes),
                    static_cast<long>(y_shape.FlatSize()));
    return Status::kOk;
  }
  if (y.type != DataType::kInt8)
    return c.Fail("%s: input %d (y) must be int8 or a packed uint8 mask, got "
                  "%s", op, i, DataTypeName(y.type));
  TT_RETURN_IF_ERROR(CheckPerTensor(c, op, "y", y));
  if (y.shape != y_shape)
    return c.Fail("%s: y/grad shape differs from y shape", op);
  return MaskFor(c, op, activation, y, &mask->range);
}

Status ReadInput(PrepareContext& c, const char* op, int i, TensorDesc* desc) {
  if (!c.HasInput(i)) return c.Fail("%s: input %d is missing", op, i);
  if (c.Input(i, desc) != Status::kOk) {
    return c.Fail("%s: cannot read input %d", op, i);
  }
  return Status::kOk;
}

Status ReadOutput(PrepareContext& c, const char* op, TensorDesc* desc) {
  if (!c.HasOutput(0)) return c.Fail("%s: output 0 is missing", op);
  if (c.Output(0, desc) != Status::kOk) {
    return c.Fail("%s: cannot read output 0", op);
  }
  return Status::kOk;
}

Status CheckInputCount(PrepareContext& c, const char* op, int min_inputs,
                       int max_inputs) {
  const int n = c.NumInputs();
  if (n < min_inputs || n > max_inputs) {
    if (min_inputs == max_inputs) {
      return c.Fail("%s: expected %d inputs, got %d", op, min_inputs, n);
    }
    return c.Fail("%s: expected %d to %d inputs, got %d", op, min_inputs,
                  max_inputs, n);
  }
  if (c.NumOutputs() != 1) {
    return c.Fail("%s: expected 1 output, got %d", op, c.NumOutputs());
  }
  return Status::kOk;
}

Status CheckInt8PerTensor(PrepareContext& c, const char* op,
                          const char* name, const TensorDesc& d) {
  TT_RETURN_IF_ERROR(CheckType(c, op, name, d, DataType::kInt8));
  return CheckPerTensor(c, op, name, d);
}

Status ReadInt8InputOutput(PrepareContext& c, const char* op,
                           TensorDesc* input, TensorDesc* output) {
  TT_RETURN_IF_ERROR(ReadInput(c, op, 0, input));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, output));
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "input", *input));
  return CheckInt8PerTensor(c, op, "output", *output);
}

Status ReadInt8MoveInputOutput(PrepareContext& c, const char* op,
                               TensorDesc* input, TensorDesc* output) {
  TT_RETURN_IF_ERROR(ReadInt8InputOutput(c, op, input, output));
  if (Scale(*input) != Scale(*output) ||
      ZeroPoint(*input) != ZeroPoint(*output)) {
    return c.Fail(
        "%s: output quantization (scale %g, zero point %ld) differs from the "
        "input's (%g, %ld)",
        op, static_cast<double>(Scale(*output)),
        static_cast<long>(ZeroPoint(*output)),
        static_cast<double>(Scale(*input)),
        static_cast<long>(ZeroPoint(*input)));
  }
  return Status::kOk;
}

namespace {

// "[1, 6, 6, 8]" into `text` (at least 80 bytes).
const char* FormatShape(const Shape& s, char* text, size_t size) {
  size_t n = 0;
  n += static_cast<size_t>(snprintf(text, size, "["));
  for (int i = 0; i < s.rank && n < size; ++i) {
    n += static_cast<size_t>(snprintf(text + n, size - n, i ? ", %ld" : "%ld",
                                      static_cast<long>(s.dims[i])));
  }
  if (n < size) snprintf(text + n, size - n, "]");
  return text;
}

}  // namespace

Status ReadBroadcastOperands(PrepareContext& c, const char* op,
                             TensorDesc* input1, TensorDesc* input2,
                             TensorDesc* output) {
  TT_RETURN_IF_ERROR(CheckInputCount(c, op, 2, 2));
  TT_RETURN_IF_ERROR(ReadInput(c, op, 0, input1));
  TT_RETURN_IF_ERROR(ReadInput(c, op, 1, input2));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, output));
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "input 0", *input1));
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "input 1", *input2));
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "output", *output));
  if (!ShapesBroadcast(input1->shape, input2->shape, output->shape)) {
    char a[96], b[96], o[96];
    return c.Fail("%s: input shapes %s and %s do not broadcast to output shape %s",
                  op, FormatShape(input1->shape, a, sizeof(a)),
                  FormatShape(input2->shape, b, sizeof(b)),
                  FormatShape(output->shape, o, sizeof(o)));
  }
  return Status::kOk;
}

Status CopyInt8InputEval(EvalContext& c) {
  std::memcpy(c.OutputData(0), c.InputData(0),
              static_cast<size_t>(c.InputShape(0).FlatSize()));
  return Status::kOk;
}

Status ReadConstantInt32(PrepareContext& c, const char* op, int i,
                         const char* name, int64_t count,
                         const int32_t** data) {
  TensorDesc d;
  TT_RETURN_IF_ERROR(ReadInput(c, op, i, &d));
  *data = static_cast<const int32_t*>(c.ConstantInputData(i));
  if (d.type != DataType::kInt32 || *data == nullptr) {
    return c.Fail("%s: %s must be a constant int32 tensor", op, name);
  }
  if (d.shape.FlatSize() != count) {
    return c.Fail("%s: %s has %ld elements, expected %ld", op, name,
                  static_cast<long>(d.shape.FlatSize()),
                  static_cast<long>(count));
  }
  return Status::kOk;
}

Status ReadInt8Elementwise(PrepareContext& c, const char* op,
                           TensorDesc* input, TensorDesc* output) {
  TT_RETURN_IF_ERROR(CheckInputCount(c, op, 1, 1));
  TT_RETURN_IF_ERROR(ReadInt8InputOutput(c, op, input, output));
  return CheckSameShape(c, op, "output", *output, "input", input->shape);
}

Status CheckFilterScales(PrepareContext& c, const char* op,
                              const TensorDesc& d, int channels, int dimension) {
  if (d.type != DataType::kInt8) {
    return c.Fail("%s: filter must be int8, got %s", op, DataTypeName(d.type));
  }
  const QuantParams& q = d.quant;
  if (q.count != 1 &&
      (q.count != channels || q.quantized_dimension != dimension)) {
    return c.Fail(
        "%s: filter needs 1 scale or %d along dimension %d, got %d along %d",
        op, channels, dimension, q.count, q.quantized_dimension);
  }
  for (int i = 0; i < q.count; ++i) {
    if (!IsValidScale(q.scales[i])) {
      return c.Fail("%s: filter scale %d must be a finite positive normal float, got %g",
                    op, i, static_cast<double>(q.scales[i]));
    }
    if (q.zero_points[i] != 0) {
      return c.Fail("%s: filter zero point %d must be 0, got %ld", op, i,
                    static_cast<long>(q.zero_points[i]));
    }
  }
  return Status::kOk;
}

Status CheckFilterSlice(PrepareContext& c, const char* op, int slice_input,
                        int channels_input, const TensorDesc& filter,
                        int out_channels, const int32_t** channels) {
  TensorDesc slice, list;
  TT_RETURN_IF_ERROR(
      ReadInput(c, op, slice_input, "slice", DataType::kInt8, &slice));
  TT_RETURN_IF_ERROR(CheckVariable(c, op, "slice", slice));
  TT_RETURN_IF_ERROR(
      ReadInput(c, op, channels_input, "channels", DataType::kInt32, &list));
  const auto* index =
      static_cast<const int32_t*>(c.ConstantInputData(channels_input));
  if (list.shape.rank != 1 || index == nullptr)
    return c.Fail("%s: channels must be a constant int32 [k]", op);
  const int k = list.shape.dims[0];
  if (k < 1 || k >= out_channels)
    return c.Fail("%s: channels has %d entries; a slice holds 1 to %d of the "
                  "%d channels", op, k, out_channels - 1, out_channels);
  for (int j = 0; j < k; ++j) {
    if (index[j] < 0 || index[j] >= out_channels ||
        (j > 0 && index[j] <= index[j - 1]))
      return c.Fail("%s: channels must be increasing and in [0, %d)", op,
                    out_channels);
  }
  bool shape_ok = slice.shape.rank == filter.shape.rank && slice.shape.dims[0] == k;
  for (int d = 1; shape_ok && d < filter.shape.rank; ++d)
    shape_ok = slice.shape.dims[d] == filter.shape.dims[d];
  if (!shape_ok)
    return c.Fail("%s: slice must be the filter's shape with %d rows (one per "
                  "channel listed)", op, k);
  const QuantParams& fq = filter.quant;
  const QuantParams& sq = slice.quant;
  bool quant_ok = sq.count == (fq.count == 1 ? 1 : k) &&
                  (sq.count == 1 || sq.quantized_dimension == 0);
  for (int j = 0; quant_ok && j < sq.count; ++j)
    quant_ok = sq.zero_points[j] == 0 &&
               sq.scales[j] == fq.scales[fq.count == 1 ? 0 : index[j]];
  if (!quant_ok)
    return c.Fail("%s: slice must carry the filter's scales of its channels "
                  "(zero points 0)", op);
  *channels = index;
  return Status::kOk;
}

Status ReadBias(PrepareContext& c, const char* op, int channels,
                bool* present) {
  *present = c.NumInputs() > 2 && c.HasInput(2);
  if (!*present) return Status::kOk;
  TensorDesc bias;
  TT_RETURN_IF_ERROR(ReadInput(c, op, 2, &bias));
  if (bias.type != DataType::kInt32) {
    return c.Fail("%s: bias must be int32, got %s", op,
                  DataTypeName(bias.type));
  }
  if (bias.shape.FlatSize() != channels) {
    return c.Fail("%s: bias has %ld elements, expected %d", op,
                  static_cast<long>(bias.shape.FlatSize()), channels);
  }
  return Status::kOk;
}

Status ActivationRange(PrepareContext& c, const char* op, int activation,
                       const TensorDesc& output, int32_t* act_min,
                       int32_t* act_max) {
  if (!CalculateActivationRangeInt8(activation, Scale(output),
                                    ZeroPoint(output), act_min, act_max)) {
    return c.Fail("%s: unsupported fused activation %d for this output", op,
                  activation);
  }
  return Status::kOk;
}

Status WindowPadding(PrepareContext& c, const char* op, int padding,
                     int stride_h, int stride_w, int dilation_h, int dilation_w,
                     int filter_h, int filter_w, const Shape& input,
                     const Shape& output, int* pad_h, int* pad_w) {
  int out_h = 0, out_w = 0;
  if (!ComputeWindowGeometry(padding, input.dims[1], filter_h, stride_h,
                             dilation_h, &out_h, pad_h) ||
      !ComputeWindowGeometry(padding, input.dims[2], filter_w, stride_w,
                             dilation_w, &out_w, pad_w)) {
    return c.Fail(
        "%s: invalid window (padding %d, stride %dx%d, dilation %dx%d, "
        "filter %dx%d)",
        op, padding, stride_h, stride_w, dilation_h, dilation_w, filter_h,
        filter_w);
  }
  if (output.dims[1] != out_h || output.dims[2] != out_w) {
    return c.Fail("%s: output is %dx%d, the window gives %dx%d", op,
                  static_cast<int>(output.dims[1]),
                  static_cast<int>(output.dims[2]), out_h, out_w);
  }
  if (output.dims[0] != input.dims[0]) {
    return c.Fail("%s: output batch %d differs from input batch %d", op,
                  static_cast<int>(output.dims[0]),
                  static_cast<int>(input.dims[0]));
  }
  return Status::kOk;
}

Status PrepareChannelRequant(PrepareContext& c, const char* op,
                             const TensorDesc& input, const TensorDesc& filter,
                             const TensorDesc& output, int channels,
                             ChannelRequant* r) {
  // Eval's computation, per distinct scale, so that a scale out of range
  // fails here.
  for (int k = 0; k < filter.quant.count; ++k) {
    int32_t multiplier = 0, shift = 0;
    if (!ComputePerChannelMultipliers(Scale(input), filter.quant.scales + k, 1,
                                      Scale(output), 1, &multiplier, &shift)) {
      return c.Fail("%s: input * filter / output scale is out of range", op);
    }
  }
  r->input_scale = Scale(input);
  r->output_scale = Scale(output);
  r->filter_scales = filter.quant.scales;
  r->num_filter_scales = filter.quant.count;
  r->channels = channels;
  return c.RequestScratch(2 * sizeof(int32_t) * static_cast<size_t>(channels),
                          &r->scratch);
}

const int32_t* ComputeChannelRequant(EvalContext& c, const ChannelRequant& r) {
  auto* multipliers = static_cast<int32_t*>(c.Scratch(r.scratch));
  ComputePerChannelMultipliers(r.input_scale, r.filter_scales,
                               r.num_filter_scales, r.output_scale, r.channels,
                               multipliers, multipliers + r.channels);
  return multipliers;
}

Status RequireOpData(PrepareContext& c, const char* op) {
  return c.OpData() != nullptr ? Status::kOk
                               : c.Fail("%s: op data was not allocated", op);
}

}  // namespace tflm_train
