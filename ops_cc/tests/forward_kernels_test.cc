// Independent checks of the int8 forward kernels: hand-derived small cases,
// exact integer re-derivations of the rounding primitives, properties, and
// the op wrappers' validation through a fake context. (Bit-exactness against
// TFLite Micro itself is checked at model level elsewhere.)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "ops_cc/core/quantization.h"
#include "ops_cc/kernels/add.h"
#include "ops_cc/kernels/broadcast.h"
#include "ops_cc/kernels/conv.h"
#include "ops_cc/kernels/depthwise_conv.h"
#include "ops_cc/kernels/fully_connected.h"
#include "ops_cc/kernels/mean.h"
#include "ops_cc/kernels/pad.h"
#include "ops_cc/kernels/pooling.h"
#include "ops_cc/kernels/quantize.h"
#include "ops_cc/kernels/softmax.h"
#include "ops_cc/ops/builtin_options.h"
#include "ops_cc/core/window.h"
#include "ops_cc/ops/forward_ops.h"
#include "ops_cc/tests/fake_context.h"

namespace tflm_train {
namespace {

// ---- fixed-point primitives ----------------------------------------------

// Floor division by 2^n of a signed 64-bit value.
int64_t FloorShift(int64_t x, int n) {
  return x >= 0 ? x >> n : -((-x + (int64_t{1} << n) - 1) >> n);
}

TEST(Quantization, QuantizeMultiplierRoundTrip) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<double> log_x(std::log(1e-7), std::log(1e5));
  for (int i = 0; i < 100000; ++i) {
    const double x = std::exp(log_x(rng));
    int32_t m = 0;
    int shift = 0;
    QuantizeMultiplier(x, &m, &shift);
    ASSERT_GE(m, int32_t{1} << 30);  // normalized Q31 significand
    const double back = std::ldexp(static_cast<double>(m), shift - 31);
    // Rounding the significand to 31 bits loses at most half a unit of 2^-31
    // relative to a significand >= 1/2.
    ASSERT_LE(std::fabs(back - x) / x, std::ldexp(1.0, -31)) << x;
  }
}

TEST(Quantization, QuantizeMultiplierEdges) {
  int32_t m = -1;
  int shift = -1;
  QuantizeMultiplier(0.0, &m, &shift);
  EXPECT_EQ(m, 0);
  EXPECT_EQ(shift, 0);
  // 1.0 = 0.5 * 2^1.
  QuantizeMultiplier(1.0, &m, &shift);
  EXPECT_EQ(m, int32_t{1} << 30);
  EXPECT_EQ(shift, 1);
  // A fraction just below 1 rounds to 2^31 and is renormalized to 2^30.
  QuantizeMultiplier(1.0 - 1e-12, &m, &shift);
  EXPECT_EQ(m, int32_t{1} << 30);
  EXPECT_EQ(shift, 1);
  // Below 2^-32 (exponent < -31) the multiplier flushes to zero.
  QuantizeMultiplier(std::ldexp(0.75, -32), &m, &shift);
  EXPECT_EQ(m, 0);
  EXPECT_EQ(shift, 0);
  QuantizeMultiplier(std::ldexp(0.75, -31), &m, &shift);
  EXPECT_EQ(shift, -31);
}

TEST(Quantization, SaturatingRoundingDoublingHighMulIsRoundHalfUp) {
  // a * b / 2^31 rounded half towards +infinity is floor((ab + 2^30) / 2^31).
  std::mt19937 rng(2);
  for (int i = 0; i < 1000000; ++i) {
    const int32_t a = static_cast<int32_t>(rng());
    const int32_t b = static_cast<int32_t>(rng());
    if (a == INT32_MIN && b == INT32_MIN) continue;
    const int64_t expected =
        FloorShift(static_cast<int64_t>(a) * b + (int64_t{1} << 30), 31);
    ASSERT_EQ(SaturatingRoundingDoublingHighMul(a, b), expected)
        << a << " " << b;
  }
  EXPECT_EQ(SaturatingRoundingDoublingHighMul(INT32_MIN, INT32_MIN), INT32_MAX);
  // -0.5 rounds up to 0, +0.5 up to 1.
  EXPECT_EQ(SaturatingRoundingDoublingHighMul(-1, int32_t{1} << 30), 0);
  EXPECT_EQ(SaturatingRoundingDoublingHighMul(1, int32_t{1} << 30), 1);
}

TEST(Quantization, RoundingDivideByPOTIsRoundHalfAwayFromZero) {
  std::mt19937 rng(3);
  for (int i = 0; i < 1000000; ++i) {
    const int32_t x = static_cast<int32_t>(rng());
    const int e = static_cast<int>(rng() % 32);
    const int64_t mag = x < 0 ? -static_cast<int64_t>(x) : x;
    const int64_t half = e > 0 ? int64_t{1} << (e - 1) : 0;
    const int64_t rounded = (mag + half) >> e;
    ASSERT_EQ(RoundingDivideByPOT(x, e), x < 0 ? -rounded : rounded)
        << x << " " << e;
  }
  EXPECT_EQ(RoundingDivideByPOT(3, 1), 2);    // 1.5 -> 2
  EXPECT_EQ(RoundingDivideByPOT(-3, 1), -2);  // -1.5 -> -2
  EXPECT_EQ(RoundingDivideByPOT(-5, 2), -1);  // -1.25 -> -1
}

TEST(Quantization, MultiplyByQuantizedMultiplierMatchesTwoStepReference) {
  // The definition: x * 2^left (int32), a Q31 multiply rounded half up, then
  // a rounding right shift (half away from zero); and the result is within
  // one unit of the exact real product.
  std::mt19937 rng(4);
  for (int i = 0; i < 1000000; ++i) {
    const int shift = static_cast<int>(rng() % 62) - 31;
    const int32_t m = static_cast<int32_t>((1u << 30) + rng() % (1u << 30));
    int32_t x = static_cast<int32_t>(rng());
    if (shift > 0) x >>= shift + 1;  // keep x * 2^shift inside int32
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    const int64_t high = FloorShift(
        static_cast<int64_t>(x) * (int64_t{1} << left) * m + (int64_t{1} << 30),
        31);
    const int64_t mag = high < 0 ? -high : high;
    const int64_t half = right > 0 ? int64_t{1} << (right - 1) : 0;
    const int64_t expected =
        high < 0 ? -((mag + half) >> right) : (mag + half) >> right;
    const int32_t got = MultiplyByQuantizedMultiplier(x, m, shift);
    ASSERT_EQ(got, expected) << x << " " << m << " " << shift;
    const double real = std::ldexp(static_cast<double>(x) * m, shift - 31);
    ASSERT_LE(std::fabs(got - real), 1.0);
  }
}

TEST(Quantization, ActivationRanges) {
  int32_t lo = 0, hi = 0;
  ASSERT_TRUE(CalculateActivationRangeInt8(kActivationNone, 0.1f, 7, &lo, &hi));
  EXPECT_EQ(lo, -128);
  EXPECT_EQ(hi, 127);
  // RELU: q(0) = zero point.
  ASSERT_TRUE(
      CalculateActivationRangeInt8(kActivationRelu, 0.1f, -5, &lo, &hi));
  EXPECT_EQ(lo, -5);
  EXPECT_EQ(hi, 127);
  // RELU6 with scale 0.05, zero point -128: q(6) = -128 + 120 = -8.
  ASSERT_TRUE(
      CalculateActivationRangeInt8(kActivationRelu6, 0.05f, -128, &lo, &hi));
  EXPECT_EQ(lo, -128);
  EXPECT_EQ(hi, -8);
  // RELU6 whose q(6) is beyond int8 clamps to 127.
  ASSERT_TRUE(
      CalculateActivationRangeInt8(kActivationRelu6, 0.05f, 120, &lo, &hi));
  EXPECT_EQ(lo, 120);
  EXPECT_EQ(hi, 127);
  // RELU_N1_TO_1, scale 1/64: q(-1) = -64, q(1) = 64.
  ASSERT_TRUE(CalculateActivationRangeInt8(kActivationReluN1To1, 1.0f / 64, 0,
                                           &lo, &hi));
  EXPECT_EQ(lo, -64);
  EXPECT_EQ(hi, 64);
  EXPECT_FALSE(CalculateActivationRangeInt8(4 /* TANH */, 0.1f, 0, &lo, &hi));
}

// ---- window geometry -----------------------------------------------------

// The audit's finding: dilation 2^30 passed the int64 checks, then
// ky * dilation overflowed int in the conv kernels (forward and backward).
TEST(Geometry, WindowsBeyondTheIntInvariantAreRejected) {
  int out = 0, pad = 0;
  EXPECT_FALSE(ComputeWindowGeometry(kPaddingSame, 8, 3, 1, 1 << 30, &out, &pad));
  // A huge stride with one window is harmless; with two it is not.
  EXPECT_TRUE(ComputeWindowGeometry(kPaddingSame, 8, 3, 1 << 30, 1, &out, &pad));
  EXPECT_EQ(out, 1);
  EXPECT_FALSE(ComputeWindowGeometry(kPaddingSame, (1 << 29) + 8, 3, 1 << 29, 1,
                                     &out, &pad));
  EXPECT_FALSE(ComputeWindowGeometry(kPaddingValid, 8, 1 << 30, 1, 1, &out, &pad));
  // A 3-tap window with dilation 2^27 spans 2^28 + 1 <= 2^29 and passes;
  // with dilation 2^28 it spans 2^29 + 1 and does not.
  EXPECT_TRUE(ComputeWindowGeometry(kPaddingSame, 8, 3, 1, 1 << 27, &out, &pad));
  EXPECT_LE(pad, kMaxWindowExtent);
  EXPECT_FALSE(ComputeWindowGeometry(kPaddingSame, 8, 3, 1, 1 << 28, &out, &pad));
}

TEST(Geometry, SameAndValid) {
  int out = 0, pad = 0;
  // SAME, 5 wide, 3 filter, stride 2: out = ceil(5/2) = 3, total padding
  // (3-1)*2 + 3 - 5 = 2, one before.
  ASSERT_TRUE(ComputeWindowGeometry(kPaddingSame, 5, 3, 2, 1, &out, &pad));
  EXPECT_EQ(out, 3);
  EXPECT_EQ(pad, 1);
  // SAME, 4 wide, 3 filter, stride 2: out 2, total 1 -> 0 before, 1 after.
  ASSERT_TRUE(ComputeWindowGeometry(kPaddingSame, 4, 3, 2, 1, &out, &pad));
  EXPECT_EQ(out, 2);
  EXPECT_EQ(pad, 0);
  // VALID, 5 wide, 3 filter, stride 2: (5 - 3)/2 + 1 = 2.
  ASSERT_TRUE(ComputeWindowGeometry(kPaddingValid, 5, 3, 2, 1, &out, &pad));
  EXPECT_EQ(out, 2);
  EXPECT_EQ(pad, 0);
  // Dilation 2 makes a 3-tap filter span 5: VALID on 5 gives 1.
  ASSERT_TRUE(ComputeWindowGeometry(kPaddingValid, 5, 3, 1, 2, &out, &pad));
  EXPECT_EQ(out, 1);
  // SAME, dilation 2, 6 wide: out 6, total 5 + 5 - 6 = 4 -> 2 before.
  ASSERT_TRUE(ComputeWindowGeometry(kPaddingSame, 6, 3, 1, 2, &out, &pad));
  EXPECT_EQ(out, 6);
  EXPECT_EQ(pad, 2);
  EXPECT_FALSE(ComputeWindowGeometry(kPaddingSame, 5, 3, 0, 1, &out, &pad));
  EXPECT_FALSE(ComputeWindowGeometry(7, 5, 3, 1, 1, &out, &pad));
}

// ---- conv, depthwise, fully connected ------------------------------------

TEST(Conv, SameStride2ByHand) {
  // Input 3x3 = 1..9, a 3x3 filter of ones, SAME, stride 2 -> 2x2 output
  // with one padding row/column before. Each output sums the window cells
  // inside the input: (0,0) 1+2+4+5 = 12, (0,1) 2+3+5+6 = 16,
  // (1,0) 4+5+7+8 = 24, (1,1) 5+6+8+9 = 28. Multiplier 1.0 keeps them.
  const int8_t input[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  int8_t filter[9];
  for (int8_t& w : filter) w = 1;
  int32_t m = 0, s = 0;
  const float one = 1.0f;
  ASSERT_TRUE(ComputePerChannelMultipliers(1.0f, &one, 1, 1.0f, 1, &m, &s));
  ConvParams p;
  p.stride_h = p.stride_w = 2;
  p.pad_h = p.pad_w = 1;
  int8_t out[4] = {};
  ref::ConvPerChannel(p, &m, &s, MakeShape({1, 3, 3, 1}), input,
                      MakeShape({1, 3, 3, 1}), filter, nullptr,
                      MakeShape({1, 2, 2, 1}), out);
  EXPECT_EQ(out[0], 12);
  EXPECT_EQ(out[1], 16);
  EXPECT_EQ(out[2], 24);
  EXPECT_EQ(out[3], 28);
}

TEST(Conv, OffsetsBiasRoundingAndActivation) {
  // 2x2 input {1, 2, 3, 4} with zero point 1 -> {0, 1, 2, 3}; two output
  // channels: filter c0 all 1, c1 all -2; bias {5, 0}.
  // c0: acc = 6 + 5 = 11, multiplier 0.5 -> 5.5 rounds half up to 6, plus
  //     output zero point 3 -> 9.
  // c1: acc = -12, * 0.25 = -3, + 3 = 0, clamped by RELU (act_min = 3) to 3.
  const int8_t input[4] = {1, 2, 3, 4};
  const int8_t filter[8] = {1, 1, 1, 1, -2, -2, -2, -2};
  const int32_t bias[2] = {5, 0};
  const float filter_scales[2] = {0.5f, 0.25f};
  int32_t m[2], s[2];
  ASSERT_TRUE(
      ComputePerChannelMultipliers(1.0f, filter_scales, 2, 1.0f, 2, m, s));
  ConvParams p;
  p.input_offset = -1;
  p.output_offset = 3;
  p.act_min = 3;
  int8_t out[2] = {};
  ref::ConvPerChannel(p, m, s, MakeShape({1, 2, 2, 1}), input,
                      MakeShape({2, 2, 2, 1}), filter, bias,
                      MakeShape({1, 1, 1, 2}), out);
  EXPECT_EQ(out[0], 9);
  EXPECT_EQ(out[1], 3);
}

TEST(Conv, GroupsReadTheirOwnInputChannels) {
  // 1x1 conv, 4 input channels {1, 2, 3, 4}, filter depth 2 -> 2 groups of
  // 1 output channel each: out0 = 1*1 + 2*1 = 3, out1 = 3*1 + 4*2 = 11.
  const int8_t input[4] = {1, 2, 3, 4};
  const int8_t filter[4] = {1, 1, 1, 2};
  int32_t m[2], s[2];
  const float one = 1.0f;
  ASSERT_TRUE(ComputePerChannelMultipliers(1.0f, &one, 1, 1.0f, 2, m, s));
  int8_t out[2] = {};
  ref::ConvPerChannel(ConvParams(), m, s, MakeShape({1, 1, 1, 4}), input,
                      MakeShape({2, 1, 1, 2}), filter, nullptr,
                      MakeShape({1, 1, 1, 2}), out);
  EXPECT_EQ(out[0], 3);
  EXPECT_EQ(out[1], 11);
}

TEST(Conv, DilationSkipsInputCells) {
  // 1x5 input 1..5, 1x2 filter {1, 1} with dilation 2, VALID: outputs
  // in[0] + in[2] = 4, in[1] + in[3] = 6, in[2] + in[4] = 8.
  const int8_t input[5] = {1, 2, 3, 4, 5};
  const int8_t filter[2] = {1, 1};
  int32_t m, s;
  const float one = 1.0f;
  ASSERT_TRUE(ComputePerChannelMultipliers(1.0f, &one, 1, 1.0f, 1, &m, &s));
  ConvParams p;
  p.dilation_w = 2;
  int8_t out[3] = {};
  ref::ConvPerChannel(p, &m, &s, MakeShape({1, 1, 5, 1}), input,
                      MakeShape({1, 1, 2, 1}), filter, nullptr,
                      MakeShape({1, 1, 3, 1}), out);
  EXPECT_EQ(out[0], 4);
  EXPECT_EQ(out[1], 6);
  EXPECT_EQ(out[2], 8);
}

TEST(DepthwiseConv, ChannelsAndMultiplier) {
  // 2x2 input with channels c0 = {1, 2, 3, 4}, c1 = {10, 20, 30, 40},
  // depth multiplier 2 -> output channels (c0,m0) (c0,m1) (c1,m0) (c1,m1)
  // with 2x2 filters all 1, all -1, cells {1, 0, 0, 1}, all 0:
  // 10, -10, 10 + 40 = 50, 0. Bias {0, 0, 0, 7} -> last one 7.
  const int8_t input[8] = {1, 10, 2, 20, 3, 30, 4, 40};
  // Layout [1, KH, KW, Cout]: per cell the 4 output channels.
  const int8_t filter[16] = {1, -1, 1, 0, 1, -1, 0, 0,
                             1, -1, 0, 0, 1, -1, 1, 0};
  const int32_t bias[4] = {0, 0, 0, 7};
  int32_t m[4], s[4];
  const float one = 1.0f;
  ASSERT_TRUE(ComputePerChannelMultipliers(1.0f, &one, 1, 1.0f, 4, m, s));
  int8_t out[4] = {};
  ref::DepthwiseConvPerChannel(ConvParams(), m, s, MakeShape({1, 2, 2, 2}),
                               input, MakeShape({1, 2, 2, 4}), filter, bias,
                               MakeShape({1, 1, 1, 4}), out);
  EXPECT_EQ(out[0], 10);
  EXPECT_EQ(out[1], -10);
  EXPECT_EQ(out[2], 50);
  EXPECT_EQ(out[3], 7);
}

// In place over a buffer exactly the input's size (ASan sees any write or
// read past it), every output equals the out-of-place kernel's.
TEST(DepthwiseConv, InPlaceEqualsOutOfPlace) {
  std::mt19937 rng(7);
  struct Case { int h, w, c, kh, kw, stride_h, stride_w, pad_h, pad_w; };
  const Case cases[] = {{12, 10, 8, 3, 3, 1, 1, 1, 1}, {13, 12, 8, 3, 3, 2, 2, 0, 0},
                        {11, 9, 4, 5, 5, 1, 1, 0, 0},  {16, 16, 6, 7, 7, 2, 2, 2, 2},
                        {9, 7, 4, 3, 1, 2, 1, 1, 0},   {5, 5, 3, 5, 5, 1, 1, 2, 2},
                        {8, 8, 2, 2, 2, 2, 2, 0, 0},   {6, 4, 5, 3, 3, 3, 1, 1, 1}};
  for (const Case& k : cases) {
    ConvParams p;
    p.stride_h = k.stride_h;
    p.stride_w = k.stride_w;
    p.pad_h = k.pad_h;
    p.pad_w = k.pad_w;
    p.input_offset = 3;
    p.output_offset = -5;
    const int out_h = (k.h + 2 * k.pad_h - k.kh) / k.stride_h + 1;
    const int out_w = (k.w + 2 * k.pad_w - k.kw) / k.stride_w + 1;
    const Shape in_shape = MakeShape({1, k.h, k.w, k.c});
    const Shape filter_shape = MakeShape({1, k.kh, k.kw, k.c});
    const Shape out_shape = MakeShape({1, out_h, out_w, k.c});
    std::vector<int8_t> input(static_cast<size_t>(k.h * k.w * k.c));
    std::vector<int8_t> filter(static_cast<size_t>(k.kh * k.kw * k.c));
    for (auto& v : input) v = static_cast<int8_t>(rng() % 256 - 128);
    for (auto& v : filter) v = static_cast<int8_t>(rng() % 256 - 128);
    std::vector<int32_t> bias(static_cast<size_t>(k.c)), m(bias.size()), s(bias.size());
    std::vector<float> scales(bias.size());
    for (int c = 0; c < k.c; ++c) {
      bias[c] = static_cast<int32_t>(rng() % 2001) - 1000;
      scales[c] = 0.001f * static_cast<float>(1 + c);
    }
    ASSERT_TRUE(ComputePerChannelMultipliers(0.05f, scales.data(), k.c, 0.1f,
                                             k.c, m.data(), s.data()));
    std::vector<int8_t> expected(static_cast<size_t>(out_h * out_w * k.c));
    ref::DepthwiseConvPerChannel(p, m.data(), s.data(), in_shape, input.data(),
                                 filter_shape, filter.data(), bias.data(),
                                 out_shape, expected.data());
    const int rows = DepthwiseInPlaceRows(p, in_shape, out_shape);
    ASSERT_GE(rows, 1);
    ASSERT_LE(rows, k.kh + 1);
    std::vector<int8_t> row_buffer(static_cast<size_t>(rows * out_w * k.c));
    std::vector<int8_t> data = input;  // sized exactly as the input
    ref::DepthwiseConvPerChannelInPlace(p, m.data(), s.data(), in_shape,
                                        data.data(), filter_shape,
                                        filter.data(), bias.data(), out_shape,
                                        row_buffer.data());
    EXPECT_TRUE(std::equal(expected.begin(), expected.end(), data.begin()))
        << "case " << k.h << "x" << k.w << " kernel " << k.kh << "x" << k.kw
        << " stride " << k.stride_h;
  }
}

TEST(FullyConnected, PerTensorAndPerChannel) {
  // Two rows {1, 2, 3} and {-1, 0, 1}, input zero point 0; units w0 = {1,1,1},
  // w1 = {2, 0, -2}. Sums: row0 (6, -4), row1 (0, -4).
  const int8_t input[6] = {1, 2, 3, -1, 0, 1};
  const int8_t filter[6] = {1, 1, 1, 2, 0, -2};
  FullyConnectedParams p;
  int32_t m[2], s[2];
  // Per tensor, multiplier 0.5 (rounded half up): 3, -2, 0, -2.
  ASSERT_TRUE(ComputeFullyConnectedMultiplier(1.0f, 0.5f, 1.0f, m, s));
  int8_t out[4] = {};
  ref::FullyConnected(p, m, s, input, MakeShape({2, 3}), filter, nullptr,
                      MakeShape({2, 2}), out);
  EXPECT_EQ(out[0], 3);
  EXPECT_EQ(out[1], -2);
  EXPECT_EQ(out[2], 0);
  EXPECT_EQ(out[3], -2);
  // Per channel, multipliers {1, 0.25} and bias {1, 1}: row0 (7, -0.75 -> -1),
  // row1 (1, -0.75 -> -1).
  const float scales[2] = {1.0f, 0.25f};
  const int32_t bias[2] = {1, 1};
  ASSERT_TRUE(ComputePerChannelMultipliers(1.0f, scales, 2, 1.0f, 2, m, s));
  p.per_channel = true;
  ref::FullyConnected(p, m, s, input, MakeShape({2, 3}), filter, bias,
                      MakeShape({2, 2}), out);
  EXPECT_EQ(out[0], 7);
  EXPECT_EQ(out[1], -1);
  EXPECT_EQ(out[2], 1);
  EXPECT_EQ(out[3], -1);
}

// ---- add -----------------------------------------------------------------

TEST(Add, EqualScalesAddExactly) {
  // With s1 = s2 = s_out the input multipliers are 1/2 and the output one
  // 2^-19, so the 2^20 pre-shift cancels exactly: out = (a - z1) + (b - z2)
  // + z_out, saturated.
  AddParams p;
  ASSERT_TRUE(ComputeAddParams(0.1f, 3, 0.1f, -7, 0.1f, 5, &p));
  std::vector<int8_t> a(65536), b(65536), out(65536);
  for (int i = 0; i < 65536; ++i) {
    a[i] = static_cast<int8_t>(i & 255);
    b[i] = static_cast<int8_t>(i >> 8);
  }
  const Shape s = MakeShape({65536});
  ref::Add(p, s, a.data(), s, b.data(), s, out.data());
  for (int i = 0; i < 65536; ++i) {
    int expected = (a[i] - 3) + (b[i] + 7) + 5;
    expected = expected < -128 ? -128 : (expected > 127 ? 127 : expected);
    ASSERT_EQ(out[i], expected) << int(a[i]) << " + " << int(b[i]);
  }
}

TEST(Add, ScalesAreApplied) {
  // s1 = 0.5, s2 = 0.25, s_out = 1: out = round(0.5 a + 0.25 b). a = 3,
  // b = 2 -> 2.0; a = 1, b = 1 -> 0.75 -> 1; a = -5, b = 0 -> -2.5, an exact
  // tie at the final rounding right shift (2^-20 = Q31 2^30 with shift -19),
  // which rounds away from zero to -3.
  AddParams p;
  ASSERT_TRUE(ComputeAddParams(0.5f, 0, 0.25f, 0, 1.0f, 0, &p));
  const int8_t a[3] = {3, 1, -5};
  const int8_t b[3] = {2, 1, 0};
  int8_t out[3] = {};
  const Shape s = MakeShape({3});
  ref::Add(p, s, a, s, b, s, out);
  EXPECT_EQ(out[0], 2);
  EXPECT_EQ(out[1], 1);
  EXPECT_EQ(out[2], -3);
}

TEST(Add, Broadcasting) {
  // [2, 1, 3] + [1, 4, 1] -> [2, 4, 3]; equal scales so out = a + b.
  AddParams p;
  ASSERT_TRUE(ComputeAddParams(1.0f, 0, 1.0f, 0, 1.0f, 0, &p));
  const Shape sa = MakeShape({2, 1, 3});
  const Shape sb = MakeShape({1, 4, 1});
  const Shape so = MakeShape({2, 4, 3});
  ASSERT_TRUE(ShapesBroadcast(sa, sb, so));
  EXPECT_FALSE(ShapesBroadcast(sa, MakeShape({1, 4, 2}), so));
  const int8_t a[6] = {0, 1, 2, 10, 20, 30};
  const int8_t b[4] = {0, 40, 80, 100};
  int8_t out[24] = {};
  ref::Add(p, sa, a, sb, b, so, out);
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 4; ++j) {
      for (int k = 0; k < 3; ++k) {
        int expected = a[i * 3 + k] + b[j];
        if (expected > 127) expected = 127;
        EXPECT_EQ(out[(i * 4 + j) * 3 + k], expected);
      }
    }
  }
}

