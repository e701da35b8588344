// UNIDIRECTIONAL_SEQUENCE_LSTM: the int16 nonlinearities at known points, a
// two-step sequence derived by hand, state persistence and clipping through
// the op wrapper, and Prepare's refusals. (Bit-exactness against the
// tflite-micro wheel is checked on converted models in
// tests/test_forward_lstm.py.)
#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "ops_cc/kernels/lstm.h"
#include "ops_cc/ops/builtin_options.h"
#include "ops_cc/ops/forward_ops.h"
#include "ops_cc/tests/fake_context.h"

namespace tflm_train {
namespace {

int16_t Sigmoid(int16_t x) {
  int16_t y = 0;
  ref::LstmSigmoid(1, &x, &y);
  return y;
}

int16_t Tanh(int scale_log2, int16_t x) {
  int16_t y = 0;
  ref::LstmTanh(scale_log2, 1, &x, &y);
  return y;
}

TEST(LstmNonlinearities, KnownPoints) {
  // The input times 3 indexes the knots (sigmoid(k/24) in Q0.16) in steps
  // of 2^9 for the sigmoid (Q3.12 input) and 2^8 for the tanh.
  EXPECT_EQ(Sigmoid(0), 16384);
  // x = 4096 (1.0): 3x = 12288 = knot 24 exactly (47911 in Q0.16):
  // (47911 << 9) + 2^9 >> 10 = 23956; and 1 - that for -1.0.
  EXPECT_EQ(Sigmoid(4096), 23956);
  EXPECT_EQ(Sigmoid(-4096), 32768 - 23956);
  // tanh(1) with Q3.12 input: 3 * 4096 = 12288 = knot 48 (57724) exactly:
  // 2 sigmoid(2) - 1 = 57724 - 32768 in Q0.15.
  EXPECT_EQ(Tanh(-12, 4096), 57724 - 32768);
  EXPECT_EQ(Tanh(-12, 0), 0);
  EXPECT_EQ(Tanh(-12, -4096), -(57724 - 32768));
  // Beyond knot 255 the tanh saturates: 32767, and -32767 (not -32768).
  EXPECT_EQ(Tanh(-12, 32767), 32767);
  EXPECT_EQ(Tanh(-12, -32768), -32767);
  // The value 1.0 in a cell state of scale 2^-15: (32767 * 3 + 4) >> 3
  // = 12288 (rounded onto the knot grid), so tanh(1) again.
  EXPECT_EQ(Tanh(-15, 32767), 57724 - 32768);
  // Scale 2^-10: 1024 * (3 << 2) = 12288.
  EXPECT_EQ(Tanh(-10, 1024), 57724 - 32768);
}

TEST(LstmNonlinearities, MonotoneAndSymmetric) {
  int16_t previous_s = Sigmoid(-32768), previous_t = Tanh(-15, -32768);
  for (int x = -32767; x <= 32767; ++x) {
    const int16_t s = Sigmoid(static_cast<int16_t>(x));
    const int16_t t = Tanh(-15, static_cast<int16_t>(x));
    ASSERT_GE(s, previous_s) << x;
    ASSERT_GE(t, previous_t) << x;
    previous_s = s;
    previous_t = t;
    // sigmoid(-x) = 1 - sigmoid(x) and tanh(-x) = -tanh(x), up to the last
    // bit of the rounding (exact scaling 3x for Q3.12 inputs).
    const int sum_s = s + Sigmoid(static_cast<int16_t>(-x));
    ASSERT_GE(sum_s, 32767) << x;
    ASSERT_LE(sum_s, 32768) << x;
    const int sum_t =
        Tanh(-12, static_cast<int16_t>(x)) + Tanh(-12, static_cast<int16_t>(-x));
    ASSERT_GE(sum_t, -1) << x;
    ASSERT_LE(sum_t, 0) << x;
  }
}

// One unit, one input feature, batch 1. Input and weight scales 2^-6 make
// the gate products' multiplier exactly 1 (2^-12 / 2^-12), so with zero
// weights every gate's Q3.12 pre-activation is its bias. Hidden state scale
// 2^-7 (zero point 0), cell state 2^-15.
struct LstmFixture {
  std::vector<FakeTensor> t;
  SequenceLstmOptions options;
  FakeOp op;
  static constexpr int kOutput = 24;

