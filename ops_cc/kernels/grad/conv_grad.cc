#include "ops_cc/kernels/grad/conv_grad.h"

#include <type_traits>

namespace tflm_train {

namespace {

// The g * s_w[o] of one output cell's rows as AddFloatRows reads them:
// OutputGrad::ScaledRun's values (+-0 where it gives +0, skipped alike), read
// straight from a float dy by the cell's mask, or from ScaledRun's output.
struct RowsMaskedByOutput {  // the int8 output's range
  const int8_t* y;
  const float* dy;
  const float* scales;
  ActivationMask range;
  float operator()(int r) const {
    return range.Passes(y[r]) ? dy[r] * scales[r] : 0.0f;
  }
};
struct RowsMaskedByBits {  // a packed mask's bits, or none (all bits set)
  uint32_t pass;
  const float* dy;
  const float* scales;
  float operator()(int r) const {
    return (pass >> r) & 1 ? dy[r] * scales[r] : 0.0f;
  }
};
struct RowsScaled {
  const float* gs;
  float operator()(int r) const { return gs[r]; }
};

// d[0..in_c) += the terms of output channels [0, n) of output cell `out`
// (y offset of its first channel) times the tap's float weights; gs is n
// floats of scratch for the forms that need ScaledRun first.
void AddCellTerms(const OutputGrad& g, int64_t out, int n,
                  const float* scales, const float* weights, int in_c,
                  float* gs, float* d) {
  if (g.dy != nullptr && g.dy_q == nullptr && g.broadcast_cells == 0) {
    if (g.q_y != nullptr) {
      AddFloatRows(d, in_c, RowsMaskedByOutput{g.q_y + out, g.dy + out, scales,
                                               g.range},
                   weights, n);
      return;
    }
    if (n <= 24) {
      AddFloatRows(d, in_c,
                   RowsMaskedByBits{g.PassBits(out, n), g.dy + out, scales},
                   weights, n);
      return;
    }
  }
  g.ScaledRun(out, n, scales, gs);
  AddFloatRows(d, in_c, RowsScaled{gs}, weights, n);
}

// ConvInputGrad with the whole float dx at hand, for filters of several
// taps: tap by tap (decreasing (ky, kx)), the tap's weights of a chunk of
// output channels are converted to float once into scratch, then every
// output cell that reads through the tap adds g * s_w[o] times them to the
// input cell it reads. An input cell's readers come in increasing (oy, ox)
// (they read it through decreasing taps) and each adds its chunks in
// increasing o, so every element receives the documented terms in the
// documented order; zero terms are skipped per cell.
void ConvInputGradByTap(const ConvGradArgs& a, float* dx) {
  const int in_c = a.x_shape.dims[3];
  const int filter_h = a.filter_shape.dims[1];
  const int filter_w = a.filter_shape.dims[2];
  const int out_c = a.y_shape.dims[3];
  const int64_t row_size = static_cast<int64_t>(filter_h) * filter_w * in_c;
  // Scratch: `chunk` float weight rows, then the reading cell's g * s_w[o].
  const int chunk_max = kConvInputGradScratch / (in_c + 1);
  const int chunk = chunk_max < out_c ? chunk_max : out_c;
  float scratch[kConvInputGradScratch];
  float* const weights = scratch;
  float* const gs = scratch + chunk * in_c;
  const int64_t dx_size = a.x_shape.FlatSize();
  for (int64_t k = 0; k < dx_size; ++k) dx[k] = 0.0f;
  for (int ky = filter_h - 1; ky >= 0; --ky) {
    int oy_lo, oy_hi;
    conv_internal::TapRows(a, ky, &oy_lo, &oy_hi);
    for (int kx = filter_w - 1; kx >= 0; --kx) {
      int ox_lo, ox_hi;
      conv_internal::TapColumns(a, kx, &ox_lo, &ox_hi);
      if (oy_lo >= oy_hi || ox_lo >= ox_hi) continue;
      const int tap = (ky * filter_w + kx) * in_c;
      int cursor = 0;
      for (int o0 = 0; o0 < out_c; o0 += chunk) {
        const int n = out_c - o0 < chunk ? out_c - o0 : chunk;
        for (int o = 0; o < n; ++o) {
          const int8_t* w = MergedFilterRow(a.filter, row_size, a.slice,
                                            o0 + o, &cursor) + tap;
          for (int i = 0; i < in_c; ++i)
            weights[o * in_c + i] = static_cast<float>(w[i]);
        }
        for (int b = 0; b < a.x_shape.dims[0]; ++b) {
          for (int oy = oy_lo; oy < oy_hi; ++oy) {
            const int iy = oy * a.stride_h - a.pad_h + ky * a.dilation_h;
            const int ix_lo = ox_lo * a.stride_w - a.pad_w + kx * a.dilation_w;
            int64_t out = Offset4(a.y_shape, b, oy, ox_lo, o0);
            float* d = dx + Offset4(a.x_shape, b, iy, ix_lo, 0);
            const int64_t d_step = static_cast<int64_t>(a.stride_w) * in_c;
            for (int ox = ox_lo; ox < ox_hi; ++ox, out += out_c, d += d_step)
              AddCellTerms(a.g, out, n, a.filter_scales + o0, weights, in_c,
                           gs, d);
          }
        }
      }
    }
  }
}

}  // namespace

void ConvInputGrad(const ConvGradArgs& a, float* dx) {
  if (a.filter_shape.dims[1] * a.filter_shape.dims[2] > 1 &&
      a.x_shape.dims[3] < kConvInputGradScratch) {
    ConvInputGradByTap(a, dx);
    return;
  }
  FloatDxSink sink{dx, a.x_shape.dims[3]};
  ConvInputGradTo(a, sink);
}

float ConvFilterGrad(const ConvGradArgs& a, int o, int ky, int kx, int i) {
  float acc = 0.0f;
  for (int b = 0; b < a.y_shape.dims[0]; ++b)
    for (int oy = 0; oy < a.y_shape.dims[1]; ++oy) {
      const int iy = oy * a.stride_h - a.pad_h + ky * a.dilation_h;
      if (iy < 0 || iy >= a.x_shape.dims[1]) continue;
      for (int ox = 0; ox < a.y_shape.dims[2]; ++ox) {
        const int ix = ox * a.stride_w - a.pad_w + kx * a.dilation_w;
        if (ix < 0 || ix >= a.x_shape.dims[2]) continue;
        const float g = a.g.At(Offset4(a.y_shape, b, oy, ox, o));
        if (g == 0.0f) continue;
        acc += g * static_cast<float>(
                       static_cast<int32_t>(a.x[Offset4(a.x_shape, b, iy, ix, i)]) -
                       a.input_zero_point);
      }
    }
  return acc * a.input_scale;
}

namespace {

// Channels whose bias gradients are summed together (the width of
// OutputGrad::PassBits).
constexpr int kBiasGradChunk = 24;

// sums[j] = dL/db[o0 + j] for j < count <= kBiasGradChunk, each summed over
// the output cells in increasing order. A masked element adds nothing
// instead of +0 (no bit changes: a sum started at +0 is never -0).
void ConvBiasGrads(const ConvGradArgs& a, int o0, int count, float* sums) {
  const int out_c = a.y_shape.dims[3];
  const int64_t cells = a.y_shape.FlatSizeSkipLast();
  const OutputGrad& g = a.g;
  for (int j = 0; j < count; ++j) sums[j] = 0.0f;
  for (int64_t k = 0; k < cells; ++k) {
    const int64_t out = k * out_c + o0;
    if (g.broadcast_cells > 0) {  // At's MEAN division
      for (int j = 0; j < count; ++j) sums[j] += g.At(out + j);
      continue;
    }
    const uint32_t pass = g.PassBits(out, count);
    for (int j = 0; j < count; ++j)
      if ((pass >> j) & 1) sums[j] += g.DyAt(out + j);
  }
}

}  // namespace

float ConvBiasGrad(const ConvGradArgs& a, int o) {
  float sum;
  ConvBiasGrads(a, o, 1, &sum);
  return sum;
}

void UpdateConvBias(const ConvGradArgs& a, const LayerUpdate& update) {
  const int out_c = a.y_shape.dims[3];
  float sums[kBiasGradChunk];
  for (int o0 = 0; o0 < out_c; o0 += kBiasGradChunk) {
    const int count = out_c - o0 < kBiasGradChunk ? out_c - o0 : kBiasGradChunk;
    ConvBiasGrads(a, o0, count, sums);
    for (int j = 0; j < count; ++j) {
      const int o = o0 + j;
      update.bias[o] = SgdUpdateInt32(update.bias[o], sums[j], update.bias_lr,
                                      update.bias_scales[o], update.rule,
                                      update.bias_slots, o);
    }
  }
}

namespace {

// Floats of the weight update's stack scratch (1.5 KB).
constexpr int kFilterGradScratch = 384;
// Weights of one filter row whose sums the generic path keeps in scratch.
constexpr int kFilterGradChunk = 64;

// Output cell (n, oy, ox) of channel o as cell = (n * OH + oy) * OW + ox.
inline int Cell(const ConvGradArgs& a, int b, int oy, int ox) {
  return (b * a.y_shape.dims[1] + oy) * a.y_shape.dims[2] + ox;
}

// out[j * out_step] = g.At(k0 + j * stride) for j < n: one channel of n
// output cells. With a float dy (not broadcast) and indices that fit 32
// bits, the mask and dy are read directly (At's value, without its
// per-element dispatch).
void ChannelGrads(const OutputGrad& g, int64_t k0, int stride, int n,
                  float* out, int out_step = 1) {
  const int64_t end = k0 + static_cast<int64_t>(n) * stride;
  if (g.dy_q != nullptr || g.broadcast_cells != 0 || (end >> 31) != 0) {
    for (int j = 0; j < n; ++j, out += out_step)
      *out = g.At(k0 + static_cast<int64_t>(j) * stride);
    return;
  }
  const int32_t k = static_cast<int32_t>(k0);
  const float* dy = g.dy + k;
  if (g.q_y != nullptr) {
    const int8_t* q = g.q_y + k;
    for (int j = 0; j < n; ++j, q += stride, dy += stride, out += out_step)
      *out = g.range.Passes(*q) ? *dy : 0.0f;
  } else if (g.bits != nullptr) {
    for (int j = 0, kj = k; j < n; ++j, kj += stride, dy += stride, out += out_step)
      *out = (g.bits[kj >> 3] >> (kj & 7)) & 1 ? *dy : 0.0f;
  } else {
    for (int j = 0; j < n; ++j, dy += stride, out += out_step) *out = *dy;
  }
}

// g of one output channel: from a plane in scratch, or looked up.
struct PlaneG {
  const float* g;
  float operator()(int cell) const { return g[cell]; }
};
struct LookupG {
  const OutputGrad& g;
  int out_c, o;
  float operator()(int cell) const { return g.At(cell * out_c + o); }
};

// Generic path, one channel o (its g from G): sums[0..kBlock) =
// dL/dW[o, ky, kx, i0 ..] / s_x in ConvFilterGrad's order, the kBlock
// partial sums in FPU registers.
template <int kBlock, typename G>
__attribute__((noinline)) void FilterGradBlock(const ConvGradArgs& a,
                                               const G& g, int ky, int kx,
                                               int i0, float* sums) {
  const int in_h = a.x_shape.dims[1];
  const int in_w = a.x_shape.dims[2];
  const int in_c = a.x_shape.dims[3];
  const int out_h = a.y_shape.dims[1];
  const int out_w = a.y_shape.dims[2];
  const int32_t zp = a.input_zero_point;
  float acc[kBlock];
#pragma GCC unroll 16
  for (int j = 0; j < kBlock; ++j) acc[j] = 0.0f;
  for (int b = 0; b < a.x_shape.dims[0]; ++b) {
    const int8_t* x = a.x + b * in_h * in_w * in_c + i0;
    for (int oy = 0; oy < out_h; ++oy) {
      const int iy = oy * a.stride_h - a.pad_h + ky * a.dilation_h;
      if (iy < 0 || iy >= in_h) continue;
      const int row = Cell(a, b, oy, 0);
      for (int ox = 0; ox < out_w; ++ox) {
        const int ix = ox * a.stride_w - a.pad_w + kx * a.dilation_w;
        if (ix < 0 || ix >= in_w) continue;
        const float gv = g(row + ox);
        if (gv == 0.0f) continue;
        const int8_t* xq = x + (iy * in_w + ix) * in_c;
#pragma GCC unroll 16
        for (int j = 0; j < kBlock; ++j)
          acc[j] += gv * static_cast<float>(static_cast<int32_t>(xq[j]) - zp);
      }
    }
  }
#pragma GCC unroll 16
  for (int j = 0; j < kBlock; ++j) sums[j] = acc[j];
}

template <typename G>
void FilterGradChunk(const ConvGradArgs& a, const G& g, int ky, int kx,
                     int i0, int len, float* sums) {
  int j = 0;
  for (; j + 16 <= len; j += 16)
    FilterGradBlock<16>(a, g, ky, kx, i0 + j, sums + j);
  for (; j + 4 <= len; j += 4) FilterGradBlock<4>(a, g, ky, kx, i0 + j, sums + j);
  for (; j < len; ++j) FilterGradBlock<1>(a, g, ky, kx, i0 + j, sums + j);
}

// Generic path for kK output channels at once, over the output rows
// r0 .. r1 - 1 (r = n * OH + oy) whose g (+0 where g is 0) is in `planes`,
// kK consecutive floats per output cell from row r0's first: out[k][j] +=
// the terms of dL/dW[o_k, ky, kx, i0 + j] / s_x for j < kB of these rows in
// ConvFilterGrad's order, the kK * kB sums in registers and one conversion
// of x serving the kK channels.
template <int kK, int kB>
__attribute__((noinline)) void FilterGradGroupBlock(
    const ConvGradArgs& a, const float* planes, int r0, int r1, int ky,
    int kx, int i0, float* const* out) {
  const int in_h = a.x_shape.dims[1];
  const int in_w = a.x_shape.dims[2];
  const int in_c = a.x_shape.dims[3];
  const int out_h = a.y_shape.dims[1];
  const int out_w = a.y_shape.dims[2];
  const int32_t zp = a.input_zero_point;
  int ox_lo, ox_hi;
  conv_internal::TapColumns(a, kx, &ox_lo, &ox_hi);
  if (ox_lo >= ox_hi) return;  // the tap reads only padding
  const int x_step = a.stride_w * in_c;
  float acc[kK * kB];
#pragma GCC unroll 16
  for (int k = 0; k < kK; ++k)
#pragma GCC unroll 16
    for (int j = 0; j < kB; ++j) acc[k * kB + j] = out[k][j];
  for (int r = r0; r < r1; ++r) {
    const int b = r / out_h, oy = r % out_h;
    const int iy = oy * a.stride_h - a.pad_h + ky * a.dilation_h;
    if (iy < 0 || iy >= in_h) continue;
    const float* g = planes + ((r - r0) * out_w + ox_lo) * kK;
    const int8_t* xq =
        a.x + ((b * in_h + iy) * in_w + ox_lo * a.stride_w - a.pad_w +
               kx * a.dilation_w) * in_c + i0;
    for (int ox = ox_lo; ox < ox_hi; ++ox, g += kK, xq += x_step) {
      // Cells whose g is 0 for all kK channels are skipped (masked g is
      // common); other zero terms only add +-0.
      bool any = false;
#pragma GCC unroll 4
      for (int k = 0; k < kK; ++k) any |= g[k] != 0.0f;
      if (!any) continue;
      float xf[kB];
#pragma GCC unroll 16
      for (int j = 0; j < kB; ++j)
        xf[j] = static_cast<float>(static_cast<int32_t>(xq[j]) - zp);
#pragma GCC unroll 16
      for (int k = 0; k < kK; ++k) {
        const float gk = g[k];
#pragma GCC unroll 16
        for (int j = 0; j < kB; ++j) acc[k * kB + j] += gk * xf[j];
      }
    }
  }
#pragma GCC unroll 16
  for (int k = 0; k < kK; ++k)
#pragma GCC unroll 16
    for (int j = 0; j < kB; ++j) out[k][j] = acc[k * kB + j];
}

// FilterGradGroupBlock for all input channels of tap (ky, kx) into
// rows[k] + i; with rows[0] null, the first channel's block sums go to
// first(i, sums, len) as each block is done instead (they start at +0: the
// rows are one tile).
template <int kK, typename First>
void FilterGradGroupTap(const ConvGradArgs& a, const float* planes, int r0,
                        int r1, int ky, int kx, float* const* rows,
                        const First& first) {
  const int in_c = a.x_shape.dims[3];
  float block[8];
  float* out[kK];
  // Blocks of 8 input channels for 2 channels, else 4 (16 or 12 sums in
  // registers); then 4 and 1.
  constexpr int kMain = kK == 2 ? 8 : 4;
  int i = 0;
  const auto step = [&](auto len_tag) {
    constexpr int kLen = decltype(len_tag)::value;
    for (int k = 0; k < kK; ++k) out[k] = rows[k] != nullptr ? rows[k] + i : block;
    if (rows[0] == nullptr)
      for (int j = 0; j < kLen; ++j) block[j] = 0.0f;
    FilterGradGroupBlock<kK, kLen>(a, planes, r0, r1, ky, kx, i, out);
    if (rows[0] == nullptr) first(i, block, kLen);
    i += kLen;
  };
  while (i + kMain <= in_c) step(std::integral_constant<int, kMain>());
  while (i + 4 <= in_c) step(std::integral_constant<int, 4>());
  while (i < in_c) step(std::integral_constant<int, 1>());
}

// 3x3 filter, stride 1, dilation 1 across: the tap-shared path. Input cells
// are visited in increasing (n, iy, ix); cell (iy, ix) is read through tap
// (ky, kx) by output cell (iy + pad_h - ky * dil_h, ix + pad_w - kx), so
// each weight's terms still come in increasing output-cell order, and one
// conversion of x[n, iy, ix, i] serves the 9 taps. g of channel o is read
// from a zero-padded band of rows in scratch: a tap whose reader is out of
// range reads +0, and its +-0 term changes no bit of a sum started at +0
// (as a skipped g == 0 term).
constexpr int kTaps = 9;

// Band layout: row r holds output row oy = iy0 + pad_h - 2 * dil_h + r for
// the band's first input row iy0, entry e its column ox = e + pad_w - 2
// (+0 outside the output), so input cell (iy, ix) reads tap (ky, kx) at row
// iy - iy0 + (2 - ky) * dil_h, entry ix + 2 - kx.
inline int BandWidth(const ConvGradArgs& a) { return a.x_shape.dims[2] + 2; }

// Input rows per band when the sums (9 per input channel) and the band's
// rows fit the scratch, else 0 (the generic path).
inline int TapSharedBandRows(const ConvGradArgs& a) {
  if (a.filter_shape.dims[1] != 3 || a.filter_shape.dims[2] != 3 ||
      a.stride_h != 1 || a.stride_w != 1 || a.dilation_w != 1 ||
      a.x_shape.dims[2] < 2)
    return 0;
  const int free_floats = kFilterGradScratch - kTaps * a.x_shape.dims[3];
  const int rows = free_floats / BandWidth(a) - 2 * a.dilation_h;
  if (rows <= 0) return 0;
  return rows < a.x_shape.dims[1] ? rows : a.x_shape.dims[1];
}

// Pre-RA scheduling is off for the tap-shared kernel: it hoists loads and
// spills sums.
#if defined(__GNUC__) && !defined(__clang__)
#define TFLM_TRAIN_NO_SCHED optimize("no-schedule-insns")
#else
#define TFLM_TRAIN_NO_SCHED
#endif

// acc[t * kB + c] += the terms of the cells at x (kB input channels) and,
// with kPair, x + in_c: cell ix reads tap (ky, kx) at p[2 - kx] of band row
// ky (dh_stride floats before row ky - 1), and cell ix + 1 reads it at
// p[3 - kx], so 4 g loads per row serve both cells.
template <int kB, bool kPair>
__attribute__((always_inline, TFLM_TRAIN_NO_SCHED)) inline void TapSharedCells(
    float* acc, const float* p, int dh_stride, const int8_t* x, int in_c,
    int32_t zp) {
  float x0[kB], x1[kB];
#pragma GCC unroll 2
  for (int c = 0; c < kB; ++c) {
    x0[c] = static_cast<float>(static_cast<int32_t>(x[c]) - zp);
    if (kPair)
      x1[c] = static_cast<float>(static_cast<int32_t>(x[in_c + c]) - zp);
  }
#pragma GCC unroll 3
  for (int ky = 0; ky < 3; ++ky) {
    const float* q = p - ky * dh_stride;
    // The row's g for both cells in one load (for one cell, 3: the band
    // may end there).
    float gq[4];
    LoadFloats<kPair ? 4 : 3>(q, gq);
    const float g0 = gq[0], g1 = gq[1], g2 = gq[2];
    float* s = acc + ky * 3 * kB;
#pragma GCC unroll 2
    for (int c = 0; c < kB; ++c) {
      s[c] += g2 * x0[c];
      s[kB + c] += g1 * x0[c];
      s[2 * kB + c] += g0 * x0[c];
    }
    if (!kPair) continue;
    const float g3 = gq[3];
#pragma GCC unroll 2
    for (int c = 0; c < kB; ++c) {
      s[c] += g3 * x1[c];
      s[kB + c] += g2 * x1[c];
      s[2 * kB + c] += g1 * x1[c];
    }
  }
}

// sums[t * kB + c] += the terms of `rows` input rows (in_w >= 2 cells) from
// x (kB input channels, cells in_c apart) through the band rows at g (the
// ky = 0 row of the first input row), the 9 * kB sums in registers; cells
// two at a time, rows as one loop (a row end skips the band's padding).
template <int kB>
__attribute__((noinline, TFLM_TRAIN_NO_SCHED)) void TapSharedBand(
    const float* g, int dh_stride, const int8_t* x, int rows, int in_w,
    int in_c, int32_t zp, float* sums) {
  float acc[kTaps * kB];
#pragma GCC unroll 18
  for (int j = 0; j < kTaps * kB; ++j) acc[j] = sums[j];
  const int pairs = in_w / 2;
  const float* p = g;
  for (int n = rows * pairs, col = pairs; n > 0; --n) {
    TapSharedCells<kB, true>(acc, p, dh_stride, x, in_c, zp);
    p += 2;
    x += 2 * in_c;
    if (--col == 0) {
      col = pairs;
      if (in_w & 1) {
        TapSharedCells<kB, false>(acc, p, dh_stride, x, in_c, zp);
        ++p;
        x += in_c;
      }
      p += 2;
    }
  }
#pragma GCC unroll 18
  for (int j = 0; j < kTaps * kB; ++j) sums[j] = acc[j];
}

// TapSharedFilterGrad leaves dL/dW[o, t, i] / s_x in sums[(i & ~1) * 9 +
// t * 2 + (i & 1)] (input channels in pairs, each pair's taps together),
// and for an odd last channel in sums[i * 9 + t].
void TapSharedFilterGrad(const ConvGradArgs& a, int o, int band_rows,
                         float* scratch) {
  const int in_h = a.x_shape.dims[1];
  const int in_w = a.x_shape.dims[2];
  const int in_c = a.x_shape.dims[3];
  const int out_h = a.y_shape.dims[1];
  const int out_w = a.y_shape.dims[2];
  const int out_c = a.y_shape.dims[3];
  const int width = BandWidth(a);
  const int dh_stride = a.dilation_h * width;
  float* sums = scratch;
  float* band = sums + kTaps * in_c;
  for (int j = 0; j < kTaps * in_c; ++j) sums[j] = 0.0f;
  for (int b = 0; b < a.x_shape.dims[0]; ++b)
    for (int iy0 = 0; iy0 < in_h; iy0 += band_rows) {
      const int rows = in_h - iy0 < band_rows ? in_h - iy0 : band_rows;
      const int oy0 = iy0 + a.pad_h - 2 * a.dilation_h;
      for (int r = 0; r < rows + 2 * a.dilation_h; ++r) {
        float* d = band + r * width;
        const int oy = oy0 + r;
        for (int e = 0; e < width; ++e) d[e] = 0.0f;
        if (oy < 0 || oy >= out_h) continue;
        // Entries e_lo .. e_hi - 1 are output columns 0 .. out_w - 1 clipped.
        const int shift = 2 - a.pad_w;
        const int e_lo = shift > 0 ? shift : 0;
        const int e_hi = out_w + shift < width ? out_w + shift : width;
        if (e_hi > e_lo)
          ChannelGrads(a.g,
                       static_cast<int64_t>(Cell(a, b, oy, e_lo - shift)) * out_c + o,
                       out_c, e_hi - e_lo, d + e_lo);
      }
      const float* g = band + 2 * dh_stride;  // ky = 0 row of input row iy0
      const int8_t* x = a.x + (b * in_h + iy0) * in_w * in_c;
      const int32_t zp = a.input_zero_point;
      int i = 0;
      for (; i + 2 <= in_c; i += 2)
        TapSharedBand<2>(g, dh_stride, x + i, rows, in_w, in_c, zp,
                         sums + i * kTaps);
      if (i < in_c)
        TapSharedBand<1>(g, dh_stride, x + i, rows, in_w, in_c, zp,
                         sums + i * kTaps);
    }
}

// The weight update of ConvGrad (out of line: its scratch and
// ConvInputGrad's are never live at once).
__attribute__((noinline)) void UpdateConvFilter(const ConvGradArgs& a,
                                                const LayerUpdate& update) {
  const int out_c = a.filter_shape.dims[0];
  const int filter_h = a.filter_shape.dims[1];
  const int filter_w = a.filter_shape.dims[2];
  const int in_c = a.filter_shape.dims[3];
  const int count = update.channels != nullptr ? update.num_channels : out_c;
  const int64_t row_size = static_cast<int64_t>(filter_h) * filter_w * in_c;
  const int band_rows = TapSharedBandRows(a);
  const bool tap_shared = band_rows > 0;
  // Generic path: g of channel o for every output cell in scratch after
  // the chunk's sums when it fits, else looked up per cell.
  const int cells = static_cast<int>(a.y_shape.FlatSizeSkipLast());
  const bool plane = !tap_shared && cells <= kFilterGradScratch - kFilterGradChunk;
  float scratch[kFilterGradScratch];
  float* const sums = scratch;
  float* const g_plane = scratch + kFilterGradChunk;
  // Generic path: groups of 4, 3 or 2 listed channels share each pass over
  // x. Their g goes to scratch for as many output rows as fit (a tile) and
  // every weight's sum goes on over the tile's cells, into rows of sums in
  // scratch, applied in list order after the last tile; or, when all the
  // output cells fit one tile, the first channel's sums are applied as its
  // blocks are done and only the others' rows wait in scratch.
  const int out_rows = a.y_shape.dims[0] * a.y_shape.dims[1];
  const int out_w = a.y_shape.dims[2];
  int group = 1;
  bool first_direct = false;
  for (int m = 4; m > 1 && !tap_shared && group == 1; --m) {
    if (m * (row_size + out_w) <= kFilterGradScratch) {
      group = m;
    } else if ((m - 1) * row_size + m * static_cast<int64_t>(cells) <=
               kFilterGradScratch) {
      group = m;
      first_direct = true;
    }
  }
  int64_t slot = 0;  // k * (KH * KW * I) + (ky * KW + kx) * I + i
  for (int k = 0; k < count; ++k) {
    const int o = update.channels != nullptr ? update.channels[k] : k;
    const float scale = a.filter_scales[o];
    int8_t* row = a.slice.rows != nullptr ? a.slice.rows + k * row_size
                                          : a.filter + o * row_size;
    const auto apply = [&](int8_t* w, float sum) {
      *w = SgdUpdateInt8(*w, sum * a.input_scale, update.weight_lr, scale,
                         update.rule, update.weight_slots, slot++);
    };
    // Weights in row-major (ky, kx, i) order, as ConvFilterGrad's
    // weight-by-weight loop and the update slots go.
    if (tap_shared) {
      TapSharedFilterGrad(a, o, band_rows, scratch);
      int8_t* w = row;
      for (int t = 0; t < kTaps; ++t) {
        const float* s = sums + 2 * t;  // TapSharedFilterGrad's layout
        int i = 0;
        for (; i + 2 <= in_c; i += 2, s += 2 * kTaps) {
          apply(w++, s[0]);
          apply(w++, s[1]);
        }
        if (i < in_c) apply(w++, sums[i * kTaps + t]);
      }
      continue;
    }
    int members = group < count - k ? group : count - k;
    if (members > 1) {
      // Sharing pays only for dense enough g: the one-channel path skips
      // each channel's own zero cells. Estimated from the first tile's g
      // (per input channel: 4 + 2 * members instructions per cell with any
      // nonzero g, against 6 per nonzero g), with a margin for overheads.
      float* planes = scratch + (first_direct ? members - 1 : members) * row_size;
      const int tile_rows = static_cast<int>(
          (kFilterGradScratch - (planes - scratch)) / (members * out_w));
      const int n = (tile_rows < out_rows ? tile_rows : out_rows) * out_w;
      int any = 0, nonzero = 0;
      for (int m = 0; m < members; ++m) {
        const int om = update.channels != nullptr ? update.channels[k + m] : k + m;
        ChannelGrads(a.g, om, a.y_shape.dims[3], n, planes + m, members);
      }
      for (int c = 0; c < n; ++c) {
        int cell = 0;
        for (int m = 0; m < members; ++m) cell += planes[c * members + m] != 0.0f;
        nonzero += cell;
        any += cell > 0;
      }
      if (4 * any * (4 + 2 * members) > 18 * nonzero) members = 1;
    }
    if (members > 1) {
      // Scratch: the rows of sums (not the first's when first_direct), then
      // the tile's g, cell-major.
      float* rows[4];
      int32_t om[4];
      float* next = scratch;
      for (int m = 0; m < members; ++m) {
        om[m] = update.channels != nullptr ? update.channels[k + m] : k + m;
        rows[m] = nullptr;
        if (m == 0 && first_direct) continue;
        rows[m] = next;
        next += row_size;
        for (int64_t j = 0; j < row_size; ++j) rows[m][j] = 0.0f;
      }
      float* planes = next;
      int tile = static_cast<int>((kFilterGradScratch - (next - scratch)) /
                                  (members * out_w));
      if (tile > out_rows) tile = out_rows;
      for (int r0 = 0; r0 < out_rows; r0 += tile) {
        const int r1 = r0 + tile < out_rows ? r0 + tile : out_rows;
        for (int m = 0; m < members; ++m)
          ChannelGrads(a.g,
                       static_cast<int64_t>(r0) * out_w * a.y_shape.dims[3] + om[m],
                       a.y_shape.dims[3], (r1 - r0) * out_w, planes + m, members);
        for (int ky = 0; ky < filter_h; ++ky)
          for (int kx = 0; kx < filter_w; ++kx) {
            const int tap = (ky * filter_w + kx) * in_c;
            float* tap_rows[4];
            for (int m = 0; m < members; ++m)
              tap_rows[m] = rows[m] != nullptr ? rows[m] + tap : nullptr;
            const auto first = [&](int i, const float* s, int len) {
              for (int j = 0; j < len; ++j) apply(row + tap + i + j, s[j]);
            };
            if (members == 4)
              FilterGradGroupTap<4>(a, planes, r0, r1, ky, kx, tap_rows, first);
            else if (members == 3)
              FilterGradGroupTap<3>(a, planes, r0, r1, ky, kx, tap_rows, first);
            else
              FilterGradGroupTap<2>(a, planes, r0, r1, ky, kx, tap_rows, first);
          }
      }
      for (int m = 0; m < members; ++m, ++k) {
        if (rows[m] == nullptr) continue;
        int8_t* w = a.slice.rows != nullptr ? a.slice.rows + k * row_size
                                            : a.filter + om[m] * row_size;
        for (int64_t j = 0; j < row_size; ++j)
          w[j] = SgdUpdateInt8(w[j], rows[m][j] * a.input_scale,
                               update.weight_lr, a.filter_scales[om[m]],
                               update.rule, update.weight_slots, slot++);
      }
      --k;
      continue;
    }
    if (plane) ChannelGrads(a.g, o, a.y_shape.dims[3], cells, g_plane);
    for (int ky = 0; ky < filter_h; ++ky)
      for (int kx = 0; kx < filter_w; ++kx)
        for (int i0 = 0; i0 < in_c; i0 += kFilterGradChunk) {
          const int len =
              in_c - i0 < kFilterGradChunk ? in_c - i0 : kFilterGradChunk;
          if (plane)
            FilterGradChunk(a, PlaneG{g_plane}, ky, kx, i0, len, sums);
          else
            FilterGradChunk(a, LookupG{a.g, a.y_shape.dims[3], o}, ky, kx, i0,
                            len, sums);
          int8_t* w = row + (ky * filter_w + kx) * in_c + i0;
          for (int j = 0; j < len; ++j) apply(w + j, sums[j]);
        }
  }
}

}  // namespace

void ConvGrad(const ConvGradArgs& a, float* dx, const LayerUpdate& update) {
  if (dx != nullptr) ConvInputGrad(a, dx);
  if (update.update_weights) UpdateConvFilter(a, update);
  if (update.bias != nullptr) UpdateConvBias(a, update);
}

}  // namespace tflm_train
