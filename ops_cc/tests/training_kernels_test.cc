// Checks of the training building blocks that need no TensorFlow: the SGD
// update rule, xorshift32, ExpF/LogF accuracy, the flexbuffer reader (golden
// bytes from Python, truncations, garbage) and the op wrappers' life cycle
// on a fake host. Gradient values are checked against TF in
// tests/test_grad_kernels.py.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "ops_cc/core/flexbuffer.h"
#include "ops_cc/core/float_math.h"
#include "ops_cc/kernels/grad/fully_connected_grad.h"
#include "ops_cc/kernels/grad/optimizer_schedule.h"
#include "ops_cc/kernels/grad/sgd_update.h"
#include "ops_cc/kernels/real_output.h"
#include "ops_cc/ops/training_ops.h"
#include "ops_cc/tests/fake_context.h"
#include "ops_cc/tests/flexbuffer_golden.h"

namespace tflm_train {
namespace {

// ---- SGD update rule --------------------------------------------------------

int8_t Nearest8(int8_t q, float grad, float lr, float scale, bool qas) {
  SgdRule rule;
  rule.qas = qas;
  return SgdUpdateInt8(q, grad, lr, scale, rule);
}

TEST(SgdUpdate, NearestRoundsHalfUp) {
  // Δq = floor(-lr G / s + 0.5) with QAS, lr = s = 1.
  EXPECT_EQ(Nearest8(10, 2.0f, 1.0f, 1.0f, true), 8);
  EXPECT_EQ(Nearest8(10, 0.5f, 1.0f, 1.0f, true), 10);   // -0.5 -> 0
  EXPECT_EQ(Nearest8(10, -0.5f, 1.0f, 1.0f, true), 11);  // 0.5 -> 1
  EXPECT_EQ(Nearest8(10, 1.5f, 1.0f, 1.0f, true), 9);    // -1.5 -> -1
  EXPECT_EQ(Nearest8(10, -1.5f, 1.0f, 1.0f, true), 12);  // 1.5 -> 2
  EXPECT_EQ(Nearest8(10, 0.7f, 1.0f, 1.0f, true), 9);
  EXPECT_EQ(Nearest8(10, 0.3f, 1.0f, 1.0f, true), 10);
}

TEST(SgdUpdate, QasDividesPlainMultiplies) {
  // G = 1, s = 0.25, lr = 0.5: QAS step 2, plain step 0.125.
  EXPECT_EQ(Nearest8(0, 1.0f, 0.5f, 0.25f, true), -2);
  EXPECT_EQ(Nearest8(0, 1.0f, 0.5f, 0.25f, false), 0);
  EXPECT_EQ(Nearest8(0, 1.0f, 8.0f, 0.25f, false), -2);
}

TEST(SgdUpdate, SaturatesInt8Symmetric) {
  EXPECT_EQ(Nearest8(120, -20.0f, 1.0f, 1.0f, true), 127);
  EXPECT_EQ(Nearest8(-120, 20.0f, 1.0f, 1.0f, true), -127);
  EXPECT_EQ(Nearest8(-128, 0.0f, 1.0f, 1.0f, true), -127);
  EXPECT_EQ(Nearest8(0, -1e30f, 1.0f, 1.0f, true), 127);
}

TEST(SgdUpdate, SaturatesInt32) {
  SgdRule rule;
  rule.qas = true;
  EXPECT_EQ(SgdUpdateInt32(INT32_MAX - 1, -5.0f, 1.0f, 1.0f, rule), INT32_MAX);
  EXPECT_EQ(SgdUpdateInt32(INT32_MIN + 1, 5.0f, 1.0f, 1.0f, rule), INT32_MIN);
  // A step far beyond the int32 range still moves across it.
  EXPECT_EQ(SgdUpdateInt32(INT32_MIN, -1e30f, 1.0f, 1.0f, rule), INT32_MAX);
  EXPECT_EQ(SgdUpdateInt32(INT32_MAX, 1e30f, 1.0f, 1.0f, rule), INT32_MIN);
  EXPECT_EQ(SgdUpdateInt32(100, -3.0e9f, 1.0f, 1.0f, rule), INT32_MAX);
}

TEST(SgdUpdate, NonFiniteStepsCountAsZero) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(Nearest8(17, nan, 1.0f, 1.0f, true), 17);
  EXPECT_EQ(Nearest8(17, inf, 1.0f, 1.0f, true), 17);
  EXPECT_EQ(Nearest8(17, -inf, 1.0f, 1.0f, false), 17);
  EXPECT_EQ(Nearest8(17, 1.0f, 1.0f, 0.0f, true), 17);   // G / 0
  EXPECT_EQ(Nearest8(17, 1e30f, 1e30f, 1.0f, true), 17);  // overflow
  SgdRule rule;
  EXPECT_EQ(SgdUpdateInt32(-9, nan, 1.0f, 1.0f, rule), -9);
}

TEST(SgdUpdate, StochasticUsesOneDrawPerElement) {
  uint32_t state = 2463534242u;
  SgdRule rule;
  rule.qas = true;
  rule.rounding = Rounding::kStochastic;
  rule.rng_state = &state;
  // First draw: x = 723471715, u = (x >> 8) / 2^24 ~ 0.168.
  const float u1 = static_cast<float>(723471715u >> 8) * 0x1p-24f;
  EXPECT_EQ(SgdDelta(-2.5f, 1.0f, 1.0f, rule), (2.5f + u1 >= 3.0f) ? 3 : 2);
  EXPECT_EQ(state, 723471715u);
  // Non-finite steps still consume their draw.
  uint32_t expected = state;
  Xorshift32Next(&expected);
  EXPECT_EQ(SgdDelta(std::numeric_limits<float>::quiet_NaN(), 1.0f, 1.0f,
                     rule),
            0);
  EXPECT_EQ(state, expected);
  // floor(-step + u) with u in [0, 1): an integral step is exact.
  for (int k = 0; k < 100; ++k) EXPECT_EQ(SgdDelta(3.0f, 1.0f, 1.0f, rule), -3);
}

// SgdUpdateInt8 floors in 32 bits on a clamped target; it must equal
// saturate(q + SgdDelta) for every rule, including steps far beyond the int8
// range, non-finite ones, mini-batch phases and momentum, with the same
// draws and slot updates.
TEST(SgdUpdate, Int8UpdateEqualsSaturatedSgdDelta) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> mantissa(-1.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-30, 40);
  const float specials[] = {0.0f, -0.0f, 0.5f, -0.5f, 1.5f, 254.5f, -254.5f,
                            255.0f, 3e9f, -3e9f, 1e30f,
                            std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN()};
  for (int config = 0; config < 8; ++config) {
    SgdRule rule;
    rule.qas = config & 1;
    rule.rounding = config & 2 ? Rounding::kStochastic : Rounding::kNearest;
    rule.momentum = 0.9f;
    uint32_t state_a = 777, state_b = 777;
    float acc_a = 0.0f, acc_b = 0.0f, vel_a = 0.25f, vel_b = 0.25f;
    OptimizerSlots slots_a, slots_b;
    if (config & 4) {
      slots_a = {&acc_a, &vel_a};
      slots_b = {&acc_b, &vel_b};
      rule.batch_size = 2.0f;
    }
    for (int k = 0; k < 4000; ++k) {
      const float grad = k < 14 ? specials[k]
                                : std::ldexp(mantissa(rng), exponent(rng));
      const int8_t q = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
      rule.phase = (config & 4) && k % 2 == 0 ? UpdatePhase::kAccumulate
                                              : UpdatePhase::kApply;
      SgdRule rule_a = rule, rule_b = rule;
      rule_a.rng_state = &state_a;
      rule_b.rng_state = &state_b;
      const int64_t wide = q + SgdDelta(grad, 0.7f, 0.01f, rule_a, slots_a);
      const int8_t expected =
          static_cast<int8_t>(wide < -127 ? -127 : (wide > 127 ? 127 : wide));
      EXPECT_EQ(SgdUpdateInt8(q, grad, 0.7f, 0.01f, rule_b, slots_b), expected)
          << "config " << config << " grad " << grad << " q " << int{q};
      ASSERT_EQ(state_a, state_b);
      ASSERT_EQ(std::memcmp(&acc_a, &acc_b, 4), 0);
      ASSERT_EQ(std::memcmp(&vel_a, &vel_b, 4), 0);
    }
  }
}