  explicit LstmFixture(int steps = 2) : t(25) {
    t[0] = Int8Tensor(MakeShape({1, steps, 1}), 1.0f / 64, 0);
    for (int i = 1; i <= 8; ++i) {
      t[i] = ConstTensor<int8_t>(DataType::kInt8, MakeShape({1, 1}), {0});
      Quantize(&t[i], {1.0f / 64}, {0});
    }
    // Biases: input gate 0 (1/2), forget 0 (1/2), cell 4096 (tanh(1)),
    // output 0 (1/2).
    const int32_t bias[4] = {0, 0, 4096, 0};
    for (int g = 0; g < 4; ++g) {
      t[12 + g] =
          ConstTensor<int32_t>(DataType::kInt32, MakeShape({1}), {bias[g]});
      Quantize(&t[12 + g], {1.0f / 4096}, {0});
    }
    t[18] = Int8Tensor(MakeShape({1, 1}), 1.0f / 128, 0);
    t[18].is_variable = true;
    t[19] = MakeTensor<int16_t>(DataType::kInt16, {1, 1});
    Quantize(&t[19], {1.0f / 32768}, {0});
    t[19].is_variable = true;
    t[kOutput] = Int8Tensor(MakeShape({1, steps, 1}), 1.0f / 128, 0);
    options.activation = kActivationTanh;
    options.cell_clip = 10.0f;
    std::vector<int> inputs;
    for (int i = 0; i < 24; ++i) {
      const bool absent = (i >= 9 && i <= 11) || i == 16 || i == 17 || i >= 20;
      inputs.push_back(absent ? -1 : i);
    }
    op = FakeOp(&t, inputs, {kOutput});
    op.builtin_options = &options;
  }

