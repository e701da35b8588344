// int8 gradients (kernels/grad/int8_grad.h): stochastic rounding against the
// straightforward loop of docs/format.md bit for bit (same draws), its
// unbiasedness, range and non-finite handling; nearest rounding unchanged;
// the ops that quantize (GRAD_SUM, AVERAGE_POOL_2D and layer gradients)
// with option grad_rounding 1, their rng input and its errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "ops_cc/core/float_math.h"
#include "ops_cc/kernels/grad/elementwise_grad.h"
#include "ops_cc/kernels/grad/fully_connected_grad.h"
#include "ops_cc/kernels/grad/int8_grad.h"
#include "ops_cc/kernels/grad/pooling_grad.h"
#include "ops_cc/ops/training_ops.h"
#include "ops_cc/tests/fake_context.h"
#include "ops_cc/tests/flexbuffer_golden.h"

namespace tflm_train {
namespace {

uint32_t Bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

uint32_t Advance(uint32_t state, int64_t draws) {
  for (int64_t k = 0; k < draws; ++k) Xorshift32Next(&state);
  return state;
}

// The documented numerics, written out: amax (NaN if any value is NaN),
// scale = amax / 127, inverse = 127 / amax (0 unless amax is finite and
// positive), and per element in order u = (x >> 8) * 2^-24 of the next
// xorshift32 state, q = clamp(floor(v * inverse + u), -127, 127), 0 for NaN.
struct Quantized {
  std::vector<int8_t> q;
  float scale = 0.0f;
  uint32_t state = 0;
};

Quantized ReferenceStochastic(const std::vector<float>& v, uint32_t state) {
  float amax = 0.0f;
  bool nan = false;
  for (float x : v) {
    if (std::isnan(x)) nan = true;
    amax = std::fmax(amax, std::fabs(x));
  }
  if (nan) amax = std::numeric_limits<float>::quiet_NaN();
  Quantized r;
  r.scale = amax / 127.0f;
  const float inverse =
      std::isfinite(amax) && amax > 0.0f ? 127.0f / amax : 0.0f;
  for (float x : v) {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    const float u = static_cast<float>(state >> 8) / 16777216.0f;
    const float product = x * inverse;
    const float t = std::floor(product + u);
    int q = 0;
    if (!std::isnan(t)) q = t < -127.0f ? -127 : (t > 127.0f ? 127 : static_cast<int>(t));
    r.q.push_back(static_cast<int8_t>(q));
  }
  r.state = state;
  return r;
}

// Nearest: round(v * inverse), ties away from zero, in [-127, 127].
std::vector<int8_t> ReferenceNearest(const std::vector<float>& v) {
  float amax = 0.0f;
  for (float x : v) amax = std::fmax(amax, std::fabs(x));
  const float inverse = amax > 0.0f ? 127.0f / amax : 0.0f;
  std::vector<int8_t> q;
  for (float x : v) {
    const float r = std::round(x * inverse);  // half away from zero
    q.push_back(static_cast<int8_t>(std::fmax(-127.0f, std::fmin(127.0f, r))));
  }
  return q;
}

Quantized Stochastic(const std::vector<float>& v, uint32_t state) {
  Quantized out;
  out.q.assign(v.size(), 99);
  out.state = state;
  WriteInt8Grad(
      static_cast<int64_t>(v.size()), [&](int64_t k) { return v[k]; },
      Int8GradOut{out.q.data(), &out.scale,
                  GradRounding{Rounding::kStochastic, &out.state}});
  return out;
}

void ExpectSame(const Quantized& got, const Quantized& want) {
  EXPECT_EQ(got.q, want.q);
  EXPECT_EQ(Bits(got.scale), Bits(want.scale));
  EXPECT_EQ(got.state, want.state);
}

// Values of both signs and many magnitudes, exact zeros, and +-amax.
std::vector<float> Values(int n, float magnitude, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, magnitude);
  std::vector<float> v(n);
  for (int k = 0; k < n; ++k) v[k] = k % 7 == 3 ? 0.0f : normal(gen);
  v[n / 2] = -4.0f * magnitude;  // likely the largest |v|
  return v;
}

TEST(Int8GradStochastic, EqualsTheReferenceLoopBitForBit) {
  int checked = 0;
  for (float magnitude : {1e-30f, 3e-5f, 1.0f, 7.5e3f, 1e30f}) {
    for (uint32_t seed : {1u, 2u, 3u}) {
      const std::vector<float> v = Values(1000, magnitude, seed);
      for (uint32_t state : {1u, 2463534242u, 0x80000000u}) {
        const Quantized got = Stochastic(v, state);
        ExpectSame(got, ReferenceStochastic(v, state));
        EXPECT_EQ(got.state, Advance(state, 1000));  // one draw per element
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 45);
}

TEST(Int8GradStochastic, InputGradientSinksDrawInElementOrder) {
  // WriteInt8CellGrad over a kernel that fills 13 cells of depth 7 in
  // increasing order: the same q, scale and draws as the whole tensor.
  const int depth = 7, cells = 13;
  const std::vector<float> v = Values(depth * cells, 0.02f, 9);
  std::vector<float> cell(depth);
  Quantized got;
  got.q.assign(v.size(), 99);
  got.state = 777;
  WriteInt8CellGrad(
      [&](auto& sink) {
        for (int c = 0; c < cells; ++c) {
          float* d = sink.Begin(c);
          for (int k = 0; k < depth; ++k) d[k] = v[c * depth + k];
          sink.End(c);
        }
      },
      cell.data(), depth,
      Int8GradOut{got.q.data(), &got.scale,
                  GradRounding{Rounding::kStochastic, &got.state}});
  ExpectSame(got, ReferenceStochastic(v, 777));
}

TEST(Int8GradStochastic, GradSumQuantizesTheFloatSum) {
  const int n = 257;
  std::vector<int8_t> a(n), b(n);
  std::mt19937 gen(5);
  std::uniform_int_distribution<int> q(-127, 127);
  for (int k = 0; k < n; ++k) {
    a[k] = static_cast<int8_t>(q(gen));
    b[k] = static_cast<int8_t>(k % 5 == 0 ? 0 : q(gen));
  }
  const int8_t* grads[2] = {a.data(), b.data()};
  const float scales[2] = {0.013f, 0.0041f};
  std::vector<float> sums(n);
  for (int k = 0; k < n; ++k)
    sums[k] = static_cast<float>(a[k]) * scales[0] +
              static_cast<float>(b[k]) * scales[1];
  Quantized got;
  got.q.assign(n, 99);
  got.state = 4242;
  GradSumInt8(grads, scales, 2, n,
              Int8GradOut{got.q.data(), &got.scale,
                          GradRounding{Rounding::kStochastic, &got.state}});
  ExpectSame(got, ReferenceStochastic(sums, 4242));
}

TEST(Int8GradStochastic, IsUnbiased) {
  // amax = 127 (so one step is 1): values a fraction of a step apart from
  // the grid, both signs. The mean of q over N draws is within 5 standard
  // deviations (at most 0.5 / sqrt(N)) of v; nearest rounding misses the
  // fractions by up to 0.5.
  const std::vector<float> v = {127.0f, 0.3f,   -0.3f,  -0.5f,  0.5f,
                                0.01f,  -0.99f, 12.25f, -64.7f, 126.9f,
                                -126.1f, 0.0f,  3.0f,   -3.0f};
  const int trials = 20000;
  std::vector<double> sum(v.size(), 0.0);
  uint32_t state = 2463534242u;
  for (int t = 0; t < trials; ++t) {
    std::vector<int8_t> q(v.size());
    float scale = 0.0f;
    WriteInt8Grad(
        static_cast<int64_t>(v.size()), [&](int64_t k) { return v[k]; },
        Int8GradOut{q.data(), &scale,
                    GradRounding{Rounding::kStochastic, &state}});
    ASSERT_EQ(scale, 1.0f);
    for (size_t k = 0; k < v.size(); ++k) {
      // Always one of the two neighbours of v on the grid.
      ASSERT_TRUE(q[k] == std::floor(v[k]) || q[k] == std::floor(v[k]) + 1)
          << k << " " << int{q[k]};
      sum[k] += q[k] * static_cast<double>(scale);
    }
  }
  const double bound = 5.0 * 0.5 / std::sqrt(static_cast<double>(trials));
  double worst_nearest = 0.0;
  const std::vector<int8_t> nearest = ReferenceNearest(v);
  for (size_t k = 0; k < v.size(); ++k) {
    EXPECT_NEAR(sum[k] / trials, v[k], bound) << "element " << k;
    worst_nearest = std::fmax(worst_nearest, std::fabs(nearest[k] - v[k]));
  }
  EXPECT_GT(worst_nearest, 20 * bound);  // the test tells the two apart
}

TEST(Int8GradStochastic, FloorsNegativeValuesAndClampsTheRange) {
  const GradQuantizer unit(127.0f);  // inverse 1
  EXPECT_EQ(unit.Stochastic(-0.25f, 0.0f), -1);  // floor, not truncation
  EXPECT_EQ(unit.Stochastic(-0.25f, 0.5f), 0);
  EXPECT_EQ(unit.Stochastic(-1.0f, 0.0f), -1);
  EXPECT_EQ(unit.Stochastic(-126.5f, 0.25f), -127);
  EXPECT_EQ(unit.Stochastic(-127.0f, 0.0f), -127);
  EXPECT_EQ(unit.Stochastic(-127.0f, 0.99f), -127);
  EXPECT_EQ(unit.Stochastic(127.0f, 0.99f), 127);
  EXPECT_EQ(unit.Stochastic(126.5f, 0.75f), 127);
  EXPECT_EQ(unit.Stochastic(2.0f, 0.999f), 2);
  // Beyond the range (a product rounded above 127): clamped.
  EXPECT_EQ(unit.Stochastic(127.00002f, 0.9f), 127);
  EXPECT_EQ(unit.Stochastic(-127.00002f, 0.0f), -127);
  EXPECT_EQ(unit.Stochastic(1e30f, 0.5f), 127);
  EXPECT_EQ(unit.Stochastic(-1e30f, 0.5f), -127);
  EXPECT_EQ(unit.Stochastic(std::numeric_limits<float>::quiet_NaN(), 0.5f), 0);
  // +-amax itself is +-127 whatever the draw, for any amax.
  std::mt19937 gen(3);
  std::uniform_real_distribution<float> exponent(-30.0f, 30.0f);
  uint32_t state = 99;
  for (int t = 0; t < 20000; ++t) {
    const float amax = std::pow(10.0f, exponent(gen));
    const GradQuantizer q(amax);
    EXPECT_EQ(q.Stochastic(amax, Xorshift32Uniform(&state)), 127) << amax;
    EXPECT_EQ(q.Stochastic(-amax, Xorshift32Uniform(&state)), -127) << amax;
  }
}

TEST(Int8GradStochastic, ZeroAndNonFiniteTensorsGiveZerosAndStillDraw) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> zeros(50, 0.0f);
  Quantized got = Stochastic(zeros, 31);
  EXPECT_EQ(got.q, std::vector<int8_t>(50, 0));
  EXPECT_EQ(got.scale, 0.0f);
  EXPECT_EQ(got.state, Advance(31, 50));
  ExpectSame(got, ReferenceStochastic(zeros, 31));
  for (float bad : {inf, -inf, nan}) {
    std::vector<float> v = Values(50, 1.0f, 4);
    v[17] = bad;
    got = Stochastic(v, 31);
    EXPECT_EQ(got.q, std::vector<int8_t>(50, 0)) << bad;
    EXPECT_FALSE(std::isfinite(got.scale)) << bad;
    EXPECT_EQ(got.state, Advance(31, 50)) << bad;
    ExpectSame(got, ReferenceStochastic(v, 31));
  }
}

TEST(Int8GradNearest, IsTheDefaultAndUnchanged) {
  for (float magnitude : {1e-20f, 1.0f, 1e20f}) {
    const std::vector<float> v = Values(300, magnitude, 8);
    std::vector<int8_t> q(v.size());
    float scale = 0.0f;
    WriteInt8Grad(
        static_cast<int64_t>(v.size()), [&](int64_t k) { return v[k]; },
        Int8GradOut{q.data(), &scale});
    float amax = 0.0f;
    for (float x : v) amax = std::fmax(amax, std::fabs(x));
    EXPECT_EQ(q, ReferenceNearest(v));
    EXPECT_EQ(Bits(scale), Bits(amax / 127.0f));
  }
}

// ---- The ops ------------------------------------------------------------------

const OpKernel& Kernel(const char* name) {
  const OpKernel* k = FindTrainingKernel(name);
  EXPECT_NE(k, nullptr) << name;
  return *k;
}

FakeTensor Scalar(float v) { return MakeTensor<float>(DataType::kFloat32, {1}, {v}); }

FakeTensor Rng(uint32_t state) {
  FakeTensor t = MakeTensor<int32_t>(DataType::kInt32, {1},
                                     {static_cast<int32_t>(state)});
  t.is_variable = true;
  return t;
}

uint32_t StateOf(FakeTensor& t) {
  uint32_t s;
  std::memcpy(&s, t.data.data(), 4);
  return s;
}

#define OPTIONS(name) golden::k##name##Bytes, sizeof(golden::k##name##Bytes)

// GRAD_SUM: mode, g1, g2, s1, s2, rng -> sum, scale.
struct GradSumFixture {
  std::vector<FakeTensor> t;
  enum { kMode, kG1, kG2, kS1, kS2, kRng, kSum, kScale };
  GradSumFixture() {
    t.push_back(MakeTensor<int32_t>(DataType::kInt32, {1}, {1}));
    std::vector<int8_t> a(30), b(30);
    for (int k = 0; k < 30; ++k) {
      a[k] = static_cast<int8_t>((k * 37) % 255 - 127);
      b[k] = static_cast<int8_t>((k * 91) % 200 - 100);
    }
    t.push_back(MakeTensor<int8_t>(DataType::kInt8, {2, 15}, a));
    t.push_back(MakeTensor<int8_t>(DataType::kInt8, {2, 15}, b));
    t.push_back(Scalar(0.003f));
    t.push_back(Scalar(0.0007f));
    t.push_back(Rng(12345));
    t.push_back(MakeTensor<int8_t>(DataType::kInt8, {2, 15}));
    t.push_back(Scalar(0.0f));
  }
  std::vector<float> Sums() {
    std::vector<float> s(30);
    for (int k = 0; k < 30; ++k)
      s[k] = static_cast<float>(t[kG1].As<int8_t>()[k]) * 0.003f +
             static_cast<float>(t[kG2].As<int8_t>()[k]) * 0.0007f;
    return s;
  }
};

TEST(Int8GradOps, GradSumRoundsStochasticallyFromTheRng) {
  GradSumFixture f;
  FakeOp op(&f.t, {0, 1, 2, 3, 4, 5}, {6, 7}, OPTIONS(StochasticGradOptions));
  ASSERT_EQ(op.Run(Kernel("TFLMTRAIN_GRAD_SUM")), Status::kOk) << op.error();
  const Quantized want = ReferenceStochastic(f.Sums(), 12345);
  EXPECT_EQ(std::vector<int8_t>(f.t[6].As<int8_t>(), f.t[6].As<int8_t>() + 30),
            want.q);
  EXPECT_EQ(Bits(f.t[7].As<float>()[0]), Bits(want.scale));
  EXPECT_EQ(StateOf(f.t[5]), want.state);  // written back
  // Mode 0: nothing moves, the state neither.
  f.t[0].As<int32_t>()[0] = 0;
  ASSERT_EQ(op.Run(Kernel("TFLMTRAIN_GRAD_SUM")), Status::kOk);
  EXPECT_EQ(StateOf(f.t[5]), want.state);

  // Without the option: nearest, as before, no rng.
  GradSumFixture g;
  FakeOp nearest(&g.t, {0, 1, 2, 3, 4}, {6, 7});
  ASSERT_EQ(nearest.Run(Kernel("TFLMTRAIN_GRAD_SUM")), Status::kOk)
      << nearest.error();
  const std::vector<int8_t> q(g.t[6].As<int8_t>(), g.t[6].As<int8_t>() + 30);
  EXPECT_EQ(q, ReferenceNearest(g.Sums()));
  EXPECT_NE(q, want.q);
}

TEST(Int8GradOps, MalformedRngOrOptionIsRefused) {
  const OpKernel& sum = Kernel("TFLMTRAIN_GRAD_SUM");
  struct Case {
    const char* what;
    int rng_slot;  // -1: absent
    void (*spoil)(FakeTensor*);
    const char* error;
  } const cases[] = {
      {"absent", -1, nullptr, "input 5 (rng) is missing"},
      {"float", 5, [](FakeTensor* t) { t->type = DataType::kFloat32; },
       "rng must be int32"},
      {"two elements", 5,
       [](FakeTensor* t) {
         t->shape = MakeShape({2});
         t->data.resize(8);
       },
       "rng must have 1 elements"},
      {"constant", 5, [](FakeTensor* t) { t->is_variable = false; },
       "rng is updated but is not a variable tensor"},
  };
  for (const Case& c : cases) {
    GradSumFixture f;
    if (c.spoil != nullptr) c.spoil(&f.t[5]);
    FakeOp op(&f.t, {0, 1, 2, 3, 4, c.rng_slot}, {6, 7},
              OPTIONS(StochasticGradOptions));
    EXPECT_NE(op.Run(sum), Status::kOk) << c.what;
    EXPECT_NE(op.error().find(c.error), std::string::npos)
        << c.what << ": " << op.error();
  }
  {  // the rng left out of the inputs
    GradSumFixture f;
    FakeOp op(&f.t, {0, 1, 2, 3, 4}, {6, 7}, OPTIONS(StochasticGradOptions));
    EXPECT_NE(op.Run(sum), Status::kOk);
    EXPECT_NE(op.error().find("then the rng"), std::string::npos) << op.error();
  }
  {
    GradSumFixture f;
    FakeOp op(&f.t, {0, 1, 2, 3, 4}, {6, 7}, OPTIONS(BadGradRoundingOptions));
    EXPECT_NE(op.Run(sum), Status::kOk);
    EXPECT_NE(op.error().find("grad_rounding must be 0 or 1, got 2"),
              std::string::npos)
        << op.error();
  }
  {  // float32 gradients have nothing to round
    std::vector<FakeTensor> t;
    t.push_back(MakeTensor<int32_t>(DataType::kInt32, {1}, {1}));
    t.push_back(MakeTensor<float>(DataType::kFloat32, {3}, {1, 2, 3}));
    t.push_back(Rng(5));
    t.push_back(MakeTensor<float>(DataType::kFloat32, {3}));
    FakeOp op(&t, {0, 1, 2}, {3}, OPTIONS(StochasticGradOptions));
    EXPECT_NE(op.Run(sum), Status::kOk);
    EXPECT_NE(op.error().find("grad_rounding 1 (stochastic) needs an int8 "
                              "gradient output"),
              std::string::npos)
        << op.error();
  }
}

TEST(Int8GradOps, AveragePoolGradRoundsStochasticallyFromTheRng) {
  // 2x2 windows, stride 2, VALID on [1, 4, 4, 3]; int8 y/grad [1, 2, 2, 3].
  std::vector<FakeTensor> t;
  t.push_back(MakeTensor<int32_t>(DataType::kInt32, {1}, {1}));
  std::vector<int8_t> dy(12), y(12);
  for (int k = 0; k < 12; ++k) {
    dy[k] = static_cast<int8_t>(k * 23 % 200 - 100);
    y[k] = static_cast<int8_t>(k == 4 ? 127 : k * 11 - 50);  // one masked
  }
  t.push_back(MakeTensor<int8_t>(DataType::kInt8, {1, 2, 2, 3}, dy));
  t.push_back(MakeTensor<int8_t>(DataType::kInt8, {1, 2, 2, 3}, y));
  Quantize(&t[2], {0.1f}, {0});
  t.push_back(Scalar(0.0123f));
  t.push_back(Rng(2463534242u));
  t.push_back(MakeTensor<int8_t>(DataType::kInt8, {1, 4, 4, 3}));
  t.push_back(Scalar(0.0f));
  FakeOp op(&t, {0, 1, 2, 3, 4}, {5, 6}, OPTIONS(StochasticPoolGradOptions));
  ASSERT_EQ(op.Run(Kernel("TFLMTRAIN_AVERAGE_POOL_2D_GRAD")), Status::kOk)
      << op.error();
  // The float values: each input cell a quarter of its window's masked dy.
  std::vector<float> v(48);
  for (int iy = 0; iy < 4; ++iy)
    for (int ix = 0; ix < 4; ++ix)
      for (int c = 0; c < 3; ++c) {
        const int out = ((iy / 2) * 2 + ix / 2) * 3 + c;
        const float g = y[out] < 127 && y[out] > -128
                            ? static_cast<float>(dy[out]) * 0.0123f
                            : 0.0f;
        v[(iy * 4 + ix) * 3 + c] = g / 4.0f;
      }
  const Quantized want = ReferenceStochastic(v, 2463534242u);
  EXPECT_EQ(std::vector<int8_t>(t[5].As<int8_t>(), t[5].As<int8_t>() + 48),
            want.q);
  EXPECT_EQ(Bits(t[6].As<float>()[0]), Bits(want.scale));
  EXPECT_EQ(StateOf(t[4]), want.state);

  t[4].is_variable = false;
  FakeOp constant(&t, {0, 1, 2, 3, 4}, {5, 6}, OPTIONS(StochasticPoolGradOptions));
  EXPECT_NE(constant.Run(Kernel("TFLMTRAIN_AVERAGE_POOL_2D_GRAD")), Status::kOk);
  EXPECT_NE(constant.error().find("rng is updated but is not a variable"),
            std::string::npos)
      << constant.error();
  FakeOp missing(&t, {0, 1, 2, 3}, {5, 6}, OPTIONS(StochasticPoolGradOptions));
  EXPECT_NE(missing.Run(Kernel("TFLMTRAIN_AVERAGE_POOL_2D_GRAD")), Status::kOk);
}

TEST(Int8GradOps, LayerGradDrawsForItsInputGradientThenForTheUpdate) {
  // FULLY_CONNECTED [1, 4] -> [1, 3], stochastic update of the bias and
  // stochastic int8 x/grad: dx takes the first 4 draws, the bias the next 3.
  std::vector<FakeTensor> t;
  enum { kMode, kHparams, kDy, kY, kX, kFilter, kBias, kRng, kDx, kDxScale };
  t.push_back(MakeTensor<int32_t>(DataType::kInt32, {1}, {1}));
  t.push_back(MakeTensor<float>(DataType::kFloat32, {3}, {0.5f, 1e4f, 2.0f}));
  t.push_back(MakeTensor<float>(DataType::kFloat32, {1, 3}, {1.0f, -2.0f, 0.37f}));
  t.push_back(MakeTensor<int8_t>(DataType::kInt8, {1, 3}, {5, -7, 100}));
  Quantize(&t[kY], {0.05f}, {0});
  t.push_back(MakeTensor<int8_t>(DataType::kInt8, {1, 4}, {10, -20, 30, 0}));
  Quantize(&t[kX], {0.02f}, {-3});
  t.push_back(MakeTensor<int8_t>(DataType::kInt8, {3, 4},
                                 {1, 2, 3, 4, 5, 6, 7, 8, -1, -2, -3, -4}));
  Quantize(&t[kFilter], {0.01f, 0.02f, 0.04f}, {0, 0, 0});
  t.push_back(MakeTensor<int32_t>(DataType::kInt32, {3}, {100, -100, 0}));
  t[kBias].is_variable = true;
  t.push_back(Rng(4321));
  t.push_back(MakeTensor<int8_t>(DataType::kInt8, {1, 4}));
  t.push_back(Scalar(0.0f));
  const std::vector<int> inputs = {kMode, kHparams, kDy, kY, kX, kFilter, kBias,
                                   -1, kRng, -1, -1, -1, -1};
  FakeOp op(&t, inputs, {kDx, kDxScale},
            OPTIONS(FullyConnectedStochasticGradOptions));
  const OpKernel& k = Kernel("TFLMTRAIN_FULLY_CONNECTED_GRAD");
  ASSERT_EQ(op.Run(k), Status::kOk) << op.error();

  // The float dx of the kernel, quantized by the reference from the state.
  FullyConnectedGradArgs a;
  a.input_depth = 4;
  a.output_depth = 3;
  a.input_scale = 0.02f;
  a.input_zero_point = -3;
  a.x = t[kX].As<int8_t>();
  std::vector<int8_t> filter(t[kFilter].data.begin(), t[kFilter].data.end());
  a.filter = filter.data();
  const float scales[3] = {0.01f, 0.02f, 0.04f};
  a.filter_scales = scales;
  a.g.q_y = t[kY].As<int8_t>();
  a.g.dy = t[kDy].As<float>();
  float dx[4];
  FullyConnectedInputGrad(a, dx);
  const Quantized want = ReferenceStochastic(std::vector<float>(dx, dx + 4), 4321);
  EXPECT_EQ(std::vector<int8_t>(t[kDx].As<int8_t>(), t[kDx].As<int8_t>() + 4),
            want.q);
  EXPECT_EQ(Bits(t[kDxScale].As<float>()[0]), Bits(want.scale));
  EXPECT_EQ(StateOf(t[kRng]), Advance(want.state, 3));  // then 3 bias draws

  // A float x/grad has nothing to round: refused.
  t.push_back(MakeTensor<float>(DataType::kFloat32, {1, 4}));
  FakeOp float_dx(&t, inputs, {10}, OPTIONS(FullyConnectedStochasticGradOptions));
  EXPECT_NE(float_dx.Run(k), Status::kOk);
  EXPECT_NE(float_dx.error().find("needs an int8 gradient output"),
            std::string::npos)
      << float_dx.error();
  // A constant rng: refused.
  t[kRng].is_variable = false;
  FakeOp constant(&t, inputs, {kDx, kDxScale},
                  OPTIONS(FullyConnectedStochasticGradOptions));
  EXPECT_NE(constant.Run(k), Status::kOk);
  EXPECT_NE(constant.error().find("rng is updated but is not a variable"),
            std::string::npos)
      << constant.error();
}

}  // namespace
}  // namespace tflm_train