// ---- xorshift32 -------------------------------------------------------------

TEST(SgdUpdate, AccumulatesThenAppliesTheBatchMean) {
  SgdRule rule;
  rule.qas = true;
  rule.batch_size = 3.0f;
  float accumulator = 0.0f;
  OptimizerSlots slots;
  slots.accumulator = &accumulator;
  rule.phase = UpdatePhase::kAccumulate;
  EXPECT_EQ(SgdUpdateInt8(10, 2.0f, 1.0f, 1.0f, rule, slots, 0), 10);
  EXPECT_EQ(SgdUpdateInt8(10, std::numeric_limits<float>::infinity(), 1.0f,
                          1.0f, rule, slots, 0),
            10);  // a non-finite gradient is left out of the sum
  EXPECT_EQ(accumulator, 2.0f);
  rule.phase = UpdatePhase::kApply;
  // (2 + 4) / 3 = 2, Δq = -2; the accumulator restarts at 0.
  EXPECT_EQ(SgdUpdateInt8(10, 4.0f, 1.0f, 1.0f, rule, slots, 0), 8);
  EXPECT_EQ(accumulator, 0.0f);
}

TEST(SgdUpdate, MomentumFollowsKerasSgd) {
  // v = m v - lr G / s; Δq = round(v).
  SgdRule rule;
  rule.qas = true;
  rule.momentum = 0.5f;
  float velocity[2] = {0.0f, 4.0f};
  OptimizerSlots slots;
  slots.velocity = velocity;
  EXPECT_EQ(SgdUpdateInt8(0, 3.0f, 1.0f, 1.0f, rule, slots, 0), -3);
  EXPECT_EQ(velocity[0], -3.0f);
  EXPECT_EQ(SgdUpdateInt8(0, 3.0f, 1.0f, 1.0f, rule, slots, 0), -4);  // -4.5
  EXPECT_EQ(velocity[0], -4.5f);
  EXPECT_EQ(SgdUpdateInt8(0, 0.0f, 1.0f, 1.0f, rule, slots, 1), 2);  // element 1
  EXPECT_EQ(velocity[1], 2.0f);
  EXPECT_EQ(SgdUpdateInt8(0, std::numeric_limits<float>::quiet_NaN(), 1.0f,
                          1.0f, rule, slots, 1),
            0);  // a non-finite velocity restarts at 0
  EXPECT_EQ(velocity[1], 0.0f);
}

TEST(LrSchedule, WarmupCosineAndStep) {
  LrSchedule s;
  s.warmup_steps = 4;
  EXPECT_EQ(LrFactor(s, 0), 0.25f);
  EXPECT_EQ(LrFactor(s, 3), 1.0f);
  EXPECT_EQ(LrFactor(s, 1000), 1.0f);
  s.kind = ScheduleKind::kCosine;
  s.decay_steps = 10;
  s.alpha = 0.1f;
  EXPECT_EQ(LrFactor(s, 4), 1.0f);
  EXPECT_NEAR(LrFactor(s, 9), 0.1f + 0.9f * 0.5f, 1e-7f);  // halfway
  EXPECT_NEAR(LrFactor(s, 14), 0.1f, 1e-7f);
  EXPECT_NEAR(LrFactor(s, INT32_MAX), 0.1f, 1e-7f);
  s.kind = ScheduleKind::kStep;
  s.decay_steps = 3;
  s.decay_rate = 0.5f;
  EXPECT_EQ(LrFactor(s, 6), 1.0f);  // (6 - 4) / 3 = 0 periods
  EXPECT_EQ(LrFactor(s, 7), 0.5f);
  EXPECT_EQ(LrFactor(s, 10), 0.25f);
  EXPECT_EQ(LrFactor(s, 4 + 3 * 200), 0.0f);  // 0.5^200 underflows to 0
}

TEST(Xorshift32, MatchesDirectDefinition) {
  // Marsaglia (2003), "Xorshift RNGs": xor32 from 2463534242 gives 723471715.
  uint32_t state = 2463534242u;
  EXPECT_EQ(Xorshift32Next(&state), 723471715u);
  uint32_t direct = 1u;
  state = 1u;
  for (int k = 0; k < 100000; ++k) {
    direct ^= direct << 13;
    direct ^= direct >> 17;
    direct ^= direct << 5;
    const float u = Xorshift32Uniform(&state);
    ASSERT_EQ(state, direct);
    ASSERT_EQ(u, static_cast<float>(direct >> 8) / 16777216.0f);
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
  }
  state = 0u;
  EXPECT_EQ(Xorshift32Next(&state), 0u);
}

// ---- ExpF / LogF / FloorToInt64 ---------------------------------------------

float FromBits(uint32_t bits) {
  float x;
  std::memcpy(&x, &bits, sizeof(x));
  return x;
}

// |got - want| in units of the spacing of floats at `want` (double exact).
double UlpError(float got, double want) {
  const float want_f = static_cast<float>(want);
  if (std::isinf(want_f))
    return std::isinf(got) && (got > 0) == (want > 0) ? 0.0 : 1e9;
  const float next = std::nextafter(std::fabs(want_f),
                                    std::numeric_limits<float>::infinity());
  const double ulp = static_cast<double>(next) - std::fabs(want_f);
  return std::fabs(static_cast<double>(got) - want) / ulp;
}

TEST(FloatMath, ExpWithinOneUlp) {
  double worst = 0.0;
  float worst_x = 0.0f;
  // Every 61st float in [-104, 89] (both signs, all exponents).
  for (uint64_t bits = 0; bits < (uint64_t{1} << 32); bits += 61) {
    const float x = FromBits(static_cast<uint32_t>(bits));
    if (!(x > -104.0f && x < 89.0f)) continue;
    const double e = UlpError(ExpF(x), std::exp(static_cast<double>(x)));
    if (e > worst) {
      worst = e;
      worst_x = x;
    }
  }
  EXPECT_LE(worst, 1.0) << "at x = " << worst_x;
}

TEST(FloatMath, LogWithinOneUlp) {
  double worst = 0.0;
  float worst_x = 0.0f;
  // Every 37th positive finite float, subnormals included.
  for (uint32_t bits = 1; bits < 0x7f800000u; bits += 37) {
    const float x = FromBits(bits);
    const double e = UlpError(LogF(x), std::log(static_cast<double>(x)));
    if (e > worst) {
      worst = e;
      worst_x = x;
    }
  }
  EXPECT_LE(worst, 1.0) << "at x = " << worst_x;
}

