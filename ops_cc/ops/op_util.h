// The helpers every op wrapper shares (the role of TFLM's kernel_util):
// custom-option parsing, op data, and the Prepare checks of tensor counts,
// types, shapes and quantization, each with a one-line error naming the op.
#ifndef TFLM_TRAIN_OPS_OP_UTIL_H_
#define TFLM_TRAIN_OPS_OP_UTIL_H_

#include <cstdint>
#include <new>

#include "ops_cc/core/flexbuffer.h"
#include "ops_cc/core/quantization.h"
#include "ops_cc/core/window.h"
#include "ops_cc/kernels/conv.h"  // ComputePerChannelMultipliers
#include "ops_cc/kernels/grad/grad_common.h"
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

inline Status CheckOptions(PrepareContext& c, const char* op, const OptionError& e) {
  if (e.key == nullptr) return Status::kOk;
  return c.Fail("%s: custom option '%s': %s", op, e.key,
                FlexStatusName(e.status));
}

inline Status CheckArity(PrepareContext& c, const char* op, int inputs, int outputs) {
  if (c.NumInputs() != inputs || c.NumOutputs() != outputs)
    return c.Fail("%s: expected %d inputs and %d outputs, got %d and %d", op,
                  inputs, outputs, c.NumInputs(), c.NumOutputs());
  return Status::kOk;
}

// For ops whose trailing outputs are omitted when nothing needs them (the
// model lists no -1 outputs: TFLM's planner cannot handle them).
inline Status CheckArity(PrepareContext& c, const char* op, int inputs,
                  int min_outputs, int max_outputs) {
  if (c.NumInputs() != inputs || c.NumOutputs() < min_outputs ||
      c.NumOutputs() > max_outputs)
    return c.Fail("%s: expected %d inputs and %d to %d outputs, got %d and %d",
                  op, inputs, min_outputs, max_outputs, c.NumInputs(),
                  c.NumOutputs());
  return Status::kOk;
}

inline Status CheckType(PrepareContext& c, const char* op, const char* name,
                 const TensorDesc& d, DataType type) {
  if (d.type != type)
    return c.Fail("%s: %s must be %s, got %s", op, name, DataTypeName(type),
                  DataTypeName(d.type));
  return Status::kOk;
}

inline Status ReadInput(PrepareContext& c, const char* op, int i, const char* name,
                 DataType type, TensorDesc* d) {
  if (!c.HasInput(i))
    return c.Fail("%s: input %d (%s) is missing", op, i, name);
  if (c.Input(i, d) != Status::kOk)
    return c.Fail("%s: cannot read input %d (%s)", op, i, name);
  return CheckType(c, op, name, *d, type);
}

inline Status ReadOutput(PrepareContext& c, const char* op, int i, const char* name,
                  DataType type, TensorDesc* d) {
  if (!c.HasOutput(i))
    return c.Fail("%s: output %d (%s) is missing", op, i, name);
  if (c.Output(i, d) != Status::kOk)
    return c.Fail("%s: cannot read output %d (%s)", op, i, name);
  return CheckType(c, op, name, *d, type);
}

inline Status CheckElements(PrepareContext& c, const char* op, const char* name,
                     const TensorDesc& d, int64_t count) {
  if (d.shape.FlatSize() != count)
    return c.Fail("%s: %s must have %ld elements, got %ld", op, name,
                  static_cast<long>(count),
                  static_cast<long>(d.shape.FlatSize()));
  return Status::kOk;
}

inline Status CheckSameShape(PrepareContext& c, const char* op, const char* name,
                      const TensorDesc& d, const char* other_name,
                      const Shape& other) {
  if (d.shape != other)
    return c.Fail("%s: %s shape differs from %s shape", op, name, other_name);
  return Status::kOk;
}

inline Status CheckRank(PrepareContext& c, const char* op, const char* name,
                 const TensorDesc& d, int rank) {
  if (d.shape.rank != rank)
    return c.Fail("%s: %s must have rank %d, got %d", op, name, rank,
                  d.shape.rank);
  return Status::kOk;
}

inline Status CheckVariable(PrepareContext& c, const char* op, const char* name,
                     const TensorDesc& d) {
  if (!d.is_variable)
    return c.Fail("%s: %s is updated but is not a variable tensor", op, name);
  return Status::kOk;
}


