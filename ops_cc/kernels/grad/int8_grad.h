// Gradient tensors stored as int8 with a per-tensor dynamic scale (scheme
// "gradients": "int8", docs/format.md "int8 gradients").
//
// The real value of element k is q[k] * scale. The writer forms the scale
// from the float values v it computes (in the kernels' usual float order):
// amax = max |v| over the tensor, scale = amax / 127, and
// q[k] = round(v[k] * (127 / amax)), to nearest, ties away from zero, in
// [-127, 127]. An all-zero tensor has scale 0 and q = 0. A non-finite value
// makes amax (and so the scale) +inf or NaN and every q 0, so readers see
// NaN where a float32 gradient would have carried the overflow.
//
// Only +, *, / and comparisons of single-precision floats: host and
// Cortex-M agree bit for bit.
#ifndef TFLM_TRAIN_KERNELS_GRAD_INT8_GRAD_H_
#define TFLM_TRAIN_KERNELS_GRAD_INT8_GRAD_H_

#include <cstdint>

namespace tflm_train {

// max |v| over the values added; NaN, once seen, stays.
class GradAmax {
 public:
  void Add(float v) {
    const float a = v < 0.0f ? -v : v;
    if (a > value_ || a != a) value_ = a;
  }
  float value() const { return value_; }

 private:
  float value_ = 0.0f;
};

// Quantizes the values of a tensor whose max |v| is amax.
class GradQuantizer {
 public:
  explicit GradQuantizer(float amax) : scale_(amax / 127.0f) {
    // amax - amax is 0 only for a finite amax.
    if (amax > 0.0f && amax - amax == 0.0f) inverse_ = 127.0f / amax;
  }
  float scale() const { return scale_; }
  int8_t operator()(float v) const {
    const float q = v * inverse_;  // |q| <= 127 up to rounding
    const float r = (q < 0.0f ? -q : q) + 0.5f;
    if (!(r < 127.5f)) return r == r ? (q < 0.0f ? -127 : 127) : 0;
    const int8_t magnitude = static_cast<int8_t>(static_cast<int32_t>(r));
    return q < 0.0f ? static_cast<int8_t>(-magnitude) : magnitude;
  }

 private:
  float scale_ = 0.0f;
  float inverse_ = 0.0f;  // 127 / amax, 0 when amax is 0 or not finite
};

// An int8 gradient tensor being written: its values and its scale.
struct Int8GradOut {
  int8_t* q = nullptr;
  float* scale = nullptr;
};

// Writes the n values value_at(0..n-1) as an int8 gradient: one pass for
// amax, one to quantize (value_at is evaluated twice per element and must
// return the same float both times).
template <typename ValueAt>
void WriteInt8Grad(int64_t n, const ValueAt& value_at, Int8GradOut out) {
  GradAmax amax;
  for (int64_t k = 0; k < n; ++k) amax.Add(value_at(k));
  const GradQuantizer quantize(amax.value());
  for (int64_t k = 0; k < n; ++k) out.q[k] = quantize(value_at(k));
  *out.scale = quantize.scale();
}

// The input-gradient kernels' sinks (FloatDxSink, input_grad.h) for an int8
// x/grad: the kernel runs once into GradAmaxSink, then once into
// GradQuantizeSink. Both accumulate a cell in `cell` (`depth` floats of
// scratch), so the float tensor never exists whole.
class GradAmaxSink {
 public:
  GradAmaxSink(float* cell, int depth) : cell_(cell), depth_(depth) {}
  float* Begin(int64_t) { return cell_; }
  void End(int64_t) {
    for (int k = 0; k < depth_; ++k) amax_.Add(cell_[k]);
  }
  float amax() const { return amax_.value(); }

 private:
  float* cell_;
  int depth_;
  GradAmax amax_;
};

class GradQuantizeSink {
 public:
  GradQuantizeSink(float* cell, int depth, float amax, int8_t* q)
      : cell_(cell), depth_(depth), quantize_(amax), q_(q) {}
  float* Begin(int64_t) { return cell_; }
  void End(int64_t cell) {
    int8_t* out = q_ + cell * depth_;
    for (int k = 0; k < depth_; ++k) out[k] = quantize_(cell_[k]);
  }
  float scale() const { return quantize_.scale(); }

 private:
  float* cell_;
  int depth_;
  GradQuantizer quantize_;
  int8_t* q_;
};

// Runs an input-gradient kernel (a callable taking a sink) twice to write
// its x/grad as int8; `cell` holds `depth` floats.
template <typename RunKernel>
void WriteInt8CellGrad(const RunKernel& run, float* cell, int depth,
                       Int8GradOut out) {
  GradAmaxSink amax(cell, depth);
  run(amax);
  GradQuantizeSink quantize(cell, depth, amax.amax(), out.q);
  run(quantize);
  *out.scale = quantize.scale();
}

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_GRAD_INT8_GRAD_H_