TEST(FloatMath, SpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(ExpF(0.0f), 1.0f);
  EXPECT_EQ(ExpF(-0.0f), 1.0f);
  EXPECT_EQ(ExpF(inf), inf);
  EXPECT_EQ(ExpF(-inf), 0.0f);
  EXPECT_TRUE(std::isnan(ExpF(nan)));
  EXPECT_EQ(ExpF(89.0f), inf);
  EXPECT_EQ(ExpF(-104.0f), 0.0f);
  EXPECT_TRUE(std::isfinite(ExpF(88.72f)));
  EXPECT_GT(ExpF(-103.0f), 0.0f);  // subnormal result
  EXPECT_EQ(LogF(1.0f), 0.0f);
  EXPECT_EQ(LogF(0.0f), -inf);
  EXPECT_EQ(LogF(-0.0f), -inf);
  EXPECT_EQ(LogF(inf), inf);
  EXPECT_TRUE(std::isnan(LogF(-1.0f)));
  EXPECT_TRUE(std::isnan(LogF(-inf)));
  EXPECT_TRUE(std::isnan(LogF(nan)));
  EXPECT_NEAR(LogF(FromBits(1u)), -103.27893f, 1e-4f);
  EXPECT_FALSE(IsFinite(inf));
  EXPECT_FALSE(IsFinite(nan));
  EXPECT_TRUE(IsFinite(3.0e38f));
}

TEST(FloatMath, FloorToInt64) {
  EXPECT_EQ(FloorToInt64(2.5f), 2);
  EXPECT_EQ(FloorToInt64(-2.5f), -3);
  EXPECT_EQ(FloorToInt64(-0.0f), 0);
  EXPECT_EQ(FloorToInt64(-1e-30f), -1);
  EXPECT_EQ(FloorToInt64(16777216.0f), 16777216);
  EXPECT_EQ(FloorToInt64(-3.0e9f), -3000000000LL);
  EXPECT_EQ(FloorToInt64(1e20f), int64_t{1} << 62);
  EXPECT_EQ(FloorToInt64(-1e20f), -(int64_t{1} << 62));
  EXPECT_EQ(FloorToInt64(std::numeric_limits<float>::infinity()),
            int64_t{1} << 62);
  EXPECT_EQ(FloorToInt64(std::numeric_limits<float>::quiet_NaN()), 0);
  // Either side of the int32 fast path's bounds (+-2^31).
  EXPECT_EQ(FloorToInt64(2147483520.0f), 2147483520LL);
  EXPECT_EQ(FloorToInt64(2147483648.0f), 2147483648LL);
  EXPECT_EQ(FloorToInt64(-2147483520.0f), -2147483520LL);
  EXPECT_EQ(FloorToInt64(-2147483648.0f), -2147483648LL);
  EXPECT_EQ(FloorToInt64(-2147483904.0f), -2147483904LL);
  // Against std::floor on values spread over many magnitudes.
  std::mt19937 rng(3);
  for (int k = 0; k < 20000; ++k) {
    const float x = std::ldexp(static_cast<float>(rng() % 2000000) / 1e6f - 1.0f,
                               static_cast<int>(rng() % 70) - 10);
    EXPECT_EQ(FloorToInt64(x), static_cast<int64_t>(std::floor(static_cast<double>(x))))
        << x;
  }
}

// ---- Flexbuffer reader ------------------------------------------------------

// Opens a heap copy of exactly `size` bytes, so that address sanitizer
// builds catch any read past the end.
struct HeapMap {
  std::vector<uint8_t> bytes;
  FlexMap map;
  FlexStatus status;
  HeapMap(const uint8_t* data, size_t size)
      : bytes(data, data + size),
        status(map.Open(bytes.empty() ? nullptr : bytes.data(), size)) {}
};

void ExpectEntry(const FlexMap& map, const golden::GoldenEntry& e) {
  SCOPED_TRACE(e.key);
  int64_t i = 0;
  float f = 0.0f;
  switch (e.kind) {
    case golden::kInt:
    case golden::kBool:
      ASSERT_EQ(map.GetInt(e.key, &i), FlexStatus::kOk);
      EXPECT_EQ(i, e.int_value);
      ASSERT_EQ(map.GetFloat(e.key, &f), FlexStatus::kOk);
      EXPECT_EQ(f, static_cast<float>(e.float_value));
      break;
    case golden::kFloat:
      EXPECT_EQ(map.GetInt(e.key, &i), FlexStatus::kWrongType);
      ASSERT_EQ(map.GetFloat(e.key, &f), FlexStatus::kOk);
      if (e.float_value > 3.5e38)
        EXPECT_EQ(f, std::numeric_limits<float>::infinity());
      else
        EXPECT_EQ(f, static_cast<float>(e.float_value));
      break;
    case golden::kHugeUInt:
      EXPECT_EQ(map.GetInt(e.key, &i), FlexStatus::kWrongType);
      ASSERT_EQ(map.GetFloat(e.key, &f), FlexStatus::kOk);
      EXPECT_EQ(f, static_cast<float>(e.float_value));
      break;
    default:
      EXPECT_EQ(map.GetInt(e.key, &i), FlexStatus::kWrongType);
      EXPECT_EQ(map.GetFloat(e.key, &f), FlexStatus::kWrongType);
  }
}

TEST(FlexMap, ReadsPythonGoldens) {
  for (const golden::GoldenMap& g : golden::kMaps) {
    SCOPED_TRACE(g.name);
    HeapMap h(g.bytes, g.size);
    ASSERT_EQ(h.status, FlexStatus::kOk);
    EXPECT_EQ(h.map.size(), g.num_entries);
    for (int k = 0; k < g.num_entries; ++k) ExpectEntry(h.map, g.entries[k]);
    int64_t i = 0;
    float f = 0.0f;
    EXPECT_EQ(h.map.GetInt("no_such_key", &i), FlexStatus::kMissing);
    EXPECT_EQ(h.map.GetFloat("", &f), FlexStatus::kMissing);
  }
}

TEST(FlexMap, KeyMustMatchExactly) {
  HeapMap h(golden::kManyKeysBytes, sizeof(golden::kManyKeysBytes));
  ASSERT_EQ(h.status, FlexStatus::kOk);
  int64_t v = 0;
  EXPECT_EQ(h.map.GetInt("key_01", &v), FlexStatus::kMissing);
  EXPECT_EQ(h.map.GetInt("key_0011", &v), FlexStatus::kMissing);
  EXPECT_EQ(h.map.GetInt("key_259", &v), FlexStatus::kOk);
  EXPECT_EQ(v, 259 * 37 - 5000);
}

TEST(FlexMap, RejectsNonMapsAndEmptyInput) {
  FlexMap map;
  EXPECT_EQ(
      map.Open(golden::kVectorRootBytes, sizeof(golden::kVectorRootBytes)),
      FlexStatus::kMalformed);
  EXPECT_EQ(map.Open(golden::kIntRootBytes, sizeof(golden::kIntRootBytes)),
            FlexStatus::kMalformed);
  EXPECT_EQ(map.Open(nullptr, 0), FlexStatus::kMalformed);
  EXPECT_EQ(map.size(), 0);
  int64_t v = 0;
  EXPECT_EQ(map.GetInt("a", &v), FlexStatus::kMalformed);
}

TEST(FlexMap, EveryTruncationIsAnError) {
  for (const golden::GoldenMap& g : golden::kMaps) {
    SCOPED_TRACE(g.name);
    for (size_t n = 0; n < g.size; ++n) {
      HeapMap h(g.bytes, n);
      EXPECT_NE(h.status, FlexStatus::kOk) << "prefix of " << n << " bytes";
    }
  }
}

