// The int8 binary forward ops (ADD, SUB, MUL, MAXIMUM, MINIMUM with
// broadcasting; CONCATENATION): hand-checked small cases of the reference
// functions, and every Prepare refusal through the op wrappers on a fake
// context. (Bit-exactness against TFLM itself: tests/test_forward_binary.py.)
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "ops_cc/kernels/add.h"
#include "ops_cc/kernels/broadcast.h"
#include "ops_cc/kernels/concatenation.h"
#include "ops_cc/kernels/maximum_minimum.h"
#include "ops_cc/kernels/mul.h"
#include "ops_cc/ops/builtin_options.h"
#include "ops_cc/ops/forward_ops.h"
#include "ops_cc/runtime/model.h"
#include "ops_cc/tests/fake_context.h"

namespace tflm_train {
namespace {

std::vector<int8_t> Values(const FakeTensor& t) {
  return std::vector<int8_t>(t.data.begin(), t.data.end());
}

void Fill(FakeTensor* t, std::vector<int8_t> values) {
  ASSERT_EQ(values.size(), t->data.size());
  for (size_t i = 0; i < values.size(); ++i)
    t->data[i] = static_cast<uint8_t>(values[i]);
}

Status RunOp(FakeOp& op, int code) {
  const OpKernel* kernel = FindForwardKernel(code);
  if (kernel == nullptr) return Status::kUnsupportedOp;
  return op.RunFresh(*kernel);
}

// ---- broadcasting ------------------------------------------------------------

TEST(Broadcast, ShapesThatBroadcast) {
  EXPECT_TRUE(ShapesBroadcast(MakeShape({1, 6, 6, 8}), MakeShape({1, 1, 1, 8}),
                              MakeShape({1, 6, 6, 8})));
  // Lower rank: [C] and [1, C] align from the right.
  EXPECT_TRUE(ShapesBroadcast(MakeShape({1, 6, 6, 8}), MakeShape({1, 8}),
                              MakeShape({1, 6, 6, 8})));
  EXPECT_TRUE(ShapesBroadcast(MakeShape({8}), MakeShape({1, 6, 6, 8}),
                              MakeShape({1, 6, 6, 8})));
  // Both inputs broadcast.
  EXPECT_TRUE(ShapesBroadcast(MakeShape({4, 1}), MakeShape({1, 3}),
                              MakeShape({4, 3})));
  EXPECT_TRUE(ShapesBroadcast(MakeShape({}), MakeShape({}), MakeShape({})));
}

TEST(Broadcast, ShapesThatDoNot) {
  // A dimension that is neither equal nor 1.
  EXPECT_FALSE(ShapesBroadcast(MakeShape({1, 6, 6, 8}), MakeShape({1, 1, 1, 4}),
                               MakeShape({1, 6, 6, 8})));
  // Output dimension not the inputs'.
  EXPECT_FALSE(ShapesBroadcast(MakeShape({1, 6, 6, 8}), MakeShape({1, 1, 1, 8}),
                               MakeShape({1, 6, 6, 4})));
  EXPECT_FALSE(ShapesBroadcast(MakeShape({1, 1}), MakeShape({1, 1}),
                               MakeShape({1, 5})));  // 1 and 1 give 1
  // Output rank other than the larger input rank.
  EXPECT_FALSE(ShapesBroadcast(MakeShape({8}), MakeShape({8}),
                               MakeShape({1, 8})));
  EXPECT_FALSE(ShapesBroadcast(MakeShape({1, 8}), MakeShape({8}),
                               MakeShape({8})));
  EXPECT_FALSE(ShapesBroadcast(MakeShape({2, -1}), MakeShape({1}),
                               MakeShape({2, -1})));
}

TEST(Broadcast, WalksTheOutputInRowMajorOrder) {
  // [2, 1, 3] op [4, 1] -> [2, 4, 3]; op records (a, b) as 10 a + b.
  const int8_t a[6] = {0, 1, 2, 3, 4, 5};
  const int8_t b[4] = {0, 1, 2, 3};
  int8_t out[24] = {};
  BroadcastBinary(MakeShape({2, 1, 3}), a, MakeShape({4, 1}), b,
                  MakeShape({2, 4, 3}), out,
                  [](int8_t x, int8_t y) { return static_cast<int8_t>(10 * x + y); });
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j)
      for (int k = 0; k < 3; ++k)
        EXPECT_EQ(out[(i * 4 + j) * 3 + k], 10 * a[i * 3 + k] + b[j]);
}

// ---- ADD / SUB ----------------------------------------------------------------

TEST(Sub, EqualScalesSubtractExactly) {
  // s1 = s2 = s_out: out = (a - z1) - (b - z2) + z_out, saturated.
  AddParams p;
  ASSERT_TRUE(ComputeAddParams(0.1f, 3, 0.1f, -7, 0.1f, 5, &p));
  std::vector<int8_t> a(65536), b(65536), out(65536);
  for (int i = 0; i < 65536; ++i) {
    a[i] = static_cast<int8_t>(i & 255);
    b[i] = static_cast<int8_t>(i >> 8);
  }
  const Shape s = MakeShape({65536});
  ref::Sub(p, s, a.data(), s, b.data(), s, out.data());
  for (int i = 0; i < 65536; ++i) {
    int expected = (a[i] - 3) - (b[i] + 7) + 5;
    expected = expected < -128 ? -128 : (expected > 127 ? 127 : expected);
    ASSERT_EQ(out[i], expected) << int(a[i]) << " - " << int(b[i]);
  }
}

TEST(Sub, MultipliersAreTheDoublePrecisionOnes) {
  // The wheel's SUB divides in double (ComputeAddParams); with float ratios
  // these scales would give 1963213824 and 1958330624, and 102 below.
  AddParams p;
  ASSERT_TRUE(ComputeAddParams(0.0213169996f, 0, 0.0233178418f, 0,
                               0.0255700871f, 0, &p));
  EXPECT_EQ(p.input1_multiplier, 1963213764);
  EXPECT_EQ(p.input1_shift, -1);
  EXPECT_EQ(p.input2_multiplier, 1073741824);  // 1/2
  EXPECT_EQ(p.input2_shift, 0);
  EXPECT_EQ(p.output_multiplier, 1958330597);
  EXPECT_EQ(p.output_shift, -19);
  const int8_t a = 113, b = -8;
  int8_t out = 0;
  const Shape s = MakeShape({1});
  ref::Sub(p, s, &a, s, &b, s, &out);
  EXPECT_EQ(out, 101);  // (113 * 0.02132 + 8 * 0.02332) / 0.02557 ~ 101.5
}

TEST(Sub, BroadcastsAFeatureMapAgainstAChannelVector) {
  // [1, 2, 2, 2] - [2] with unit scales.
  AddParams p;
  ASSERT_TRUE(ComputeAddParams(1.0f, 0, 1.0f, 0, 1.0f, 0, &p));
  const int8_t map[8] = {10, 20, 30, 40, 50, 60, 70, 80};
  const int8_t vec[2] = {1, -2};
  int8_t out[8] = {};
  ref::Sub(p, MakeShape({1, 2, 2, 2}), map, MakeShape({2}), vec,
           MakeShape({1, 2, 2, 2}), out);
  const int8_t expected[8] = {9, 22, 29, 42, 49, 62, 69, 82};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(out[i], expected[i]);
  // Reversed: the vector is input 1.
  ref::Sub(p, MakeShape({2}), vec, MakeShape({1, 2, 2, 2}), map,
           MakeShape({1, 2, 2, 2}), out);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(out[i], -expected[i]);
}

// ---- MUL ----------------------------------------------------------------------

TEST(Mul, ByHand) {
  // s1 = 0.5, s2 = 0.25, s_out = 0.125: multiplier 1 (Q31 2^30, shift 1),
  // out = (a - z1)(b - z2) + z_out.
  MulParams p;
  ASSERT_TRUE(ComputeMulParams(0.5f, 2, 0.25f, -1, 0.125f, 3, &p));
  EXPECT_EQ(p.output_multiplier, 1 << 30);
  EXPECT_EQ(p.output_shift, 1);
  const int8_t a[4] = {2, 5, 0, 127};
  const int8_t b[4] = {7, -1, 3, 127};
  int8_t out[4] = {};
  const Shape s = MakeShape({4});
  ref::Mul(p, s, a, s, b, s, out);
  EXPECT_EQ(out[0], 3);     // 0 * 8 + 3
  EXPECT_EQ(out[1], 3);     // 3 * 0 + 3
  EXPECT_EQ(out[2], -5);    // -2 * 4 + 3
  EXPECT_EQ(out[3], 127);   // saturates
}

TEST(Mul, RoundsHalfAwayFromZeroAndAppliesTheActivation) {
  // Multiplier 1/4: 2 * 1 / 4 = 0.5 -> 1; -2 / 4 -> -1 (ties away from 0).
  MulParams p;
  ASSERT_TRUE(ComputeMulParams(0.5f, 0, 0.5f, 0, 1.0f, 0, &p));
  const int8_t a[3] = {2, -2, 6};
  const int8_t b[3] = {1, 1, 1};
  int8_t out[3] = {};
  const Shape s = MakeShape({3});
  ref::Mul(p, s, a, s, b, s, out);
  EXPECT_EQ(out[0], 1);
  EXPECT_EQ(out[1], -1);
  EXPECT_EQ(out[2], 2);  // 1.5 -> 2
  p.act_min = 0;         // RELU with zero point 0
  ref::Mul(p, s, a, s, b, s, out);
  EXPECT_EQ(out[1], 0);
}

TEST(Mul, SqueezeExciteBroadcast) {
  // [1, 2, 1, 3] * [1, 1, 1, 3], unit multiplier.
  MulParams p;
  ASSERT_TRUE(ComputeMulParams(1.0f, 0, 1.0f, 0, 1.0f, 0, &p));
  const int8_t map[6] = {1, 2, 3, 4, 5, 6};
  const int8_t gate[3] = {2, 0, -1};
  int8_t out[6] = {};
  ref::Mul(p, MakeShape({1, 2, 1, 3}), map, MakeShape({1, 1, 1, 3}), gate,
           MakeShape({1, 2, 1, 3}), out);
  const int8_t expected[6] = {2, 0, -3, 8, 0, -6};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(out[i], expected[i]);
}

TEST(Mul, RejectsMultipliersOf2To31AndMore) {
  MulParams p;
  EXPECT_TRUE(ComputeMulParams(1.0f, 0, 1.0f, 0, 1e-9f, 0, &p));  // ~2^30
  EXPECT_FALSE(ComputeMulParams(1e10f, 0, 1.0f, 0, 1e-3f, 0, &p));
  EXPECT_FALSE(ComputeMulParams(0.0f, 0, 1.0f, 0, 1.0f, 0, &p));
}

// ---- MAXIMUM / MINIMUM -----------------------------------------------------------

TEST(MaximumMinimum, ElementwiseAndBroadcast) {
  const int8_t a[4] = {-128, 5, 127, 0};
  const int8_t b[4] = {3, 5, -1, -128};
  int8_t out[4] = {};
  const Shape s = MakeShape({2, 2});
  ref::Maximum(s, a, s, b, s, out);
  EXPECT_EQ(std::vector<int8_t>(out, out + 4), (std::vector<int8_t>{3, 5, 127, 0}));
  ref::Minimum(s, a, s, b, s, out);
  EXPECT_EQ(std::vector<int8_t>(out, out + 4),
            (std::vector<int8_t>{-128, 5, -1, -128}));
  const int8_t row[2] = {1, 2};
  ref::Maximum(s, a, MakeShape({2}), row, s, out);
  EXPECT_EQ(std::vector<int8_t>(out, out + 4), (std::vector<int8_t>{1, 5, 127, 2}));
}

// ---- CONCATENATION -----------------------------------------------------------------

TEST(Concatenation, InterleavesBlocksAlongTheAxis) {
  // [2, 1, 2] and [2, 2, 2] along axis 1 -> [2, 3, 2].
  const int8_t a[4] = {1, 2, 3, 4};
  const int8_t b[8] = {10, 11, 12, 13, 14, 15, 16, 17};
  const Shape shapes[2] = {MakeShape({2, 1, 2}), MakeShape({2, 2, 2})};
  const int8_t* inputs[2] = {a, b};
  const Shape out_shape = MakeShape({2, 3, 2});
  ASSERT_TRUE(ConcatenationShapesMatch(1, 2, shapes, out_shape));
  int8_t out[12] = {};
  ref::Concatenation(1, 2, shapes, inputs, out_shape, out);
  const int8_t expected[12] = {1, 2, 10, 11, 12, 13, 3, 4, 14, 15, 16, 17};
  for (int i = 0; i < 12; ++i) EXPECT_EQ(out[i], expected[i]);
}

TEST(Concatenation, ShapeChecks) {
  const Shape two[2] = {MakeShape({1, 2, 3}), MakeShape({1, 2, 4})};
  EXPECT_TRUE(ConcatenationShapesMatch(2, 2, two, MakeShape({1, 2, 7})));
  EXPECT_FALSE(ConcatenationShapesMatch(2, 2, two, MakeShape({1, 2, 8})));
  EXPECT_FALSE(ConcatenationShapesMatch(1, 2, two, MakeShape({1, 4, 3})));
  EXPECT_FALSE(ConcatenationShapesMatch(3, 2, two, MakeShape({1, 2, 7})));
  const Shape ranks[2] = {MakeShape({2, 3}), MakeShape({1, 2, 4})};
  EXPECT_FALSE(ConcatenationShapesMatch(2, 2, ranks, MakeShape({1, 2, 7})));
}

// ---- op wrappers ----------------------------------------------------------------------

struct BinaryFixture {
  FakeTensor a = Int8Tensor(MakeShape({1, 2, 2, 2}), 0.5f, 0);
  FakeTensor b = Int8Tensor(MakeShape({1, 1, 1, 2}), 0.5f, 0);
  FakeTensor out = Int8Tensor(MakeShape({1, 2, 2, 2}), 0.5f, 0);
  AddOptions add;
  SubOptions sub;
  MulOptions mul;
  FakeOp op;
  explicit BinaryFixture(int code) {
    op.inputs = {&a, &b};
    op.outputs = {&out};
    if (code == kBuiltinAdd) op.builtin_options = &add;
    if (code == kBuiltinSub) op.builtin_options = &sub;
    if (code == kBuiltinMul) op.builtin_options = &mul;
  }
};

const int kBinaryCodes[] = {kBuiltinAdd, kBuiltinSub, kBuiltinMul,
                            kBuiltinMaximum, kBuiltinMinimum};

TEST(BinaryOps, KernelTableAndNames) {
  for (int code : kBinaryCodes) {
    const OpKernel* k = FindForwardKernel(code);
    ASSERT_NE(k, nullptr) << code;
    EXPECT_EQ(k->builtin_code, code);
  }
  ASSERT_NE(FindForwardKernel(kBuiltinConcatenation), nullptr);
}

TEST(BinaryOps, RunThroughTheWrappers) {
  const std::vector<int8_t> map = {1, 2, 3, 4, 5, 6, 7, 8};
  const std::vector<int8_t> vec = {4, -4};
  struct Case {
    int code;
    std::vector<int8_t> expected;
  } cases[] = {
      {kBuiltinAdd, {5, -2, 7, 0, 9, 2, 11, 4}},
      {kBuiltinSub, {-3, 6, -1, 8, 1, 10, 3, 12}},
      {kBuiltinMul, {2, -4, 6, -8, 10, -12, 14, -16}},  // 0.5 * 0.5 / 0.5
      {kBuiltinMaximum, {4, 2, 4, 4, 5, 6, 7, 8}},
      {kBuiltinMinimum, {1, -4, 3, -4, 4, -4, 4, -4}},
  };
  for (const Case& c : cases) {
    BinaryFixture f(c.code);
    Fill(&f.a, map);
    Fill(&f.b, vec);
    ASSERT_EQ(RunOp(f.op, c.code), Status::kOk) << c.code << ": " << f.op.error();
    EXPECT_EQ(Values(f.out), c.expected) << c.code;
  }
}

TEST(BinaryOps, FusedActivationsClampTheOutput) {
  for (int code : {kBuiltinAdd, kBuiltinSub, kBuiltinMul}) {
    BinaryFixture f(code);
    f.add.activation = f.sub.activation = f.mul.activation = kActivationRelu6;
    Fill(&f.a, {-20, 20, 1, 2, 3, 4, 5, 6});
    Fill(&f.b, {1, 1});
    ASSERT_EQ(RunOp(f.op, code), Status::kOk) << f.op.error();
    for (uint8_t v : f.out.data) {
      EXPECT_GE(static_cast<int8_t>(v), 0) << code;   // zero point 0
      EXPECT_LE(static_cast<int8_t>(v), 12) << code;  // 6 / 0.5
    }
  }
}

TEST(BinaryOps, PrepareRefusals) {
  for (int code : kBinaryCodes) {
    const std::string name = BuiltinName(code);
    auto expect_refused = [&](BinaryFixture& f, const char* what) {
      EXPECT_EQ(RunOp(f.op, code), Status::kError) << name << ": " << what;
      EXPECT_EQ(f.op.error().rfind(name + ": ", 0), 0u)
          << name << ": " << what << ": " << f.op.error();
      return f.op.error();
    };
    {  // wrong input type
      BinaryFixture f(code);
      f.b.type = DataType::kInt16;
      EXPECT_NE(expect_refused(f, "int16 input").find("int8"), std::string::npos);
    }
    {  // wrong output type
      BinaryFixture f(code);
      f.out.type = DataType::kFloat32;
      expect_refused(f, "float output");
    }
    {  // per-channel quantization
      BinaryFixture f(code);
      Quantize(&f.a, {0.5f, 0.5f}, {0, 0}, 3);
      EXPECT_NE(expect_refused(f, "per-channel").find("per tensor"),
                std::string::npos);
    }
    {  // not quantized
      BinaryFixture f(code);
      f.out.scales.clear();
      f.out.zero_points.clear();
      expect_refused(f, "unquantized output");
    }
    {  // non-broadcastable shapes
      BinaryFixture f(code);
      f.b = Int8Tensor(MakeShape({1, 1, 1, 3}), 0.5f, 0);
      EXPECT_NE(expect_refused(f, "shapes").find("do not broadcast"),
                std::string::npos);
    }
    {  // wrong output shape
      BinaryFixture f(code);
      f.out = Int8Tensor(MakeShape({1, 2, 2, 1}), 0.5f, 0);
      expect_refused(f, "output shape");
    }
    {  // wrong output rank
      BinaryFixture f(code);
      f.out = Int8Tensor(MakeShape({2, 2, 2}), 0.5f, 0);
      expect_refused(f, "output rank");
    }
    {  // input count
      BinaryFixture f(code);
      f.op.inputs = {&f.a};
      expect_refused(f, "one input");
      f.op.inputs = {&f.a, &f.b, &f.b};
      expect_refused(f, "three inputs");
      f.op.inputs = {&f.a, nullptr};
      expect_refused(f, "absent input");
    }
    {  // output count
      BinaryFixture f(code);
      f.op.outputs = {&f.out, &f.out};
      expect_refused(f, "two outputs");
    }
  }
}

TEST(BinaryOps, ArithmeticRefusals) {
  {  // ADD's output multiplier must stay below 1
    BinaryFixture f(kBuiltinAdd);
    Quantize(&f.out, {1e-9f}, {0});
    EXPECT_EQ(RunOp(f.op, kBuiltinAdd), Status::kError);
    EXPECT_EQ(f.op.error().rfind("ADD: output scale", 0), 0u) << f.op.error();
  }
  {  // SUB likewise
    BinaryFixture f(kBuiltinSub);
    Quantize(&f.out, {1e-9f}, {0});
    EXPECT_EQ(RunOp(f.op, kBuiltinSub), Status::kError);
  }
  {  // MUL's multiplier must be below 2^31
    BinaryFixture f(kBuiltinMul);
    Quantize(&f.a, {1e18f}, {0});
    Quantize(&f.out, {1e-18f}, {0});
    EXPECT_EQ(RunOp(f.op, kBuiltinMul), Status::kError);
    EXPECT_EQ(f.op.error().rfind("MUL: input scales", 0), 0u) << f.op.error();
  }
  for (int code : {kBuiltinAdd, kBuiltinSub, kBuiltinMul}) {
    {  // missing options
      BinaryFixture f(code);
      f.op.builtin_options = nullptr;
      EXPECT_EQ(RunOp(f.op, code), Status::kError);
      EXPECT_NE(f.op.error().find("missing builtin options"), std::string::npos);
    }
    {  // unsupported fused activation (TANH)
      BinaryFixture f(code);
      f.add.activation = f.sub.activation = f.mul.activation = 4;
      EXPECT_EQ(RunOp(f.op, code), Status::kError);
      EXPECT_NE(f.op.error().find("fused activation 4"), std::string::npos);
    }
    {  // invalid scale
      BinaryFixture f(code);
      Quantize(&f.b, {0.0f}, {0});
      EXPECT_EQ(RunOp(f.op, code), Status::kError);
      EXPECT_NE(f.op.error().find("scale"), std::string::npos);
    }
    {  // zero point outside int8
      BinaryFixture f(code);
      Quantize(&f.b, {0.5f}, {200});
      EXPECT_EQ(RunOp(f.op, code), Status::kError);
      EXPECT_NE(f.op.error().find("zero point"), std::string::npos);
    }
  }
}

TEST(BinaryOps, MaximumMinimumNeedTheOutputQuantization) {
  for (int code : {kBuiltinMaximum, kBuiltinMinimum}) {
    {
      BinaryFixture f(code);
      Quantize(&f.b, {0.25f}, {0});
      EXPECT_EQ(RunOp(f.op, code), Status::kError);
      EXPECT_NE(f.op.error().find("input 1 quantization"), std::string::npos)
          << f.op.error();
    }
    {
      BinaryFixture f(code);
      Quantize(&f.a, {0.5f}, {3});
      EXPECT_EQ(RunOp(f.op, code), Status::kError);
      EXPECT_NE(f.op.error().find("input 0 quantization"), std::string::npos)
          << f.op.error();
    }
  }
}

// ---- CONCATENATION wrapper ----------------------------------------------------------------

struct ConcatFixture {
  FakeTensor a = Int8Tensor(MakeShape({1, 2, 2, 1}), 0.5f, 3);
  FakeTensor b = Int8Tensor(MakeShape({1, 2, 2, 2}), 0.5f, 3);
  FakeTensor out = Int8Tensor(MakeShape({1, 2, 2, 3}), 0.5f, 3);
  ConcatenationOptions options;
  FakeOp op;
  ConcatFixture() {
    options.axis = 3;
    Fill(&a, {1, 2, 3, 4});
    Fill(&b, {10, 11, 20, 21, 30, 31, 40, 41});
    op.inputs = {&a, &b};
    op.outputs = {&out};
    op.builtin_options = &options;
  }
  std::string Refused() {
    EXPECT_EQ(RunOp(op, kBuiltinConcatenation), Status::kError);
    EXPECT_EQ(op.error().rfind("CONCATENATION: ", 0), 0u) << op.error();
    return op.error();
  }
};

TEST(ConcatenationOp, ChannelsAndNegativeAxis) {
  for (int axis : {3, -1}) {
    ConcatFixture f;
    f.options.axis = axis;
    ASSERT_EQ(RunOp(f.op, kBuiltinConcatenation), Status::kOk) << f.op.error();
    EXPECT_EQ(Values(f.out),
              (std::vector<int8_t>{1, 10, 11, 2, 20, 21, 3, 30, 31, 4, 40, 41}));
  }
}

TEST(ConcatenationOp, HeightAxisAndThreeInputs) {
  ConcatFixture f;
  FakeTensor c = Int8Tensor(MakeShape({1, 1, 2, 1}), 0.5f, 3);
  Fill(&c, {-1, -2});
  FakeTensor out = Int8Tensor(MakeShape({1, 5, 2, 1}), 0.5f, 3);
  f.options.axis = -3;  // 1
  f.op.inputs = {&f.a, &c, &f.a};
  f.op.outputs = {&out};
  ASSERT_EQ(RunOp(f.op, kBuiltinConcatenation), Status::kOk) << f.op.error();
  EXPECT_EQ(Values(out), (std::vector<int8_t>{1, 2, 3, 4, -1, -2, 1, 2, 3, 4}));
}

TEST(ConcatenationOp, PrepareRefusals) {
  {
    ConcatFixture f;
    f.options.activation = kActivationRelu;
    EXPECT_NE(f.Refused().find("fused activation 1"), std::string::npos);
  }
  for (int axis : {4, -5}) {
    ConcatFixture f;
    f.options.axis = axis;
    EXPECT_NE(f.Refused().find("out of range"), std::string::npos);
  }
  {  // different quantization (TFLM requires the output's)
    ConcatFixture f;
    Quantize(&f.b, {0.25f}, {3});
    EXPECT_NE(f.Refused().find("input 1 quantization"), std::string::npos);
  }
  {
    ConcatFixture f;
    Quantize(&f.a, {0.5f}, {2});
    EXPECT_NE(f.Refused().find("input 0 quantization"), std::string::npos);
  }
  {  // per-channel
    ConcatFixture f;
    Quantize(&f.b, {0.5f, 0.5f}, {3, 3}, 3);
    EXPECT_NE(f.Refused().find("per tensor"), std::string::npos);
  }
  {  // wrong types
    ConcatFixture f;
    f.a.type = DataType::kInt32;
    f.Refused();
  }
  {
    ConcatFixture f;
    f.out.type = DataType::kFloat32;
    f.Refused();
  }
  {  // shapes: wrong axis sum, other dimension, rank
    ConcatFixture f;
    f.out = Int8Tensor(MakeShape({1, 2, 2, 4}), 0.5f, 3);
    EXPECT_NE(f.Refused().find("do not concatenate"), std::string::npos);
  }
  {
    ConcatFixture f;
    f.b = Int8Tensor(MakeShape({1, 2, 3, 2}), 0.5f, 3);
    f.Refused();
  }
  {
    ConcatFixture f;
    f.b = Int8Tensor(MakeShape({2, 2, 2}), 0.5f, 3);
    f.Refused();
  }
  {  // input counts: none, absent, more than TFLM's 10
    ConcatFixture f;
    f.op.inputs = {};
    f.Refused();
    f.op.inputs = {&f.a, nullptr};
    f.Refused();
    f.op.inputs = std::vector<FakeTensor*>(11, &f.a);
    f.out = Int8Tensor(MakeShape({1, 2, 2, 11}), 0.5f, 3);
    f.Refused();
  }
  {
    ConcatFixture f;
    f.op.builtin_options = nullptr;
    EXPECT_NE(f.Refused().find("missing builtin options"), std::string::npos);
  }
  {  // scalar output
    ConcatFixture f;
    f.out = Int8Tensor(MakeShape({}), 0.5f, 3);
    f.options.axis = 0;
    f.Refused();
  }
}

}  // namespace
}  // namespace tflm_train
