#include "ops_cc/ops/forward/forward_kernels.h"

#include <cmath>
#include <cstdio>

#include "ops_cc/kernels/lstm.h"
#include "ops_cc/ops/op_util.h"

namespace tflm_train {
namespace {

// ---- UNIDIRECTIONAL_SEQUENCE_LSTM --------------------------------------
//
// TFLM's 8x8->16 integer LSTM. Inputs (TFLite's order): 0 input;
// 1-4 input weights and 5-8 recurrent weights of the input, forget, cell
// and output gates; 9-11 peephole weights; 12-15 gate biases; 16-17
// projection weights and bias; 18 hidden state and 19 cell state
// (variables); 20-23 layer-norm coefficients. The operator's intermediates
// are not read: without layer norm TFLM fixes the gate scales (2^-12 before
// the nonlinearity, 2^-15 after).

constexpr int kNumInputs = 24;
constexpr int kInput = 0;
constexpr int kInputWeights = 1;      // + gate
constexpr int kRecurrentWeights = 5;  // + gate
constexpr int kBias = 12;             // + gate
constexpr int kHiddenState = 18;
constexpr int kCellState = 19;
constexpr float kGateInputScale = 1.0f / 4096.0f;    // Q3.12
constexpr float kGateOutputScale = 1.0f / 32768.0f;  // Q0.15

struct LstmOpData {
  LstmParams params;
  int scratch = -1;
};

const char* const kGateNames[kLstmNumGates] = {"input", "forget", "cell",
                                               "output"};

Status RefuseVariant(PrepareContext& c, const char* op, int first, int last,
                     const char* feature) {
  for (int i = first; i <= last; ++i) {
    if (c.HasInput(i)) {
      return c.Fail("%s: %s (input %d) is not supported", op, feature, i);
    }
  }
  return Status::kOk;
}

// A constant int8 weight matrix [rows, cols], symmetric, one scale.
Status CheckWeights(PrepareContext& c, const char* op, int i, const char* kind,
                    int gate, int rows, int cols, TensorDesc* d) {
  char name[40];
  snprintf(name, sizeof(name), "%s %s weights", kGateNames[gate], kind);
  if (!c.HasInput(i)) {
    return c.Fail("%s: %s (input %d) are missing", op, name, i);
  }
  TT_RETURN_IF_ERROR(ReadInput(c, op, i, name, DataType::kInt8, d));
  if (!d->is_constant) return c.Fail("%s: %s must be constant", op, name);
  if (d->shape.rank != 2 || d->shape.dims[0] != rows ||
      d->shape.dims[1] != cols) {
    return c.Fail("%s: %s must be [%d, %d]", op, name, rows, cols);
  }
  if (d->quant.count != 1) {
    return c.Fail("%s: %s must be quantized per tensor, got %d scales", op,
                  name, d->quant.count);
  }
  if (!IsValidScale(Scale(*d))) {
    return c.Fail("%s: %s scale must be a finite positive normal float", op,
                  name);
  }
  if (ZeroPoint(*d) != 0) {
    return c.Fail("%s: %s zero point must be 0, got %ld", op, name,
                  static_cast<long>(ZeroPoint(*d)));
  }
  return Status::kOk;
}

Status CheckBias(PrepareContext& c, const char* op, int gate, int units) {
  const int i = kBias + gate;
  char name[24];
  snprintf(name, sizeof(name), "%s gate bias", kGateNames[gate]);
  if (!c.HasInput(i)) {
    return c.Fail("%s: %s (input %d) is missing", op, name, i);
  }
  TensorDesc d;
  TT_RETURN_IF_ERROR(ReadInput(c, op, i, name, DataType::kInt32, &d));
  if (!d.is_constant) return c.Fail("%s: %s must be constant", op, name);
  if (d.shape.rank != 1 || d.shape.dims[0] != units) {
    return c.Fail("%s: %s must be [%d]", op, name, units);
  }
  return Status::kOk;
}

Status LstmPrepare(PrepareContext& c) {
  const char* op = "UNIDIRECTIONAL_SEQUENCE_LSTM";
  LstmOpData* data = nullptr;
  TT_RETURN_IF_ERROR(GetOpData(c, op, &data));
  const auto* o = static_cast<const SequenceLstmOptions*>(c.BuiltinOptions());
  if (o == nullptr) return c.Fail("%s: missing builtin options", op);
  TT_RETURN_IF_ERROR(CheckArity(c, op, kNumInputs, 1));

  // Variants of the standard cell.
  if (!c.HasInput(kInputWeights + kLstmInputGate) &&
      !c.HasInput(kRecurrentWeights + kLstmInputGate)) {
    return c.Fail(
        "%s: CIFG (coupled input and forget gates, no input gate) is not "
        "supported",
        op);
  }
  TT_RETURN_IF_ERROR(RefuseVariant(c, op, 9, 11, "peephole"));
  TT_RETURN_IF_ERROR(RefuseVariant(c, op, 16, 17, "projection"));
  TT_RETURN_IF_ERROR(RefuseVariant(c, op, 20, 23, "layer normalization"));
  if (o->diagonal_recurrent_tensors) {
    return c.Fail("%s: diagonal recurrent weights are not supported", op);
  }
  if (o->activation != kActivationTanh) {
    return c.Fail("%s: cell activation %d is not supported (only TANH)", op,
                  o->activation);
  }

  // Input, states, output.
  TensorDesc input, hidden, cell, output;
  TT_RETURN_IF_ERROR(ReadInput(c, op, kInput, &input));
  if (input.type == DataType::kFloat32) {
    TensorDesc weights;
    const bool hybrid =
        c.HasInput(kInputWeights + kLstmForgetGate) &&
        c.Input(kInputWeights + kLstmForgetGate, &weights) == Status::kOk &&
        weights.type == DataType::kInt8;
    return c.Fail("%s: %s LSTM is not supported (only int8 activations)", op,
                  hybrid ? "hybrid (float activations, int8 weights)"
                         : "float");
  }
  if (input.type == DataType::kInt16) {
    return c.Fail(
        "%s: int16 activations (16x8 LSTM) are not supported (only int8)", op);
  }
  TT_RETURN_IF_ERROR(CheckInt8PerTensor(c, op, "input", input));
  TT_RETURN_IF_ERROR(CheckRank(c, op, "input", input, 3));
  const bool time_major = o->time_major;
  const int steps = input.shape.dims[time_major ? 0 : 1];
  const int batch = input.shape.dims[time_major ? 1 : 0];
  const int input_size = input.shape.dims[2];

  if (!c.HasInput(kHiddenState))
    return c.Fail("%s: hidden state (input 18) is missing", op);
  TT_RETURN_IF_ERROR(
      ReadInput(c, op, kHiddenState, "hidden state", DataType::kInt8, &hidden));
  TT_RETURN_IF_ERROR(CheckVariable(c, op, "hidden state", hidden));
  TT_RETURN_IF_ERROR(CheckPerTensor(c, op, "hidden state", hidden));
  if (hidden.shape.rank != 2) {
    return c.Fail("%s: hidden state must be [batch, units], got rank %d", op,
                  hidden.shape.rank);
  }
  const int units = hidden.shape.dims[1];
  if (hidden.shape.FlatSize() != static_cast<int64_t>(batch) * units) {
    return c.Fail("%s: hidden state must be [%d, %d]", op, batch, units);
  }

  if (!c.HasInput(kCellState))
    return c.Fail("%s: cell state (input 19) is missing", op);
  TT_RETURN_IF_ERROR(
      ReadInput(c, op, kCellState, "cell state", DataType::kInt16, &cell));
  TT_RETURN_IF_ERROR(CheckVariable(c, op, "cell state", cell));
  TT_RETURN_IF_ERROR(CheckSameShape(c, op, "cell state", cell, "hidden state",
                                    hidden.shape));
  if (cell.quant.count != 1 || !IsValidScale(Scale(cell)) ||
      ZeroPoint(cell) != 0) {
    return c.Fail(
        "%s: cell state must be quantized per tensor with zero point 0", op);
  }
  // TFLM's integer tanh takes the cell scale as a power of two.
  int exponent = 0;
  const float mantissa = std::frexp(Scale(cell), &exponent);
  if (mantissa != 0.5f || !LstmTanhSupportsScale(exponent - 1)) {
    return c.Fail(
        "%s: cell state scale %g is not a power of two in [2^-43, 2^2]", op,
        static_cast<double>(Scale(cell)));
  }

  TT_RETURN_IF_ERROR(ReadOutput(c, op, 0, "output", DataType::kInt8, &output));
  if (output.shape.rank != 3 || output.shape.dims[0] != input.shape.dims[0] ||
      output.shape.dims[1] != input.shape.dims[1] ||
      output.shape.dims[2] != units) {
    return c.Fail("%s: output must be [%d, %d, %d]", op,
                  static_cast<int>(input.shape.dims[0]),
                  static_cast<int>(input.shape.dims[1]), units);
  }
  // The output is a copy of the hidden state at every step.
  TT_RETURN_IF_ERROR(CheckPerTensor(c, op, "output", output));
  if (Scale(output) != Scale(hidden) || ZeroPoint(output) != ZeroPoint(hidden)) {
    return c.Fail("%s: output must be quantized like the hidden state", op);
  }

  // Weights and biases; the gate products requantize to Q3.12.
  LstmParams& p = data->params;
  for (int g = 0; g < kLstmNumGates; ++g) {
    TensorDesc w, r;
    TT_RETURN_IF_ERROR(CheckWeights(c, op, kInputWeights + g, "input", g,
                                    units, input_size, &w));
    TT_RETURN_IF_ERROR(CheckWeights(c, op, kRecurrentWeights + g, "recurrent",
                                    g, units, units, &r));
    TT_RETURN_IF_ERROR(CheckBias(c, op, g, units));
    // In double throughout, as the tflite-micro wheel computes it (a
    // single-precision scale product differs in rare last bits).
    LstmGateRequant& q = p.gates[g];
    if (!LstmProductMultiplier(Scale(input), Scale(w), kGateInputScale,
                               &q.input_multiplier, &q.input_shift) ||
        !LstmProductMultiplier(Scale(hidden), Scale(r), kGateInputScale,
                               &q.recurrent_multiplier, &q.recurrent_shift)) {
      return c.Fail("%s: %s gate weight scales are out of range", op,
                    kGateNames[g]);
    }
  }
  if (!LstmProductMultiplier(kGateOutputScale, Scale(cell), Scale(cell),
                             &p.forget_multiplier, &p.forget_shift) ||
      !LstmProductMultiplier(kGateOutputScale, kGateOutputScale, Scale(cell),
                             &p.input_multiplier, &p.input_shift) ||
      !LstmProductMultiplier(kGateOutputScale, kGateOutputScale,
                             Scale(hidden), &p.hidden_multiplier,
                             &p.hidden_shift)) {
    return c.Fail("%s: cell or hidden state scale is out of range", op);
  }

  p.batch = batch;
  p.time_steps = steps;
  p.input_size = input_size;
  p.units = units;
  p.time_major = time_major;
  p.input_offset = -ZeroPoint(input);
  p.hidden_offset = -ZeroPoint(hidden);
  p.hidden_zero_point = ZeroPoint(hidden);
  p.cell_scale_log2 = exponent - 1;
  // TFLM clips when cell_clip > 0, to +-(cell_clip / scale) truncated to
  // int16 (so never to -32768).
  p.clip_cell = o->cell_clip > 0.0f;
  if (p.clip_cell) {
    double limit = static_cast<double>(o->cell_clip) /
                   static_cast<double>(Scale(cell));
    if (limit > 32767.0) limit = 32767.0;
    p.cell_clip = static_cast<int16_t>(limit);
  }
  const int64_t scratch = LstmScratchElements(p);
  if (scratch > (int64_t{1} << 28)) {
    return c.Fail("%s: %ld gate values per step are too many", op,
                  static_cast<long>(scratch));
  }
  return c.RequestScratch(sizeof(int16_t) * static_cast<size_t>(scratch),
                          &data->scratch);
}

Status LstmEval(EvalContext& c) {
  const auto* d = static_cast<const LstmOpData*>(c.OpData());
  LstmWeights w;
  for (int g = 0; g < kLstmNumGates; ++g) {
    w.input[g] = c.Input<const int8_t>(kInputWeights + g);
    w.recurrent[g] = c.Input<const int8_t>(kRecurrentWeights + g);
    w.bias[g] = c.Input<const int32_t>(kBias + g);
  }
  ref::UnidirectionalSequenceLstm(
      d->params, w, c.Input<const int8_t>(kInput),
      c.Input<int8_t>(kHiddenState), c.Input<int16_t>(kCellState),
      c.Output<int8_t>(0), static_cast<int16_t*>(c.Scratch(d->scratch)));
  return Status::kOk;
}

}  // namespace

extern const OpKernel kUnidirectionalSequenceLstm = {
    kBuiltinUnidirectionalSequenceLstm,
    nullptr,
    &InitOpData<LstmOpData>,
    &LstmPrepare,
    &LstmEval,
    nullptr};

}  // namespace tflm_train