// Looks up the keys of `g` (every 16th of a big map) and one missing key;
// the results do not matter, only that nothing reads outside the buffer.
void ProbeKeys(const FlexMap& map, const golden::GoldenMap& g) {
  int64_t i = 0;
  float f = 0.0f;
  for (int k = 0; k < g.num_entries; k += g.num_entries > 32 ? 16 : 1) {
    map.GetInt(g.entries[k].key, &i);
    map.GetFloat(g.entries[k].key, &f);
  }
  map.GetInt("zzz", &i);
}

TEST(FlexMap, SurvivesCorruptedGoldens) {
  const uint8_t patterns[] = {0x00, 0x01, 0x7f, 0x80, 0xff};
  for (const golden::GoldenMap& g : golden::kMaps) {
    for (size_t at = 0; at < g.size; ++at) {
      for (uint8_t p : patterns) {
        std::vector<uint8_t> bytes(g.bytes, g.bytes + g.size);
        bytes[at] = p;
        HeapMap h(bytes.data(), bytes.size());
        if (h.status == FlexStatus::kOk) ProbeKeys(h.map, g);
      }
    }
  }
}

TEST(FlexMap, SurvivesRandomBytes) {
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 50000; ++trial) {
    std::vector<uint8_t> bytes(rng() % 48);
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    // A plausible map root (type byte and width) in half of the cases.
    if (bytes.size() >= 3 && trial % 2 == 0) {
      bytes.back() = static_cast<uint8_t>(1u << (rng() % 4));
      bytes[bytes.size() - 2] = static_cast<uint8_t>((9u << 2) | (rng() % 4));
    }
    HeapMap h(bytes.data(), bytes.size());
    if (h.status == FlexStatus::kOk) ProbeKeys(h.map, golden::kMaps[0]);
  }
}

TEST(FlexMap, SurvivesRandomDamage) {
  std::mt19937 rng(99);
  const int num_maps = sizeof(golden::kMaps) / sizeof(golden::kMaps[0]);
  int opened = 0;
  for (int trial = 0; trial < 20000; ++trial) {
    const golden::GoldenMap& g = golden::kMaps[trial % num_maps];
    std::vector<uint8_t> bytes(g.bytes, g.bytes + g.size);
    for (int e = 1 + static_cast<int>(rng() % 4); e > 0; --e)
      bytes[rng() % bytes.size()] = static_cast<uint8_t>(rng());
    if (rng() % 4 == 0) bytes.resize(rng() % (bytes.size() + 1));
    HeapMap h(bytes.data(), bytes.size());
    if (h.status == FlexStatus::kOk) {
      ++opened;
      ProbeKeys(h.map, g);
    }
  }
  EXPECT_GT(opened, 0);  // lookups did run on damaged maps
}

// ---- Op wrappers on a fake host ---------------------------------------------

const OpKernel& Kernel(const char* name) {
  const OpKernel* kernel = FindTrainingKernel(name);
  EXPECT_NE(kernel, nullptr) << name;
  return *kernel;
}

TEST(TrainingOps, Registry) {
  EXPECT_EQ(FindTrainingKernel("TFLMTRAIN_NOPE"), nullptr);
  EXPECT_EQ(FindTrainingKernel(nullptr), nullptr);
  EXPECT_EQ(TrainingKernel(kNumTrainingOps), nullptr);
  EXPECT_EQ(TrainingKernel(-1), nullptr);
  for (int i = 0; i < kNumTrainingOps; ++i) {
    const OpKernel* k = TrainingKernel(i);
    ASSERT_NE(k, nullptr);
    EXPECT_EQ(k->builtin_code, -1);
    EXPECT_EQ(FindTrainingKernel(k->custom_name), k);
    EXPECT_NE(k->prepare, nullptr);
    EXPECT_NE(k->eval, nullptr);
  }
}

TEST(TrainingOps, InitVariablesCopiesOncePerReset) {
  std::vector<FakeTensor> t;
  t.push_back(MakeTensor<int8_t>(DataType::kInt8, {3}, {1, 2, 3}));
  t[0].is_constant = true;
  t.push_back(MakeTensor<int8_t>(DataType::kInt8, {3}));
  t[1].is_variable = true;
  const OpKernel& k = Kernel("TFLMTRAIN_INIT_VARIABLES");
  FakeOp op(&t, {0}, {1});
  ASSERT_EQ(op.Run(k), Status::kOk) << op.error();
  EXPECT_EQ(t[1].As<int8_t>()[2], 3);
  t[1].As<int8_t>()[2] = 9;  // "trained"
  ASSERT_EQ(op.Run(k), Status::kOk);
  EXPECT_EQ(t[1].As<int8_t>()[2], 9);
  k.reset(op.OpData());
  ASSERT_EQ(op.Run(k), Status::kOk);
  EXPECT_EQ(t[1].As<int8_t>()[2], 3);

  t[1].is_variable = false;
  FakeOp bad(&t, {0}, {1});
  EXPECT_NE(bad.Run(k, true), Status::kOk);
  EXPECT_EQ(bad.error(),
            "TFLMTRAIN_INIT_VARIABLES: destination 0 is not a variable");
}

// every_invoke (the LSTM states' clear): the copy happens on every Invoke.
TEST(TrainingOps, InitVariablesEveryInvokeCopiesEachTime) {
  std::vector<FakeTensor> t;
  t.push_back(MakeTensor<int16_t>(DataType::kInt16, {1}, {-7}));
  t[0].is_constant = true;
  t.push_back(MakeTensor<int16_t>(DataType::kInt16, {4}));
  t[1].is_variable = true;
  const OpKernel& k = Kernel("TFLMTRAIN_INIT_VARIABLES");
  FakeOp op(&t, {0}, {1}, golden::kEveryInvokeOptionsBytes,
            sizeof(golden::kEveryInvokeOptionsBytes));
  for (int invoke = 0; invoke < 3; ++invoke) {
    ASSERT_EQ(op.Run(k), Status::kOk) << op.error();
    for (int i = 0; i < 4; ++i) EXPECT_EQ(t[1].As<int16_t>()[i], -7);
    t[1].As<int16_t>()[1] = 5;  // what an LSTM step leaves behind
  }
}

TEST(TrainingOps, LossModes) {
  std::vector<FakeTensor> t;
  t.push_back(MakeTensor<float>(DataType::kFloat32, {1, 3}, {0.7f, 1.7f, -0.8f}));
  t.push_back(MakeTensor<int32_t>(DataType::kInt32, {1}, {1}));   // label
  t.push_back(MakeTensor<int32_t>(DataType::kInt32, {1}, {1}));   // mode
  t.push_back(MakeTensor<float>(DataType::kFloat32, {1}));        // loss
  t.push_back(MakeTensor<float>(DataType::kFloat32, {1, 3}, {7, 7, 7}));
  const OpKernel& k = Kernel("TFLMTRAIN_SOFTMAX_CROSS_ENTROPY_V2");
  FakeOp op(&t, {0, 1, 2}, {3, 4});
  ASSERT_EQ(op.Run(k), Status::kOk) << op.error();
  const float loss = t[3].As<float>()[0];
  EXPECT_NEAR(loss, -std::log(std::exp(1.0) / (std::exp(0.0) + std::exp(1.0) +
                                               std::exp(-1.5))),
              1e-6);
  EXPECT_LT(t[4].As<float>()[1], 0.0f);
  // Infer mode: loss only, gradient untouched; an unknown label gives NaN.
  t[2].As<int32_t>()[0] = 0;
  t[1].As<int32_t>()[0] = 5;
  std::fill(t[4].As<float>(), t[4].As<float>() + 3, 7.0f);
  ASSERT_EQ(op.Run(k), Status::kOk);
  EXPECT_TRUE(std::isnan(t[3].As<float>()[0]));
  EXPECT_EQ(t[4].As<float>()[0], 7.0f);
  // Train mode: an unknown label is an error.
  t[2].As<int32_t>()[0] = 1;
  EXPECT_EQ(op.Run(k), Status::kBadInput);
  EXPECT_EQ(op.error(),
            "TFLMTRAIN_SOFTMAX_CROSS_ENTROPY_V2: label 5 is outside [0, 3)");
}

