#include "ops_cc/kernels/depthwise_conv.h"

#include <cstring>

#include "ops_cc/core/quantization.h"
#include "ops_cc/kernels/int8_mac.h"

namespace tflm_train {
namespace {

// The taps [*lo, *hi) of a window starting at input position `start`
// (negative inside the padding) that fall inside [0, size): the zero
// padding contributes 0, so the sums skip the rest.
void TapRange(int start, int dilation, int taps, int size, int* lo, int* hi) {
  *lo = start >= 0 ? 0 : (-start + dilation - 1) / dilation;
  const int left = size - start;  // positions from start to the end
  *hi = left <= 0 ? 0 : (left + dilation - 1) / dilation;
  if (*hi > taps) *hi = taps;
  if (*lo > *hi) *lo = *hi;
}

}  // namespace

namespace ref {

void DepthwiseConvPerChannel(const ConvParams& params,
                             const int32_t* output_multiplier,
                             const int32_t* output_shift,
                             const Shape& input_shape, const int8_t* input,
                             const Shape& filter_shape, const int8_t* filter,
                             const int32_t* bias, const Shape& output_shape,
                             int8_t* output) {
  const int batches = input_shape.dims[0];
  const int in_h = input_shape.dims[1];
  const int in_w = input_shape.dims[2];
  const int in_c = input_shape.dims[3];
  const int filter_h = filter_shape.dims[1];
  const int filter_w = filter_shape.dims[2];
  const int out_h = output_shape.dims[1];
  const int out_w = output_shape.dims[2];
  const int out_c = output_shape.dims[3];
  const int depth_multiplier = out_c / in_c;
  const int32_t offset = params.input_offset;
  // Strides between the taps of one channel, in the input and the filter.
  const int64_t in_step_y = static_cast<int64_t>(params.dilation_h) * in_w * in_c;
  const int in_step_x = params.dilation_w * in_c;
  const int64_t w_step_y = static_cast<int64_t>(filter_w) * out_c;

  for (int b = 0; b < batches; ++b) {
    const int8_t* in_batch = input + b * static_cast<int64_t>(in_h) * in_w * in_c;
    for (int oy = 0; oy < out_h; ++oy) {
      const int y0 = oy * params.stride_h - params.pad_h;
      int ky_lo = 0, ky_hi = 0;
      TapRange(y0, params.dilation_h, filter_h, in_h, &ky_lo, &ky_hi);
      for (int ox = 0; ox < out_w; ++ox) {
        const int x0 = ox * params.stride_w - params.pad_w;
        int kx_lo = 0, kx_hi = 0;
        TapRange(x0, params.dilation_w, filter_w, in_w, &kx_lo, &kx_hi);
        // The window's taps inside the input: `rows` rows of `taps_x`
        // taps, input channel 0 of the first at in_first, its weights at
        // w_first.
        const int rows = kx_lo < kx_hi ? ky_hi - ky_lo : 0;
        const int taps_x = kx_hi - kx_lo;
        const int8_t* in_first = in_batch;
        const int8_t* w_first = filter;
        if (rows > 0) {
          in_first += (static_cast<int64_t>(y0 + ky_lo * params.dilation_h) * in_w +
                       (x0 + kx_lo * params.dilation_w)) * in_c;
          w_first += (ky_lo * filter_w + kx_lo) * out_c;
        }
        int8_t* out_px = output + ((static_cast<int64_t>(b) * out_h + oy) * out_w + ox) * out_c;
        // Output channel c's sum: + bias, requantized.
        const auto store = [&](int c, int32_t acc) {
          if (bias != nullptr) acc = WrappingAdd(acc, bias[c]);
          out_px[c] = ConvOutputInt8(params, acc, output_multiplier[c],
                                     output_shift[c]);
        };
        int oc = 0;
        // Depth multiplier 1: four adjacent channels at a time (input and
        // filter channels coincide, so one 4-byte word each per tap).
        for (; depth_multiplier == 1 && oc + 4 <= out_c; oc += 4) {
          int32_t acc[4] = {0, 0, 0, 0};
          for (int r = 0; r < rows; ++r) {
            const int8_t* in_tap = in_first + r * in_step_y + oc;
            const int8_t* w_tap = w_first + r * w_step_y + oc;
            for (const int8_t* w_end = w_tap + taps_x * out_c; w_tap != w_end;
                 w_tap += out_c, in_tap += in_step_x) {
              MacChannels4(in_tap, w_tap, offset, acc);
            }
          }
          // Constant indices keep acc in registers.
          store(oc, acc[0]);
          store(oc + 1, acc[1]);
          store(oc + 2, acc[2]);
          store(oc + 3, acc[3]);
        }
        // The rest one channel at a time; output channel oc reads input
        // channel oc / depth_multiplier.
        for (; oc < out_c; ++oc) {
          const int ic = oc / depth_multiplier;
          int32_t acc = 0;
          for (int r = 0; r < rows; ++r) {
            const int8_t* in_tap = in_first + r * in_step_y + ic;
            const int8_t* w_tap = w_first + r * w_step_y + oc;
            for (const int8_t* w_end = w_tap + taps_x * out_c; w_tap != w_end;
                 w_tap += out_c, in_tap += in_step_x) {
              acc = WrappingAdd(acc, static_cast<int32_t>(*w_tap) *
                                         (static_cast<int32_t>(*in_tap) + offset));
            }
          }
          store(oc, acc);
        }
      }
    }
  }
}

}  // namespace ref

namespace {

// Bytes at the start of the buffer no output row from `next_row` on reads:
// the input rows above the first one output row `next_row` reads (all of it
// once every row is computed).
int64_t FreeInputBytes(const ConvParams& params, const Shape& input_shape,
                       int out_h, int next_row) {
  const int64_t in_row = static_cast<int64_t>(input_shape.dims[2]) *
                         input_shape.dims[3];
  if (next_row >= out_h) return in_row * input_shape.dims[1];
  const int first = next_row * params.stride_h - params.pad_h;
  return first > 0 ? first * in_row : 0;
}

}  // namespace

int DepthwiseInPlaceRows(const ConvParams& params, const Shape& input_shape,
                         const Shape& output_shape) {
  const int out_h = output_shape.dims[1];
  const int64_t out_row = static_cast<int64_t>(output_shape.dims[2]) *
                          output_shape.dims[3];
  int flushed = 0, most = 0;
  for (int oy = 0; oy < out_h; ++oy) {
    if (oy + 1 - flushed > most) most = oy + 1 - flushed;
    const int64_t free = FreeInputBytes(params, input_shape, out_h, oy + 1);
    while (flushed <= oy && (flushed + 1) * out_row <= free) ++flushed;
  }
  return most;
}

bool DepthwiseInPlace(const ConvParams& params, const Shape& input_shape,
                      int8_t* data, const Shape& output_shape,
                      int8_t* row_buffer, DepthwiseRowFunction row,
                      void* context) {
  const int out_h = output_shape.dims[1];
  const int64_t out_row = static_cast<int64_t>(output_shape.dims[2]) *
                          output_shape.dims[3];
  const int ring = DepthwiseInPlaceRows(params, input_shape, output_shape);
  int flushed = 0;
  for (int oy = 0; oy < out_h; ++oy) {
    if (!row(context, oy, data, row_buffer + (oy % ring) * out_row))
      return false;
    const int64_t free = FreeInputBytes(params, input_shape, out_h, oy + 1);
    for (; flushed <= oy && (flushed + 1) * out_row <= free; ++flushed)
      memcpy(data + flushed * out_row, row_buffer + (flushed % ring) * out_row,
             static_cast<size_t>(out_row));
  }
  return true;
}

namespace {

struct RefRowContext {
  const ConvParams* params;
  const int32_t* output_multiplier;
  const int32_t* output_shift;
  const Shape* input_shape;
  const Shape* filter_shape;
  const int8_t* filter;
  const int32_t* bias;
  Shape row_shape;
};

// Output row oy alone: the same window, shifted by the padding.
bool RefRow(void* context, int oy, const int8_t* data, int8_t* row) {
  const auto& r = *static_cast<const RefRowContext*>(context);
  ConvParams row_params = *r.params;
  row_params.pad_h = r.params->pad_h - oy * r.params->stride_h;
  ref::DepthwiseConvPerChannel(row_params, r.output_multiplier, r.output_shift,
                               *r.input_shape, data, *r.filter_shape, r.filter,
                               r.bias, r.row_shape, row);
  return true;
}

}  // namespace

namespace ref {

void DepthwiseConvPerChannelInPlace(const ConvParams& params,
                                    const int32_t* output_multiplier,
                                    const int32_t* output_shift,
                                    const Shape& input_shape, int8_t* data,
                                    const Shape& filter_shape,
                                    const int8_t* filter, const int32_t* bias,
                                    const Shape& output_shape,
                                    int8_t* row_buffer) {
  RefRowContext context = {&params,      output_multiplier, output_shift,
                           &input_shape, &filter_shape,     filter,
                           bias,         output_shape};
  context.row_shape.dims[1] = 1;
  DepthwiseInPlace(params, input_shape, data, output_shape, row_buffer,
                   &RefRow, &context);
}

}  // namespace ref
}  // namespace tflm_train
