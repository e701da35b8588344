// The backward ops of HARD_SWISH, LOGISTIC, TANH, LEAKY_RELU, MUL, a
// broadcasting ADD, CONCATENATION, TRANSPOSE and STRIDED_SLICE on the fake
// host: Prepare refusals (one-line errors naming the op) and small
// hand-checked cases. Gradient values are
// checked against TF autodiff in tests/test_grad_kernels.py.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ops_cc/ops/training_ops.h"
#include "ops_cc/tests/fake_context.h"

namespace tflm_train {
namespace {

// Custom options, made with flatbuffers.flexbuffers.Dumps (Python).
// {'activation': 0, 'grad_a': 1, 'grad_b': 1}
constexpr uint8_t kMulBoth[] = {
    97, 99, 116, 105, 118, 97, 116, 105, 111, 110, 0, 103, 114, 97,
    100, 95, 97, 0, 103, 114, 97, 100, 95, 98, 0, 3, 26, 16,
    10, 3, 1, 3, 0, 1, 1, 4, 4, 4, 6, 36, 1};
// {'activation': 1, 'grad_a': 1, 'grad_b': 0}
constexpr uint8_t kMulARelu[] = {
    97, 99, 116, 105, 118, 97, 116, 105, 111, 110, 0, 103, 114, 97,
    100, 95, 97, 0, 103, 114, 97, 100, 95, 98, 0, 3, 26, 16,
    10, 3, 1, 3, 1, 1, 0, 4, 4, 4, 6, 36, 1};
// {'activation': 0, 'grad_a': 0, 'grad_b': 1}
constexpr uint8_t kMulB[] = {
    97, 99, 116, 105, 118, 97, 116, 105, 111, 110, 0, 103, 114, 97,
    100, 95, 97, 0, 103, 114, 97, 100, 95, 98, 0, 3, 26, 16,
    10, 3, 1, 3, 0, 0, 1, 4, 4, 4, 6, 36, 1};
// {'activation': 0, 'grad_a': 0, 'grad_b': 0}
constexpr uint8_t kMulNone[] = {
    97, 99, 116, 105, 118, 97, 116, 105, 111, 110, 0, 103, 114, 97,
    100, 95, 97, 0, 103, 114, 97, 100, 95, 98, 0, 3, 26, 16,
    10, 3, 1, 3, 0, 0, 0, 4, 4, 4, 6, 36, 1};
// {'alpha': 0.25}
constexpr uint8_t kAlpha[] = {97, 108, 112, 104, 97, 0, 1, 7, 1, 0,
                              0, 0, 1, 0, 0, 0, 1, 0, 0, 0,
                              0, 0, 128, 62, 14, 5, 38, 1};
// {'axis': 1}
constexpr uint8_t kAxis1[] = {97, 120, 105, 115, 0, 1, 6, 1,
                              1, 1, 1, 4, 2, 36, 1};
// {'begin_mask': 0, 'end_mask': 2, 'shrink_axis_mask': 1}
constexpr uint8_t kSliceMasks[] = {98, 101, 103, 105, 110, 95, 109, 97, 115, 107, 0, 101, 110, 100, 95, 109, 97, 115, 107, 0, 115, 104, 114, 105, 110, 107, 95, 97, 120, 105, 115, 95, 109, 97, 115, 107, 0, 3, 38, 28, 20, 3, 1, 3, 0, 2, 1, 4, 4, 4, 6, 36, 1};
// {'activation': 0}
constexpr uint8_t kActivationNone[] = {97, 99, 116, 105, 118, 97, 116, 105, 111, 110, 0, 1, 12, 1, 1, 1, 0, 4, 2, 36, 1};
// {}
constexpr uint8_t kEmpty[] = {0, 0, 1, 0, 0, 36, 1};

const OpKernel& Kernel(const char* name) {
  const OpKernel* kernel = FindTrainingKernel(name);
  EXPECT_NE(kernel, nullptr) << name;
  return *kernel;
}

Shape Dims(std::vector<int> dims) {
  Shape s;
  s.rank = static_cast<int>(dims.size());
  for (size_t d = 0; d < dims.size(); ++d) s.dims[d] = dims[d];
  return s;
}

FakeTensor Mode(int32_t value) {
  return MakeTensor<int32_t>(DataType::kInt32, {1}, {value});
}

FakeTensor Floats(std::vector<int> dims, std::vector<float> values = {}) {
  return MakeTensor<float>(DataType::kFloat32, dims, values);
}

FakeTensor Int8(std::vector<int> dims, std::vector<int8_t> values, float scale,
                int32_t zero_point) {
  FakeTensor t = MakeTensor<int8_t>(DataType::kInt8, dims, values);
  Quantize(&t, {scale}, {zero_point});
  return t;
}

std::vector<float> Values(FakeTensor& t) {
  const float* p = t.As<float>();
  return std::vector<float>(p, p + t.shape.FlatSize());
}

TEST(NewGrads, Registered) {
  for (const char* name :
       {"TFLMTRAIN_HARD_SWISH_GRAD", "TFLMTRAIN_LOGISTIC_GRAD",
        "TFLMTRAIN_TANH_GRAD", "TFLMTRAIN_LEAKY_RELU_GRAD",
        "TFLMTRAIN_MUL_GRAD", "TFLMTRAIN_CONCATENATION_GRAD",
        "TFLMTRAIN_TRANSPOSE_GRAD", "TFLMTRAIN_STRIDED_SLICE_GRAD"})
    EXPECT_NE(FindTrainingKernel(name), nullptr) << name;
}

// ---- HARD_SWISH ----------------------------------------------------------------

struct HardSwishFixture {
  std::vector<FakeTensor> t;
  HardSwishFixture() {
    t.push_back(Mode(1));
    t.push_back(Floats({7}, {1, 1, 1, 1, 1, 2, 1}));
    // x = 0.5 * q: -4, -3, -1, 0, 1, 3, 4.
    t.push_back(Int8({7}, {-8, -6, -2, 0, 2, 6, 8}, 0.5f, 0));
    t.push_back(Int8({7}, {0, 0, 0, 0, 0, 0, 127}, 0.1f, -10));
    t.push_back(Floats({7}));
  }
  FakeOp Op() { return FakeOp(&t, {0, 1, 2, 3}, {4}); }
};

TEST(NewGrads, HardSwishIsTheDerivativeMaskedAtTheInt8Limits) {
  HardSwishFixture f;
  FakeOp op = f.Op();
  const OpKernel& k = Kernel("TFLMTRAIN_HARD_SWISH_GRAD");
  ASSERT_EQ(op.Run(k), Status::kOk) << op.error();
  // 0 at and below -3, (2x + 3) / 6 inside, 1 at and above 3; y = 127 masks.
  const std::vector<float> want = {0.0f, 0.0f, 1.0f / 6.0f, 0.5f,
                                   5.0f / 6.0f, 2.0f, 0.0f};
  EXPECT_EQ(Values(f.t[4]), want);
  // Infer mode leaves x/grad alone.
  f.t[0] = Mode(0);
  f.t[1].As<float>()[3] = 100.0f;
  ASSERT_EQ(op.Run(k), Status::kOk);
  EXPECT_EQ(f.t[4].As<float>()[3], 0.5f);
}

TEST(NewGrads, HardSwishPrepareRefusals) {
  const OpKernel& k = Kernel("TFLMTRAIN_HARD_SWISH_GRAD");
  {
    HardSwishFixture f;
    FakeOp op(&f.t, {0, 1, 3}, {4});
    EXPECT_NE(op.Run(k, true), Status::kOk);
    EXPECT_EQ(op.error(), "TFLMTRAIN_HARD_SWISH_GRAD: expected 4 inputs and 1 "
                          "outputs, got 3 and 1");
  }
  {
    HardSwishFixture f;
    f.t[2] = Floats({7});
    FakeOp op = f.Op();
    EXPECT_NE(op.Run(k, true), Status::kOk);
    EXPECT_EQ(op.error(),
              "TFLMTRAIN_HARD_SWISH_GRAD: x must be int8, got float32");
  }
  {
    HardSwishFixture f;
    Quantize(&f.t[2], {0.5f, 0.25f}, {0, 0});
    FakeOp op = f.Op();
    EXPECT_NE(op.Run(k, true), Status::kOk);
    EXPECT_EQ(op.error(), "TFLMTRAIN_HARD_SWISH_GRAD: x must be quantized per "
                          "tensor, got 2 scales");
  }
  {
    HardSwishFixture f;
    f.t[4] = Floats({1, 7});
    FakeOp op = f.Op();
    EXPECT_NE(op.Run(k, true), Status::kOk);
    EXPECT_EQ(op.error(),
              "TFLMTRAIN_HARD_SWISH_GRAD: x/grad shape differs from y shape");
  }
  {
    HardSwishFixture f;
    Quantize(&f.t[3], {0.0f}, {0});
    FakeOp op = f.Op();
    EXPECT_NE(op.Run(k, true), Status::kOk);
    EXPECT_EQ(op.error().rfind("TFLMTRAIN_HARD_SWISH_GRAD: y scale", 0), 0u)
        << op.error();
  }
  {
    HardSwishFixture f;
    f.t[0] = MakeTensor<int32_t>(DataType::kInt32, {2}, {1, 1});
    FakeOp op = f.Op();
    EXPECT_NE(op.Run(k, true), Status::kOk);
    EXPECT_EQ(op.error(),
              "TFLMTRAIN_HARD_SWISH_GRAD: mode must have 1 elements, got 2");
  }
}

// ---- LOGISTIC, TANH ------------------------------------------------------------

TEST(NewGrads, LogisticAndTanhReadTheirOutput) {
  std::vector<FakeTensor> t;
  t.push_back(Mode(1));
  t.push_back(Floats({4}, {1, 2, 4, 8}));
  // Logistic: v = (q + 128) / 256 = 0.5, 0.75, 0 (limit), 255/256 (limit).
  t.push_back(Int8({4}, {0, 64, -128, 127}, 1.0f / 256, -128));
  t.push_back(Floats({4}));
  FakeOp logistic(&t, {0, 1, 2}, {3});
  ASSERT_EQ(logistic.Run(Kernel("TFLMTRAIN_LOGISTIC_GRAD")), Status::kOk)
      << logistic.error();
  EXPECT_EQ(Values(t[3]), (std::vector<float>{0.25f, 2 * 0.1875f, 0, 0}));
  // Tanh: v = q / 128 = 0.5, -0.25, -1 (limit), 127/128 (limit).
  t[2] = Int8({4}, {64, -32, -128, 127}, 1.0f / 128, 0);
  FakeOp tanh(&t, {0, 1, 2}, {3});
  ASSERT_EQ(tanh.Run(Kernel("TFLMTRAIN_TANH_GRAD")), Status::kOk)
      << tanh.error();
  EXPECT_EQ(Values(t[3]), (std::vector<float>{0.75f, 2 * 0.9375f, 0, 0}));
}

TEST(NewGrads, LogisticTanhPrepareRefusals) {
  std::vector<FakeTensor> t;
  t.push_back(Mode(1));
  t.push_back(Floats({4}));
  t.push_back(Int8({4}, {0, 0, 0, 0}, 1.0f / 256, -128));
  t.push_back(Floats({3}));
  t.push_back(MakeTensor<int8_t>(DataType::kInt8, {4}));  // not quantized
  FakeOp bad_shape(&t, {0, 1, 2}, {3});
  EXPECT_NE(bad_shape.Run(Kernel("TFLMTRAIN_LOGISTIC_GRAD"), true), Status::kOk);
  EXPECT_EQ(bad_shape.error(),
            "TFLMTRAIN_LOGISTIC_GRAD: x/grad shape differs from y shape");
  FakeOp unquantized(&t, {0, 1, 4}, {1});
  EXPECT_NE(unquantized.Run(Kernel("TFLMTRAIN_TANH_GRAD"), true), Status::kOk);
  EXPECT_EQ(unquantized.error(),
            "TFLMTRAIN_TANH_GRAD: y must be quantized per tensor, got 0 scales");
  FakeOp no_y(&t, {0, 1, -1}, {1});
  EXPECT_NE(no_y.Run(Kernel("TFLMTRAIN_TANH_GRAD"), true), Status::kOk);
  EXPECT_EQ(no_y.error(), "TFLMTRAIN_TANH_GRAD: input 2 (y) is missing");
}

// ---- LEAKY_RELU ----------------------------------------------------------------

TEST(NewGrads, LeakyReluTakesTheIdentityBranchAtZero) {
  std::vector<FakeTensor> t;
  t.push_back(Mode(1));
  t.push_back(Floats({4}, {1, 1, 1, 1}));
  t.push_back(Int8({4}, {-4, -5, -6, 100}, 0.1f, -5));  // x >= 0, = 0, < 0
  t.push_back(Int8({4}, {0, 0, 0, 127}, 0.1f, 0));
  t.push_back(Floats({4}));
  const OpKernel& k = Kernel("TFLMTRAIN_LEAKY_RELU_GRAD");
  FakeOp op(&t, {0, 1, 2, 3}, {4}, kAlpha, sizeof(kAlpha));
  ASSERT_EQ(op.Run(k), Status::kOk) << op.error();
  EXPECT_EQ(Values(t[4]), (std::vector<float>{1.0f, 1.0f, 0.25f, 0.0f}));

  FakeOp no_alpha(&t, {0, 1, 2, 3}, {4}, kEmpty, sizeof(kEmpty));
  EXPECT_NE(no_alpha.Run(k, true), Status::kOk);
  EXPECT_EQ(no_alpha.error(), "TFLMTRAIN_LEAKY_RELU_GRAD: custom option "
                              "'alpha' must be a finite float");
  FakeOp truncated(&t, {0, 1, 2, 3}, {4}, kAlpha, sizeof(kAlpha) - 3);
  EXPECT_NE(truncated.Run(k, true), Status::kOk);
  EXPECT_EQ(truncated.error().rfind("TFLMTRAIN_LEAKY_RELU_GRAD: custom option",
                                    0),
            0u)
      << truncated.error();
  FakeOp no_x(&t, {0, 1, -1, 3}, {4}, kAlpha, sizeof(kAlpha));
  EXPECT_NE(no_x.Run(k, true), Status::kOk);
  EXPECT_EQ(no_x.error(), "TFLMTRAIN_LEAKY_RELU_GRAD: input 2 (x) is missing");
}

// ---- MUL -------------------------------------------------------------------

// Squeeze-excite: a [1, 2, 2, 2] features, b [1, 1, 1, 2] gates.
struct MulFixture {
  enum { kMode, kDy, kY, kA, kB, kDa, kDb };
  std::vector<FakeTensor> t;
  MulFixture() {
    t.push_back(Mode(1));
    t.push_back(Floats({1, 2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8}));
    t.push_back(Int8({1, 2, 2, 2}, {0, 0, 0, 0, 0, 0, 0, 127}, 0.1f, 0));
    // a = 0.5 * (q - 1): 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4.
    t.push_back(Int8({1, 2, 2, 2}, {2, 3, 4, 5, 6, 7, 8, 9}, 0.5f, 1));
    // b = 0.25 * q: 1, -2.
    t.push_back(Int8({1, 1, 1, 2}, {4, -8}, 0.25f, 0));
    t.push_back(Floats({1, 2, 2, 2}));
    t.push_back(Floats({1, 1, 1, 2}));
  }
};

TEST(NewGrads, MulSqueezeExciteSumsOverTheBroadcastCells) {
  MulFixture f;
  const OpKernel& k = Kernel("TFLMTRAIN_MUL_GRAD");
  FakeOp op(&f.t, {0, 1, 2, 3, 4}, {5, 6}, kMulBoth, sizeof(kMulBoth));
  ASSERT_EQ(op.Run(k), Status::kOk) << op.error();
  // da = g * b with g = dy masked (the last cell's y is 127).
  EXPECT_EQ(Values(f.t[MulFixture::kDa]),
            (std::vector<float>{1, -4, 3, -8, 5, -12, 7, 0}));
  // db[c] = sum over cells of g * a: c0: 1*.5 + 3*1.5 + 5*2.5 + 7*3.5,
  // c1: 2*1 + 4*2 + 6*3 (+ the masked cell).
  EXPECT_EQ(Values(f.t[MulFixture::kDb]),
            (std::vector<float>{42.0f, 28.0f}));
}

TEST(NewGrads, MulOneOperandNeedsOnlyTheOther) {
  MulFixture f;
  const OpKernel& k = Kernel("TFLMTRAIN_MUL_GRAD");
  // b/grad alone: b may be absent (its shape is b/grad's).
  FakeOp b_only(&f.t, {0, 1, 2, 3, -1}, {6}, kMulB, sizeof(kMulB));
  ASSERT_EQ(b_only.Run(k), Status::kOk) << b_only.error();
  EXPECT_EQ(Values(f.t[MulFixture::kDb]), (std::vector<float>{42.0f, 28.0f}));
  // a/grad alone needs b.
  FakeOp no_b(&f.t, {0, 1, 2, 3, -1}, {5}, kMulARelu, sizeof(kMulARelu));
  EXPECT_NE(no_b.Run(k, true), Status::kOk);
  EXPECT_EQ(no_b.error(), "TFLMTRAIN_MUL_GRAD: input 4 (b) is missing; the "
                          "other operand's gradient needs it");
  FakeOp a_only(&f.t, {0, 1, 2, -1, 4}, {5}, kMulARelu, sizeof(kMulARelu));
  ASSERT_EQ(a_only.Run(k), Status::kOk) << a_only.error();
  // RELU with zero point 0: q_y = 0 sits at act_min and is masked too.
  EXPECT_EQ(Values(f.t[MulFixture::kDa]),
            (std::vector<float>(8, 0.0f)));
}

TEST(NewGrads, MulPrepareRefusals) {
  const OpKernel& k = Kernel("TFLMTRAIN_MUL_GRAD");
  {
    MulFixture f;
    FakeOp op(&f.t, {0, 1, 2, 3, 4}, {5}, kMulNone, sizeof(kMulNone));
    EXPECT_NE(op.Run(k, true), Status::kOk);
    EXPECT_EQ(op.error(), "TFLMTRAIN_MUL_GRAD: options grad_a, grad_b must be "
                          "0 or 1, not both 0");
  }
  {
    MulFixture f;
    FakeOp op(&f.t, {0, 1, 2, 3, 4}, {5}, kMulBoth, sizeof(kMulBoth));
    EXPECT_NE(op.Run(k, true), Status::kOk);
    EXPECT_EQ(op.error(), "TFLMTRAIN_MUL_GRAD: expected 5 inputs and 2 "
                          "outputs, got 5 and 1");
  }
  {
    MulFixture f;
    FakeOp op(&f.t, {0, 1, 2, 3, 4}, {5, 6}, kEmpty, sizeof(kEmpty));
    EXPECT_NE(op.Run(k, true), Status::kOk);
    EXPECT_EQ(op.error(), "TFLMTRAIN_MUL_GRAD: custom option 'activation': "
                          "missing");
  }
  {
    MulFixture f;  // gates of the wrong width
    f.t[MulFixture::kB] = Int8({1, 1, 1, 3}, {1, 2, 3}, 0.25f, 0);
    f.t[MulFixture::kDb] = Floats({1, 1, 1, 3});
    FakeOp op(&f.t, {0, 1, 2, 3, 4}, {5, 6}, kMulBoth, sizeof(kMulBoth));
    EXPECT_NE(op.Run(k, true), Status::kOk);
    EXPECT_EQ(op.error(), "TFLMTRAIN_MUL_GRAD: a (rank 4) and b (rank 4) do "
                          "not broadcast to y (rank 4)");
  }
  {
    MulFixture f;  // b/grad not shaped like b
    f.t[MulFixture::kDb] = Floats({1, 2});
    FakeOp op(&f.t, {0, 1, 2, 3, 4}, {5, 6}, kMulBoth, sizeof(kMulBoth));
    EXPECT_NE(op.Run(k, true), Status::kOk);
    EXPECT_EQ(op.error(), "TFLMTRAIN_MUL_GRAD: b/grad shape differs from b "
                          "shape");
  }
  {
    MulFixture f;
    f.t[MulFixture::kY] = Floats({1, 2, 2, 2});
    FakeOp op(&f.t, {0, 1, 2, 3, 4}, {5, 6}, kMulBoth, sizeof(kMulBoth));
    EXPECT_NE(op.Run(k, true), Status::kOk);
    EXPECT_EQ(op.error(), "TFLMTRAIN_MUL_GRAD: y must be int8, got float32");
  }
  {
    MulFixture f;
    f.t[MulFixture::kDy] = Floats({1, 2, 2, 1});
    FakeOp op(&f.t, {0, 1, 2, 3, 4}, {5, 6}, kMulBoth, sizeof(kMulBoth));
    EXPECT_NE(op.Run(k, true), Status::kOk);
    EXPECT_EQ(op.error(),
              "TFLMTRAIN_MUL_GRAD: y/grad shape differs from y shape");
  }
}

TEST(NewGrads, BroadcastAddSumsOverTheRepeats) {
  MulFixture f;  // the same shapes; a and b are not read
  const OpKernel& k = Kernel("TFLMTRAIN_ADD_GRAD");
  FakeOp op(&f.t, {0, 1, 2}, {5, 6}, kActivationNone, sizeof(kActivationNone));
  ASSERT_EQ(op.Run(k), Status::kOk) << op.error();
  EXPECT_EQ(Values(f.t[MulFixture::kDa]),
            (std::vector<float>{1, 2, 3, 4, 5, 6, 7, 0}));
  EXPECT_EQ(Values(f.t[MulFixture::kDb]), (std::vector<float>{16.0f, 12.0f}));
  // The gradient of an operand that does not broadcast to y is refused, and
  // a requantize has no broadcast.
  f.t[MulFixture::kDb] = Floats({1, 1, 3});
  FakeOp bad(&f.t, {0, 1, 2}, {5, 6}, kActivationNone, sizeof(kActivationNone));
  EXPECT_NE(bad.Run(k, true), Status::kOk);
  EXPECT_EQ(bad.error(),
            "TFLMTRAIN_ADD_GRAD: output 1 shape differs from y shape");
  FakeOp requantize(&f.t, {0, 1, 2}, {6}, kEmpty, sizeof(kEmpty));
  f.t[MulFixture::kDb] = Floats({1, 1, 1, 2});
  EXPECT_NE(requantize.Run(Kernel("TFLMTRAIN_QUANTIZE_GRAD"), true), Status::kOk);
  EXPECT_EQ(requantize.error(),
            "TFLMTRAIN_QUANTIZE_GRAD: output 0 shape differs from y shape");
}

// ---- CONCATENATION, TRANSPOSE --------------------------------------------------

TEST(NewGrads, ConcatenationSplitsAlongTheAxis) {
  std::vector<FakeTensor> t;
  t.push_back(Mode(1));
  t.push_back(Floats({2, 5}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  t.push_back(ConstTensor<int32_t>(DataType::kInt32, Dims({2}), {0, 3}));
  t.push_back(Floats({2, 2}));
  t.push_back(Floats({2, 2}));  // skips position 2 (an input needing none)
  const OpKernel& k = Kernel("TFLMTRAIN_CONCATENATION_GRAD");
  FakeOp op(&t, {0, 1, 2}, {3, 4}, kAxis1, sizeof(kAxis1));
  ASSERT_EQ(op.Run(k), Status::kOk) << op.error();
  EXPECT_EQ(Values(t[3]), (std::vector<float>{0, 1, 5, 6}));
  EXPECT_EQ(Values(t[4]), (std::vector<float>{3, 4, 8, 9}));
}

TEST(NewGrads, ConcatenationPrepareRefusals) {
  const OpKernel& k = Kernel("TFLMTRAIN_CONCATENATION_GRAD");
  std::vector<FakeTensor> t;
  t.push_back(Mode(1));
  t.push_back(Floats({2, 5}));
  t.push_back(ConstTensor<int32_t>(DataType::kInt32, Dims({2}), {0, 1}));
  t.push_back(Floats({2, 2}));
  t.push_back(Floats({2, 2}));
  t.push_back(MakeTensor<int32_t>(DataType::kInt32, {2}, {0, 2}));  // not const
  t.push_back(Floats({3, 2}));
  FakeOp overlap(&t, {0, 1, 2}, {3, 4}, kAxis1, sizeof(kAxis1));
  EXPECT_NE(overlap.Run(k, true), Status::kOk);
  EXPECT_EQ(overlap.error(),
            "TFLMTRAIN_CONCATENATION_GRAD: output 1 at offset 1 (2 wide) "
            "overlaps another or leaves y/grad's 5 positions along axis 1");
  FakeOp variable(&t, {0, 1, 5}, {3, 4}, kAxis1, sizeof(kAxis1));
  EXPECT_NE(variable.Run(k, true), Status::kOk);
  EXPECT_EQ(variable.error(), "TFLMTRAIN_CONCATENATION_GRAD: offsets must be "
                              "a constant int32 tensor");
  FakeOp rows(&t, {0, 1, 2}, {3, 6}, kAxis1, sizeof(kAxis1));
  EXPECT_NE(rows.Run(k, true), Status::kOk);
  EXPECT_EQ(rows.error(), "TFLMTRAIN_CONCATENATION_GRAD: output 1 differs "
                          "from y/grad in dimension 0");
  FakeOp no_axis(&t, {0, 1, 2}, {3, 4}, kEmpty, sizeof(kEmpty));
  EXPECT_NE(no_axis.Run(k, true), Status::kOk);
  EXPECT_EQ(no_axis.error(),
            "TFLMTRAIN_CONCATENATION_GRAD: custom option 'axis': missing");
  FakeOp none(&t, {0, 1, 2}, {}, kAxis1, sizeof(kAxis1));
  EXPECT_NE(none.Run(k, true), Status::kOk);
  t[1] = Floats({5});  // axis 1 of a rank-1 y/grad
  FakeOp axis(&t, {0, 1, 2}, {3, 4}, kAxis1, sizeof(kAxis1));
  EXPECT_NE(axis.Run(k, true), Status::kOk);
  EXPECT_EQ(axis.error(),
            "TFLMTRAIN_CONCATENATION_GRAD: axis 1 is outside [0, 1)");
}

TEST(NewGrads, TransposePermutesBack) {
  std::vector<FakeTensor> t;
  t.push_back(Mode(1));
  // y = transpose(x [2, 3], [1, 0]) is [3, 2].
  t.push_back(Floats({3, 2}, {0, 1, 2, 3, 4, 5}));
  t.push_back(ConstTensor<int32_t>(DataType::kInt32, Dims({2}), {1, 0}));
  t.push_back(Floats({2, 3}));
  const OpKernel& k = Kernel("TFLMTRAIN_TRANSPOSE_GRAD");
  FakeOp op(&t, {0, 1, 2}, {3});
  ASSERT_EQ(op.Run(k), Status::kOk) << op.error();
  EXPECT_EQ(Values(t[3]), (std::vector<float>{0, 2, 4, 1, 3, 5}));

  t.push_back(ConstTensor<int32_t>(DataType::kInt32, Dims({2}), {1, 1}));
  FakeOp repeated(&t, {0, 1, 4}, {3});
  EXPECT_NE(repeated.Run(k, true), Status::kOk);
  EXPECT_EQ(repeated.error(),
            "TFLMTRAIN_TRANSPOSE_GRAD: perm is not a permutation of 0..1");
  t.push_back(Floats({3, 2}));
  FakeOp shape(&t, {0, 1, 2}, {5});
  EXPECT_NE(shape.Run(k, true), Status::kOk);
  EXPECT_EQ(shape.error(), "TFLMTRAIN_TRANSPOSE_GRAD: y/grad dimension 0 (3) "
                           "!= x/grad dimension 1 (2)");
  t.push_back(ConstTensor<int32_t>(DataType::kInt32, Dims({3}), {0, 1, 2}));
  FakeOp rank(&t, {0, 1, 6}, {3});
  EXPECT_NE(rank.Run(k, true), Status::kOk);
  EXPECT_EQ(rank.error(),
            "TFLMTRAIN_TRANSPOSE_GRAD: perm has 3 elements, expected 2");
}

TEST(NewGrads, StridedSliceScattersIntoZeros) {
  std::vector<FakeTensor> t;
  t.push_back(Mode(1));
  // y = x[1, ::-2] of x [2, 5] (axis 0 shrunk, axis 1 from the end): x[1, 4],
  // x[1, 2], x[1, 0].
  t.push_back(Floats({3}, {1, 2, 3}));
  t.push_back(ConstTensor<int32_t>(DataType::kInt32, Dims({2}), {1, -1}));
  t.push_back(ConstTensor<int32_t>(DataType::kInt32, Dims({2}), {2, 0}));
  t.push_back(ConstTensor<int32_t>(DataType::kInt32, Dims({2}), {1, -2}));
  t.push_back(Floats({2, 5}, {9, 9, 9, 9, 9, 9, 9, 9, 9, 9}));
  const OpKernel& k = Kernel("TFLMTRAIN_STRIDED_SLICE_GRAD");
  FakeOp op(&t, {0, 1, 2, 3, 4}, {5}, kSliceMasks, sizeof(kSliceMasks));
  ASSERT_EQ(op.Run(k), Status::kOk) << op.error();
  EXPECT_EQ(Values(t[5]), (std::vector<float>{0, 0, 0, 0, 0, 3, 0, 2, 0, 1}));

  t.push_back(ConstTensor<int32_t>(DataType::kInt32, Dims({2}), {1, 0}));
  FakeOp zero_stride(&t, {0, 1, 2, 3, 6}, {5}, kSliceMasks,
                     sizeof(kSliceMasks));
  EXPECT_NE(zero_stride.Run(k, true), Status::kOk);
  EXPECT_EQ(zero_stride.error(),
            "TFLMTRAIN_STRIDED_SLICE_GRAD: stride of dimension 1 is 0");
  t.push_back(ConstTensor<int32_t>(DataType::kInt32, Dims({2}), {5, -1}));
  FakeOp shrunk_away(&t, {0, 1, 7, 3, 4}, {5}, kSliceMasks,
                     sizeof(kSliceMasks));
  EXPECT_NE(shrunk_away.Run(k, true), Status::kOk);
  EXPECT_EQ(shrunk_away.error(), "TFLMTRAIN_STRIDED_SLICE_GRAD: dimension 0 "
                                 "is shrunk to no element");
  t.push_back(Floats({4}));
  FakeOp count(&t, {0, 8, 2, 3, 4}, {5}, kSliceMasks, sizeof(kSliceMasks));
  EXPECT_NE(count.Run(k, true), Status::kOk);
  EXPECT_EQ(count.error(), "TFLMTRAIN_STRIDED_SLICE_GRAD: y/grad must have 3 "
                           "elements, got 4");
  FakeOp no_masks(&t, {0, 1, 2, 3, 4}, {5}, kEmpty, sizeof(kEmpty));
  EXPECT_NE(no_masks.Run(k, true), Status::kOk);
  EXPECT_EQ(no_masks.error(), "TFLMTRAIN_STRIDED_SLICE_GRAD: custom option "
                              "'begin_mask': missing");
  t.push_back(MakeTensor<int32_t>(DataType::kInt32, {2}, {1, -1}));
  FakeOp variable(&t, {0, 1, 9, 3, 4}, {5}, kSliceMasks, sizeof(kSliceMasks));
  EXPECT_NE(variable.Run(k, true), Status::kOk);
  EXPECT_EQ(variable.error(), "TFLMTRAIN_STRIDED_SLICE_GRAD: begin must be a "
                              "constant int32 tensor");
}

}  // namespace
}  // namespace tflm_train