  Status Run() {
    const OpKernel* k = FindForwardKernel(kBuiltinUnidirectionalSequenceLstm);
    if (k == nullptr) return Status::kUnsupportedOp;
    return op.Run(*k);
  }
  Status RunFresh() {
    const OpKernel* k = FindForwardKernel(kBuiltinUnidirectionalSequenceLstm);
    if (k == nullptr) return Status::kUnsupportedOp;
    return op.RunFresh(*k);
  }
  int8_t output(int i) { return t[kOutput].As<int8_t>()[i]; }
  int8_t hidden() { return t[18].As<int8_t>()[0]; }
  int16_t cell() { return t[19].As<int16_t>()[0]; }
};

TEST(Lstm, TwoStepsByHand) {
  LstmFixture f;
  ASSERT_EQ(f.Run(), Status::kOk) << f.op.error();
  // Step 1: i = f = o = sigmoid(0) = 16384, g = tanh(1) = 24956 (above).
  //   c = f * 0 + round(16384 * 24956 / 2^15) = 12478.
  //   tanh(c): (12478 * 3 + 4) >> 3 = 4679 = knot 18 (44511) + 71/256 of
  //   the way to knot 19 (45102): (44511 << 8) + 71 * 591 = 11436777,
  //   minus 2^23, plus 2^7, >> 8 = 11907.
  //   h = round(11907 * 16384 * 2^-30 / 2^-7) = round(23.26) = 23.
  // Step 2 (recurrent weights 0, same gates):
  //   c = round(16384 * 12478 / 2^15) + 12478 = 6239 + 12478 = 18717.
  //   (18717 * 3 + 4) >> 3 = 7019 = knot 27 (49475) + 107/256 towards
  //   49975: 12665600 + 53500 - 2^23 + 2^7 >> 8 = 16916;
  //   h = round(16916 / 512) = round(33.04) = 33.
  EXPECT_EQ(f.output(0), 23);
  EXPECT_EQ(f.output(1), 33);
  EXPECT_EQ(f.hidden(), 33);
  EXPECT_EQ(f.cell(), 18717);
  // The states persist: a second call continues from c = 18717.
  //   c = round(16384 * 18717 / 2^15) + 12478 = 9359 + 12478 = 21837 (the
  //   tie 9358.5 rounds away from zero), then 10919 + 12478 = 23397.
  ASSERT_EQ(f.Run(), Status::kOk) << f.op.error();
  EXPECT_EQ(f.cell(), 23397);
}

TEST(Lstm, CellClipIsSymmetric) {
  LstmFixture f(1);
  f.options.cell_clip = 0.25f;  // 8192 in 2^-15 units
  ASSERT_EQ(f.Run(), Status::kOk) << f.op.error();
  EXPECT_EQ(f.cell(), 8192);  // 12478 clipped
  // A negative cell gate drives the cell state to -clip.
  LstmFixture g(1);
  g.options.cell_clip = 0.25f;
  g.t[14].As<int32_t>()[0] = -4096;
  ASSERT_EQ(g.Run(), Status::kOk) << g.op.error();
  EXPECT_EQ(g.cell(), -8192);
  // A clip beyond the int16 range clips at +-32767, never -32768.
  LstmFixture h(8);
  h.options.cell_clip = 100.0f;
  h.t[13].As<int32_t>()[0] = 32767;   // forget gate ~1
  h.t[12].As<int32_t>()[0] = 32767;   // input gate ~1
  h.t[14].As<int32_t>()[0] = -32768;  // cell gate ~-1
  ASSERT_EQ(h.Run(), Status::kOk) << h.op.error();
  EXPECT_EQ(h.cell(), -32767);
}

// Runs Prepare on a fixture changed by `change`; expects a refusal whose
// message contains `expected`.
template <typename Change>
void ExpectRefusal(Change change, const std::string& expected) {
  LstmFixture f;
  change(f);
  EXPECT_EQ(f.RunFresh(), Status::kError) << expected;
  EXPECT_NE(f.op.error().find(expected), std::string::npos)
      << "got: " << f.op.error();
  EXPECT_EQ(f.op.error().rfind("UNIDIRECTIONAL_SEQUENCE_LSTM: ", 0), 0u)
      << f.op.error();
}

TEST(Lstm, RefusesVariantsItDoesNotImplement) {
  ExpectRefusal(
      [](LstmFixture& f) {
        f.op.inputs[1] = nullptr;
        f.op.inputs[5] = nullptr;
        f.op.inputs[12] = nullptr;
      },
      "CIFG");
  ExpectRefusal([](LstmFixture& f) { f.op.inputs[10] = &f.t[1]; },
                "peephole (input 10) is not supported");
  ExpectRefusal([](LstmFixture& f) { f.op.inputs[16] = &f.t[1]; },
                "projection (input 16) is not supported");
  ExpectRefusal([](LstmFixture& f) { f.op.inputs[22] = &f.t[19]; },
                "layer normalization (input 22) is not supported");
  ExpectRefusal(
      [](LstmFixture& f) { f.options.diagonal_recurrent_tensors = true; },
      "diagonal recurrent weights");
  ExpectRefusal(
      [](LstmFixture& f) { f.options.activation = kActivationRelu; },
      "cell activation 1 is not supported");
  ExpectRefusal([](LstmFixture& f) { f.t[0].type = DataType::kFloat32; },
                "hybrid (float activations, int8 weights) LSTM");
  ExpectRefusal(
      [](LstmFixture& f) {
        f.t[0].type = DataType::kFloat32;
        for (int i = 1; i <= 8; ++i) f.t[i].type = DataType::kFloat32;
      },
      "float LSTM is not supported");
  ExpectRefusal([](LstmFixture& f) { f.t[0].type = DataType::kInt16; },
                "int16 activations");
}

TEST(Lstm, RefusesMalformedTensors) {
  ExpectRefusal([](LstmFixture& f) { f.op.inputs.pop_back(); },
                "expected 24 inputs and 1 outputs");
  ExpectRefusal([](LstmFixture& f) { f.op.builtin_options = nullptr; },
                "missing builtin options");
  ExpectRefusal([](LstmFixture& f) { f.op.inputs[3] = nullptr; },
                "cell input weights (input 3) are missing");
  ExpectRefusal([](LstmFixture& f) { f.op.inputs[13] = nullptr; },
                "forget gate bias (input 13) is missing");
  ExpectRefusal([](LstmFixture& f) { f.t[6].is_constant = false; },
                "forget recurrent weights must be constant");
  ExpectRefusal([](LstmFixture& f) { f.t[7].shape = MakeShape({1, 2}); },
                "cell recurrent weights must be [1, 1]");
  ExpectRefusal(
      [](LstmFixture& f) { Quantize(&f.t[2], {0.5f, 0.5f}, {0, 0}); },
      "forget input weights must be quantized per tensor, got 2 scales");
  ExpectRefusal([](LstmFixture& f) { f.t[4].zero_points = {3}; },
                "output input weights zero point must be 0, got 3");
  ExpectRefusal([](LstmFixture& f) { f.t[15].type = DataType::kInt8; },
                "output gate bias must be int32, got int8");
  ExpectRefusal([](LstmFixture& f) { f.t[0].shape = MakeShape({2, 1}); },
                "input must have rank 3, got 2");
  ExpectRefusal([](LstmFixture& f) { f.t[18].is_variable = false; },
                "hidden state is updated but is not a variable tensor");
  ExpectRefusal([](LstmFixture& f) { f.t[19].is_variable = false; },
                "cell state is updated but is not a variable tensor");
  ExpectRefusal([](LstmFixture& f) { f.t[18].shape = MakeShape({1}); },
                "hidden state must be [batch, units], got rank 1");
  ExpectRefusal([](LstmFixture& f) { f.t[19].type = DataType::kInt8; },
                "cell state must be int16, got int8");
  ExpectRefusal([](LstmFixture& f) { f.t[19].scales = {0.001f}; },
                "cell state scale 0.001 is not a power of two");
  ExpectRefusal([](LstmFixture& f) { f.t[19].scales = {8.0f}; },
                "not a power of two in [2^-43, 2^2]");
  ExpectRefusal([](LstmFixture& f) { f.t[19].zero_points = {1}; },
                "cell state must be quantized per tensor with zero point 0");
  ExpectRefusal(
      [](LstmFixture& f) { f.t[LstmFixture::kOutput].shape = MakeShape({1, 2, 2}); },
      "output must be [1, 2, 1]");
  ExpectRefusal([](LstmFixture& f) { f.t[LstmFixture::kOutput].zero_points = {1}; },
                "output must be quantized like the hidden state");
  ExpectRefusal(
      [](LstmFixture& f) {
        f.t[18].scales = {1e-30f};  // 2^-30 / 1e-30 needs a shift > 30
        f.t[LstmFixture::kOutput].scales = {1e-30f};
      },
      "cell or hidden state scale is out of range");
}

TEST(ForwardOps, LstmIsRegistered) {
  const OpKernel* k = FindForwardKernel(kBuiltinUnidirectionalSequenceLstm);
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->builtin_code, 44);
}

}  // namespace
}  // namespace tflm_train