TEST(Add, RejectsOutputMultiplierAboveOne) {
  AddParams p;
  // 2 * 1.0 / (2^20 * 1e-7) > 1.
  EXPECT_FALSE(ComputeAddParams(1.0f, 0, 1.0f, 0, 1e-7f, 0, &p));
}

// ---- pooling -------------------------------------------------------------

TEST(Pooling, AverageRoundsHalfAwayFromZeroAndSkipsPadding) {
  // 1x4 input {1, 2, -1, -2}, 1x2 windows, stride 2, VALID: 1.5 -> 2,
  // -1.5 -> -2.
  PoolParams p;
  p.filter_w = 2;
  p.stride_w = 2;
  const int8_t in[4] = {1, 2, -1, -2};
  int8_t out[2] = {};
  ASSERT_TRUE(ref::AveragePool(p, MakeShape({1, 1, 4, 1}), in,
                               MakeShape({1, 1, 2, 1}), out));
  EXPECT_EQ(out[0], 2);
  EXPECT_EQ(out[1], -2);
  // SAME 3x3 window, stride 1 over 2x2 {10, 20, 30, 41}: every window
  // covers all four cells (padding cells are not counted): 101 / 4 = 25.25
  // -> 25.
  PoolParams same;
  same.filter_h = same.filter_w = 3;
  same.pad_h = same.pad_w = 1;
  const int8_t in2[4] = {10, 20, 30, 41};
  int8_t out2[4] = {};
  ASSERT_TRUE(ref::AveragePool(same, MakeShape({1, 2, 2, 1}), in2,
                               MakeShape({1, 2, 2, 1}), out2));
  for (int8_t v : out2) EXPECT_EQ(v, 25);
}