TEST(TrainingOps, CrossEntropyNeedsTwoClasses) {
  std::vector<FakeTensor> t;
  t.push_back(MakeTensor<float>(DataType::kFloat32, {1, 1}, {0.5f}));
  t.push_back(MakeTensor<int32_t>(DataType::kInt32, {1}, {0}));
  t.push_back(MakeTensor<int32_t>(DataType::kInt32, {1}, {1}));
  t.push_back(MakeTensor<float>(DataType::kFloat32, {1}));
  FakeOp op(&t, {0, 1, 2}, {3});
  EXPECT_NE(op.Run(Kernel("TFLMTRAIN_SOFTMAX_CROSS_ENTROPY_V2"), true),
            Status::kOk);
  EXPECT_EQ(op.error(), "TFLMTRAIN_SOFTMAX_CROSS_ENTROPY_V2: logits must be "
                        "[1, ..., C] with C >= 2");
}

TEST(TrainingOps, RegressionLosses) {
  std::vector<FakeTensor> t;
  t.push_back(MakeTensor<float>(DataType::kFloat32, {1, 2}, {1.0f, 2.0f}));
  t.push_back(MakeTensor<float>(DataType::kFloat32, {1, 2}, {0.0f, 4.0f}));
  t.push_back(MakeTensor<int32_t>(DataType::kInt32, {1}, {1}));
  t.push_back(MakeTensor<float>(DataType::kFloat32, {1}));
  t.push_back(MakeTensor<float>(DataType::kFloat32, {1, 2}));
  FakeOp mse(&t, {0, 1, 2}, {3, 4});
  ASSERT_EQ(mse.Run(Kernel("TFLMTRAIN_MEAN_SQUARED_ERROR")), Status::kOk)
      << mse.error();
  EXPECT_EQ(t[3].As<float>()[0], 2.5f);  // (1 + 4) / 2
  EXPECT_EQ(t[4].As<float>()[0], 1.0f);  // 2 (v - t) / n
  EXPECT_EQ(t[4].As<float>()[1], -2.0f);
  FakeOp mae(&t, {0, 1, 2}, {3, 4});
  ASSERT_EQ(mae.Run(Kernel("TFLMTRAIN_MEAN_ABSOLUTE_ERROR")), Status::kOk)
      << mae.error();
  EXPECT_EQ(t[3].As<float>()[0], 1.5f);
  EXPECT_EQ(t[4].As<float>()[0], 0.5f);  // sign(v - t) / n
  EXPECT_EQ(t[4].As<float>()[1], -0.5f);

  t[1] = MakeTensor<float>(DataType::kFloat32, {1, 3});
  FakeOp wrong(&t, {0, 1, 2}, {3, 4});
  EXPECT_NE(wrong.Run(Kernel("TFLMTRAIN_MEAN_SQUARED_ERROR"), true),
            Status::kOk);
  EXPECT_EQ(wrong.error(),
            "TFLMTRAIN_MEAN_SQUARED_ERROR: target must have 2 elements, got 3");
}

// TFLMTRAIN_FULLY_CONNECTED_REAL_OUTPUT over [1, 4] -> [1, 3], RELU.
TEST(TrainingOps, RealOutputIsUnsaturatedAndTracksRangeInTrainMode) {
  enum { kMode, kX, kFilter, kBias, kRange, kY };
  std::vector<FakeTensor> t;
  t.push_back(MakeTensor<int32_t>(DataType::kInt32, {1}, {0}));
  t.push_back(MakeTensor<int8_t>(DataType::kInt8, {1, 4}, {127, -128, 127, 0}));
  Quantize(&t[kX], {0.5f}, {-3});
  t.push_back(MakeTensor<int8_t>(DataType::kInt8, {3, 4},
                                 {127, -127, 127, 0, -1, 0, 0, 0, 1, 1, 1, 1}));
  Quantize(&t[kFilter], {0.25f}, {0});  // per tensor
  t.push_back(MakeTensor<int32_t>(DataType::kInt32, {3}, {1000, 0, -7}));
  t.push_back(MakeTensor<float>(DataType::kFloat32, {2}, {-1.0f, 1.0f}));
  t[kRange].is_variable = true;
  t.push_back(MakeTensor<float>(DataType::kFloat32, {1, 3}));
  FakeOp op(&t, {kMode, kX, kFilter, kBias, kRange}, {kY},
            golden::kReluOptionsBytes, sizeof(golden::kReluOptionsBytes));
  const OpKernel& k = Kernel("TFLMTRAIN_FULLY_CONNECTED_REAL_OUTPUT");
  ASSERT_EQ(op.Run(k), Status::kOk) << op.error();
  // acc_u = sum w (x + 3) + bias; y = max(0, acc * (0.5 * 0.25)).
  const int32_t acc[3] = {127 * 130 + 127 * 125 + 127 * 130 + 1000, -130,
                          130 - 125 + 130 + 3 - 7};
  const float s = 0.5f * 0.25f;
  EXPECT_EQ(t[kY].As<float>()[0], static_cast<float>(acc[0]) * s);  // 6231.25
  EXPECT_EQ(t[kY].As<float>()[1], 0.0f);                             // RELU
  EXPECT_EQ(t[kY].As<float>()[2], static_cast<float>(acc[2]) * s);
  EXPECT_EQ(t[kRange].As<float>()[1], 1.0f);  // infer mode: range kept
  t[kMode].As<int32_t>()[0] = 1;
  ASSERT_EQ(op.Run(k), Status::kOk);
  // The maximum widens at once; the minimum (outputs >= 0) moves up by
  // 1/128 of the gap.
  EXPECT_EQ(t[kRange].As<float>()[0], -1.0f + (0.0f - -1.0f) / 128.0f);
  EXPECT_EQ(t[kRange].As<float>()[1], static_cast<float>(acc[0]) * s);
  ASSERT_EQ(op.Run(k), Status::kOk);
  EXPECT_EQ(t[kRange].As<float>()[1], static_cast<float>(acc[0]) * s);
}

TEST(TrackRange, WidensAtOnceAndNarrowsSlowly) {
  float range[2] = {-1.0f, 1.0f};
  const float wide[3] = {-3.0f, 0.5f, 2.0f};
  TrackRange(wide, 3, range);
  EXPECT_EQ(range[0], -3.0f);
  EXPECT_EQ(range[1], 2.0f);
  const float narrow[2] = {-0.5f, 0.5f};
  for (int step = 0; step < 1000; ++step) TrackRange(narrow, 2, range);
  EXPECT_NEAR(range[0], -0.5f, 1e-3f);  // (1 - 1/128)^1000 of the gap left
  EXPECT_NEAR(range[1], 0.5f, 1e-3f);
  EXPECT_LT(range[0], -0.5f);
  EXPECT_GT(range[1], 0.5f);
}

// A FULLY_CONNECTED gradient op over [1, 4] -> [1, 3].
struct FcFixture {
  std::vector<FakeTensor> t;
  enum { kMode, kHparams, kDy, kY, kX, kFilter, kBias, kChannels, kRng, kDx };

