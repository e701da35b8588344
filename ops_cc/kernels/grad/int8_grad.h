// Gradient tensors stored as int8 with a per-tensor dynamic scale (scheme
// "gradients": "int8", docs/format.md "int8 gradients").
//
// The real value of element k is q[k] * scale. The writer forms the scale
// from the float values v it computes (in the kernels' usual float order):
// amax = max |v| over the tensor, scale = amax / 127, inverse = 127 / amax
// (0 when amax is 0 or not finite), and q[k] in [-127, 127] by the
// scheme's "gradient_rounding":
//   nearest:    q[k] = round(v[k] * inverse), ties away from zero;
//   stochastic: q[k] = floor(v[k] * inverse + u[k]) clamped to [-127, 127],
//               u[k] in [0, 1) the next draw of the xorshift32 stream
//               (Xorshift32Uniform), exactly one draw per element written, in
//               the order the elements are written (k increasing), zeros
//               included; the floor is taken as a truncating int32 cast,
//               minus 1 where that is above the value (negative values).
// An all-zero tensor has scale 0 and q = 0 (stochastic: v * 0 + u floors to
// 0). A non-finite value makes amax (and so the scale) +inf or NaN and every
// q 0 (stochastic rounding still draws one number per element: the stream
// advances by the element count whatever the values), so readers see NaN
// where a float32 gradient would have carried the overflow.
//
// Only +, *, / and comparisons of single-precision floats and float -> int32
// casts: host and Cortex-M agree bit for bit.
#ifndef TFLM_TRAIN_KERNELS_GRAD_INT8_GRAD_H_
#define TFLM_TRAIN_KERNELS_GRAD_INT8_GRAD_H_

#include <cstdint>

#include "ops_cc/core/float_math.h"
#include "ops_cc/kernels/grad/rounding.h"

namespace tflm_train {

// How an int8 gradient writer rounds: nearest, or stochastic from the
// xorshift32 state *rng_state (advanced once per element written).
struct GradRounding {
  Rounding mode = Rounding::kNearest;
  uint32_t* rng_state = nullptr;  // required for kStochastic
};

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
  explicit GradQuantizer(float amax, GradRounding rounding = GradRounding())
      : scale_(amax / 127.0f), rounding_(rounding) {
    // amax - amax is 0 only for a finite amax.
    if (amax > 0.0f && amax - amax == 0.0f) inverse_ = 127.0f / amax;
  }
  float scale() const { return scale_; }

  // Round to nearest, ties away from zero.
  int8_t Nearest(float v) const {
    const float q = v * inverse_;  // |q| <= 127 up to rounding
    const float r = (q < 0.0f ? -q : q) + 0.5f;
    if (!(r < 127.5f)) return r == r ? (q < 0.0f ? -127 : 127) : 0;
    const int8_t magnitude = static_cast<int8_t>(static_cast<int32_t>(r));
    return q < 0.0f ? static_cast<int8_t>(-magnitude) : magnitude;
  }

  // floor(v * inverse + u) clamped to [-127, 127], for u in [0, 1); 0 when
  // that sum is NaN (a non-finite v: inverse is then 0).
  int8_t Stochastic(float v, float u) const {
    const float t = v * inverse_ + u;
    if (!(t > -127.0f)) return t == t ? -127 : 0;
    if (!(t < 127.0f)) return 127;
    int32_t floor = static_cast<int32_t>(t);  // truncates toward zero
    if (static_cast<float>(floor) > t) --floor;
    return static_cast<int8_t>(floor);
  }

  // q[k] = the rounding of value_at(k) for k in [0, n), in increasing k
  // (stochastic: one draw each, in that order). Index: int64_t for a
  // tensor, int for a cell (a 32-bit counter on a Cortex-M).
  template <typename Index, typename ValueAt>
  void Write(Index n, const ValueAt& value_at, int8_t* q) const {
    if (rounding_.mode == Rounding::kStochastic) {
      uint32_t* rng = rounding_.rng_state;
      for (Index k = 0; k < n; ++k) {
        const float v = value_at(k);
        q[k] = Stochastic(v, Xorshift32Uniform(rng));
      }
    } else {
      for (Index k = 0; k < n; ++k) q[k] = Nearest(value_at(k));
    }
  }

 private:
  float scale_ = 0.0f;
  float inverse_ = 0.0f;  // 127 / amax, 0 when amax is 0 or not finite
  GradRounding rounding_;
};

// An int8 gradient tensor being written: its values and its scale.
struct Int8GradOut {
  int8_t* q = nullptr;
  float* scale = nullptr;
  GradRounding rounding;
};

// Writes the n values value_at(0..n-1) as an int8 gradient: one pass for
// amax, one to quantize (value_at is evaluated twice per element and must
// return the same float both times).
template <typename ValueAt>
void WriteInt8Grad(int64_t n, const ValueAt& value_at, Int8GradOut out) {
  GradAmax amax;
  for (int64_t k = 0; k < n; ++k) amax.Add(value_at(k));
  const GradQuantizer quantize(amax.value(), out.rounding);
  quantize.Write(n, value_at, out.q);
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
  GradQuantizeSink(float* cell, int depth, float amax, int8_t* q,
                   GradRounding rounding = GradRounding())
      : cell_(cell), depth_(depth), quantize_(amax, rounding), q_(q) {}
  float* Begin(int64_t) { return cell_; }
  // Cells end in increasing order (input_grad.h): the elements are written,
  // and stochastic draws taken, in increasing element order.
  void End(int64_t cell) {
    const float* values = cell_;
    quantize_.Write(
        depth_, [values](int k) { return values[k]; }, q_ + cell * depth_);
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
  GradQuantizeSink quantize(cell, depth, amax.amax(), out.q, out.rounding);
  run(quantize);
  *out.scale = quantize.scale();
}

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_GRAD_INT8_GRAD_H_