TEST(Pooling, AverageFailsOnWindowInsidePadding) {
  PoolParams p;
  p.pad_w = 2;  // the first window lies entirely left of the input
  const int8_t in[2] = {1, 2};
  int8_t out[2] = {};
  EXPECT_FALSE(ref::AveragePool(p, MakeShape({1, 1, 2, 1}), in,
                                MakeShape({1, 1, 2, 1}), out));
}

TEST(Pooling, MaxWithActivationClamp) {
  // 2x2 windows over a 2x4 input, stride 2; RELU with zero point -3.
  PoolParams p;
  p.filter_h = p.filter_w = 2;
  p.stride_h = p.stride_w = 2;
  p.act_min = -3;
  const int8_t in[8] = {-9, -8, 5, 1, -7, -6, 2, 3};
  int8_t out[2] = {};
  ref::MaxPool(p, MakeShape({1, 2, 4, 1}), in, MakeShape({1, 1, 2, 1}), out);
  EXPECT_EQ(out[0], -3);  // max -6 clamped to -3
  EXPECT_EQ(out[1], 5);
}

// ---- mean ----------------------------------------------------------------

MeanParams SameQuantMean(int32_t zero_point) {
  MeanParams p;
  p.input_zero_point = p.output_zero_point = zero_point;
  QuantizeMultiplier(1.0, &p.multiplier, &p.shift);
  return p;
}

