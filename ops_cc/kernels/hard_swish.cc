#include "ops_cc/kernels/hard_swish.h"

#include <cmath>

#include "ops_cc/core/quantization.h"

// The reference computes in int16_t: every intermediate is narrowed to 16
// bits (two's complement wrap) exactly where it does so.

namespace tflm_train {
namespace {

int16_t Wrap16(int32_t v) {
  const int32_t low = v & 0xFFFF;
  return static_cast<int16_t>(low >= 0x8000 ? low - 0x10000 : low);
}

// round(a * b / 2^15), ties towards +infinity; -1 * -1 gives INT16_MAX.
int16_t SaturatingRoundingDoublingHighMul16(int16_t a, int16_t b) {
  if (a == b && a == INT16_MIN) return INT16_MAX;
  const int32_t product = static_cast<int32_t>(a) * b;
  const int32_t nudge = product >= 0 ? (1 << 14) : 1 - (1 << 14);
  return Wrap16((product + nudge) / (1 << 15));
}

// a * b / 2^15 truncated towards zero; -1 * -1 gives INT16_MAX.
int16_t SaturatingDoublingHighMul16(int16_t a, int16_t b) {
  if (a == b && a == INT16_MIN) return INT16_MAX;
  return Wrap16((static_cast<int32_t>(a) * b) / (1 << 15));
}

// value * 2^amount (amount in [0, 30]) saturated to int16.
int16_t SaturatingLeftShift16(int16_t value, int amount) {
  const int64_t shifted = static_cast<int64_t>(value) * (int64_t{1} << amount);
  if (shifted > INT16_MAX) return INT16_MAX;
  if (shifted < INT16_MIN) return INT16_MIN;
  return static_cast<int16_t>(shifted);
}

// The int16 rounding right shift (exponent in [0, 31]). Its mask
// 2^exponent - 1 is itself narrowed to 16 bits, so from exponent 16 on the
// mask is -1 and a non-negative x rounds to 1 (even 0), a negative one to -1.
int16_t RoundingDivideByPOT16(int16_t x, int exponent) {
  const int32_t mask = Wrap16(static_cast<int32_t>(
      ((int64_t{1} << exponent) - 1) & 0xFFFF));
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return Wrap16((static_cast<int32_t>(x) >> exponent) +
                (remainder > threshold ? 1 : 0));
}

// TFLite's DownScaleInt32ToInt16Multiplier: round a Q31 significand to Q15.
int16_t ToQ15(int32_t multiplier) {
  if (multiplier >= INT32_MAX - (1 << 15)) return INT16_MAX;
  return static_cast<int16_t>((multiplier + (1 << 15)) >> 16);
}

}  // namespace

bool ComputeHardSwishParams(float input_scale, int32_t input_zero_point,
                            float output_scale, int32_t output_zero_point,
                            HardSwishParams* params) {
  // Single-precision ratios, widened afterwards, as TFLM forms them.
  const float hires_input_scale = (1.0f / 128.0f) * input_scale;
  const float reluish_scale = 3.0f / 32768.0f;
  const float output_ratio = hires_input_scale / output_scale;
  const float reluish_ratio = hires_input_scale / reluish_scale;
  if (!std::isfinite(output_ratio) || !std::isfinite(reluish_ratio)) {
    return false;
  }
  int32_t multiplier = 0;
  int exponent = 0;
  QuantizeMultiplier(static_cast<double>(output_ratio), &multiplier,
                     &exponent);
  if (exponent > 0) return false;
  params->output_multiplier = ToQ15(multiplier);
  params->output_exponent = exponent;
  QuantizeMultiplier(static_cast<double>(reluish_ratio), &multiplier,
                     &exponent);
  if (exponent > 31) return false;
  params->reluish_multiplier = ToQ15(multiplier);
  params->reluish_exponent = exponent;
  params->input_zero_point = static_cast<int16_t>(input_zero_point);
  params->output_zero_point = static_cast<int16_t>(output_zero_point);
  return true;
}

namespace ref {

void HardSwish(const HardSwishParams& params, const int8_t* input, int size,
               int8_t* output) {
  for (int i = 0; i < size; ++i) {
    // x on the input scale / 128 ("hires"): |x| <= 255 * 128 fits int16.
    const int16_t hires =
        static_cast<int16_t>((input[i] - params.input_zero_point) * (1 << 7));
    // x on the output scale, before the output shift.
    const int16_t preshift_x =
        SaturatingRoundingDoublingHighMul16(hires, params.output_multiplier);
    // relu6(x + 3) / 6 in [0, 1]: x rescaled so that 3.0 is 32768
    // (saturating at +-3), then mapped from [-1, 1] to [0, 1]. A left shift
    // is split so that only its last bit can saturate.
    int16_t reluish = hires;
    if (params.reluish_exponent > 0) {
      reluish = SaturatingLeftShift16(reluish, params.reluish_exponent - 1);
    }
    reluish =
        SaturatingRoundingDoublingHighMul16(reluish, params.reluish_multiplier);
    if (params.reluish_exponent > 0) {
      reluish = SaturatingLeftShift16(reluish, 1);
    }
    if (params.reluish_exponent < 0) {
      reluish = RoundingDivideByPOT16(reluish, -params.reluish_exponent);
    }
    reluish = static_cast<int16_t>((reluish + (1 << 15)) >> 1);
    const int16_t preshift_output =
        SaturatingDoublingHighMul16(reluish, preshift_x);
    const int16_t shifted =
        RoundingDivideByPOT16(preshift_output, -params.output_exponent);
    const int16_t q = Wrap16(shifted + params.output_zero_point);
    output[i] = static_cast<int8_t>(q < -128 ? -128 : (q > 127 ? 127 : q));
  }
}

}  // namespace ref
}  // namespace tflm_train
