#include "ops_cc/ops/training/training_kernels.h"

#include "ops_cc/kernels/grad/conv_grad.h"
#include "ops_cc/kernels/grad/depthwise_conv_grad.h"
#include "ops_cc/kernels/grad/fully_connected_grad.h"
#include "ops_cc/kernels/grad/optimizer_schedule.h"
#include "ops_cc/kernels/grad/sgd_update.h"
#include "ops_cc/kernels/real_output.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

constexpr char kConvGrad[] = "TFLMTRAIN_CONV_2D_GRAD";
constexpr char kDepthwiseConvGrad[] = "TFLMTRAIN_DEPTHWISE_CONV_2D_GRAD";
constexpr char kFullyConnectedGrad[] = "TFLMTRAIN_FULLY_CONNECTED_GRAD";

// ---- CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED gradients ----------------

enum class Layer { kConv, kDepthwise, kFullyConnected };

enum LayerInput {
  kLayerMode = 0,
  kLayerHparams,
  kLayerDy,
  // The int8 output y, the packed mask of TFLMTRAIN_PACK_MASK, or (the
  // output layer) its float32 real-valued output.
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
  // Optional, absent from models without it: the variable [k, ...] rows of a
  // channel-sliced filter (kernels/filter_slice.h); the filter is then the
  // frozen full filter and `channels` names the rows.
  kLayerSlice,
  kLayerNumInputs,
  // With an int8 y/grad, its scale follows (int8_grad.h); the model then
  // lists the slice slot, -1 when absent.
  kLayerDyScale = kLayerNumInputs,
};

struct LayerGradData {
  OptionError option_error;
  int stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  int padding = kPaddingSame;
  int depth_multiplier = 1;
  int activation = kActivationNone;
  bool update_weights = false, update_bias = false, qas = false;
  int rounding = 0;
  // Rounding of an int8 x/grad (op_util.h): 1 stochastic, from the rng.
  int grad_rounding = 0;
  int batch_size = 1;
  float momentum = 0.0f;
  // Options dy_broadcast_h / _w > 0: y/grad is the gradient of a spatial
  // MEAN of y [N, H, W, C] (y/grad [N, C] or [N, 1, 1, C]), fused here
  // (OutputGrad::broadcast_cells); 0: y/grad has y's shape.
  int broadcast_h = 0, broadcast_w = 0;
  // s_x: the `input_scale` option when x is absent, else x's scale (Prepare).
  float input_scale = 0.0f;
  // Filled by Prepare.
  int pad_h = 0, pad_w = 0;
  OutputMaskDesc mask;
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
  bool sliced = false;
  GradSlot dy, dx;  // dx.tensor -1: no x/grad
  // An int8 x/grad is written one input cell (its channels) at a time from
  // this scratch (int8_grad.h).
  int dx_cell_scratch = -1;
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
  data->grad_rounding = options.Optional("grad_rounding", 0);
  data->input_scale = options.OptionalFloat("input_scale", 0.0f);
  data->batch_size = options.Optional("batch_size", 1);
  data->momentum = options.OptionalFloat("momentum", 0.0f);
  data->broadcast_h = options.Optional("dy_broadcast_h", 0);
  data->broadcast_w = options.Optional("dy_broadcast_w", 0);
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
    const int m = data->depth_multiplier;
    if (m < 1 || out % m != 0)
      return c.Fail("%s: depth_multiplier %d does not divide the %d output "
                    "channels", op, m, out);
    if (filter.shape.dims[0] != 1 || filter.shape.dims[3] != out ||
        (x != nullptr && x->dims[3] * m != out))
      return c.Fail("%s: filter must be [1, KH, KW, %d] and x must have %d "
                    "channels", op, out, out / m);
  }
  if (out < 1) return c.Fail("%s: y has no channels", op);
  if (x != nullptr)
    TT_RETURN_IF_ERROR(WindowPadding(c, op, data->padding, data->stride_h,
                              data->stride_w, data->dilation_h,
                              data->dilation_w, filter.shape.dims[1],
                              filter.shape.dims[2], *x, y.shape, &data->pad_h,
                              &data->pad_w));
  *channels = out;
  return Status::kOk;
}

