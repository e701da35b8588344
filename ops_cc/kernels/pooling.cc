#include "ops_cc/kernels/pooling.h"

namespace tflm_train {
namespace ref {
namespace {

// The window of output (oy, ox) clipped to the input: [y_begin, y_end) x
// [x_begin, x_end) in input coordinates.
struct Window {
  int y_begin, y_end, x_begin, x_end;
};

Window ClipWindow(const PoolParams& p, int oy, int ox, int in_h, int in_w) {
  const int y0 = oy * p.stride_h - p.pad_h;
  const int x0 = ox * p.stride_w - p.pad_w;
  Window w;
  w.y_begin = y0 > 0 ? y0 : 0;
  w.y_end = y0 + p.filter_h < in_h ? y0 + p.filter_h : in_h;
  w.x_begin = x0 > 0 ? x0 : 0;
  w.x_end = x0 + p.filter_w < in_w ? x0 + p.filter_w : in_w;
  return w;
}

}  // namespace

bool AveragePool(const PoolParams& params, const Shape& input_shape,
                 const int8_t* input, const Shape& output_shape,
                 int8_t* output) {
  const int batches = input_shape.dims[0];
  const int in_h = input_shape.dims[1];
  const int in_w = input_shape.dims[2];
  const int depth = input_shape.dims[3];
  const int out_h = output_shape.dims[1];
  const int out_w = output_shape.dims[2];
  for (int b = 0; b < batches; ++b) {
    const int8_t* in_batch = input + b * in_h * in_w * depth;
    for (int oy = 0; oy < out_h; ++oy) {
      for (int ox = 0; ox < out_w; ++ox) {
        const Window w = ClipWindow(params, oy, ox, in_h, in_w);
        if (w.y_end <= w.y_begin || w.x_end <= w.x_begin) return false;
        const int count = (w.y_end - w.y_begin) * (w.x_end - w.x_begin);
        int8_t* out_px = output + ((b * out_h + oy) * out_w + ox) * depth;
        for (int c = 0; c < depth; ++c) {
          int32_t sum = 0;
          for (int y = w.y_begin; y < w.y_end; ++y) {
            for (int x = w.x_begin; x < w.x_end; ++x) {
              sum += in_batch[(y * in_w + x) * depth + c];
            }
          }
          // Integer division truncates, so bias by half the count away from
          // zero to round ties away from zero.
          int32_t avg =
              sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
          if (avg < params.act_min) avg = params.act_min;
          if (avg > params.act_max) avg = params.act_max;
          out_px[c] = static_cast<int8_t>(avg);
        }
      }
    }
  }
  return true;
}

void MaxPool(const PoolParams& params, const Shape& input_shape,
             const int8_t* input, const Shape& output_shape, int8_t* output) {
  const int batches = input_shape.dims[0];
  const int in_h = input_shape.dims[1];
  const int in_w = input_shape.dims[2];
  const int depth = input_shape.dims[3];
  const int out_h = output_shape.dims[1];
  const int out_w = output_shape.dims[2];
  for (int b = 0; b < batches; ++b) {
    const int8_t* in_batch = input + b * in_h * in_w * depth;
    for (int oy = 0; oy < out_h; ++oy) {
      for (int ox = 0; ox < out_w; ++ox) {
        const Window w = ClipWindow(params, oy, ox, in_h, in_w);
        int8_t* out_px = output + ((b * out_h + oy) * out_w + ox) * depth;
        for (int c = 0; c < depth; ++c) {
          int32_t max = -128;
          for (int y = w.y_begin; y < w.y_end; ++y) {
            for (int x = w.x_begin; x < w.x_end; ++x) {
              const int32_t v = in_batch[(y * in_w + x) * depth + c];
              if (v > max) max = v;
            }
          }
          if (max < params.act_min) max = params.act_min;
          if (max > params.act_max) max = params.act_max;
          out_px[c] = static_cast<int8_t>(max);
        }
      }
    }
  }
}

}  // namespace ref
}  // namespace tflm_train
