#include "ops_cc/kernels/depthwise_conv.h"

#include <cstring>

#include "ops_cc/core/quantization.h"

namespace tflm_train {
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

  for (int b = 0; b < batches; ++b) {
    const int8_t* in_batch = input + b * in_h * in_w * in_c;
    for (int oy = 0; oy < out_h; ++oy) {
      const int y0 = oy * params.stride_h - params.pad_h;
      for (int ox = 0; ox < out_w; ++ox) {
        const int x0 = ox * params.stride_w - params.pad_w;
        int8_t* out_px = output + ((b * out_h + oy) * out_w + ox) * out_c;
        for (int oc = 0; oc < out_c; ++oc) {
          const int ic = oc / depth_multiplier;
          int32_t acc = 0;
          for (int ky = 0; ky < filter_h; ++ky) {
            const int y = y0 + ky * params.dilation_h;
            if (y < 0 || y >= in_h) continue;  // zero padding contributes 0
            for (int kx = 0; kx < filter_w; ++kx) {
              const int x = x0 + kx * params.dilation_w;
              if (x < 0 || x >= in_w) continue;
              const int32_t in_val = in_batch[(y * in_w + x) * in_c + ic];
              const int32_t w = filter[(ky * filter_w + kx) * out_c + oc];
              acc = WrappingAdd(acc, w * (in_val + params.input_offset));
            }
          }
          if (bias != nullptr) acc = WrappingAdd(acc, bias[oc]);
          acc = MultiplyByQuantizedMultiplier(acc, output_multiplier[oc],
                                              output_shift[oc]);
          acc = WrappingAdd(acc, params.output_offset);
          if (acc < params.act_min) acc = params.act_min;
          if (acc > params.act_max) acc = params.act_max;
          out_px[oc] = static_cast<int8_t>(acc);
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
