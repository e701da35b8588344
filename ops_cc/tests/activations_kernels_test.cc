// LOGISTIC, TANH, HARD_SWISH and LEAKY_RELU: the fixed-point functions
// against float math, small cases checked by hand, and the op wrappers'
// Prepare refusals through a fake context. (Bit-exactness against TFLite
// Micro is checked at model level in tests/test_forward_activations.py.)
#include <cmath>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "ops_cc/core/fixed_point.h"
#include "ops_cc/core/quantization.h"
#include "ops_cc/kernels/hard_swish.h"
#include "ops_cc/kernels/leaky_relu.h"
#include "ops_cc/kernels/logistic_tanh.h"
#include "ops_cc/ops/builtin_options.h"
#include "ops_cc/ops/forward_ops.h"
#include "ops_cc/tests/fake_context.h"

namespace tflm_train {
namespace {

double FromQ(int32_t raw, int integer_bits) {
  return std::ldexp(static_cast<double>(raw), integer_bits - 31);
}

int32_t ToQ(double x, int integer_bits) {
  return static_cast<int32_t>(std::lround(std::ldexp(x, 31 - integer_bits)));
}

// ---- fixed-point functions ----------------------------------------------

TEST(FixedPoint, ExpOnNegativeValuesIsCloseToExp) {
  for (int bits : {0, 4, 5, 6, 12}) {
    const double limit = std::ldexp(1.0, bits);
    for (double x = -limit + 1e-3; x <= 0.0; x += limit / 997) {
      const double got = FromQ(ExpOnNegativeValues(ToQ(x, bits), bits), 0);
      EXPECT_NEAR(got, std::exp(x), 5e-7) << bits << " " << x;
    }
    EXPECT_EQ(ExpOnNegativeValues(0, bits), INT32_MAX);
  }
}

TEST(FixedPoint, ReciprocalsAreCloseToFloat) {
  for (double a = 0.0; a < 1.0; a += 1.0 / 211) {
    const int32_t q = ToQ(a, 0);
    EXPECT_NEAR(FromQ(OneOverOnePlusX(q), 0), 1.0 / (1.0 + a), 1e-8);
    EXPECT_NEAR(FromQ(OneMinusXOverOnePlusX(q), 0), (1.0 - a) / (1.0 + a), 1e-8);
  }
  EXPECT_EQ(RoundingHalfSum(3, 4), 4);    // 3.5 away from zero
  EXPECT_EQ(RoundingHalfSum(-3, -4), -4);
  EXPECT_EQ(RoundingHalfSum(INT32_MAX, INT32_MAX), INT32_MAX);
  EXPECT_EQ(SaturatingShiftLeft(1 << 29, 2), INT32_MAX);
  EXPECT_EQ(SaturatingShiftLeft(-(1 << 29), 2), INT32_MIN);
  EXPECT_EQ(SaturatingShiftLeft((1 << 29) - 1, 2), ((1 << 29) - 1) * 4);
}

TEST(FixedPoint, LogisticAndTanhAreCloseToFloatAndSymmetric) {
  for (double x = -15.9; x < 16.0; x += 0.0371) {
    const int32_t q = ToQ(x, 4);
    EXPECT_NEAR(FromQ(FixedPointLogistic(q, 4), 0), 1.0 / (1.0 + std::exp(-x)),
                2e-7) << x;
    EXPECT_NEAR(FromQ(FixedPointTanh(q, 4), 0), std::tanh(x), 4e-7) << x;
    // logistic(-x) = 1 - logistic(x) with one as INT32_MAX; tanh is odd.
    EXPECT_EQ(FixedPointLogistic(-q, 4), INT32_MAX - FixedPointLogistic(q, 4));
    EXPECT_EQ(FixedPointTanh(-q, 4), -FixedPointTanh(q, 4));
  }
  EXPECT_EQ(FixedPointLogistic(0, 4), 1 << 30);
  EXPECT_EQ(FixedPointTanh(0, 4), 0);
}

// ---- kernels by hand ------------------------------------------------------

// Input scale 1/16: Q4.27 multiplier 2^30 with left shift 24, and radius
// floor(15 * 2^27 / 2^24) = 120 (inputs of magnitude 7.5 and more saturate).
TEST(LogisticTanh, ParamsOfScaleOneSixteenth) {
  LogisticTanhParams p;
  ASSERT_TRUE(ComputeLogisticTanhParams(1.0f / 16, 3, &p));
  EXPECT_EQ(p.input_zero_point, 3);
  EXPECT_EQ(p.input_multiplier, 1 << 30);
  EXPECT_EQ(p.input_left_shift, 24);
  EXPECT_EQ(p.input_range_radius, 120);
  // Scale 12: shift 31, radius 0 (TFLM then saturates every input).
  ASSERT_TRUE(ComputeLogisticTanhParams(12.0f, 0, &p));
  EXPECT_EQ(p.input_left_shift, 31);
  EXPECT_EQ(p.input_range_radius, 0);
  // TFLM's radius is undefined outside [2^-28, 2^36).
  EXPECT_FALSE(ComputeLogisticTanhParams(1e-9f, 0, &p));
  EXPECT_FALSE(ComputeLogisticTanhParams(1e11f, 0, &p));
  EXPECT_TRUE(ComputeLogisticTanhParams(std::ldexp(1.0f, -28), 0, &p));
}

TEST(LogisticTanh, ByHand) {
  LogisticTanhParams p;
  ASSERT_TRUE(ComputeLogisticTanhParams(1.0f / 16, 0, &p));
  // x = q / 16. Expected: round(256 * sigmoid(x)) - 128 and
  // round(128 * tanh(x)), none near a rounding boundary; saturation at
  // |q| >= 120.
  const int8_t in[] = {0, 16, -16, 8, 119, 120, -120, -128, 127};
  const int8_t logistic[] = {0, 59, -59, 31, 127, 127, -128, -128, 127};
  const int8_t tanh[] = {0, 97, -97, 59, 127, 127, -128, -128, 127};
  int8_t out[9];
  ref::Logistic(p, in, 9, out);
  for (int i = 0; i < 9; ++i) EXPECT_EQ(out[i], logistic[i]) << int(in[i]);
  ref::Tanh(p, in, 9, out);
  for (int i = 0; i < 9; ++i) EXPECT_EQ(out[i], tanh[i]) << int(in[i]);
  // Radius 0: even the zero point saturates (to the minimum).
  ASSERT_TRUE(ComputeLogisticTanhParams(12.0f, 5, &p));
  const int8_t at_zero[] = {5, 6, 4};
  ref::Logistic(p, at_zero, 3, out);
  EXPECT_EQ(out[0], -128);
  EXPECT_EQ(out[1], 127);
  EXPECT_EQ(out[2], -128);
}

// Input and output scale 1/16: x = q / 16, hard_swish(x) = x * relu6(x + 3) / 6.
TEST(HardSwish, ByHand) {
  HardSwishParams p;
  ASSERT_TRUE(ComputeHardSwishParams(1.0f / 16, 0, 1.0f / 16, 0, &p));
  EXPECT_EQ(p.output_multiplier, 16384);  // 1/128 = 0.5 * 2^-6
  EXPECT_EQ(p.output_exponent, -6);
  EXPECT_EQ(p.reluish_multiplier, 21845);  // 16/3 = (2/3) * 2^3
  EXPECT_EQ(p.reluish_exponent, 3);
  // 0, 3 -> 3, -3 -> 0, 1 -> 2/3 (10.67), -1 -> -1/3 (-5.33), 6 -> 6,
  // 2 -> 5/3 (26.67), -6 -> 0.
  const int8_t in[] = {0, 48, -48, 16, -16, 96, 32, -96};
  const int8_t expected[] = {0, 48, 0, 11, -5, 96, 27, 0};
  int8_t out[8];
  ref::HardSwish(p, in, 8, out);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(out[i], expected[i]) << int(in[i]);
  // Output zero point added after the shift.
  ASSERT_TRUE(ComputeHardSwishParams(1.0f / 16, 0, 1.0f / 16, -20, &p));
  ref::HardSwish(p, in, 8, out);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(out[i], expected[i] - 20) << int(in[i]);
}

TEST(HardSwish, SixteenBitRoundingShiftQuirk) {
  // Output scale 2^10 times the input scale: (1/128) / 2^10 = 0.5 * 2^-16,
  // an output shift of 16, where the reference's int16 rounding shift has
  // mask -1: it gives 1 for every non-negative value (0 included) and -1
  // for negative ones (hard_swish(x) < 0 for x in (-3, 0)).
  HardSwishParams p;
  ASSERT_TRUE(ComputeHardSwishParams(1.0f / 16, 0, 64.0f, 0, &p));
  EXPECT_EQ(p.output_exponent, -16);
  const int8_t in[] = {0, 100, -16, -100};
  const int8_t expected[] = {1, 1, -1, 1};
  int8_t out[4];
  ref::HardSwish(p, in, 4, out);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(out[i], expected[i]) << int(in[i]);
}

TEST(HardSwish, RefusesWhatTflmRefusesOrLeavesUndefined) {
  HardSwishParams p;
  // (input scale / 128) / output scale of 1 or more.
  EXPECT_FALSE(ComputeHardSwishParams(1.0f, 0, 1.0f / 128, 0, &p));
  EXPECT_TRUE(ComputeHardSwishParams(1.0f, 0, 1.0f / 127, 0, &p));
  // Relu-ish shift above 31: input scale / 128 >= 3 * 2^16.
  EXPECT_FALSE(ComputeHardSwishParams(3e7f, 0, 3e7f, 0, &p));
  EXPECT_FALSE(ComputeHardSwishParams(3e38f, 0, 1e-37f, 0, &p));  // inf
}

TEST(LeakyRelu, ByHand) {
  LeakyReluParams p;
  // Input scale 0.5, output scale 0.25 zero point -10, alpha 0.1: positive
  // inputs times 2, negative ones times 0.2 = 0.8 * 2^-2, rounded twice as
  // TFLite does: -7 * 0.8 = -5.6 -> -6, then -6 / 4 = -1.5 -> -2 (not
  // round(-1.4) = -1).
  ASSERT_TRUE(ComputeLeakyReluParams(0.5f, 0, 0.1f, 0.25f, -10, &p));
  EXPECT_EQ(p.alpha_shift, -2);
  const int8_t in[] = {0, 10, -10, -7, 100, -128};
  const int8_t expected[] = {-10, 10, -12, -12, 127, -36};
  int8_t out[6];
  ref::LeakyRelu(p, in, 6, out);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(out[i], expected[i]) << int(in[i]);
}

TEST(LeakyRelu, NegativeAlphaNegatesTheRescaleByItsMagnitude) {
  // alpha -0.5 on equal scales: -1 -> 0.5 and -3 -> 1.5 are ties; the
  // rescale by 0.5 rounds -0.5 to 0 and -1.5 to -1 (ties upwards), then the
  // sign flips: 0 and 1 (a rescale by -0.5 would give 1 and 2).
  LeakyReluParams p;
  ASSERT_TRUE(ComputeLeakyReluParams(1.0f, 0, -0.5f, 1.0f, 0, &p));
  EXPECT_LT(p.alpha_multiplier, 0);
  const int8_t in[] = {-1, -3, -2, 5};
  const int8_t expected[] = {0, 1, 1, 5};
  int8_t out[4];
  ref::LeakyRelu(p, in, 4, out);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(out[i], expected[i]) << int(in[i]);
}

TEST(LeakyRelu, RefusesRatiosOutsideTheShiftRange) {
  LeakyReluParams p;
  EXPECT_FALSE(ComputeLeakyReluParams(1e30f, 0, 0.1f, 1e-9f, 0, &p));  // inf
  EXPECT_FALSE(ComputeLeakyReluParams(1e10f, 0, 0.1f, 1.0f, 0, &p));  // 2^34
  EXPECT_TRUE(ComputeLeakyReluParams(1e9f, 0, 0.1f, 1.0f, 0, &p));    // 2^30
  EXPECT_FALSE(ComputeLeakyReluParams(1.0f, 0, INFINITY, 1.0f, 0, &p));
  EXPECT_TRUE(ComputeLeakyReluParams(1.0f, 0, 0.0f, 1.0f, 0, &p));
  EXPECT_EQ(p.alpha_multiplier, 0);
}

// ---- op wrappers: Prepare refusals -----------------------------------------

TEST(ActivationOps, KernelTable) {
  for (int code : {kBuiltinLogistic, kBuiltinTanh, kBuiltinHardSwish,
                   kBuiltinLeakyRelu}) {
    const OpKernel* k = FindForwardKernel(code);
    ASSERT_NE(k, nullptr) << code;
    EXPECT_EQ(k->builtin_code, code);
  }
  EXPECT_EQ(kBuiltinLogistic, 14);
  EXPECT_EQ(kBuiltinTanh, 28);
  EXPECT_EQ(kBuiltinLeakyRelu, 98);
  EXPECT_EQ(kBuiltinHardSwish, 117);
}

// One op with valid tensors for `code`; tests break one thing at a time.
struct ActivationFixture {
  int code;
  FakeTensor input = Int8Tensor(MakeShape({1, 2, 3}), 1.0f / 16, 0);
  FakeTensor output;
  FakeTensor extra = Int8Tensor(MakeShape({1, 2, 3}), 1.0f / 16, 0);
  LeakyReluOptions leaky;
  FakeOp context;
  explicit ActivationFixture(int builtin_code) : code(builtin_code) {
    float scale = 1.0f / 16;
    int32_t zero_point = 0;
    if (code == kBuiltinLogistic) scale = 1.0f / 256, zero_point = -128;
    if (code == kBuiltinTanh) scale = 1.0f / 128;
    output = Int8Tensor(MakeShape({1, 2, 3}), scale, zero_point);
    for (int i = 0; i < 6; ++i) input.data[i] = static_cast<uint8_t>(i * 20);
    leaky.alpha = 0.2f;
    context.inputs = {&input};
    context.outputs = {&output};
    if (code == kBuiltinLeakyRelu) context.builtin_options = &leaky;
  }
  Status Run() { return RunBuiltin(context, code); }
  bool Refused(const char* fragment) {
    if (Run() != Status::kError) return false;
    EXPECT_NE(context.error().find(fragment), std::string::npos)
        << context.error();
    return true;
  }
};

const int kActivationCodes[] = {kBuiltinLogistic, kBuiltinTanh,
                                kBuiltinHardSwish, kBuiltinLeakyRelu};

TEST(ActivationOps, ValidOpsRunAndNameThemselvesInErrors) {
  for (int code : kActivationCodes) {
    ActivationFixture f(code);
    ASSERT_EQ(f.Run(), Status::kOk) << f.context.error();
    f.input.type = DataType::kFloat32;
    ASSERT_EQ(f.Run(), Status::kError);
    const std::string& e = f.context.error();
    const char* name = code == kBuiltinLogistic    ? "LOGISTIC: "
                       : code == kBuiltinTanh      ? "TANH: "
                       : code == kBuiltinHardSwish ? "HARD_SWISH: "
                                                   : "LEAKY_RELU: ";
    EXPECT_EQ(e.rfind(name, 0), 0u) << e;
  }
}

TEST(ActivationOps, RefuseWrongTypes) {
  for (int code : kActivationCodes) {
    {
      ActivationFixture f(code);
      f.input.type = DataType::kFloat32;
      EXPECT_TRUE(f.Refused("input must be int8")) << code;
    }
    {
      ActivationFixture f(code);
      f.input.type = DataType::kInt16;
      EXPECT_TRUE(f.Refused("input must be int8")) << code;
    }
    {
      ActivationFixture f(code);
      f.output.type = DataType::kInt16;
      EXPECT_TRUE(f.Refused("output must be int8")) << code;
    }
  }
}

TEST(ActivationOps, RefuseMismatchedShapes) {
  for (int code : kActivationCodes) {
    {
      ActivationFixture f(code);
      f.output.shape = MakeShape({1, 3, 2});  // same size, other shape
      EXPECT_TRUE(f.Refused("shape differs")) << code;
    }
    {
      ActivationFixture f(code);
      f.output.shape = MakeShape({1, 2, 3, 1});
      EXPECT_TRUE(f.Refused("shape differs")) << code;
    }
  }
}

TEST(ActivationOps, RefuseNonPerTensorQuantization) {
  for (int code : kActivationCodes) {
    {
      ActivationFixture f(code);
      Quantize(&f.input, {0.1f, 0.2f}, {0, 0}, 2);
      EXPECT_TRUE(f.Refused("input must be quantized per tensor")) << code;
    }
    {
      ActivationFixture f(code);
      f.output.scales.push_back(f.output.scales[0]);
      f.output.zero_points.push_back(f.output.zero_points[0]);
      EXPECT_TRUE(f.Refused("output must be quantized per tensor")) << code;
    }
    {
      ActivationFixture f(code);
      Quantize(&f.input, {}, {});  // not quantized
      EXPECT_TRUE(f.Refused("quantized per tensor")) << code;
    }
    {
      ActivationFixture f(code);
      f.input.scales = {0.0f};
      EXPECT_TRUE(f.Refused("scale must be a finite positive")) << code;
    }
    {
      ActivationFixture f(code);
      f.input.zero_points = {200};
      EXPECT_TRUE(f.Refused("outside int8")) << code;
    }
  }
}

TEST(ActivationOps, RefuseWrongArity) {
  for (int code : kActivationCodes) {
    {
      ActivationFixture f(code);
      f.context.inputs.push_back(&f.extra);
      EXPECT_TRUE(f.Refused("expected 1 inputs, got 2")) << code;
    }
    {
      ActivationFixture f(code);
      f.context.outputs.push_back(&f.extra);
      EXPECT_TRUE(f.Refused("expected 1 output, got 2")) << code;
    }
    {
      ActivationFixture f(code);
      f.context.inputs = {nullptr};
      EXPECT_TRUE(f.Refused("input 0 is missing")) << code;
    }
  }
}

TEST(ActivationOps, LogisticAndTanhRequireTheirOutputQuantization) {
  {
    ActivationFixture f(kBuiltinLogistic);
    f.output.zero_points = {0};
    EXPECT_TRUE(f.Refused("output must have scale 1/256 and zero point -128"));
  }
  {
    ActivationFixture f(kBuiltinLogistic);
    f.output.scales = {1.0f / 128};
    EXPECT_TRUE(f.Refused("output must have scale 1/256"));
  }
  {
    ActivationFixture f(kBuiltinTanh);
    f.output.zero_points = {-128};
    EXPECT_TRUE(f.Refused("output must have scale 1/128 and zero point 0"));
  }
  for (int code : {kBuiltinLogistic, kBuiltinTanh}) {
    ActivationFixture f(code);
    f.input.scales = {1e-9f};
    EXPECT_TRUE(f.Refused("input scale")) << code;
  }
}

TEST(ActivationOps, HardSwishAndLeakyReluRefuseTheirRanges) {
  {
    ActivationFixture f(kBuiltinHardSwish);
    f.output.scales = {1.0f / 16 / 200};
    EXPECT_TRUE(f.Refused("must be below output scale"));
  }
  {
    ActivationFixture f(kBuiltinLeakyRelu);
    f.context.builtin_options = nullptr;
    EXPECT_TRUE(f.Refused("missing builtin options"));
  }
  {
    ActivationFixture f(kBuiltinLeakyRelu);
    f.leaky.alpha = INFINITY;
    EXPECT_TRUE(f.Refused("out of range"));
  }
}

TEST(ActivationOps, WrappersComputeTheKernels) {
  // Input q = 0, 20, ..., 100 at scale 1/16.
  {
    ActivationFixture f(kBuiltinLogistic);
    ASSERT_EQ(f.Run(), Status::kOk) << f.context.error();
    EXPECT_EQ(static_cast<int8_t>(f.output.data[0]), 0);
    EXPECT_EQ(static_cast<int8_t>(f.output.data[1]), 71);  // sigmoid(1.25)
  }
  {
    ActivationFixture f(kBuiltinLeakyRelu);
    f.input.data[0] = static_cast<uint8_t>(-40);
    ASSERT_EQ(f.Run(), Status::kOk) << f.context.error();
    EXPECT_EQ(static_cast<int8_t>(f.output.data[0]), -8);  // 0.2 * -40
    EXPECT_EQ(static_cast<int8_t>(f.output.data[1]), 20);
  }
}

}  // namespace
}  // namespace tflm_train