TEST(Mean, TwoCellsByHand) {
  // Multiplier 1 = (2^30, shift 1); count 2 -> k = 1, multiplier
  // (2^30 << 1) / 2 = 2^30, shift 0: the result is sum / 2 rounded half up.
  // Channel 0 {1, 2}: 1.5 -> 2. Channel 1 {-1, -2}: -1.5 -> -1.
  const MeanParams p = SameQuantMean(0);
  const int8_t in[4] = {1, -1, 2, -2};  // [1, 1, 2, 2]
  int8_t out[2] = {};
  ref::MeanOverHeightWidth(p, MakeShape({1, 1, 2, 2}), in, out);
  EXPECT_EQ(out[0], 2);
  EXPECT_EQ(out[1], -1);
}

TEST(Mean, ConstantInputIsPreserved) {
  for (int h = 1; h <= 9; ++h) {
    for (int w = 1; w <= 9; ++w) {
      for (int v : {-128, -77, -1, 0, 1, 42, 127}) {
        const MeanParams p = SameQuantMean(-20);
        std::vector<int8_t> in(static_cast<size_t>(2 * h * w * 3),
                               static_cast<int8_t>(v));
        int8_t out[6] = {};
        ref::MeanOverHeightWidth(p, MakeShape({2, h, w, 3}), in.data(), out);
        for (int8_t o : out) ASSERT_EQ(o, v) << h << "x" << w;
      }
    }
  }
}

