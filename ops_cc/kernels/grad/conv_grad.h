// Backward of an int8 CONV_2D (NHWC input, filter [O, KH, KW, I]) with the
// fused SGD update of its weights and bias.
//
// Real values: x = s_x (q_x - z_x), W[o] = s_w[o] q_w[o], the output gradient
// g = OutputGrad::At (the masked dy, grad_common.h). Float sums run in the loop orders documented below.
#ifndef TFLM_TRAIN_KERNELS_GRAD_CONV_GRAD_H_
#define TFLM_TRAIN_KERNELS_GRAD_CONV_GRAD_H_

#include <cstdint>

#include "ops_cc/core/shape.h"
#include "ops_cc/kernels/filter_slice.h"
#include "ops_cc/kernels/grad/grad_common.h"
#include "ops_cc/kernels/grad/input_grad.h"
#include "ops_cc/kernels/grad/sgd_update.h"

namespace tflm_train {

// Forward tensors and geometry of the layer (shared with depthwise conv,
// whose filter is [1, KH, KW, C]).
struct ConvGradArgs {
  int stride_h = 1, stride_w = 1;
  int dilation_h = 1, dilation_w = 1;
  int pad_h = 0, pad_w = 0;  // implicit zero rows above / columns left
  float input_scale = 0.0f;
  int32_t input_zero_point = 0;
  Shape x_shape;             // [N, H, W, I]
  const int8_t* x = nullptr;
  Shape filter_shape;
  int8_t* filter = nullptr;  // updated in place by ConvGrad (no slice)
  // With a slice (CONV_2D only): the weights are the merged filter, the
  // filter is frozen and the update writes the slice's rows instead, which
  // must be update.channels.
  FilterSlice slice;
  const float* filter_scales = nullptr;  // s_w per output channel
  Shape y_shape;             // [N, OH, OW, O]
  OutputGrad g;              // of y
};

// dL/dx, one input cell (n, iy, ix; I values) at a time in increasing cell
// order into `sink` (input_grad.h). Each element's sum starts at 0 and adds
// (g * s_w[o]) * q_w[o, ky, kx, i] for the output cells (n, oy, ox) that
// read the cell, in increasing (oy, ox) (so decreasing tap (ky, kx)), and
// within a cell for o ascending, skipping g == 0: the order of the scatter
// form "for each (n, oy, ox, o) in row-major order with g != 0, add the
// terms to the input cells it reads".
template <typename Sink>
void ConvInputGradTo(const ConvGradArgs& args, Sink& sink);

// ConvInputGradTo's sums, bit for bit, into dx (shape of x). With the whole
// of dx at hand, a filter of several taps is done tap by tap instead, each
// tap's weights converted to float once (conv_grad.cc).
void ConvInputGrad(const ConvGradArgs& args, float* dx);

// dL/dW[o, ky, kx, i] = s_x * sum over (n, oy, ox) of
// g[n, oy, ox, o] * (q_x[n, iy, ix, i] - z_x), summed from +0 in that order,
// skipping g == 0 (padding cells contribute nothing): the reference, one
// weight at a time. Only x and y/dy are read, so it also serves depthwise
// conv (o = i = the channel).
float ConvFilterGrad(const ConvGradArgs& args, int o, int ky, int kx, int i);

// dL/db[o] = sum over (n, oy, ox) of g.
float ConvBiasGrad(const ConvGradArgs& args, int o);

// bias[o] <- SgdUpdateInt32 with ConvBiasGrad(args, o), for every output
// channel o in increasing order (slot o); the sums of up to 24 channels run
// together, the mask read once per output cell for all of them.
void UpdateConvBias(const ConvGradArgs& args, const LayerUpdate& update);

// The fused op: dx (if non-null) from the current weights; then, for each
// updated channel in list order, each of its weights in row-major order gets
// its gradient (ConvFilterGrad's value bit for bit) and its update; then the
// bias of every channel. The gradients are summed many at a time, each in
// ConvFilterGrad's order, with the partial sums in FPU registers and each
// converted x value serving several sums (conv_grad.cc): a 3x3 stride-1
// filter's 9 taps of an input cell, else the same weight of up to 4 listed
// channels, whose sums then wait in a 1.5 KB stack scratch for their turn.
void ConvGrad(const ConvGradArgs& args, float* dx, const LayerUpdate& update);

namespace conv_internal {

// The outputs [*lo, *hi) of one spatial dimension whose tap k reads inside
// the input, o * stride - pad + k * dilation in [0, in_size) (an empty
// range when the tap reads only padding).
inline void TapRange(int out_size, int in_size, int stride, int pad,
                     int dilation, int k, int* lo, int* hi) {
  int l = 0, h = out_size;
  while (l < out_size && l * stride - pad + k * dilation < 0) ++l;
  while (h > l && (h - 1) * stride - pad + k * dilation >= in_size) --h;
  *lo = l;
  *hi = h;
}

// TapRange across: the output columns ox whose tap kx reads inside.
inline void TapColumns(const ConvGradArgs& a, int kx, int* lo, int* hi) {
  TapRange(a.y_shape.dims[2], a.x_shape.dims[2], a.stride_w, a.pad_w,
           a.dilation_w, kx, lo, hi);
}

// TapRange down: the output rows oy whose tap ky reads inside.
inline void TapRows(const ConvGradArgs& a, int ky, int* lo, int* hi) {
  TapRange(a.y_shape.dims[1], a.x_shape.dims[1], a.stride_h, a.pad_h,
           a.dilation_h, ky, lo, hi);
}

// The reading output cell's g * s_w[o] (+0 where g is 0), looked up per
// channel: the form for layers whose scaled rows do not fit the scratch.
struct ScaledLookup {
  const OutputGrad& g;
  const float* scales;
  int64_t out;  // y offset of the cell's channel 0
  float operator[](int o) const {
    const float v = g.At(out + o);
    return v == 0.0f ? 0.0f : v * scales[o];
  }
};

// Calls visit(oy, ox, ky, kx) for the output cells (oy, ox) that read input
// cell (iy, ix), with the tap (ky, kx) they read it through, in increasing
// (oy, ox): output row oy reads input row iy through tap ky when
// oy * stride - pad + ky * dilation == iy, so oy grows as ky falls.
template <typename Visit>
void ForEachReadingTap(const ConvGradArgs& a, int iy, int ix,
                       const Visit& visit) {
  for (int ky = a.filter_shape.dims[1] - 1; ky >= 0; --ky) {
    const int ty = iy + a.pad_h - ky * a.dilation_h;
    if (ty < 0 || ty % a.stride_h != 0 || ty / a.stride_h >= a.y_shape.dims[1])
      continue;
    for (int kx = a.filter_shape.dims[2] - 1; kx >= 0; --kx) {
      const int tx = ix + a.pad_w - kx * a.dilation_w;
      if (tx < 0 || tx % a.stride_w != 0 ||
          tx / a.stride_w >= a.y_shape.dims[2])
        continue;
      visit(ty / a.stride_h, tx / a.stride_w, ky, kx);
    }
  }
}

// d[0..I) = the sums of input cell (b, iy, ix), in the documented order.
// scaled(b, oy, ox)[o] is g * s_w[o] of output cell (b, oy, ox), +0 where g
// is 0; zero terms are skipped (a g != 0 whose product is +-0 only adds a
// +-0 term, which changes no bit of a sum started at +0: it is never -0).
template <typename ScaledCell>
void InputGradCell(const ConvGradArgs& a, int b, int iy, int ix,
                   const ScaledCell& scaled, float* d) {
  const int in_c = a.x_shape.dims[3];
  const int filter_h = a.filter_shape.dims[1];
  const int filter_w = a.filter_shape.dims[2];
  const int out_c = a.y_shape.dims[3];
  const int64_t row_size = static_cast<int64_t>(filter_h) * filter_w * in_c;
  for (int i = 0; i < in_c; ++i) d[i] = 0.0f;
  WeightedRow rows[kWeightedRowBatch];
  int count = 0;
  ForEachReadingTap(a, iy, ix, [&](int oy, int ox, int ky, int kx) {
    const auto gs = scaled(b, oy, ox);
    const int tap = (ky * filter_w + kx) * in_c;
    int cursor = 0;
    for (int o = 0; o < out_c; ++o) {
      // Looked up before the skip: the cursor must see every o.
      const int8_t* w_o =
          MergedFilterRow(a.filter, row_size, a.slice, o, &cursor);
      const float gs_o = gs[o];
      if (gs_o == 0.0f) continue;
      rows[count++] = {gs_o, w_o + tap};
      if (count == kWeightedRowBatch) {
        AddWeightedRows(d, in_c, rows, count);
        count = 0;
      }
    }
  });
  if (count > 0) AddWeightedRows(d, in_c, rows, count);
}

// The output rows that read input row iy: oy from the first whose tap
// ky = KH - 1 reaches it up to LastReaderRow(iy), at most
// ReaderRowSpan() rows (ceil and floor of (iy + pad - ky * dilation) / stride).
inline int LastReaderRow(const ConvGradArgs& a, int iy) {
  const int last = (iy + a.pad_h) / a.stride_h;
  return last < a.y_shape.dims[1] ? last : a.y_shape.dims[1] - 1;
}
inline int ReaderRowSpan(const ConvGradArgs& a) {
  return (a.filter_shape.dims[1] - 1) * a.dilation_h / a.stride_h + 1;
}

// 1x1 filter: d0 and d1 = the sums of two input cells read by the output
// cells at y offsets out0 and out0 + O (each input cell has only its one
// reader, through the filter's one tap), in the documented order.
inline void PointwiseInputGradPair(const ConvGradArgs& a, const OutputGrad& g,
                                   int64_t out0, float* d0, float* d1) {
  const int in_c = a.x_shape.dims[3];
  const int out_c = a.y_shape.dims[3];
  const int64_t out1 = out0 + out_c;
  for (int i = 0; i < in_c; ++i) d0[i] = d1[i] = 0.0f;
  WeightedRowPair rows[kWeightedRowBatch];
  int count = 0;
  int cursor = 0;
  for (int o = 0; o < out_c; ++o) {
    // Looked up before the skip: the cursor must see every o.
    const int8_t* w_o = MergedFilterRow(a.filter, in_c, a.slice, o, &cursor);
    const float g0 = g.At(out0 + o);
    const float g1 = g.At(out1 + o);
    if (g0 == 0.0f && g1 == 0.0f) continue;
    const float s = a.filter_scales[o];
    rows[count++] = {{g0 == 0.0f ? 0.0f : g0 * s, g1 == 0.0f ? 0.0f : g1 * s},
                     w_o};
    if (count == kWeightedRowBatch) {
      AddWeightedRowPairsOrSingles(d0, d1, in_c, rows, count);
      count = 0;
    }
  }
  if (count > 0) AddWeightedRowPairsOrSingles(d0, d1, in_c, rows, count);
}

// The output column reading input column ix of a 1x1 filter, or -1.
inline int PointwiseReader(int ix, int pad, int stride, int out_size) {
  const int t = ix + pad;
  if (t < 0 || t % stride != 0 || t / stride >= out_size) return -1;
  return t / stride;
}

}  // namespace conv_internal

template <typename Sink>
void ConvInputGradTo(const ConvGradArgs& a, Sink& sink) {
  const int batches = a.x_shape.dims[0];
  const int in_h = a.x_shape.dims[1];
  const int in_w = a.x_shape.dims[2];
  const int in_c = a.x_shape.dims[3];
  const int out_w = a.y_shape.dims[2];
  const int out_c = a.y_shape.dims[3];
  const OutputGrad g = a.g;
  // 1x1 filter, stride 1 across: neighbouring cells of an input row are
  // read by neighbouring output cells with the same weights, and are summed
  // two at a time (AddWeightedRowPairsOrSingles); the second cell waits in
  // scratch.
  const bool paired = a.filter_shape.dims[1] == 1 &&
                      a.filter_shape.dims[2] == 1 && a.stride_w == 1 &&
                      in_c <= kConvInputGradScratch;
  // Otherwise, when the output rows reading one input row fit the scratch,
  // their g * s_w[o] are computed once per output row into it (row oy in
  // slot oy % slots; input rows go up, so a row is overwritten only once no
  // later input row reads it) instead of once per reading tap.
  const int slots = conv_internal::ReaderRowSpan(a);
  const int64_t row_floats = static_cast<int64_t>(out_w) * out_c;
  const bool cached = !paired && slots * row_floats <= kConvInputGradScratch;
  float scratch[kConvInputGradScratch];
  const auto cached_cell = [&](int, int oy, int ox) {
    return scratch + (oy % slots) * row_floats + ox * out_c;
  };
  const auto lookup_cell = [&](int b, int oy, int ox) {
    return conv_internal::ScaledLookup{g, a.filter_scales,
                                       Offset4(a.y_shape, b, oy, ox, 0)};
  };
  int64_t cell = 0;
  for (int b = 0; b < batches; ++b) {
    int computed = 0;  // output rows of batch b in scratch so far
    for (int iy = 0; iy < in_h; ++iy) {
      if (cached) {
        for (const int last = conv_internal::LastReaderRow(a, iy);
             computed <= last; ++computed) {
          float* row = scratch + (computed % slots) * row_floats;
          for (int ox = 0; ox < out_w; ++ox)
            g.ScaledRun(Offset4(a.y_shape, b, computed, ox, 0), out_c,
                        a.filter_scales, row + ox * out_c);
        }
        for (int ix = 0; ix < in_w; ++ix, ++cell) {
          conv_internal::InputGradCell(a, b, iy, ix, cached_cell,
                                       sink.Begin(cell));
          sink.End(cell);
        }
        continue;
      }
      const int oy = conv_internal::PointwiseReader(iy, a.pad_h, a.stride_h,
                                                    a.y_shape.dims[1]);
      int ix = 0;
      while (ix < in_w) {
        const int ox =
            paired && oy >= 0 && ix + 1 < in_w
                ? conv_internal::PointwiseReader(ix, a.pad_w, 1, out_w)
                : -1;
        if (ox >= 0 && ox + 1 < out_w) {
          float* d = sink.Begin(cell);
          conv_internal::PointwiseInputGradPair(
              a, g, Offset4(a.y_shape, b, oy, ox, 0), d, scratch);
          sink.End(cell++);
          d = sink.Begin(cell);
          for (int i = 0; i < in_c; ++i) d[i] = scratch[i];
          sink.End(cell++);
          ix += 2;
        } else {
          conv_internal::InputGradCell(a, b, iy, ix, lookup_cell,
                                       sink.Begin(cell));
          sink.End(cell++);
          ++ix;
        }
      }
    }
  }
}

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_GRAD_CONV_GRAD_H_