// y's shape: dy's, or with a fused MEAN gradient [N, H, W, C] from dy's
// N * C elements (C = dy's last dimension) and the broadcast options.
Shape OutputShape(const LayerGradData* data, const Shape& dy) {
  if (data->broadcast_h == 0) return dy;
  Shape y;
  y.rank = 4;
  y.dims[3] = dy.Last();
  y.dims[0] = y.dims[3] > 0 ? static_cast<int32_t>(dy.FlatSize() / y.dims[3]) : 0;
  y.dims[1] = data->broadcast_h;
  y.dims[2] = data->broadcast_w;
  return y;
}

Status LayerGradPrepare(PrepareContext& c, const char* op, Layer layer) {
  LayerGradData* data = nullptr;
  TT_RETURN_IF_ERROR(GetOpData(c, op, &data));
  TT_RETURN_IF_ERROR(CheckOptions(c, op, data->option_error));
  TensorDesc hparams, dy, y, x, dx, filter;
  int next_input = kLayerDyScale, next_output = 1;
  TT_RETURN_IF_ERROR(
      ReadGradInput(c, op, kLayerDy, "y/grad", &next_input, &dy, &data->dy));
  data->dx = GradSlot{};
  if (c.HasOutput(0))
    TT_RETURN_IF_ERROR(
        ReadGradOutput(c, op, 0, "x/grad", &next_output, &dx, &data->dx));
  // Models without a slice (and without an int8 y/grad) may end before its
  // slot.
  const bool short_form = c.NumInputs() == kLayerSlice && !data->dy.is_int8();
  // No x/grad: no output, or an absent one (-1).
  TT_RETURN_IF_ERROR(CheckArity(c, op, short_form ? kLayerSlice : next_input,
                                0, c.HasOutput(0) ? next_output : 1));
  if (data->rounding != 0 && data->rounding != 1)
    return c.Fail("%s: rounding must be 0 or 1, got %d", op, data->rounding);
  TT_RETURN_IF_ERROR(
      CheckGradRounding(c, op, data->grad_rounding, data->dx.is_int8()));

  if (data->batch_size < 1)
    return c.Fail("%s: batch_size must be >= 1, got %d", op, data->batch_size);
  if (!(data->momentum >= 0.0f && data->momentum < 1.0f))
    return c.Fail("%s: momentum must be in [0, 1)", op);

  TT_RETURN_IF_ERROR(CheckMode(c, op, kLayerMode));
  TT_RETURN_IF_ERROR(ReadInput(c, op, kLayerHparams, "optimizer_step",
                               DataType::kFloat32, &hparams));
  TT_RETURN_IF_ERROR(CheckElements(c, op, "optimizer_step", hparams, 3));
  if (!c.HasInput(kLayerY) || c.Input(kLayerY, &y) != Status::kOk)
    return c.Fail("%s: input %d (y) is missing", op, kLayerY);
  data->real_y = y.type == DataType::kFloat32;
  if (data->real_y && data->dy.is_int8())
    return c.Fail("%s: the output layer's y/grad must be float32", op);
  const bool broadcast = data->broadcast_h != 0 || data->broadcast_w != 0;
  if (broadcast) {
    if (layer == Layer::kFullyConnected || data->real_y ||
        data->broadcast_h < 1 || data->broadcast_w < 1 ||
        static_cast<int64_t>(data->broadcast_h) * data->broadcast_w > INT32_MAX)
      return c.Fail("%s: dy_broadcast_h %d / dy_broadcast_w %d need a "
                    "convolution with an int8 y or mask and positive sizes",
                    op, data->broadcast_h, data->broadcast_w);
    if (dy.shape.Last() < 1 ||
        (dy.shape.rank != 2 &&
         !(dy.shape.rank == 4 && dy.shape.dims[1] == 1 && dy.shape.dims[2] == 1)))
      return c.Fail("%s: with dy_broadcast_h / _w, y/grad must be [N, C] or "
                    "[N, 1, 1, C]", op);
  }
  // y's shape (y may be a packed mask): dy's unless a MEAN is fused.
  TensorDesc y_desc = dy;
  y_desc.shape = OutputShape(data, dy.shape);
  if (data->real_y) {
    if (!RealActivationBounds(data->activation, &data->real_lower,
                              &data->real_upper))
      return c.Fail("%s: unsupported activation %d", op, data->activation);
    if (data->activation != kActivationNone)
      TT_RETURN_IF_ERROR(c.RequestScratch(
          sizeof(float) * static_cast<size_t>(y.shape.FlatSize()),
          &data->masked_dy_scratch));
    TT_RETURN_IF_ERROR(CheckSameShape(c, op, "y/grad", dy, "y", y.shape));
  } else {
    TT_RETURN_IF_ERROR(ReadOutputMask(c, op, kLayerY, data->activation,
                                      y_desc.shape, &data->mask));
  }
  // x is read only by the weight gradient; without it, x/grad (if any) gives
  // its shape and the `input_scale` option s_x for the bias update.
  const bool has_x = data->update_weights || c.HasInput(kLayerX);
  if (has_x) {
    TT_RETURN_IF_ERROR(ReadInput(c, op, kLayerX, "x", DataType::kInt8, &x));
    TT_RETURN_IF_ERROR(CheckPerTensor(c, op, "x", x));
  }
  if (c.HasOutput(0) && has_x)
    TT_RETURN_IF_ERROR(CheckSameShape(c, op, "x/grad", dx, "x", x.shape));
  const Shape* x_shape =
      has_x ? &x.shape : (c.HasOutput(0) ? &dx.shape : nullptr);
  TT_RETURN_IF_ERROR(
      ReadInput(c, op, kLayerFilter, "filter", DataType::kInt8, &filter));
  int channels = 0;
  TT_RETURN_IF_ERROR(CheckLayerShapes(c, op, layer, data, x_shape, filter,
                                      y_desc, &channels));
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
  if (data->dx.is_int8()) {
    // One input cell: FULLY_CONNECTED's input depth, a convolution's channels.
    const int depth = layer == Layer::kFullyConnected ? filter.shape.dims[1]
                                                      : dx.shape.Last();
    TT_RETURN_IF_ERROR(c.RequestScratch(
        sizeof(float) * static_cast<size_t>(depth), &data->dx_cell_scratch));
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
  data->sliced = c.HasInput(kLayerSlice);
  if (data->sliced) {
    if (layer == Layer::kDepthwise)
      return c.Fail("%s: a depthwise filter cannot be channel-sliced", op);
    if (!data->update_weights)
      return c.Fail("%s: a slice is given but update_weights is not set", op);
    const int32_t* index = nullptr;
    TT_RETURN_IF_ERROR(CheckFilterSlice(c, op, kLayerSlice, kLayerChannels,
                                        filter, channels, &index));
  } else if (data->update_weights) {
    TT_RETURN_IF_ERROR(CheckVariable(c, op, "filter", filter));
  }

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

  // The rng draws for the int8 x/grad first, then for the update.
  data->uses_rng =
      (data->rounding == 1 && (data->update_weights || data->update_bias)) ||
      data->grad_rounding == 1;
  if (data->uses_rng) {
    TT_RETURN_IF_ERROR(ReadRngInput(c, op, kLayerRng));
  } else if (c.HasInput(kLayerRng)) {
    TensorDesc rng;
    TT_RETURN_IF_ERROR(
        ReadInput(c, op, kLayerRng, "rng", DataType::kInt32, &rng));
    TT_RETURN_IF_ERROR(CheckElements(c, op, "rng", rng, 1));
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

  uint32_t rng_state = data->uses_rng ? LoadRng(c, kLayerRng) : 0;
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
  OutputGrad g;
  if (!data->real_y) g = MaskedOutputGrad(c, data->dy, kLayerY, data->mask);
  if (data->masked_dy_scratch >= 0) {
    const float* dy = c.Input<float>(kLayerDy);
    auto* masked = static_cast<float*>(c.Scratch(data->masked_dy_scratch));
    const float* real_y = c.Input<float>(kLayerY);
    const int64_t n = c.InputShape(kLayerY).FlatSize();
    for (int64_t k = 0; k < n; ++k)
      masked[k] = real_y[k] > data->real_lower && real_y[k] < data->real_upper
                      ? dy[k]
                      : 0.0f;
    g.dy = masked;
  } else if (data->real_y) {
    g.dy = c.Input<float>(kLayerDy);
  }
  const Shape y_shape = OutputShape(data, c.InputShape(kLayerDy));
  if (data->broadcast_h != 0) {
    g.broadcast_cells = data->broadcast_h * data->broadcast_w;
    g.channels = y_shape.dims[3];
  }

  // An int8 x/grad is written first (from the weights before the update),
  // then the fused update runs without a float x/grad.
  const bool int8_dx = data->dx.is_int8();
  const GradRounding dx_rounding =
      GradRoundingOf(data->grad_rounding, &rng_state);
  float* dx = int8_dx ? nullptr : c.Output<float>(0);
  auto* dx_cell = int8_dx ? static_cast<float*>(c.Scratch(data->dx_cell_scratch))
                          : nullptr;
  if (layer == Layer::kFullyConnected) {
    FullyConnectedGradArgs a;
    const Shape filter_shape = c.InputShape(kLayerFilter);
    a.output_depth = filter_shape.dims[0];
    a.input_depth = filter_shape.dims[1];
    a.batches =
        static_cast<int>(y_shape.FlatSize() / a.output_depth);
    a.input_scale = data->input_scale;
    a.input_zero_point = data->input_zero_point;
    a.x = c.Input<int8_t>(kLayerX);
    a.filter = c.Input<int8_t>(kLayerFilter);
    a.filter_scales = weight_scales;
    a.g = g;
    if (data->sliced)
      a.slice = {c.Input<int8_t>(kLayerSlice), update.channels,
                 update.num_channels};
    if (int8_dx)
      WriteInt8CellGrad(
          [&](auto& sink) { FullyConnectedInputGradTo(a, sink); }, dx_cell,
          a.input_depth, Int8Output(c, data->dx, dx_rounding));
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
    a.x = c.Input<int8_t>(kLayerX);
    a.x_shape = a.x != nullptr ? c.InputShape(kLayerX) : c.OutputShape(0);
    a.filter_shape = c.InputShape(kLayerFilter);
    a.filter = c.Input<int8_t>(kLayerFilter);
    a.filter_scales = weight_scales;
    a.y_shape = y_shape;
    a.g = g;
    if (data->sliced)
      a.slice = {c.Input<int8_t>(kLayerSlice), update.channels,
                 update.num_channels};
    if (layer == Layer::kConv) {
      if (int8_dx)
        WriteInt8CellGrad([&](auto& sink) { ConvInputGradTo(a, sink); },
                          dx_cell, a.x_shape.Last(),
                          Int8Output(c, data->dx, dx_rounding));
      ConvGrad(a, dx, update);
    } else {
      if (int8_dx)
        WriteInt8CellGrad(
            [&](auto& sink) { DepthwiseConvInputGradTo(a, sink); }, dx_cell,
            a.x_shape.Last(), Int8Output(c, data->dx, dx_rounding));
      DepthwiseConvGrad(a, dx, update);
    }
  }
  if (data->uses_rng) StoreRng(c, kLayerRng, rng_state);
  return Status::kOk;
}

Status ConvGradEval(EvalContext& c) { return LayerGradEval(c, Layer::kConv); }
Status DepthwiseConvGradEval(EvalContext& c) {
  return LayerGradEval(c, Layer::kDepthwise);
}
Status FullyConnectedGradEval(EvalContext& c) {
  return LayerGradEval(c, Layer::kFullyConnected);
}

}  // namespace

extern const OpKernel kConvGradKernel = {
    -1,
    kConvGrad,
    ConvGradInit,
    ConvGradPrepare,
    ConvGradEval,
    nullptr};
extern const OpKernel kDepthwiseConvGradKernel = {
    -1,
    kDepthwiseConvGrad,
    DepthwiseConvGradInit,
    DepthwiseConvGradPrepare,
    DepthwiseConvGradEval,
    nullptr};
extern const OpKernel kFullyConnectedGradKernel = {
    -1,
    kFullyConnectedGrad,
    FullyConnectedGradInit,
    FullyConnectedGradPrepare,
    FullyConnectedGradEval,
    nullptr};

}  // namespace tflm_train
