#include "ops_cc/kernels/grad/depthwise_conv_grad.h"

namespace tflm_train {

void DepthwiseConvInputGrad(const ConvGradArgs& a, float* dx) {
  FloatDxSink sink{dx, a.x_shape.dims[3]};
  DepthwiseConvInputGradTo(a, sink);
}

namespace {

// How a float, not broadcast dy is masked (OutputGrad): by q_y, by packed
// bits, or not at all.
enum class Mask { kQy, kBits, kNone };

// sums[j] = dL/dW[0, ky, kx, c0 + j] / s_x for j < kB, each summed over the
// output cells in increasing (n, oy, ox) as ConvFilterGrad does, the kB
// partial sums in registers; masked-out terms are skipped and a g == 0 term
// only adds +-0, which changes no bit of a sum started at +0. A float dy that
// is not broadcast is read in place, with 32-bit indices; kM1: multiplier 1
// (output channel c reads input channel c).
template <int kB, Mask kMask, bool kM1>
void DepthwiseTapSums(const ConvGradArgs& a, int ky, int kx, int c0,
                      float* sums) {
  const int in_h = a.x_shape.dims[1];
  const int in_w = a.x_shape.dims[2];
  const int in_c = a.x_shape.dims[3];
  const int out_h = a.y_shape.dims[1];
  const int out_w = a.y_shape.dims[2];
  const int channels = a.filter_shape.dims[3];
  const int multiplier = channels / in_c;
  const int32_t zp = a.input_zero_point;
  const OutputGrad& g = a.g;
  int xi[kB];  // input channel of output channel c0 + j
#pragma GCC unroll 8
  for (int j = 0; j < kB; ++j) xi[j] = kM1 ? c0 + j : (c0 + j) / multiplier;
  int ox_lo, ox_hi;
  conv_internal::TapColumns(a, kx, &ox_lo, &ox_hi);
  const int x_step = a.stride_w * in_c;
  float acc[kB];
#pragma GCC unroll 8
  for (int j = 0; j < kB; ++j) acc[j] = 0.0f;
  for (int b = 0; ox_lo < ox_hi && b < a.x_shape.dims[0]; ++b)
    for (int oy = 0; oy < out_h; ++oy) {
      const int iy = oy * a.stride_h - a.pad_h + ky * a.dilation_h;
      if (iy < 0 || iy >= in_h) continue;
      int out = ((b * out_h + oy) * out_w + ox_lo) * channels + c0;
      const int8_t* xq =
          a.x + ((b * in_h + iy) * in_w + ox_lo * a.stride_w - a.pad_w +
                 kx * a.dilation_w) * in_c;
      if (kM1) xq += c0;
      for (int ox = ox_lo; ox < ox_hi; ++ox, out += channels, xq += x_step) {
        uint32_t pass = 0;
        if (kMask == Mask::kBits) {
          // The second byte only when the kB bits reach it (none past
          // the mask's end is read).
          const uint8_t* p = g.bits + (out >> 3);
          const int shift = out & 7;
          pass = p[0];
          if (shift + kB > 8) pass |= static_cast<uint32_t>(p[1]) << 8;
          pass >>= shift;
          if ((pass & ((1u << kB) - 1)) == 0) continue;
        }
        const float* dy = g.dy + out;
        const int8_t* q = g.q_y + out;
#pragma GCC unroll 8
        for (int j = 0; j < kB; ++j) {
          if (kMask == Mask::kQy && !g.range.Passes(q[j])) continue;
          if (kMask == Mask::kBits && ((pass >> j) & 1) == 0) continue;
          const int32_t xv = kM1 ? xq[j] : xq[xi[j]];
          acc[j] += dy[j] * static_cast<float>(xv - zp);
        }
      }
    }
#pragma GCC unroll 8
  for (int j = 0; j < kB; ++j) sums[j] = acc[j];
}

template <int kB>
void DepthwiseTapSums(const ConvGradArgs& a, int ky, int kx, int c0,
                      float* sums) {
  const bool m1 = a.filter_shape.dims[3] == a.x_shape.dims[3];
  if (a.g.q_y != nullptr)
    m1 ? DepthwiseTapSums<kB, Mask::kQy, true>(a, ky, kx, c0, sums)
       : DepthwiseTapSums<kB, Mask::kQy, false>(a, ky, kx, c0, sums);
  else if (a.g.bits != nullptr)
    m1 ? DepthwiseTapSums<kB, Mask::kBits, true>(a, ky, kx, c0, sums)
       : DepthwiseTapSums<kB, Mask::kBits, false>(a, ky, kx, c0, sums);
  else
    m1 ? DepthwiseTapSums<kB, Mask::kNone, true>(a, ky, kx, c0, sums)
       : DepthwiseTapSums<kB, Mask::kNone, false>(a, ky, kx, c0, sums);
}

}  // namespace

float DepthwiseConvFilterGrad(const ConvGradArgs& a, int ky, int kx, int c) {
  const int multiplier = a.filter_shape.dims[3] / a.x_shape.dims[3];
  return ConvFilterGrad(a, c, ky, kx, c / multiplier);
}

void DepthwiseConvGrad(const ConvGradArgs& a, float* dx,
                       const LayerUpdate& update) {
  if (dx != nullptr) DepthwiseConvInputGrad(a, dx);
  const int channels = a.filter_shape.dims[3];
  if (update.update_weights) {
    const int filter_h = a.filter_shape.dims[1];
    const int filter_w = a.filter_shape.dims[2];
    const int count =
        update.channels != nullptr ? update.num_channels : channels;
    int64_t slot = 0;  // (ky * KW + kx) * count + k
    // Listed channels c, c + 1, .. of a run have their sums taken together
    // (8 or 4 at a time, else one), then updated in list order; with an
    // int8 or broadcast dy (or 64-bit sizes) weight by weight instead.
    float sums[8];
    const bool direct = a.g.dy_q == nullptr && a.g.broadcast_cells == 0 &&
                        a.y_shape.FlatSize() + 8 < (int64_t{1} << 31) &&
                        a.x_shape.FlatSize() < (int64_t{1} << 31);
    for (int ky = 0; ky < filter_h; ++ky)
      for (int kx = 0; kx < filter_w; ++kx)
        for (int k = 0; k < count;) {
          const int c = update.channels != nullptr ? update.channels[k] : k;
          int run = 1;
          while (run < 8 && k + run < count &&
                 (update.channels == nullptr ||
                  update.channels[k + run] == c + run))
            ++run;
          const int len = run >= 8 ? 8 : run >= 4 ? 4 : 1;
          if (direct && len == 8)
            DepthwiseTapSums<8>(a, ky, kx, c, sums);
          else if (direct && len == 4)
            DepthwiseTapSums<4>(a, ky, kx, c, sums);
          else if (direct)
            DepthwiseTapSums<1>(a, ky, kx, c, sums);
          int8_t* w = a.filter + Offset4(a.filter_shape, 0, ky, kx, c);
          for (int j = 0; j < len; ++j, ++k)
            w[j] = SgdUpdateInt8(w[j],
                                 direct ? sums[j] * a.input_scale
                                        : DepthwiseConvFilterGrad(a, ky, kx, c + j),
                                 update.weight_lr, a.filter_scales[c + j],
                                 update.rule, update.weight_slots, slot++);
        }
  }
  if (update.bias != nullptr) UpdateConvBias(a, update);
}

}  // namespace tflm_train
