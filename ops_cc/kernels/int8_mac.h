// The multiply-accumulate inner loops of the int8 convolutions: sums of
// w * (x + x_offset) with int8 x and w, wrapping int32 accumulators.
//
// On a core with the DSP extension (__ARM_FEATURE_DSP: Cortex-M4/M7/M33
// with it) they take four int8 at a time with one 32-bit load and work on
// sign-extended 16-bit pairs (ACLE intrinsics, <arm_acle.h>); elsewhere they
// are plain C, which is also the reference: both compute the same integer
// sums (a different order, which wrapping int32 addition does not see).
//
// x_offset is an int8 tensor's -(zero point), in [-127, 128] (the ops check
// zero points are int8), so x + x_offset lies in [-255, 255] and fits a
// 16-bit lane.
#ifndef TFLM_TRAIN_KERNELS_INT8_MAC_H_
#define TFLM_TRAIN_KERNELS_INT8_MAC_H_

#include <cstdint>
#include <cstring>

#include "ops_cc/core/quantization.h"

#if defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
#endif

namespace tflm_train {

#if defined(__ARM_FEATURE_DSP)
namespace dsp {

// Four int8 as one word (unaligned loads are fine on ARMv7E-M).
inline uint32_t Load4(const int8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Rotate right by 8 bits (one ROR, or folded into the SXTB16 that follows).
inline uint32_t Ror8(uint32_t v) { return (v >> 8) | (v << 24); }

// The offset in both 16-bit lanes.
inline int32_t PackedPair(int32_t offset) {
  return static_cast<int32_t>((static_cast<uint32_t>(offset) & 0xFFFFu) |
                              (static_cast<uint32_t>(offset) << 16));
}

// A word of bytes [b0, b1, b2, b3] as two words of 16-bit lanes (low lane
// first): even = [b0, b2], odd = [b1, b3]. SXTB16 sign-extends bytes 0 and
// 2 into the lanes, and after ROR 8 bytes 1 and 3; SXTAB16 adds a packed
// pair (here the input offset) to the lanes in the same instruction.
struct Lanes {
  int32_t even, odd;
};
inline Lanes SignExtendPairs(uint32_t bytes) {
  return {static_cast<int32_t>(__sxtb16(static_cast<int32_t>(bytes))),
          static_cast<int32_t>(__sxtb16(static_cast<int32_t>(Ror8(bytes))))};
}
inline Lanes SignExtendPairsPlus(uint32_t bytes, int32_t packed_offset) {
  return {static_cast<int32_t>(
              __sxtab16(packed_offset, static_cast<int32_t>(bytes))),
          static_cast<int32_t>(
              __sxtab16(packed_offset, static_cast<int32_t>(Ror8(bytes))))};
}

}  // namespace dsp
#endif  // __ARM_FEATURE_DSP

// acc + sum over i < n of w[i] * (x[i] + x_offset): the dot product over
// the input channels of CONV_2D (and so of the 1x1 expand convolution).
inline int32_t DotInt8(const int8_t* x, const int8_t* w, int n,
                       int32_t x_offset, int32_t acc) {
  int i = 0;
#if defined(__ARM_FEATURE_DSP)
  // Four products per step: two SMLADs, each multiplying two 16-bit lanes
  // pairwise and adding both products to acc (even bytes, then odd ones).
  const int32_t offset = dsp::PackedPair(x_offset);
  for (; i + 4 <= n; i += 4) {
    const dsp::Lanes xs = dsp::SignExtendPairsPlus(dsp::Load4(x + i), offset);
    const dsp::Lanes ws = dsp::SignExtendPairs(dsp::Load4(w + i));
    acc = __smlad(xs.even, ws.even, acc);
    acc = __smlad(xs.odd, ws.odd, acc);
  }
#endif
  for (; i < n; ++i) {
    acc = WrappingAdd(acc, static_cast<int32_t>(w[i]) *
                               (static_cast<int32_t>(x[i]) + x_offset));
  }
  return acc;
}

// acc[k] += w[k] * (x[k] + x_offset) for four adjacent channels k: one
// depthwise tap (input pixel x, filter tap w) of four output channels.
inline void MacChannels4(const int8_t* x, const int8_t* w, int32_t x_offset,
                         int32_t acc[4]) {
#if defined(__ARM_FEATURE_DSP)
  // Lanes: even = channels [0, 2], odd = [1, 3]. SMLABB multiplies the
  // bottom lanes and SMLATT the top ones, each into its channel's sum.
  const dsp::Lanes xs =
      dsp::SignExtendPairsPlus(dsp::Load4(x), dsp::PackedPair(x_offset));
  const dsp::Lanes ws = dsp::SignExtendPairs(dsp::Load4(w));
  acc[0] = __smlabb(xs.even, ws.even, acc[0]);
  acc[1] = __smlabb(xs.odd, ws.odd, acc[1]);
  acc[2] = __smlatt(xs.even, ws.even, acc[2]);
  acc[3] = __smlatt(xs.odd, ws.odd, acc[3]);
#else
  for (int k = 0; k < 4; ++k) {
    acc[k] = WrappingAdd(acc[k], static_cast<int32_t>(w[k]) *
                                     (static_cast<int32_t>(x[k]) + x_offset));
  }
#endif
}

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_INT8_MAC_H_