  FcFixture() {
    t.push_back(MakeTensor<int32_t>(DataType::kInt32, {1}, {1}));
    // [weight lr, bias lr, phase 2 = apply] (TFLMTRAIN_OPTIMIZER_STEP).
    t.push_back(MakeTensor<float>(DataType::kFloat32, {3}, {500.0f, 1e4f, 2.0f}));
    t.push_back(
        MakeTensor<float>(DataType::kFloat32, {1, 3}, {1.0f, -2.0f, 0.5f}));
    t.push_back(MakeTensor<int8_t>(DataType::kInt8, {1, 3}, {5, -7, 127}));
    Quantize(&t[kY], {0.05f}, {0});
    t.push_back(MakeTensor<int8_t>(DataType::kInt8, {1, 4}, {10, -20, 30, 0}));
    Quantize(&t[kX], {0.02f}, {-3});
    t.push_back(MakeTensor<int8_t>(DataType::kInt8, {3, 4},
                                   {1, 2, 3, 4, 5, 6, 7, 8, -1, -2, -3, -4}));
    Quantize(&t[kFilter], {0.01f, 0.02f, 0.04f}, {0, 0, 0});
    t[kFilter].is_variable = true;
    t.push_back(MakeTensor<int32_t>(DataType::kInt32, {3}, {100, -100, 0}));
    t[kBias].is_variable = true;
    t.push_back(MakeTensor<int32_t>(DataType::kInt32, {2}, {0, 2}));
    t[kChannels].is_constant = true;
    t.push_back(MakeTensor<int32_t>(DataType::kInt32, {1}, {12345}));
    t[kRng].is_variable = true;
    t.push_back(MakeTensor<float>(DataType::kFloat32, {1, 4}));
  }

  FakeOp Op(const uint8_t* options, size_t size, int channels = kChannels,
            int rng = kRng) {
    return FakeOp(&t, {kMode, kHparams, kDy, kY, kX, kFilter, kBias, channels,
                       rng, -1, -1, -1, -1},
                  {kDx}, options, size);
  }
};

TEST(TrainingOps, FullyConnectedGradMatchesKernelAndHonoursMode) {
  FcFixture f;
  const OpKernel& k = Kernel("TFLMTRAIN_FULLY_CONNECTED_GRAD");
  FakeOp op = f.Op(golden::kFullyConnectedOptionsBytes,
                   sizeof(golden::kFullyConnectedOptionsBytes));
  // Mode 0: nothing is touched.
  f.t[FcFixture::kMode].As<int32_t>()[0] = 0;
  std::vector<FakeTensor> before = f.t;
  ASSERT_EQ(op.Run(k), Status::kOk) << op.error();
  for (size_t i = 0; i < f.t.size(); ++i)
    EXPECT_EQ(f.t[i].data, before[i].data) << "tensor " << i;

  // Mode 1: the same as calling the kernel directly.
  f.t[FcFixture::kMode].As<int32_t>()[0] = 1;
  std::vector<int8_t> filter(before[FcFixture::kFilter].data.begin(),
                             before[FcFixture::kFilter].data.end());
  std::vector<int32_t> bias = {100, -100, 0};
  const float scales[3] = {0.01f, 0.02f, 0.04f};
  const float bias_scales[3] = {0.02f * 0.01f, 0.02f * 0.02f, 0.02f * 0.04f};
  const int32_t channels[2] = {0, 2};
  FullyConnectedGradArgs a;
  a.batches = 1;
  a.input_depth = 4;
  a.output_depth = 3;
  a.input_scale = 0.02f;
  a.input_zero_point = -3;
  a.x = f.t[FcFixture::kX].As<int8_t>();
  a.filter = filter.data();
  a.filter_scales = scales;
  a.g.q_y = f.t[FcFixture::kY].As<int8_t>();
  a.g.dy = f.t[FcFixture::kDy].As<float>();
  LayerUpdate u;
  u.update_weights = true;
  u.channels = channels;
  u.num_channels = 2;
  u.weight_lr = 500.0f;
  u.bias = bias.data();
  u.bias_scales = bias_scales;
  u.bias_lr = 1e4f;
  float dx[4];
  FullyConnectedGrad(a, dx, u);

  ASSERT_EQ(op.Run(k), Status::kOk) << op.error();
  EXPECT_EQ(0, std::memcmp(f.t[FcFixture::kFilter].data.data(), filter.data(),
                           filter.size()));
  EXPECT_EQ(0, std::memcmp(f.t[FcFixture::kBias].data.data(), bias.data(),
                           sizeof(int32_t) * 3));
  EXPECT_EQ(0, std::memcmp(f.t[FcFixture::kDx].data.data(), dx, sizeof(dx)));
  // Channel 1 is not listed: its weights stay; y = 127 masks channel 2.
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(filter[4 + i], before[FcFixture::kFilter].As<int8_t>()[4 + i]);
    EXPECT_EQ(filter[8 + i], before[FcFixture::kFilter].As<int8_t>()[8 + i]);
  }
  EXPECT_NE(filter[0], 1);
  EXPECT_NE(bias[1], -100);  // biases of all channels update
  EXPECT_EQ(f.t[FcFixture::kRng].As<int32_t>()[0], 12345);  // nearest
}

TEST(TrainingOps, OutputLayerGradMasksByItsRealOutput) {
  FcFixture f;
  // y is the real-valued output: 127 no longer masks; RELU masks y <= 0.
  f.t[FcFixture::kY] =
      MakeTensor<float>(DataType::kFloat32, {1, 3}, {0.0f, 2.5f, 900.0f});
  FakeOp op = f.Op(golden::kFullyConnectedReluBiasOptionsBytes,
                   sizeof(golden::kFullyConnectedReluBiasOptionsBytes), -1, -1);
  ASSERT_EQ(op.Run(Kernel("TFLMTRAIN_FULLY_CONNECTED_GRAD")), Status::kOk)
      << op.error();
  const int32_t* bias = f.t[FcFixture::kBias].As<int32_t>();
  SgdRule rule;
  rule.qas = true;
  EXPECT_EQ(bias[0], 100);  // masked: y at the RELU bound
  EXPECT_EQ(bias[1], SgdUpdateInt32(-100, -2.0f, 1e4f, 0.02f * 0.02f, rule));
  EXPECT_EQ(bias[2], SgdUpdateInt32(0, 0.5f, 1e4f, 0.02f * 0.04f, rule));
  EXPECT_NE(bias[2], 0);  // 900 is far beyond int8 but not masked
}

// Found by the fuzzer: s_x and s_w valid, their product (the bias scale the
// QAS bias step divides by) zero.
TEST(TrainingOps, BiasScaleUnderflowIsRejected) {
  FcFixture f;
  Quantize(&f.t[FcFixture::kX], {1e-30f}, {0});
  Quantize(&f.t[FcFixture::kFilter], {1e-30f, 0.02f, 0.04f}, {0, 0, 0});
  FakeOp op = f.Op(golden::kFullyConnectedOptionsBytes,
                   sizeof(golden::kFullyConnectedOptionsBytes));
  EXPECT_NE(op.Run(Kernel("TFLMTRAIN_FULLY_CONNECTED_GRAD"), true), Status::kOk);
  EXPECT_EQ(op.error(), "TFLMTRAIN_FULLY_CONNECTED_GRAD: bias scale s_x * s_w[0] = 0 "
                        "is not a finite positive normal float");
}