// An int8 tensor with one positive scale and an int8 zero point.
inline Status CheckPerTensor(PrepareContext& c, const char* op, const char* name,
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

// Mode tensor: int32 [1].
inline Status CheckMode(PrepareContext& c, const char* op, int i) {
  TensorDesc d;
  TT_RETURN_IF_ERROR(ReadInput(c, op, i, "mode", DataType::kInt32, &d));
  return CheckElements(c, op, "mode", d, 1);
}

// The activation mask of int8 output `y` (already checked per tensor).
inline Status MaskFor(PrepareContext& c, const char* op, int activation,
               const TensorDesc& y, ActivationMask* mask) {
  if (!CalculateActivationRangeInt8(activation, y.quant.scales[0],
                                    y.quant.zero_points[0], &mask->act_min,
                                    &mask->act_max))
    return c.Fail("%s: unsupported activation %d", op, activation);
  return Status::kOk;
}

inline bool TrainMode(EvalContext& c) { return *c.Input<int32_t>(0) != 0; }


// ---- Forward ops ----------------------------------------------------------



inline Status ReadInput(PrepareContext& c, const char* op, int i, TensorDesc* desc) {
  if (!c.HasInput(i)) return c.Fail("%s: input %d is missing", op, i);
  if (c.Input(i, desc) != Status::kOk) {
    return c.Fail("%s: cannot read input %d", op, i);
  }
  return Status::kOk;
}

inline Status ReadOutput(PrepareContext& c, const char* op, TensorDesc* desc) {
  if (!c.HasOutput(0)) return c.Fail("%s: output 0 is missing", op);
  if (c.Output(0, desc) != Status::kOk) {
    return c.Fail("%s: cannot read output 0", op);
  }
  return Status::kOk;
}

// min_inputs..max_inputs inputs and one output.
inline Status CheckInputCount(PrepareContext& c, const char* op, int min_inputs,
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


inline float Scale(const TensorDesc& d) { return d.quant.scales[0]; }
inline int32_t ZeroPoint(const TensorDesc& d) { return d.quant.zero_points[0]; }

// An int8 tensor quantized per tensor.
inline Status CheckInt8PerTensor(PrepareContext& c, const char* op,
                                 const char* name, const TensorDesc& d) {
  TT_RETURN_IF_ERROR(CheckType(c, op, name, d, DataType::kInt8));
  return CheckPerTensor(c, op, name, d);
}

// Input 0 and output 0 of a forward op, both int8 quantized per tensor.
inline Status ReadInt8InputOutput(PrepareContext& c, const char* op,
                                  TensorDesc* input, TensorDesc* output) {
  TT_RETURN_IF_ERROR(ReadInput(c, op, 0, input));
  TT_RETURN_IF_ERROR(ReadOutput(c, op, output));
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "input", *input));
  return CheckInt8PerTensor(c, op, "output", *output);
}


// Symmetric int8 weights with one scale, or one per channel along
// `dimension`.
inline Status CheckFilterScales(PrepareContext& c, const char* op,
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

// Reads the optional int32 bias (input 2) into `desc`; *present tells
// whether there is one.
inline Status ReadBias(PrepareContext& c, const char* op, int channels,
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

inline Status ActivationRange(PrepareContext& c, const char* op, int activation,
                       const TensorDesc& output, int32_t* act_min,
                       int32_t* act_max) {
  if (!CalculateActivationRangeInt8(activation, Scale(output),
                                    ZeroPoint(output), act_min, act_max)) {
    return c.Fail("%s: unsupported fused activation %d for this output", op,
                  activation);
  }
  return Status::kOk;
}

// Output height/width from the window options; checks them against the
// output tensor and returns the leading padding.
inline Status WindowPadding(PrepareContext& c, const char* op, int padding,
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

inline Status PrepareChannelRequant(PrepareContext& c, const char* op,
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

// Returns the multipliers; the shifts follow them.
inline const int32_t* ComputeChannelRequant(EvalContext& c, const ChannelRequant& r) {
  auto* multipliers = static_cast<int32_t*>(c.Scratch(r.scratch));
  ComputePerChannelMultipliers(r.input_scale, r.filter_scales,
                               r.num_filter_scales, r.output_scale, r.channels,
                               multipliers, multipliers + r.channels);
  return multipliers;
}

inline Status RequireOpData(PrepareContext& c, const char* op) {
  return c.OpData() != nullptr ? Status::kOk
                               : c.Fail("%s: op data was not allocated", op);
}

}  // namespace tflm_train

#endif  // TFLM_TRAIN_OPS_OP_UTIL_H_