TEST(Mean, RescalesToTheOutputQuantization) {
  // Input scale 0.1, zero point 10; output scale 0.05, zero point -3.
  // Cells {30, 50} -> reals {2, 4}, mean 3 -> 3 / 0.05 - 3 = 57.
  MeanParams p;
  p.input_zero_point = 10;
  p.output_zero_point = -3;
  QuantizeMultiplier(0.1 / 0.05, &p.multiplier, &p.shift);
  const int8_t in[2] = {30, 50};
  int8_t out[1] = {};
  ref::MeanOverHeightWidth(p, MakeShape({1, 2, 1, 1}), in, out);
  EXPECT_EQ(out[0], 57);
}

// ---- pad -----------------------------------------------------------------

TEST(Pad, PlacesInputAndFills) {
  // [1, 2, 2, 1] padded by 1 row above, 2 columns right -> [1, 3, 4, 1].
  PadParams p;
  p.before[1] = 1;
  p.after[2] = 2;
  const int8_t in[4] = {1, 2, 3, 4};
  int8_t out[12] = {};
  ref::Pad(p, MakeShape({1, 2, 2, 1}), in, -9, MakeShape({1, 3, 4, 1}), out);
  const int8_t expected[12] = {-9, -9, -9, -9, 1, 2, -9, -9, 3, 4, -9, -9};
  for (int i = 0; i < 12; ++i) EXPECT_EQ(out[i], expected[i]) << i;
}

