// UNIDIRECTIONAL_SEQUENCE_LSTM with int8 activations and weights, int32
// biases, an int16 cell state and int16 gates: TFLite Micro's "8x8->16"
// integer LSTM (the standard Keras cell: no peephole, projection, layer
// norm or coupled input-forget gate), bit-exact with its reference kernel.
//
// Per time step, with x the int8 input row and h, c the hidden and cell
// state (both persist across calls):
//   gate_g = act_g(sat16(FC(x, W_g) + b_g) +sat sat16(FC(h, R_g)))
//     every gate pre-activation in Q3.12 (scale 2^-12), every gate output in
//     Q0.15 (2^-15); act = sigmoid for input/forget/output, tanh for cell
//   c = sat16(forget * c) +sat sat16(input * cell), then clipped
//   h = int8(tanh(c) * output), with the hidden state's scale and zero point
//   output[t] = h
#ifndef TFLM_TRAIN_KERNELS_LSTM_H_
#define TFLM_TRAIN_KERNELS_LSTM_H_

#include <cstdint>

namespace tflm_train {

// Gate order, as the op's weight, recurrent-weight and bias inputs list
// them.
enum LstmGate : int {
  kLstmInputGate = 0,
  kLstmForgetGate = 1,
  kLstmCellGate = 2,
  kLstmOutputGate = 3,
  kLstmNumGates = 4,
};

// Requantization of one gate's two matrix products to Q3.12.
struct LstmGateRequant {
  int32_t input_multiplier = 0;  // input * W_g -> 2^-12
  int32_t input_shift = 0;
  int32_t recurrent_multiplier = 0;  // hidden * R_g -> 2^-12
  int32_t recurrent_shift = 0;
};

struct LstmParams {
  int batch = 1;
  int time_steps = 1;
  int input_size = 1;
  int units = 1;
  // Input and output [time, batch, features]; else [batch, time, features]
  // (each batch row then runs its whole sequence before the next).
  bool time_major = false;
  int32_t input_offset = 0;   // -(input zero point)
  int32_t hidden_offset = 0;  // -(hidden state zero point)
  int32_t hidden_zero_point = 0;
  LstmGateRequant gates[kLstmNumGates];
  // forget (2^-15) * cell (s_c) -> s_c
  int32_t forget_multiplier = 0, forget_shift = 0;
  // input (2^-15) * cell gate (2^-15) -> s_c
  int32_t input_multiplier = 0, input_shift = 0;
  // tanh(cell) (2^-15) * output gate (2^-15) -> hidden scale, int8
  int32_t hidden_multiplier = 0, hidden_shift = 0;
  // The cell state scale is 2^cell_scale_log2 (LstmTanhSupportsScale).
  int cell_scale_log2 = -15;
  // Clip the cell state to [-cell_clip, cell_clip] after each update.
  bool clip_cell = false;
  int16_t cell_clip = 0;
};

struct LstmWeights {
  const int8_t* input[kLstmNumGates] = {};      // [units, input_size]
  const int8_t* recurrent[kLstmNumGates] = {};  // [units, units]
  const int32_t* bias[kLstmNumGates] = {};      // [units]
};

// The requantization multiplier scale_a * scale_b / scale_out of a gate's
// matrix product or of an element-wise product, formed in double as TFLM
// does. Returns false if it needs a left shift above 30.
bool LstmProductMultiplier(float scale_a, float scale_b, float scale_out,
                           int32_t* multiplier, int32_t* shift);

// Whether the tanh of a cell state with scale 2^scale_log2 stays within
// int32 arithmetic.
inline bool LstmTanhSupportsScale(int scale_log2) {
  return scale_log2 >= -43 && scale_log2 <= 2;
}

// int16 elements per step of scratch the kernel needs (4 gate buffers).
inline int64_t LstmScratchElements(const LstmParams& p) {
  return int64_t{kLstmNumGates} * (p.time_major ? p.batch : 1) * p.units;
}

namespace ref {

// Sigmoid of Q3.12 values to Q0.15, by interpolation between TFLite's 256
// tabulated knots of sigmoid(k/24).
void LstmSigmoid(int count, const int16_t* input, int16_t* output);

// Tanh of values with scale 2^input_scale_log2 (LstmTanhSupportsScale) to
// Q0.15, from the same knots (tanh(x) = 2 sigmoid(2x) - 1).
void LstmTanh(int input_scale_log2, int count, const int16_t* input,
              int16_t* output);

// Runs the whole sequence. input [.., .., input_size] and output
// [.., .., units] as `time_major` says; hidden_state (int8) and cell_state
// (int16) are [batch, units] and are updated in place; scratch holds
// LstmScratchElements(params) int16.
void UnidirectionalSequenceLstm(const LstmParams& params,
                                const LstmWeights& weights,
                                const int8_t* input, int8_t* hidden_state,
                                int16_t* cell_state, int8_t* output,
                                int16_t* scratch);

}  // namespace ref
}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_LSTM_H_
