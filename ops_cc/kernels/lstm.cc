#include "ops_cc/kernels/lstm.h"

#include "ops_cc/core/quantization.h"
#include "ops_cc/kernels/fully_connected.h"  // FullyConnectedAccumulator

namespace tflm_train {
namespace {

// sigmoid(k / 24) in Q0.16 for k = 0..255, the knots TFLite interpolates
// between for its int16 sigmoid and tanh. They are TFLite's own tuned
// values (several sit one above round(65536 sigmoid(k / 24))), read off the
// tflite-micro wheel's int16 TANH; tests/test_forward_lstm.py checks both
// functions against the wheel on every int16 input.
constexpr uint16_t kSigmoidKnots[256] = {
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149,
    40794, 41432, 42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369,
    47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409, 51865, 52311, 52745, 53169,
    53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
    57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370,
    60565, 60753, 60935, 61110, 61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302,
    62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186, 63279, 63368, 63454, 63536,
    63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
    64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786,
    64816, 64845, 64873, 64900, 64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079,
    65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208, 65221, 65234, 65246, 65258,
    65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
    65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433,
    65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474,
    65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491, 65493, 65495, 65497, 65498,
    65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
    65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522,
    65523, 65523, 65524, 65524, 65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528,
    65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530, 65530, 65530, 65531, 65531,
    65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
    65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534,
    65534, 65534, 65534, 65535,
};

constexpr int32_t kInt16Min = -32768;
constexpr int32_t kInt16Max = 32767;

inline int16_t SaturateInt16(int32_t v) {
  return static_cast<int16_t>(v < kInt16Min ? kInt16Min
                                            : (v > kInt16Max ? kInt16Max : v));
}

// One int16 sigmoid: the input times 3 indexes the knots in steps of 1/512
// (Q3.12 * 24 = 3 * 2^9 per unit of 2^-12).
inline int16_t SigmoidQ12(int16_t x) {
  const int32_t v = 3 * static_cast<int32_t>(x);
  const uint32_t a = static_cast<uint32_t>(v < 0 ? -v : v);
  const uint32_t k = a >> 9;
  uint32_t r;  // sigmoid(|v|) in Q0.16, times 2^9
  if (k >= 255) {
    r = 0x7FFFu << 10;
  } else {
    const uint32_t lo = kSigmoidKnots[k];
    const uint32_t hi = kSigmoidKnots[k + 1];
    r = (lo << 9) + (a & 0x1FFu) * (hi - lo);
  }
  // sigmoid(-y) = 1 - sigmoid(y); round to Q0.15.
  r = v >= 0 ? r + (1u << 9) : (1u << 25) - r + (1u << 9) - 1;
  return static_cast<int16_t>(r >> 10);
}

// One int16 tanh of v, already scaled so that one knot step is 2^8.
inline int16_t TanhScaled(int32_t v) {
  const uint32_t a = static_cast<uint32_t>(v < 0 ? -v : v);
  const uint32_t k = a >> 8;
  int32_t r;  // sigmoid(|2y|) in Q0.16, times 2^8
  if (k >= 255) {
    r = static_cast<int32_t>(0xFFFFu << 8);
  } else {
    const uint32_t lo = kSigmoidKnots[k];
    const uint32_t hi = kSigmoidKnots[k + 1];
    r = static_cast<int32_t>((lo << 8) + (a & 0xFFu) * (hi - lo));
  }
  // tanh(y) = 2 sigmoid(2y) - 1, odd; round to Q0.15.
  r = v >= 0 ? r - (1 << 23) + (1 << 7) : -r + (1 << 23) + (1 << 7) - 1;
  return static_cast<int16_t>(r >> 8);
}

// out[r, u] = sat16(requant(sum_d w[u, d] * (x[r, d] + offset) + bias[u])).
void GateProduct(const int8_t* x, int rows, int depth, int32_t offset,
                 const int8_t* w, const int32_t* bias, int units,
                 int32_t multiplier, int32_t shift, int16_t* out) {
  for (int r = 0; r < rows; ++r) {
    const int8_t* row = x + static_cast<int64_t>(r) * depth;
    for (int u = 0; u < units; ++u) {
      const int32_t acc =
          FullyConnectedAccumulator(offset, row, depth, w, bias, u);
      out[r * units + u] =
          SaturateInt16(MultiplyByQuantizedMultiplier(acc, multiplier, shift));
    }
  }
}

// One gate for `rows` rows: gate = act(FC(x) +sat FC(h)).
void Gate(const LstmParams& p, const LstmWeights& w, int g, const int8_t* x,
          const int8_t* h, int rows, int16_t* gate, int16_t* temp) {
  const LstmGateRequant& q = p.gates[g];
  const int n = rows * p.units;
  GateProduct(x, rows, p.input_size, p.input_offset, w.input[g], w.bias[g],
              p.units, q.input_multiplier, q.input_shift, gate);
  GateProduct(h, rows, p.units, p.hidden_offset, w.recurrent[g], nullptr,
              p.units, q.recurrent_multiplier, q.recurrent_shift, temp);
  for (int i = 0; i < n; ++i)
    gate[i] = SaturateInt16(static_cast<int32_t>(gate[i]) + temp[i]);
  if (g == kLstmCellGate) {
    ref::LstmTanh(-12, n, gate, gate);
  } else {
    ref::LstmSigmoid(n, gate, gate);
  }
}

// requant(a * b) + zero_point, clamped to [lo, hi].
inline int32_t Product(int32_t a, int32_t b, int32_t multiplier,
                       int32_t shift, int32_t zero_point, int32_t lo,
                       int32_t hi) {
  const int32_t v =
      MultiplyByQuantizedMultiplier(a * b, multiplier, shift) + zero_point;
  return v < lo ? lo : (v > hi ? hi : v);
}

// One time step of `rows` independent rows: x [rows, input_size], h (int8)
// and c (int16) [rows, units], out [rows, units].
void Step(const LstmParams& p, const LstmWeights& w, const int8_t* x,
          int8_t* h, int16_t* c, int8_t* out, int rows, int16_t* scratch) {
  const int n = rows * p.units;
  int16_t* forget = scratch;
  int16_t* input = scratch + n;
  int16_t* cell = scratch + 2 * n;
  int16_t* temp = scratch + 3 * n;
  Gate(p, w, kLstmForgetGate, x, h, rows, forget, temp);
  Gate(p, w, kLstmInputGate, x, h, rows, input, temp);
  Gate(p, w, kLstmCellGate, x, h, rows, cell, temp);
  for (int i = 0; i < n; ++i) {
    const int32_t kept = Product(forget[i], c[i], p.forget_multiplier,
                                 p.forget_shift, 0, kInt16Min, kInt16Max);
    const int32_t added = Product(input[i], cell[i], p.input_multiplier,
                                  p.input_shift, 0, kInt16Min, kInt16Max);
    int32_t v = SaturateInt16(kept + added);
    if (p.clip_cell) {
      // The clip is symmetric: -cell_clip, never -32768.
      if (v > p.cell_clip) v = p.cell_clip;
      if (v < -p.cell_clip) v = -p.cell_clip;
    }
    c[i] = static_cast<int16_t>(v);
  }
  // The output gate reads the old hidden state too.
  int16_t* output_gate = input;
  Gate(p, w, kLstmOutputGate, x, h, rows, output_gate, temp);
  int16_t* cell_tanh = forget;
  ref::LstmTanh(p.cell_scale_log2, n, c, cell_tanh);
  for (int i = 0; i < n; ++i) {
    h[i] = static_cast<int8_t>(Product(cell_tanh[i], output_gate[i],
                                       p.hidden_multiplier, p.hidden_shift,
                                       p.hidden_zero_point, -128, 127));
    out[i] = h[i];
  }
}

}  // namespace

bool LstmProductMultiplier(float scale_a, float scale_b, float scale_out,
                           int32_t* multiplier, int32_t* shift) {
  const double real = static_cast<double>(scale_a) *
                      static_cast<double>(scale_b) /
                      static_cast<double>(scale_out);
  int s = 0;
  QuantizeMultiplier(real, multiplier, &s);
  *shift = s;
  return *multiplier >= 0 && s <= 30;
}

namespace ref {

void LstmSigmoid(int count, const int16_t* input, int16_t* output) {
  for (int i = 0; i < count; ++i) output[i] = SigmoidQ12(input[i]);
}

void LstmTanh(int input_scale_log2, int count, const int16_t* input,
              int16_t* output) {
  // One knot step (1/24 of tanh's argument doubled) is 2^8 after scaling:
  // a value of scale 2^e times 3 * 2^(e + 12), rounded when that shifts
  // right.
  const int shift = input_scale_log2 + 12;
  for (int i = 0; i < count; ++i) {
    const int32_t x = input[i];
    int32_t v;
    if (shift >= 0) {
      v = x * (3 << shift);
    } else {
      v = (x * 3 + (1 << (-shift - 1))) >> -shift;
    }
    output[i] = TanhScaled(v);
  }
}

void UnidirectionalSequenceLstm(const LstmParams& p, const LstmWeights& w,
                                const int8_t* input, int8_t* hidden_state,
                                int16_t* cell_state, int8_t* output,
                                int16_t* scratch) {
  if (p.time_major) {
    // Every batch row advances one step at a time.
    const int64_t in_step = static_cast<int64_t>(p.batch) * p.input_size;
    const int64_t out_step = static_cast<int64_t>(p.batch) * p.units;
    for (int t = 0; t < p.time_steps; ++t) {
      Step(p, w, input + t * in_step, hidden_state, cell_state,
           output + t * out_step, p.batch, scratch);
    }
    return;
  }
  for (int b = 0; b < p.batch; ++b) {
    int8_t* h = hidden_state + static_cast<int64_t>(b) * p.units;
    int16_t* c = cell_state + static_cast<int64_t>(b) * p.units;
    for (int t = 0; t < p.time_steps; ++t) {
      const int64_t row = static_cast<int64_t>(b) * p.time_steps + t;
      Step(p, w, input + row * p.input_size, h, c, output + row * p.units, 1,
           scratch);
    }
  }
}

}  // namespace ref
}  // namespace tflm_train