TEST(Pad, OneDimensional) {
  PadParams p;
  p.before[0] = 2;
  p.after[0] = 1;
  const int8_t in[2] = {5, 6};
  int8_t out[5] = {};
  ref::Pad(p, MakeShape({2}), in, 0, MakeShape({5}), out);
  const int8_t expected[5] = {0, 0, 5, 6, 0};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(out[i], expected[i]);
}

// ---- softmax -------------------------------------------------------------

TEST(Softmax, UniformRowsGiveOneOverN) {
  // n equal logits: each probability 1/n, i.e. 256/n - 128 at scale 1/256;
  // n = 1 saturates at 127.
  SoftmaxParams p;
  ASSERT_TRUE(ComputeSoftmaxParams(1.0f, 0.1f, &p));
  for (int n = 1; n <= 256; n *= 2) {
    std::vector<int8_t> in(static_cast<size_t>(n), 17),
        out(static_cast<size_t>(n));
    ASSERT_TRUE(ref::Softmax(p, MakeShape({1, n}), in.data(), out.data()));
    const int expected = n == 1 ? 127 : 256 / n - 128;
    for (int8_t v : out) ASSERT_EQ(v, expected) << n;
  }
}

TEST(Softmax, CloseToFloatSoftmax) {
  std::mt19937 rng(5);
  for (int it = 0; it < 2000; ++it) {
    const float scale = 0.01f + 0.2f * static_cast<float>(rng() % 100) / 100;
    const float beta =
        (it % 3 == 0) ? 1.0f : 0.5f + static_cast<float>(rng() % 30) / 10;
    SoftmaxParams p;
    ASSERT_TRUE(ComputeSoftmaxParams(beta, scale, &p));
    const int n = 1 + static_cast<int>(rng() % 40);
    std::vector<int8_t> in(static_cast<size_t>(n)), out(static_cast<size_t>(n));
    for (int8_t& v : in) v = static_cast<int8_t>(rng() % 256);
    ASSERT_TRUE(ref::Softmax(p, MakeShape({n}), in.data(), out.data()));
    int max = -128;
    for (int8_t v : in) max = v > max ? v : max;
    double sum = 0;
    for (int8_t v : in)
      sum += std::exp(static_cast<double>(beta) * scale * (v - max));
    for (int c = 0; c < n; ++c) {
      const double prob =
          std::exp(static_cast<double>(beta) * scale * (in[c] - max)) / sum;
      const double got = (out[c] + 128) / 256.0;
      // One output step, plus the fixed-point exp/reciprocal error.
      ASSERT_NEAR(got, prob > 255.0 / 256 ? 255.0 / 256 : prob, 1.02 / 256);
    }
    for (int a = 0; a < n; ++a) {
      for (int b = 0; b < n; ++b) {
        if (in[a] > in[b]) {
          ASSERT_GE(out[a], out[b]);
        }
      }
    }
  }
}

TEST(Softmax, RejectsTinyBetaTimesScale) {
  SoftmaxParams p;
  // beta * scale * 2^26 <= 1.
  EXPECT_FALSE(ComputeSoftmaxParams(1.0f, 1e-8f, &p));
  EXPECT_FALSE(ComputeSoftmaxParams(-1.0f, 0.1f, &p));
}

// ---- quantize ------------------------------------------------------------

TEST(Quantize, RoundsHalfAwayAndSaturates) {
  // scale 0.5, zero point 3: 1.25 -> 2.5 -> 3 -> 6; -1.25 -> -3 -> 0;
  // 0.2 -> 0.4 -> 0 -> 3; 1000 -> 127; -1000 -> -128; NaN -> zero point.
  const float x[6] = {1.25f, -1.25f, 0.2f, 1000.0f, -1000.0f, std::nanf("")};
  int8_t q[6] = {};
  ref::Quantize(x, 6, 0.5f, 3, q);
  const int8_t expected[6] = {6, 0, 3, 127, -128, 3};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(q[i], expected[i]) << i;
}

TEST(Quantize, DequantizeAndRequantize) {
  const int8_t q[3] = {10, 3, -128};
  float x[3] = {};
  ref::Dequantize(q, 3, 0.5f, 3, x);
  EXPECT_EQ(x[0], 3.5f);
  EXPECT_EQ(x[1], 0.0f);
  EXPECT_EQ(x[2], -65.5f);
  // Scale 1 -> 0.5 doubles the offset value: (10 - 0) * 2 + 1 = 21;
  // (100) * 2 + 1 saturates to 127.
  RequantizeParams r;
  r.output_zero_point = 1;
  QuantizeMultiplier(2.0, &r.multiplier, &r.shift);
  const int8_t in[2] = {10, 100};
  int8_t out[2] = {};
  ref::Requantize(r, in, 2, out);
  EXPECT_EQ(out[0], 21);
  EXPECT_EQ(out[1], 127);
}

// ---- op wrappers through a fake context ----------------------------------

