// The helpers every op wrapper shares (the role of TFLM's kernel_util):
// custom-option parsing, op data, and the Prepare checks of tensor counts,
// types, shapes and quantization, each with a one-line error naming the op.
#ifndef TFLM_TRAIN_OPS_OP_UTIL_H_
#define TFLM_TRAIN_OPS_OP_UTIL_H_

#include <cstdint>
#include <cstring>
#include <new>

#include "ops_cc/core/flexbuffer.h"
#include "ops_cc/core/quantization.h"
#include "ops_cc/core/window.h"
#include "ops_cc/kernels/conv.h"  // ComputePerChannelMultipliers
#include "ops_cc/kernels/grad/grad_common.h"
#include "ops_cc/kernels/grad/int8_grad.h"
#include "ops_cc/ops/builtin_options.h"
#include "ops_cc/ops/kernel_context.h"

namespace tflm_train {

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

// NewOpData as an OpKernel init hook.
template <typename T>
void* InitOpData(InitContext& context) {
  return NewOpData<T>(context);
}

template <typename T>
inline Status GetOpData(PrepareContext& c, const char* op, T** data) {
  *data = static_cast<T*>(c.OpData());
  if (*data == nullptr) return c.Fail("%s: op data was not allocated", op);
  return Status::kOk;
}

Status CheckOptions(PrepareContext& c, const char* op, const OptionError& e);

Status CheckArity(PrepareContext& c, const char* op, int inputs, int outputs);

// For ops whose trailing outputs are omitted when nothing needs them (the
// model lists no -1 outputs: TFLM's planner cannot handle them).
Status CheckArity(PrepareContext& c, const char* op, int inputs,
                  int min_outputs, int max_outputs);

Status CheckType(PrepareContext& c, const char* op, const char* name,
                 const TensorDesc& d, DataType type);

Status ReadInput(PrepareContext& c, const char* op, int i, const char* name,
                 DataType type, TensorDesc* d);

Status ReadOutput(PrepareContext& c, const char* op, int i, const char* name,
                  DataType type, TensorDesc* d);

Status CheckElements(PrepareContext& c, const char* op, const char* name,
                     const TensorDesc& d, int64_t count);

Status CheckSameShape(PrepareContext& c, const char* op, const char* name,
                      const TensorDesc& d, const char* other_name,
                      const Shape& other);

Status CheckRank(PrepareContext& c, const char* op, const char* name,
                 const TensorDesc& d, int rank);

Status CheckVariable(PrepareContext& c, const char* op, const char* name,
                     const TensorDesc& d);


// An int8 tensor with one positive scale and an int8 zero point.
Status CheckPerTensor(PrepareContext& c, const char* op, const char* name,
                      const TensorDesc& d);

// Mode tensor: int32 [1].
Status CheckMode(PrepareContext& c, const char* op, int i);

// The activation mask of int8 output `y` (already checked per tensor).
Status MaskFor(PrepareContext& c, const char* op, int activation,
               const TensorDesc& y, ActivationMask* mask);

// The activation mask a gradient op reads at input `i`, for an output of
// shape `y_shape`: the int8 output y (per tensor, of that shape; range from
// `activation` by MaskFor), or the packed bits of TFLMTRAIN_PACK_MASK
// (uint8, ceil(elements(y) / 8) elements; the range was applied there).
struct OutputMaskDesc {
  bool packed = false;
  ActivationMask range;
};
Status ReadOutputMask(PrepareContext& c, const char* op, int i, int activation,
                      const Shape& y_shape, OutputMaskDesc* mask);

// ---- Gradient tensors ---------------------------------------------------------
// A gradient input or output is float32, or int8 with a dynamic scale
// (int8_grad.h): a float32 [1] tensor listed after the op's own inputs
// (outputs), one per int8 gradient input (output), in their order.
struct GradSlot {
  int tensor = -1;       // input / output index of the gradient
  int scale = -1;        // index of its scale; -1 when float32
  bool is_int8() const { return scale >= 0; }
};

// Reads gradient input i (float32 or int8); an int8 one takes the next scale
// input, *next_scale, which is then advanced.
Status ReadGradInput(PrepareContext& c, const char* op, int i,
                     const char* name, int* next_scale, TensorDesc* d,
                     GradSlot* slot);
Status ReadGradOutput(PrepareContext& c, const char* op, int i,
                      const char* name, int* next_scale, TensorDesc* d,
                      GradSlot* slot);

// The y/grad (input 1) and x/grad (output 0) of a gradient op with
// `num_inputs` inputs of its own and one output, both float32 or both int8
// (their scales then follow: input num_inputs, output 1); checks the counts,
// allowing `trailing_inputs` more inputs after the scale (the rng).
Status ReadGradPair(PrepareContext& c, const char* op, int num_inputs,
                    TensorDesc* dy, TensorDesc* dx, bool* int8,
                    int trailing_inputs = 0);

// ---- Rounding of int8 gradients -----------------------------------------------
// An op that quantizes the int8 gradient it writes (a layer gradient's
// x/grad, GRAD_SUM, AVERAGE_POOL_2D's gradient) rounds it as its option
// `grad_rounding` says (int8_grad.h): 0 nearest (the default), 1 stochastic,
// drawing from the model's xorshift32 state `tflm_train/rng`, an input it
// writes back after the op.

// Checks the option: 0 or 1, and 1 only with an int8 gradient output.
Status CheckGradRounding(PrepareContext& c, const char* op, int grad_rounding,
                         bool int8_output);

// The xorshift32 state at input i: a variable int32 [1] (also the layer
// gradients' stochastic weight rounding reads it there).
Status ReadRngInput(PrepareContext& c, const char* op, int i);

// Eval: the rounding the option asks for, drawing from *rng_state.
inline GradRounding GradRoundingOf(int grad_rounding, uint32_t* rng_state) {
  return GradRounding{
      grad_rounding == 1 ? Rounding::kStochastic : Rounding::kNearest,
      rng_state};
}

// Eval: the state at input i, and writing it back (4 bytes, any alignment).
inline uint32_t LoadRng(EvalContext& c, int i) {
  uint32_t state = 0;
  std::memcpy(&state, c.InputData(i), sizeof(state));
  return state;
}
inline void StoreRng(EvalContext& c, int i, uint32_t state) {
  std::memcpy(c.InputData(i), &state, sizeof(state));
}

// Op data of gradient ops that need only know whether their gradients are
// int8 (the Eval context cannot see tensor types).
struct GradTypeData {
  bool int8 = false;
};

// Eval: the int8 gradient written at output `slot`, rounded as `rounding`.
inline Int8GradOut Int8Output(EvalContext& c, const GradSlot& slot,
                              GradRounding rounding = GradRounding()) {
  return Int8GradOut{c.Output<int8_t>(slot.tensor), c.Output<float>(slot.scale),
                     rounding};
}

// Eval: sets g's dy (float32) or dy_q / dy_scale (int8) from input `slot`.
inline void SetOutputGradDy(EvalContext& c, const GradSlot& slot,
                            OutputGrad* g) {
  if (slot.is_int8()) {
    g->dy_q = c.Input<int8_t>(slot.tensor);
    g->dy_scale = *c.Input<float>(slot.scale);
  } else {
    g->dy = c.Input<float>(slot.tensor);
  }
}

inline bool TrainMode(EvalContext& c) { return *c.Input<int32_t>(0) != 0; }

// Eval: dy (input dy_input) masked by the mask at input mask_input.
inline OutputGrad MaskedOutputGrad(EvalContext& c, const GradSlot& dy,
                                   int mask_input, const OutputMaskDesc& m) {
  OutputGrad g;
  SetOutputGradDy(c, dy, &g);
  if (m.packed)
    g.bits = c.Input<uint8_t>(mask_input);
  else
    g.q_y = c.Input<int8_t>(mask_input);
  g.range = m.range;
  return g;
}


// ---- Forward ops ----------------------------------------------------------



Status ReadInput(PrepareContext& c, const char* op, int i, TensorDesc* desc);

Status ReadOutput(PrepareContext& c, const char* op, TensorDesc* desc);

// min_inputs..max_inputs inputs and one output.
Status CheckInputCount(PrepareContext& c, const char* op, int min_inputs,
                       int max_inputs);


inline float Scale(const TensorDesc& d) { return d.quant.scales[0]; }
inline int32_t ZeroPoint(const TensorDesc& d) { return d.quant.zero_points[0]; }

// An int8 tensor quantized per tensor.
Status CheckInt8PerTensor(PrepareContext& c, const char* op,
                          const char* name, const TensorDesc& d);

// Input 0 and output 0 of a forward op, both int8 quantized per tensor.
Status ReadInt8InputOutput(PrepareContext& c, const char* op,
                           TensorDesc* input, TensorDesc* output);

// Input 0 and output 0 of an op that only moves int8 values (slices,
// transposes, resizes, squeezes): as ReadInt8InputOutput, and with the same
// scale and zero point. TFLite's converter gives them the same; TFLM copies
// the bytes without looking, so different parameters would silently change
// what the values mean.
Status ReadInt8MoveInputOutput(PrepareContext& c, const char* op,
                               TensorDesc* input, TensorDesc* output);

// Eval of ops whose output holds the input's int8 bytes unchanged (only
// the shape differs): SQUEEZE, EXPAND_DIMS.
Status CopyInt8InputEval(EvalContext& c);

// Input i as a constant int32 tensor of `count` elements (any shape); *data
// points into the model.
Status ReadConstantInt32(PrepareContext& c, const char* op, int i,
                         const char* name, int64_t count,
                         const int32_t** data);

// The one input and one output of an elementwise int8 op (LOGISTIC, TANH,
// HARD_SWISH, LEAKY_RELU): both int8 quantized per tensor, of one shape.
Status ReadInt8Elementwise(PrepareContext& c, const char* op,
                           TensorDesc* input, TensorDesc* output);


// The two inputs and the output of an elementwise binary op (ADD, SUB, MUL,
// MAXIMUM, MINIMUM): two inputs and one output, all int8 quantized per
// tensor, input shapes that broadcast to the output's (ShapesBroadcast).
Status ReadBroadcastOperands(PrepareContext& c, const char* op,
                             TensorDesc* input1, TensorDesc* input2,
                             TensorDesc* output);

// Symmetric int8 weights with one scale, or one per channel along
// `dimension`.
Status CheckFilterScales(PrepareContext& c, const char* op,
                              const TensorDesc& d, int channels, int dimension);

// Reads the optional int32 bias (input 2) into `desc`; *present tells
// whether there is one.
// A channel-sliced filter (kernels/filter_slice.h) of `filter` (already
// checked, output channels along dimension 0): input `slice_input` an int8
// variable [k, filter dims 1..] quantized as the filter's channels it holds
// (their k scales, or the filter's one per-tensor scale), input
// `channels_input` a constant int32 [k] strictly increasing in
// [0, out_channels), 0 < k < out_channels. Returns the channel list.
Status CheckFilterSlice(PrepareContext& c, const char* op, int slice_input,
                        int channels_input, const TensorDesc& filter,
                        int out_channels, const int32_t** channels);

Status ReadBias(PrepareContext& c, const char* op, int channels,
                bool* present);

Status ActivationRange(PrepareContext& c, const char* op, int activation,
                       const TensorDesc& output, int32_t* act_min,
                       int32_t* act_max);

// Output height/width from the window options; checks them against the
// output tensor and returns the leading padding.
Status WindowPadding(PrepareContext& c, const char* op, int padding,
                     int stride_h, int stride_w, int dilation_h, int dilation_w,
                     int filter_h, int filter_w, const Shape& input,
                     const Shape& output, int* pad_h, int* pad_w);

// Per-channel requantization. The multipliers and shifts are formed in
// scratch at every Eval from the scales, which stay in the model
// (kernel_context.h), instead of being kept per channel in persistent memory
// (docs/architecture.md, "The standalone runtime").
struct ChannelRequant {
  float input_scale = 0.0f;
  float output_scale = 0.0f;
  const float* filter_scales = nullptr;
  int num_filter_scales = 0;  // 1 (broadcast) or `channels`
  int channels = 0;
  int scratch = -1;  // multipliers [channels], then shifts [channels]
};

Status PrepareChannelRequant(PrepareContext& c, const char* op,
                             const TensorDesc& input, const TensorDesc& filter,
                             const TensorDesc& output, int channels,
                             ChannelRequant* r);

// Returns the multipliers; the shifts follow them.
const int32_t* ComputeChannelRequant(EvalContext& c, const ChannelRequant& r);

Status RequireOpData(PrepareContext& c, const char* op);

}  // namespace tflm_train

#endif  // TFLM_TRAIN_OPS_OP_UTIL_H_
