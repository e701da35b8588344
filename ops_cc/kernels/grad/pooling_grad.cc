#include "ops_cc/kernels/grad/pooling_grad.h"

namespace tflm_train {
namespace {

// The window of output cell (oy, ox) clipped to the input: rows
// [y_begin, y_end), columns [x_begin, x_end).
struct Window {
  int y_begin, y_end, x_begin, x_end;
};

Window ClipWindow(const PoolGradParams& p, int oy, int ox, int in_h,
                  int in_w) {
  const int y0 = oy * p.stride_h - p.pad_h;
  const int x0 = ox * p.stride_w - p.pad_w;
  Window w;
  w.y_begin = y0 > 0 ? y0 : 0;
  w.y_end = y0 + p.filter_h < in_h ? y0 + p.filter_h : in_h;
  w.x_begin = x0 > 0 ? x0 : 0;
  w.x_end = x0 + p.filter_w < in_w ? x0 + p.filter_w : in_w;
  return w;
}

void Zero(float* dx, int64_t n) {
  for (int64_t k = 0; k < n; ++k) dx[k] = 0.0f;
}

}  // namespace

void AveragePoolGrad(const PoolGradParams& p, const Shape& y_shape,
                     const OutputGrad& grad, const Shape& x_shape, float* dx) {
  Zero(dx, x_shape.FlatSize());
  for (int b = 0; b < y_shape.dims[0]; ++b)
    for (int oy = 0; oy < y_shape.dims[1]; ++oy)
      for (int ox = 0; ox < y_shape.dims[2]; ++ox) {
        const Window w =
            ClipWindow(p, oy, ox, x_shape.dims[1], x_shape.dims[2]);
        if (w.y_end <= w.y_begin || w.x_end <= w.x_begin) continue;
        const int cells = (w.y_end - w.y_begin) * (w.x_end - w.x_begin);
        for (int c = 0; c < y_shape.dims[3]; ++c) {
          const int64_t out = Offset4(y_shape, b, oy, ox, c);
          const float g = grad.At(out);
          if (g == 0.0f) continue;
          const float share = g / static_cast<float>(cells);
          for (int iy = w.y_begin; iy < w.y_end; ++iy)
            for (int ix = w.x_begin; ix < w.x_end; ++ix)
              dx[Offset4(x_shape, b, iy, ix, c)] += share;
        }
      }
}

void AveragePoolGradInt8(const PoolGradParams& p, const Shape& y_shape,
                         const OutputGrad& grad, const Shape& x_shape,
                         Int8GradOut dx) {
  const int in_h = x_shape.dims[1], in_w = x_shape.dims[2];
  const int channels = x_shape.dims[3];
  // Element k of AveragePoolGrad's dx: the shares of the output cells whose
  // clipped window holds it, added in increasing (oy, ox) as there.
  auto value_at = [&](int64_t k) {
    const int c = static_cast<int>(k % channels);
    const int64_t cell = k / channels;
    const int ix = static_cast<int>(cell % in_w);
    const int iy = static_cast<int>(cell / in_w % in_h);
    const int b = static_cast<int>(cell / (static_cast<int64_t>(in_w) * in_h));
    float acc = 0.0f;
    for (int oy = 0; oy < y_shape.dims[1]; ++oy) {
      const int y0 = oy * p.stride_h - p.pad_h;
      if (iy < y0 || iy >= y0 + p.filter_h) continue;
      for (int ox = 0; ox < y_shape.dims[2]; ++ox) {
        const int x0 = ox * p.stride_w - p.pad_w;
        if (ix < x0 || ix >= x0 + p.filter_w) continue;
        const Window w = ClipWindow(p, oy, ox, in_h, in_w);
        const float g = grad.At(Offset4(y_shape, b, oy, ox, c));
        if (g == 0.0f) continue;
        const int cells = (w.y_end - w.y_begin) * (w.x_end - w.x_begin);
        acc += g / static_cast<float>(cells);
      }
    }
    return acc;
  };
  WriteInt8Grad(x_shape.FlatSize(), value_at, dx);
}

void MaxPoolGrad(const PoolGradParams& p, const Shape& y_shape,
                 const OutputGrad& grad, const Shape& x_shape, const int8_t* x,
                 float* dx) {
  Zero(dx, x_shape.FlatSize());
  for (int b = 0; b < y_shape.dims[0]; ++b)
    for (int oy = 0; oy < y_shape.dims[1]; ++oy)
      for (int ox = 0; ox < y_shape.dims[2]; ++ox) {
        const Window w =
            ClipWindow(p, oy, ox, x_shape.dims[1], x_shape.dims[2]);
        if (w.y_end <= w.y_begin || w.x_end <= w.x_begin) continue;
        for (int c = 0; c < y_shape.dims[3]; ++c) {
          const int64_t out = Offset4(y_shape, b, oy, ox, c);
          const float g = grad.At(out);
          if (g == 0.0f) continue;
          int64_t best = Offset4(x_shape, b, w.y_begin, w.x_begin, c);
          for (int iy = w.y_begin; iy < w.y_end; ++iy)
            for (int ix = w.x_begin; ix < w.x_end; ++ix) {
              const int64_t at = Offset4(x_shape, b, iy, ix, c);
              if (x[at] > x[best]) best = at;
            }
          dx[best] += g;
        }
      }
}

}  // namespace tflm_train