// Runs a forward builtin through a fresh Init/Prepare/Eval.
TEST(ForwardOps, KernelTable) {
  for (int code :
       {kBuiltinConv2D, kBuiltinDepthwiseConv2D, kBuiltinFullyConnected,
        kBuiltinAdd, kBuiltinAveragePool2D, kBuiltinMaxPool2D, kBuiltinMean,
        kBuiltinPad, kBuiltinReshape, kBuiltinSoftmax, kBuiltinQuantize,
        kBuiltinDequantize}) {
    const OpKernel* k = FindForwardKernel(code);
    ASSERT_NE(k, nullptr) << code;
    EXPECT_EQ(k->builtin_code, code);
    EXPECT_NE(k->prepare, nullptr);
    EXPECT_NE(k->eval, nullptr);
  }
  EXPECT_EQ(FindForwardKernel(kBuiltinCustom), nullptr);
  EXPECT_EQ(FindForwardKernel(9999), nullptr);
}

struct ConvFixture {
  FakeTensor input = Int8Tensor(MakeShape({1, 3, 3, 1}), 1.0f, 0);
  FakeTensor filter = Int8Tensor(MakeShape({1, 3, 3, 1}), 1.0f, 0);
  FakeTensor output = Int8Tensor(MakeShape({1, 2, 2, 1}), 1.0f, 0);
  ConvOptions options;
  FakeOp context;
  ConvFixture() {
    for (int i = 0; i < 9; ++i) {
      input.data[i] = static_cast<uint8_t>(i + 1);
      filter.data[i] = 1;
    }
    options.padding = kPaddingSame;
    options.stride_h = options.stride_w = 2;
    context.inputs = {&input, &filter};
    context.outputs = {&output};
    context.builtin_options = &options;
  }
};

TEST(ForwardOps, ConvRunsThroughTheWrapper) {
  ConvFixture f;
  ASSERT_EQ(RunBuiltin(f.context, kBuiltinConv2D), Status::kOk) << f.context.error();
  const int8_t expected[4] = {12, 16, 24, 28};  // see Conv.SameStride2ByHand
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(static_cast<int8_t>(f.output.data[i]), expected[i]);
  }
}

TEST(ForwardOps, ConvRejectsBadModels) {
  {
    ConvFixture f;
    f.filter.type = DataType::kFloat32;
    EXPECT_EQ(RunBuiltin(f.context, kBuiltinConv2D), Status::kError);
    EXPECT_EQ(f.context.error(), "CONV_2D: filter must be int8, got float32");
  }
  {
    ConvFixture f;
    f.filter.scales = {1.0f, 2.0f};
    f.filter.zero_points = {0, 0};
    EXPECT_EQ(RunBuiltin(f.context, kBuiltinConv2D), Status::kError);
    EXPECT_NE(f.context.error().find("scale"), std::string::npos);
  }
  {
    ConvFixture f;
    f.output.shape = MakeShape({1, 3, 3, 1});  // SAME stride 2 gives 2x2
    EXPECT_EQ(RunBuiltin(f.context, kBuiltinConv2D), Status::kError);
    EXPECT_NE(f.context.error().find("2x2"), std::string::npos);
  }
  {
    ConvFixture f;
    f.input.shape = MakeShape({3, 3, 1});
    EXPECT_EQ(RunBuiltin(f.context, kBuiltinConv2D), Status::kError);
    EXPECT_NE(f.context.error().find("rank 4"), std::string::npos);
  }
  {
    ConvFixture f;
    f.context.inputs.push_back(nullptr);  // absent bias is fine
    f.context.builtin_options = nullptr;
    EXPECT_EQ(RunBuiltin(f.context, kBuiltinConv2D), Status::kError);
  }
  {
    ConvFixture f;
    f.options.activation = 4;  // TANH is not a fused int8 activation here
    EXPECT_EQ(RunBuiltin(f.context, kBuiltinConv2D), Status::kError);
  }
}

TEST(ForwardOps, MeanNeedsConstantSpatialAxes) {
  FakeTensor input = Int8Tensor(MakeShape({1, 2, 2, 3}), 0.1f, 0);
  FakeTensor output = Int8Tensor(MakeShape({1, 3}), 0.1f, 0);
  FakeTensor axes =
      ConstTensor<int32_t>(DataType::kInt32, MakeShape({2}), {2, 1});
  ReducerOptions options;
  FakeOp context;
  context.inputs = {&input, &axes};
  context.outputs = {&output};
  context.builtin_options = &options;
  EXPECT_EQ(RunBuiltin(context, kBuiltinMean), Status::kOk) << context.error();
  axes.is_constant = false;
  EXPECT_EQ(RunBuiltin(context, kBuiltinMean), Status::kError);
  axes = ConstTensor<int32_t>(DataType::kInt32, MakeShape({1}), {3});
  EXPECT_EQ(RunBuiltin(context, kBuiltinMean), Status::kError);
  axes = ConstTensor<int32_t>(DataType::kInt32, MakeShape({2}), {-3, -2});
  EXPECT_EQ(RunBuiltin(context, kBuiltinMean), Status::kOk) << context.error();
  options.keep_dims = true;  // output must then be [1, 1, 1, 3]
  EXPECT_EQ(RunBuiltin(context, kBuiltinMean), Status::kError);
}

TEST(ForwardOps, PadChecksPaddings) {
  FakeTensor input = Int8Tensor(MakeShape({1, 2}), 0.1f, -4);
  FakeTensor output = Int8Tensor(MakeShape({1, 5}), 0.1f, -4);
  input.data = {7, 8};
  FakeTensor paddings =
      ConstTensor<int32_t>(DataType::kInt32, MakeShape({2, 2}), {0, 0, 1, 2});
  FakeOp context;
  context.inputs = {&input, &paddings};
  context.outputs = {&output};
  ASSERT_EQ(RunBuiltin(context, kBuiltinPad), Status::kOk) << context.error();
  const int8_t expected[5] = {-4, 7, 8, -4, -4};  // padded with the zero point
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(static_cast<int8_t>(output.data[i]), expected[i]);
  }
  paddings =
      ConstTensor<int32_t>(DataType::kInt32, MakeShape({2, 2}), {0, 0, 4, -1});
  EXPECT_EQ(RunBuiltin(context, kBuiltinPad), Status::kError);
  paddings =
      ConstTensor<int32_t>(DataType::kInt32, MakeShape({2, 2}), {0, 0, 1, 1});
  EXPECT_EQ(RunBuiltin(context, kBuiltinPad), Status::kError);  // output is 5 wide
}