TEST(TrainingOps, LayerGradPrepareErrors) {
  const OpKernel& k = Kernel("TFLMTRAIN_FULLY_CONNECTED_GRAD");
  const uint8_t* options = golden::kFullyConnectedOptionsBytes;
  const size_t size = sizeof(golden::kFullyConnectedOptionsBytes);
  {
    FcFixture f;
    FakeOp op = f.Op(golden::kSmallIntsBytes, sizeof(golden::kSmallIntsBytes));
    EXPECT_NE(op.Run(k, true), Status::kOk);
    EXPECT_EQ(op.error(),
              "TFLMTRAIN_FULLY_CONNECTED_GRAD: custom option 'activation': "
              "missing");
  }
  {
    FcFixture f;
    FakeOp op = f.Op(options, size - 1);
    EXPECT_NE(op.Run(k, true), Status::kOk);
    EXPECT_EQ(op.error(),
              "TFLMTRAIN_FULLY_CONNECTED_GRAD: custom option '(map)': "
              "malformed");
  }
  {
    FcFixture f;
    f.t[FcFixture::kFilter].is_variable = false;
    FakeOp op = f.Op(options, size);
    EXPECT_NE(op.Run(k, true), Status::kOk);
    EXPECT_EQ(op.error(),
              "TFLMTRAIN_FULLY_CONNECTED_GRAD: filter is updated but is not a "
              "variable tensor");
  }
  {
    FcFixture f;
    f.t[FcFixture::kChannels].As<int32_t>()[1] = 3;
    FakeOp op = f.Op(options, size);
    EXPECT_NE(op.Run(k, true), Status::kOk);
    EXPECT_EQ(op.error(),
              "TFLMTRAIN_FULLY_CONNECTED_GRAD: channels must be increasing "
              "and in [0, 3)");
  }
  {
    FcFixture f;
    f.t[FcFixture::kFilter].scales = {0.01f, 0.02f};
    f.t[FcFixture::kFilter].zero_points = {0, 0};
    FakeOp op = f.Op(options, size);
    EXPECT_NE(op.Run(k, true), Status::kOk);
    EXPECT_EQ(op.error(),
              "TFLMTRAIN_FULLY_CONNECTED_GRAD: filter needs 1 scale or 3 "
              "along dimension 0, got 2 along 0");
  }
  {
    FcFixture f;
    f.t[FcFixture::kHparams] = MakeTensor<float>(DataType::kFloat32, {1});
    FakeOp op = f.Op(options, size);
    EXPECT_NE(op.Run(k, true), Status::kOk);
    EXPECT_EQ(op.error(),
              "TFLMTRAIN_FULLY_CONNECTED_GRAD: optimizer_step must have 3 "
              "elements, got 1");
  }
  {
    FcFixture f;  // absent channel list and rng are fine with nearest
    FakeOp op = f.Op(options, size, -1, -1);
    EXPECT_EQ(op.Run(k), Status::kOk) << op.error();
  }
}

TEST(TrainingOps, ConvGradPrepareChecksGeometryAndRng) {
  // ConvOptions: stride 2x1, VALID, RELU6, stochastic rounding.
  const OpKernel& k = Kernel("TFLMTRAIN_CONV_2D_GRAD");
  auto make = [](int out_h, bool with_rng) {
    std::vector<FakeTensor> t;
    t.push_back(MakeTensor<int32_t>(DataType::kInt32, {1}, {1}));
    t.push_back(MakeTensor<float>(DataType::kFloat32, {3}, {0.1f, 0.1f, 2.0f}));
    t.push_back(MakeTensor<float>(DataType::kFloat32, {1, out_h, 3, 2}));
    t.push_back(MakeTensor<int8_t>(DataType::kInt8, {1, out_h, 3, 2}));
    Quantize(&t[3], {0.05f}, {-128});
    t.push_back(MakeTensor<int8_t>(DataType::kInt8, {1, 5, 5, 3}));
    Quantize(&t[4], {0.1f}, {0});
    t.push_back(MakeTensor<int8_t>(DataType::kInt8, {2, 3, 3, 3}));
    Quantize(&t[5], {0.01f, 0.02f}, {0, 0}, 0);
    t[5].is_variable = true;
    t.push_back(MakeTensor<int32_t>(DataType::kInt32, {2}));
    t[6].is_variable = true;
    t.push_back(MakeTensor<int32_t>(DataType::kInt32, {1}, {7}));
    t[7].is_variable = with_rng;
    return t;
  };
  {
    auto t = make(2, true);  // (5 - 3 + 2) / 2 = 2 rows, 3 columns
    FakeOp op(&t, {0, 1, 2, 3, 4, 5, 6, -1, 7, -1, -1, -1, -1}, {-1},
              golden::kConvOptionsBytes, sizeof(golden::kConvOptionsBytes));
    ASSERT_EQ(op.Run(k), Status::kOk) << op.error();
    EXPECT_NE(t[7].As<int32_t>()[0], 7);  // stochastic draws advanced it
  }
  {
    auto t = make(3, true);
    FakeOp op(&t, {0, 1, 2, 3, 4, 5, 6, -1, 7, -1, -1, -1, -1}, {-1},
              golden::kConvOptionsBytes, sizeof(golden::kConvOptionsBytes));
    EXPECT_NE(op.Run(k, true), Status::kOk);
    EXPECT_EQ(op.error(),
              "TFLMTRAIN_CONV_2D_GRAD: output is 3x3, the window gives 2x3");
  }
  {
    auto t = make(2, false);
    FakeOp op(&t, {0, 1, 2, 3, 4, 5, 6, -1, 7, -1, -1, -1, -1}, {-1},
              golden::kConvOptionsBytes, sizeof(golden::kConvOptionsBytes));
    EXPECT_NE(op.Run(k, true), Status::kOk);
    EXPECT_EQ(op.error(),
              "TFLMTRAIN_CONV_2D_GRAD: rng is updated but is not a variable "
              "tensor");
  }
  {
    auto t = make(2, true);
    FakeOp op(&t, {0, 1, 2, 3, 4, 5, 6, -1, -1, -1, -1, -1, -1}, {-1},
              golden::kConvOptionsBytes, sizeof(golden::kConvOptionsBytes));
    EXPECT_NE(op.Run(k, true), Status::kOk);
    EXPECT_EQ(op.error(), "TFLMTRAIN_CONV_2D_GRAD: input 8 (rng) is missing");
  }
}