TEST(ForwardOps, SoftmaxRequiresTheStandardOutputQuantization) {
  FakeTensor input = Int8Tensor(MakeShape({1, 4}), 0.1f, 0);
  FakeTensor output = Int8Tensor(MakeShape({1, 4}), 1.0f / 256, -128);
  SoftmaxOptions options;
  FakeOp context;
  context.inputs = {&input};
  context.outputs = {&output};
  context.builtin_options = &options;
  ASSERT_EQ(RunBuiltin(context, kBuiltinSoftmax), Status::kOk) << context.error();
  for (uint8_t b : output.data) EXPECT_EQ(static_cast<int8_t>(b), -64);
  output.zero_points = {0};
  EXPECT_EQ(RunBuiltin(context, kBuiltinSoftmax), Status::kError);
}

TEST(ForwardOps, FullyConnectedChecksSizes) {
  FakeTensor input = Int8Tensor(MakeShape({1, 2, 3}), 0.5f, 0);
  FakeTensor filter = Int8Tensor(MakeShape({4, 6}), 0.5f, 0);
  FakeTensor output = Int8Tensor(MakeShape({1, 4}), 1.0f, 0);
  FakeTensor bias =
      ConstTensor<int32_t>(DataType::kInt32, MakeShape({4}), {0, 0, 0, 0});
  FullyConnectedOptions options;
  FakeOp context;
  context.inputs = {&input, &filter, &bias};
  context.outputs = {&output};
  context.builtin_options = &options;
  EXPECT_EQ(RunBuiltin(context, kBuiltinFullyConnected), Status::kOk) << context.error();
  bias.shape = MakeShape({3});
  EXPECT_EQ(RunBuiltin(context, kBuiltinFullyConnected), Status::kError);
  bias.shape = MakeShape({4});
  filter.shape = MakeShape({4, 5});  // 6 input elements are not rows of 5
  EXPECT_EQ(RunBuiltin(context, kBuiltinFullyConnected), Status::kError);
  filter.shape = MakeShape({4, 6});
  filter.zero_points = {1};
  EXPECT_EQ(RunBuiltin(context, kBuiltinFullyConnected), Status::kError);
}

TEST(ForwardOps, QuantizeDequantizeAndReshape) {
  FakeTensor x;
  x.type = DataType::kFloat32;
  x.shape = MakeShape({2, 2});
  const float values[4] = {0.0f, 0.26f, -1.0f, 100.0f};
  x.data.resize(sizeof(values));
  std::memcpy(x.data.data(), values, sizeof(values));
  FakeTensor q = Int8Tensor(MakeShape({2, 2}), 0.5f, 1);
  FakeOp quantize;
  quantize.inputs = {&x};
  quantize.outputs = {&q};
  ASSERT_EQ(RunBuiltin(quantize, kBuiltinQuantize), Status::kOk) << quantize.error();
  // round(x / 0.5) + 1: 1, round(0.52) + 1 = 2, -2 + 1 = -1, saturated 127.
  const int8_t expected[4] = {1, 2, -1, 127};
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(static_cast<int8_t>(q.data[i]), expected[i]);

  FakeTensor r = Int8Tensor(MakeShape({4}), 0.5f, 1);
  FakeOp reshape;
  reshape.inputs = {&q};
  reshape.outputs = {&r};
  ASSERT_EQ(RunBuiltin(reshape, kBuiltinReshape), Status::kOk) << reshape.error();
  EXPECT_EQ(r.data, q.data);

  FakeTensor y;
  y.type = DataType::kFloat32;
  y.shape = MakeShape({4});
  y.data.resize(16);
  FakeOp dequantize;
  dequantize.inputs = {&r};
  dequantize.outputs = {&y};
  ASSERT_EQ(RunBuiltin(dequantize, kBuiltinDequantize), Status::kOk)
      << dequantize.error();
  float back[4];
  std::memcpy(back, y.data.data(), sizeof(back));
  EXPECT_EQ(back[0], 0.0f);
  EXPECT_EQ(back[1], 0.5f);
  EXPECT_EQ(back[2], -1.0f);
  EXPECT_EQ(back[3], 63.0f);

  FakeTensor wrong = Int8Tensor(MakeShape({5}), 0.5f, 1);
  reshape.outputs = {&wrong};
  EXPECT_EQ(RunBuiltin(reshape, kBuiltinReshape), Status::kError);
}

TEST(ForwardOps, AddAndPoolingWrappers) {
  FakeTensor a = Int8Tensor(MakeShape({1, 2, 2, 1}), 0.1f, 0);
  FakeTensor b = Int8Tensor(MakeShape({1, 2, 2, 1}), 0.1f, 0);
  FakeTensor sum = Int8Tensor(MakeShape({1, 2, 2, 1}), 0.1f, 0);
  a.data = {1, 2, 3, 4};
  b.data = {10, 20, 30, 40};
  AddOptions add_options;
  FakeOp add;
  add.inputs = {&a, &b};
  add.outputs = {&sum};
  add.builtin_options = &add_options;
  ASSERT_EQ(RunBuiltin(add, kBuiltinAdd), Status::kOk) << add.error();
  EXPECT_EQ(sum.data, (std::vector<uint8_t>{11, 22, 33, 44}));

  FakeTensor pooled = Int8Tensor(MakeShape({1, 1, 1, 1}), 0.1f, 0);
  PoolOptions pool_options;
  pool_options.padding = kPaddingValid;
  pool_options.filter_h = pool_options.filter_w = 2;
  FakeOp pool;
  pool.inputs = {&sum};
  pool.outputs = {&pooled};
  pool.builtin_options = &pool_options;
  ASSERT_EQ(RunBuiltin(pool, kBuiltinAveragePool2D), Status::kOk) << pool.error();
  EXPECT_EQ(static_cast<int8_t>(pooled.data[0]), 28);  // 110 / 4 = 27.5 -> 28
  ASSERT_EQ(RunBuiltin(pool, kBuiltinMaxPool2D), Status::kOk) << pool.error();
  EXPECT_EQ(static_cast<int8_t>(pooled.data[0]), 44);
  pooled.scales = {0.2f};  // pooling keeps the quantization
  EXPECT_EQ(RunBuiltin(pool, kBuiltinMaxPool2D), Status::kError);
}

}  // namespace
}  // namespace tflm_train