TEST(TrainingOps, OptimizerStepCountsSamplesAndBatches) {
  // cosine, warm-up 2, decay 4, alpha 0.25, batch_size 3.
  const OpKernel& k = Kernel("TFLMTRAIN_OPTIMIZER_STEP");
  std::vector<FakeTensor> t;
  t.push_back(MakeTensor<int32_t>(DataType::kInt32, {1}, {1}));
  t.push_back(MakeTensor<float>(DataType::kFloat32, {2}, {0.5f, 0.25f}));
  t.push_back(MakeTensor<int32_t>(DataType::kInt32, {1}, {0}));
  t[2].is_variable = true;
  t.push_back(MakeTensor<int32_t>(DataType::kInt32, {1}, {0}));
  t.push_back(MakeTensor<float>(DataType::kFloat32, {3}));
  FakeOp op(&t, {0, 1, 2, 3}, {4}, golden::kOptimizerStepOptionsBytes,
            sizeof(golden::kOptimizerStepOptionsBytes));
  LrSchedule s;
  s.kind = ScheduleKind::kCosine;
  s.warmup_steps = 2;
  s.decay_steps = 4;
  s.alpha = 0.25f;
  for (int sample = 0; sample < 9; ++sample) {
    ASSERT_EQ(op.Run(k), Status::kOk) << op.error();
    const float* out = t[4].As<float>();
    const float f = LrFactor(s, sample / 3);
    EXPECT_EQ(out[0], 0.5f * f);
    EXPECT_EQ(out[1], 0.25f * f);
    EXPECT_EQ(out[2], sample % 3 == 2 ? 2.0f : 1.0f) << sample;
    EXPECT_EQ(t[2].As<int32_t>()[0], sample + 1);
  }
  t[3].As<int32_t>()[0] = 1;  // imprinted: skip, no count
  ASSERT_EQ(op.Run(k), Status::kOk);
  EXPECT_EQ(t[4].As<float>()[2], 0.0f);
  EXPECT_EQ(t[2].As<int32_t>()[0], 9);
  t[3].As<int32_t>()[0] = 0;
  t[0].As<int32_t>()[0] = 0;  // infer mode: skip, no count
  ASSERT_EQ(op.Run(k), Status::kOk);
  EXPECT_EQ(t[4].As<float>()[2], 0.0f);
  EXPECT_EQ(t[2].As<int32_t>()[0], 9);
  t[2].is_variable = false;
  FakeOp constant_step(&t, {0, 1, 2, 3}, {4}, golden::kOptimizerStepOptionsBytes,
                       sizeof(golden::kOptimizerStepOptionsBytes));
  EXPECT_NE(constant_step.Run(k, true), Status::kOk);
  EXPECT_EQ(constant_step.error(),
            "TFLMTRAIN_OPTIMIZER_STEP: step is updated but is not a variable tensor");
}

TEST(TrainingOps, LayerGradNeedsItsOptimizerState) {
  // momentum 0.5 and batch_size 2 need accumulators and velocities sized
  // by the trained elements: 2 channels x 4 weights, 3 biases.
  const OpKernel& k = Kernel("TFLMTRAIN_FULLY_CONNECTED_GRAD");
  FcFixture f;
  const int first = static_cast<int>(f.t.size());
  for (int64_t n : {8, 8, 3, 3}) {
    f.t.push_back(MakeTensor<float>(DataType::kFloat32, {n}));
    f.t.back().is_variable = true;
  }
  auto run = [&](std::vector<int> state, bool prepare_only) {
    std::vector<int> inputs = {FcFixture::kMode, FcFixture::kHparams, FcFixture::kDy,
                               FcFixture::kY,    FcFixture::kX,       FcFixture::kFilter,
                               FcFixture::kBias, FcFixture::kChannels, FcFixture::kRng};
    inputs.insert(inputs.end(), state.begin(), state.end());
    FakeOp op(&f.t, inputs, {FcFixture::kDx}, golden::kMomentumBatchFcOptionsBytes,
              sizeof(golden::kMomentumBatchFcOptionsBytes));
    const Status status = op.Run(k, prepare_only);
    return std::make_pair(status, op.error());
  };
  auto missing = run({first, first + 1, -1, first + 3}, true);
  EXPECT_EQ(missing.second, "TFLMTRAIN_FULLY_CONNECTED_GRAD: input 11 (bias accumulator) "
                            "is missing");
  f.t[first + 1] = MakeTensor<float>(DataType::kFloat32, {12});
  f.t[first + 1].is_variable = true;
  auto wrong = run({first, first + 1, first + 2, first + 3}, true);
  EXPECT_EQ(wrong.second, "TFLMTRAIN_FULLY_CONNECTED_GRAD: weight velocity must have 8 "
                          "elements, got 12");
  f.t[first + 1] = MakeTensor<float>(DataType::kFloat32, {8});
  f.t[first + 1].is_variable = true;
  // Phase 1 (accumulate): only the accumulators move.
  f.t[FcFixture::kHparams].As<float>()[2] = 1.0f;
  const std::vector<uint8_t> filter = f.t[FcFixture::kFilter].data;
  auto ok = run({first, first + 1, first + 2, first + 3}, false);
  ASSERT_EQ(ok.first, Status::kOk) << ok.second;
  EXPECT_EQ(f.t[FcFixture::kFilter].data, filter);
  EXPECT_NE(f.t[first].As<float>()[0], 0.0f);
  EXPECT_EQ(f.t[first + 1].As<float>()[0], 0.0f);
  // Phase 2 (apply): the weights step, the accumulators restart.
  f.t[FcFixture::kHparams].As<float>()[2] = 2.0f;
  ok = run({first, first + 1, first + 2, first + 3}, false);
  ASSERT_EQ(ok.first, Status::kOk) << ok.second;
  EXPECT_NE(f.t[FcFixture::kFilter].data, filter);
  EXPECT_EQ(f.t[first].As<float>()[0], 0.0f);
  EXPECT_NE(f.t[first + 1].As<float>()[0], 0.0f);
}

TEST(TrainingOps, ShapeOpsHonourMode) {
  std::vector<FakeTensor> t;
  t.push_back(MakeTensor<int32_t>(DataType::kInt32, {1}, {0}));
  t.push_back(
      MakeTensor<float>(DataType::kFloat32, {2, 3}, {1, 2, 3, 4, 5, 6}));
  t.push_back(
      MakeTensor<float>(DataType::kFloat32, {2, 3}, {1, 1, 1, 1, 1, 1}));
  t.push_back(MakeTensor<float>(DataType::kFloat32, {2, 3}));
  t.push_back(MakeTensor<float>(DataType::kFloat32, {6}));
  const OpKernel& sum = Kernel("TFLMTRAIN_GRAD_SUM");
  const OpKernel& reshape = Kernel("TFLMTRAIN_RESHAPE_GRAD");
  FakeOp sum_op(&t, {0, 1, 2}, {3});
  FakeOp reshape_op(&t, {0, 3}, {4});
  ASSERT_EQ(sum_op.Run(sum), Status::kOk) << sum_op.error();
  ASSERT_EQ(reshape_op.Run(reshape), Status::kOk) << reshape_op.error();
  EXPECT_EQ(t[4].As<float>()[5], 0.0f);
  t[0].As<int32_t>()[0] = 1;
  ASSERT_EQ(sum_op.Run(sum), Status::kOk);
  ASSERT_EQ(reshape_op.Run(reshape), Status::kOk);
  EXPECT_EQ(t[4].As<float>()[5], 7.0f);
  EXPECT_EQ(t[4].As<float>()[0], 2.0f);
}

TEST(TrainingOps, PadGradCrops) {
  std::vector<FakeTensor> t;
  t.push_back(MakeTensor<int32_t>(DataType::kInt32, {1}, {1}));
  std::vector<float> dy(4 * 5);
  for (size_t i = 0; i < dy.size(); ++i) dy[i] = static_cast<float>(i);
  t.push_back(MakeTensor<float>(DataType::kFloat32, {4, 5}, dy));
  t.push_back(MakeTensor<int32_t>(DataType::kInt32, {2, 2}, {1, 1, 2, 0}));
  t[2].is_constant = true;
  t.push_back(MakeTensor<float>(DataType::kFloat32, {2, 3}));
  FakeOp op(&t, {0, 1, 2}, {3});
  ASSERT_EQ(op.Run(Kernel("TFLMTRAIN_PAD_GRAD")), Status::kOk) << op.error();
  const float want[6] = {7, 8, 9, 12, 13, 14};
  EXPECT_EQ(0, std::memcmp(t[3].data.data(), want, sizeof(want)));
  t[2].As<int32_t>()[3] = 1;  // paddings no longer match the shapes
  FakeOp bad(&t, {0, 1, 2}, {3});
  EXPECT_NE(bad.Run(Kernel("TFLMTRAIN_PAD_GRAD"), true), Status::kOk);
}

}  // namespace
}  // namespace tflm_train
