// tflm_train._native.testing: the raw reference training kernels on numpy
// arrays, for the gradient tests (tests/test_grad_kernels.py). Parameters
// (activation range, scales, padding mode) are passed explicitly; the
// returned arrays are copies, inputs are never modified.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "ops_cc/core/float_math.h"
#include "ops_cc/core/shape.h"
#include "ops_cc/kernels/grad/activation_grad.h"
#include "ops_cc/kernels/grad/broadcast_grad.h"
#include "ops_cc/kernels/grad/conv_grad.h"
#include "ops_cc/kernels/grad/depthwise_conv_grad.h"
#include "ops_cc/kernels/grad/elementwise_grad.h"
#include "ops_cc/kernels/grad/fully_connected_grad.h"
#include "ops_cc/kernels/grad/imprint.h"
#include "ops_cc/kernels/grad/loss.h"
#include "ops_cc/kernels/grad/optimizer_schedule.h"
#include "ops_cc/kernels/grad/pooling_grad.h"
#include "ops_cc/kernels/grad/routing_grad.h"
#include "ops_cc/kernels/grad/sgd_update.h"
#include "ops_cc/kernels/lstm.h"
#include "ops_cc/kernels/strided_slice.h"
#include "ops_cc/core/window.h"
#include "ops_cc/ops/forward_ops.h"

namespace py = pybind11;

namespace tflm_train {
namespace python {
namespace {

template <typename T>
using Array = py::array_t<T, py::array::c_style | py::array::forcecast>;

Shape ShapeOf(const py::array& a) {
  if (a.ndim() > kMaxRank) throw std::invalid_argument("rank above 6");
  Shape s;
  s.rank = static_cast<int>(a.ndim());
  for (int d = 0; d < s.rank; ++d) s.dims[d] = static_cast<int32_t>(a.shape(d));
  return s;
}

// dy masked by the int8 y and its activation range [act_min, act_max].
OutputGrad Masked(const float* dy, const int8_t* y, int act_min, int act_max) {
  OutputGrad g;
  g.dy = dy;
  g.q_y = y;
  g.range = ActivationMask{act_min, act_max};
  return g;
}

Shape ShapeOf(const std::vector<int>& dims) {
  if (dims.size() > kMaxRank) throw std::invalid_argument("rank above 6");
  Shape s;
  s.rank = static_cast<int>(dims.size());
  for (int d = 0; d < s.rank; ++d) s.dims[d] = dims[d];
  return s;
}

std::vector<py::ssize_t> DimsOf(const Shape& s) {
  return std::vector<py::ssize_t>(s.dims, s.dims + s.rank);
}

template <typename T>
Array<T> Copy(const Array<T>& a) {
  Array<T> out(std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()));
  std::copy(a.data(), a.data() + a.size(), out.mutable_data());
  return out;
}

void Require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument(what);
}

Rounding ToRounding(int rounding) {
  Require(rounding == 0 || rounding == 1, "rounding must be 0 or 1");
  return rounding == 1 ? Rounding::kStochastic : Rounding::kNearest;
}

// Per-channel scales: one (broadcast) or `channels`.
std::vector<float> ExpandScales(const Array<float>& scales, int channels) {
  Require(scales.size() == 1 || scales.size() == channels,
          "need 1 or " + std::to_string(channels) + " filter scales");
  std::vector<float> out(channels);
  for (int c = 0; c < channels; ++c)
    out[c] = scales.data()[scales.size() == 1 ? 0 : c];
  return out;
}

// The update configuration shared by the three layer kernels; owns copies of
// the parameters it updates.
struct UpdateSetup {
  std::optional<Array<int32_t>> bias;
  std::vector<float> bias_scales;
  std::vector<int32_t> channels;
  uint32_t rng_state = 0;
  LayerUpdate update;

  UpdateSetup(int out_channels, float x_scale,
              const std::vector<float>& weight_scales,
              const std::optional<Array<int32_t>>& bias_in,
              bool update_weights, bool update_bias,
              const std::optional<std::vector<int32_t>>& channels_in,
              float weight_lr, float bias_lr, bool qas, int rounding,
              uint32_t rng) {
    rng_state = rng;
    update.update_weights = update_weights;
    if (channels_in) {
      channels = *channels_in;
      for (size_t k = 0; k < channels.size(); ++k)
        Require(channels[k] >= 0 && channels[k] < out_channels &&
                    (k == 0 || channels[k] > channels[k - 1]),
                "channels must be increasing and in range");
      update.channels = channels.data();
      update.num_channels = static_cast<int>(channels.size());
    }
    update.weight_lr = weight_lr;
    if (bias_in) {
      Require(bias_in->size() == out_channels, "bias size != channels");
      bias = Copy(*bias_in);
    }
    bias_scales.resize(out_channels);
    for (int c = 0; c < out_channels; ++c)
      bias_scales[c] = x_scale * weight_scales[c];
    if (update_bias) {
      Require(bias.has_value(), "update_bias needs a bias");
      update.bias = bias->mutable_data();
      update.bias_scales = bias_scales.data();
    }
    update.bias_lr = bias_lr;
    update.rule.qas = qas;
    update.rule.rounding = ToRounding(rounding);
    update.rule.rng_state = &rng_state;
  }
};

py::dict ConvLikeGrad(bool depthwise, const Array<int8_t>& x, float x_scale,
                      int x_zero_point, const Array<int8_t>& filter,
                      const Array<float>& filter_scales, const Array<int8_t>& y,
                      const Array<float>& dy, int act_min, int act_max,
                      std::array<int, 2> stride, std::array<int, 2> dilation,
                      int padding, const std::optional<Array<int32_t>>& bias,
                      bool update_weights, bool update_bias,
                      const std::optional<std::vector<int32_t>>& channels,
                      float weight_lr, float bias_lr, bool qas, int rounding,
                      uint32_t rng_state, bool compute_dx) {
  Require(x.ndim() == 4 && filter.ndim() == 4 && y.ndim() == 4,
          "x, filter and y must have rank 4");
  Require(dy.ndim() == 4 && std::equal(dy.shape(), dy.shape() + 4, y.shape()),
          "dy must have the shape of y");
  ConvGradArgs a;
  a.stride_h = stride[0];
  a.stride_w = stride[1];
  a.dilation_h = dilation[0];
  a.dilation_w = dilation[1];
  a.x_shape = ShapeOf(x);
  a.filter_shape = ShapeOf(filter);
  a.y_shape = ShapeOf(y);
  const int out_c = a.y_shape.dims[3];
  if (depthwise)
    Require(a.filter_shape.dims[0] == 1 && a.filter_shape.dims[3] == out_c &&
                a.x_shape.dims[3] > 0 && out_c % a.x_shape.dims[3] == 0,
            "depthwise filter must be [1, KH, KW, C * multiplier]");
  else
    Require(a.filter_shape.dims[0] == out_c &&
                a.filter_shape.dims[3] == a.x_shape.dims[3],
            "filter must be [O, KH, KW, I]");
  int out_h = 0, out_w = 0;
  Require(ComputeWindowGeometry(padding, a.x_shape.dims[1],
                                a.filter_shape.dims[1], a.stride_h,
                                a.dilation_h, &out_h, &a.pad_h) &&
              ComputeWindowGeometry(padding, a.x_shape.dims[2],
                                    a.filter_shape.dims[2], a.stride_w,
                                    a.dilation_w, &out_w, &a.pad_w) &&
              out_h == a.y_shape.dims[1] && out_w == a.y_shape.dims[2] &&
              a.y_shape.dims[0] == a.x_shape.dims[0],
          "y shape does not match x, filter, strides and padding");
  a.input_scale = x_scale;
  a.input_zero_point = x_zero_point;
  a.x = x.data();
  a.g = Masked(dy.data(), y.data(), act_min, act_max);
  const std::vector<float> scales = ExpandScales(filter_scales, out_c);
  a.filter_scales = scales.data();
  Array<int8_t> new_filter = Copy(filter);
  a.filter = new_filter.mutable_data();

  // Full gradients for the tests, from the unchanged weights.
  Array<float> filter_grad(DimsOf(a.filter_shape));
  Array<float> bias_grad(std::vector<py::ssize_t>{out_c});
  float* fg = filter_grad.mutable_data();
  for (int o = 0; o < a.filter_shape.dims[0]; ++o)
    for (int ky = 0; ky < a.filter_shape.dims[1]; ++ky)
      for (int kx = 0; kx < a.filter_shape.dims[2]; ++kx)
        for (int i = 0; i < a.filter_shape.dims[3]; ++i)
          *fg++ = depthwise ? DepthwiseConvFilterGrad(a, ky, kx, i)
                            : ConvFilterGrad(a, o, ky, kx, i);
  for (int o = 0; o < out_c; ++o)
    bias_grad.mutable_data()[o] = ConvBiasGrad(a, o);

  UpdateSetup setup(out_c, x_scale, scales, bias, update_weights, update_bias,
                    channels, weight_lr, bias_lr, qas, rounding, rng_state);
  std::optional<Array<float>> dx;
  if (compute_dx) dx.emplace(DimsOf(a.x_shape));
  float* dx_data = dx ? dx->mutable_data() : nullptr;
  if (depthwise)
    DepthwiseConvGrad(a, dx_data, setup.update);
  else
    ConvGrad(a, dx_data, setup.update);

  py::dict out;
  out["dx"] = dx ? py::object(*dx) : py::none();
  out["filter"] = new_filter;
  out["bias"] = setup.bias ? py::object(*setup.bias) : py::none();
  out["rng_state"] = setup.rng_state;
  out["filter_grad"] = filter_grad;
  out["bias_grad"] = bias_grad;
  return out;
}

py::dict FullyConnectedGradPy(
    const Array<int8_t>& x, float x_scale, int x_zero_point,
    const Array<int8_t>& filter, const Array<float>& filter_scales,
    const Array<int8_t>& y, const Array<float>& dy, int act_min, int act_max,
    const std::optional<Array<int32_t>>& bias, bool update_weights,
    bool update_bias, const std::optional<std::vector<int32_t>>& channels,
    float weight_lr, float bias_lr, bool qas, int rounding, uint32_t rng_state,
    bool compute_dx) {
  Require(filter.ndim() == 2, "filter must be [O, I]");
  FullyConnectedGradArgs a;
  a.output_depth = static_cast<int>(filter.shape(0));
  a.input_depth = static_cast<int>(filter.shape(1));
  Require(a.input_depth > 0 && x.size() % a.input_depth == 0,
          "x size must be a multiple of I");
  a.batches = static_cast<int>(x.size() / a.input_depth);
  Require(y.size() == a.batches * a.output_depth && dy.size() == y.size(),
          "y and dy must have B * O elements");
  a.input_scale = x_scale;
  a.input_zero_point = x_zero_point;
  a.x = x.data();
  a.g = Masked(dy.data(), y.data(), act_min, act_max);
  const std::vector<float> scales = ExpandScales(filter_scales, a.output_depth);
  a.filter_scales = scales.data();
  Array<int8_t> new_filter = Copy(filter);
  a.filter = new_filter.mutable_data();

  Array<float> filter_grad(
      std::vector<py::ssize_t>{a.output_depth, a.input_depth});
  Array<float> bias_grad(std::vector<py::ssize_t>{a.output_depth});
  for (int o = 0; o < a.output_depth; ++o) {
    for (int i = 0; i < a.input_depth; ++i)
      filter_grad.mutable_data()[o * a.input_depth + i] =
          FullyConnectedFilterGrad(a, o, i);
    bias_grad.mutable_data()[o] = FullyConnectedBiasGrad(a, o);
  }

  UpdateSetup setup(a.output_depth, x_scale, scales, bias, update_weights,
                    update_bias, channels, weight_lr, bias_lr, qas, rounding,
                    rng_state);
  std::optional<Array<float>> dx;
  if (compute_dx)
    dx.emplace(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
  FullyConnectedGrad(a, dx ? dx->mutable_data() : nullptr, setup.update);

  py::dict out;
  out["dx"] = dx ? py::object(*dx) : py::none();
  out["filter"] = new_filter;
  out["bias"] = setup.bias ? py::object(*setup.bias) : py::none();
  out["rng_state"] = setup.rng_state;
  out["filter_grad"] = filter_grad;
  out["bias_grad"] = bias_grad;
  return out;
}

// Applies the SGD rule elementwise in order; returns (new q, rng state).
template <typename T>
py::tuple SgdUpdatePy(const Array<T>& q, const Array<float>& grad, float lr,
                      const Array<float>& scale, bool qas, int rounding,
                      uint32_t rng_state) {
  Require(grad.size() == q.size(), "grad must match q");
  Require(scale.size() == 1 || scale.size() == q.size(),
          "scale must be scalar or match q");
  SgdRule rule;
  rule.qas = qas;
  rule.rounding = ToRounding(rounding);
  rule.rng_state = &rng_state;
  Array<T> out = Copy(q);
  T* data = out.mutable_data();
  for (py::ssize_t k = 0; k < q.size(); ++k) {
    const float s = scale.data()[scale.size() == 1 ? 0 : k];
    if constexpr (sizeof(T) == 1)
      data[k] = SgdUpdateInt8(data[k], grad.data()[k], lr, s, rule);
    else
      data[k] = SgdUpdateInt32(data[k], grad.data()[k], lr, s, rule);
  }
  return py::make_tuple(out, rng_state);
}

PoolGradParams PoolParams(const Shape& x, const Shape& y,
                          std::array<int, 2> stride, std::array<int, 2> filter,
                          int padding) {
  Require(x.rank == 4 && y.rank == 4 && x.dims[0] == y.dims[0] &&
              x.dims[3] == y.dims[3],
          "x and y must be [N, H, W, C] with equal N and C");
  PoolGradParams p;
  p.stride_h = stride[0];
  p.stride_w = stride[1];
  p.filter_h = filter[0];
  p.filter_w = filter[1];
  int out_h = 0, out_w = 0;
  Require(ComputeWindowGeometry(padding, x.dims[1], p.filter_h, p.stride_h, 1,
                                &out_h, &p.pad_h) &&
              ComputeWindowGeometry(padding, x.dims[2], p.filter_w,
                                    p.stride_w, 1, &out_w, &p.pad_w) &&
              out_h == y.dims[1] && out_w == y.dims[2],
          "y shape does not match x, window and padding");
  return p;
}

}  // namespace

void BindGradKernels(py::module_& m) {
  m.def(
      "softmax_cross_entropy",
      [](const Array<float>& logits, int32_t label, bool want_grad) {
        Require(logits.size() >= 1, "need at least one logit");
        const int n = static_cast<int>(logits.size());
        Array<float> grad(std::vector<py::ssize_t>{n});
        const float loss = SoftmaxCrossEntropy(
            logits.data(), n, label, want_grad ? grad.mutable_data() : nullptr);
        return py::make_tuple(loss, want_grad ? py::object(grad) : py::none());
      },
      py::arg("logits"), py::arg("label"), py::arg("want_grad") = true,
      "(loss, p - onehot or None) of float logits (flattened).");

  auto regression_loss = [&m](const char* name, auto loss_function) {
    m.def(
        name,
        [loss_function](const Array<float>& values, const Array<float>& targets,
                        bool want_grad) {
          Require(values.size() >= 1 && values.size() == targets.size(),
                  "values and targets need the same, non-zero size");
          const py::ssize_t n = values.size();
          Array<float> grad(std::vector<py::ssize_t>{n});
          const float loss =
              loss_function(values.data(), targets.data(), n,
                            want_grad ? grad.mutable_data() : nullptr);
          return py::make_tuple(loss,
                                want_grad ? py::object(grad) : py::none());
        },
        py::arg("values"), py::arg("targets"), py::arg("want_grad") = true,
        "(loss, gradient or None) over flattened values.");
  };
  regression_loss("mean_squared_error", MeanSquaredError);
  regression_loss("mean_absolute_error", MeanAbsoluteError);

  auto conv_like = [&m](const char* name, bool depthwise) {
    m.def(
        name,
        [depthwise](const Array<int8_t>& x, float x_scale, int x_zero_point,
                    const Array<int8_t>& filter,
                    const Array<float>& filter_scales, const Array<int8_t>& y,
                    const Array<float>& dy, int act_min, int act_max,
                    std::array<int, 2> stride, std::array<int, 2> dilation,
                    int padding, std::optional<Array<int32_t>> bias,
                    bool update_weights, bool update_bias,
                    std::optional<std::vector<int32_t>> channels,
                    float weight_lr, float bias_lr, bool qas, int rounding,
                    uint32_t rng_state, bool compute_dx) {
          return ConvLikeGrad(depthwise, x, x_scale, x_zero_point, filter,
                              filter_scales, y, dy, act_min, act_max, stride,
                              dilation, padding, bias, update_weights,
                              update_bias, channels, weight_lr, bias_lr, qas,
                              rounding, rng_state, compute_dx);
        },
        py::arg("x"), py::arg("x_scale"), py::arg("x_zero_point"),
        py::arg("filter"), py::arg("filter_scales"), py::arg("y"),
        py::arg("dy"), py::arg("act_min") = -128, py::arg("act_max") = 127,
        py::arg("stride") = std::array<int, 2>{1, 1},
        py::arg("dilation") = std::array<int, 2>{1, 1},
        py::arg("padding") = 0, py::arg("bias") = py::none(),
        py::arg("update_weights") = false, py::arg("update_bias") = false,
        py::arg("channels") = py::none(), py::arg("weight_lr") = 0.0f,
        py::arg("bias_lr") = 0.0f, py::arg("qas") = false,
        py::arg("rounding") = 0, py::arg("rng_state") = 0u,
        py::arg("compute_dx") = true,
        "Fused backward + update; dict with dx, filter, bias, rng_state and "
        "the full filter_grad / bias_grad.");
  };
  conv_like("conv_grad", false);
  conv_like("depthwise_conv_grad", true);

  m.def("fully_connected_grad", &FullyConnectedGradPy, py::arg("x"),
        py::arg("x_scale"), py::arg("x_zero_point"), py::arg("filter"),
        py::arg("filter_scales"), py::arg("y"), py::arg("dy"),
        py::arg("act_min") = -128, py::arg("act_max") = 127,
        py::arg("bias") = py::none(), py::arg("update_weights") = false,
        py::arg("update_bias") = false, py::arg("channels") = py::none(),
        py::arg("weight_lr") = 0.0f, py::arg("bias_lr") = 0.0f,
        py::arg("qas") = false, py::arg("rounding") = 0,
        py::arg("rng_state") = 0u, py::arg("compute_dx") = true);

  m.def("sgd_update_int8", &SgdUpdatePy<int8_t>, py::arg("q"), py::arg("grad"),
        py::arg("lr"), py::arg("scale"), py::arg("qas") = false,
        py::arg("rounding") = 0, py::arg("rng_state") = 0u);
  m.def("sgd_update_int32", &SgdUpdatePy<int32_t>, py::arg("q"),
        py::arg("grad"), py::arg("lr"), py::arg("scale"),
        py::arg("qas") = false, py::arg("rounding") = 0,
        py::arg("rng_state") = 0u);

  m.def(
      "add_grad",
      [](const Array<float>& dy, const Array<int8_t>& y, int act_min,
         int act_max, const std::optional<Array<uint8_t>>& mask_bits) {
        Require(dy.size() == y.size(), "dy must match y");
        Array<float> dx(
            std::vector<py::ssize_t>(y.shape(), y.shape() + y.ndim()));
        OutputGrad g = Masked(dy.data(), y.data(), act_min, act_max);
        if (mask_bits) {
          Require(mask_bits->size() == (y.size() + 7) / 8,
                  "mask_bits must have ceil(y.size / 8) bytes");
          g.q_y = nullptr;
          g.bits = mask_bits->data();
        }
        AddGrad(g, y.size(), dx.mutable_data(), nullptr);
        return dx;
      },
      py::arg("dy"), py::arg("y"), py::arg("act_min") = -128,
      py::arg("act_max") = 127, py::arg("mask_bits") = py::none(),
      "dx = mask * dy; mask from y and [act_min, act_max], or from "
      "mask_bits (TFLMTRAIN_PACK_MASK's packing) when given.");

  m.def(
      "pack_mask",
      [](const Array<int8_t>& y, int act_min, int act_max) {
        Array<uint8_t> bits(std::vector<py::ssize_t>{(y.size() + 7) / 8});
        PackMask(y.data(), y.size(), ActivationMask{act_min, act_max},
                 bits.mutable_data());
        return bits;
      },
      py::arg("y"), py::arg("act_min"), py::arg("act_max"),
      "TFLMTRAIN_PACK_MASK: bit k (LSB first in byte k / 8) = "
      "act_min < y[k] < act_max.");

  m.def(
      "add_grad_broadcast",
      [](const Array<float>& dy, const Array<int8_t>& y,
         std::vector<int> x_shape, int act_min, int act_max) {
        BroadcastWalk walk;
        const Shape xs = ShapeOf(x_shape);
        Require(MakeBroadcastWalk(xs, ShapeOf(y), ShapeOf(y), &walk),
                "x does not broadcast to y");
        Require(dy.size() == y.size(), "dy must match y");
        Array<float> dx(DimsOf(xs));
        BinaryBroadcastGrad(walk, Masked(dy.data(), y.data(), act_min, act_max),
                            BinaryGradArgs{}, dx.mutable_data(), nullptr);
        return dx;
      },
      py::arg("dy"), py::arg("y"), py::arg("x_shape"),
      py::arg("act_min") = -128, py::arg("act_max") = 127,
      "The gradient of a broadcast ADD operand of shape x_shape.");

  m.def(
      "average_pool_grad",
      [](const Array<float>& dy, const Array<int8_t>& y,
         std::vector<int> x_shape, std::array<int, 2> stride,
         std::array<int, 2> filter, int padding, int act_min, int act_max) {
        const Shape xs = ShapeOf(x_shape);
        Require(dy.size() == y.size(), "dy must match y");
        const PoolGradParams p = PoolParams(xs, ShapeOf(y), stride, filter,
                                            padding);
        Array<float> dx(DimsOf(xs));
        AveragePoolGrad(p, ShapeOf(y),
                        Masked(dy.data(), y.data(), act_min, act_max), xs,
                        dx.mutable_data());
        return dx;
      },
      py::arg("dy"), py::arg("y"), py::arg("x_shape"), py::arg("stride"),
      py::arg("filter"), py::arg("padding"), py::arg("act_min") = -128,
      py::arg("act_max") = 127);

  m.def(
      "max_pool_grad",
      [](const Array<float>& dy, const Array<int8_t>& y, const Array<int8_t>& x,
         std::array<int, 2> stride, std::array<int, 2> filter, int padding,
         int act_min, int act_max) {
        const Shape xs = ShapeOf(x);
        Require(dy.size() == y.size(), "dy must match y");
        const PoolGradParams p = PoolParams(xs, ShapeOf(y), stride, filter,
                                            padding);
        Array<float> dx(DimsOf(xs));
        MaxPoolGrad(p, ShapeOf(y), Masked(dy.data(), y.data(), act_min, act_max),
                    xs, x.data(), dx.mutable_data());
        return dx;
      },
      py::arg("dy"), py::arg("y"), py::arg("x"), py::arg("stride"),
      py::arg("filter"), py::arg("padding"), py::arg("act_min") = -128,
      py::arg("act_max") = 127);

  m.def(
      "mean_grad",
      [](const Array<float>& dy, std::vector<int> x_shape) {
        const Shape xs = ShapeOf(x_shape);
        Require(xs.rank == 4 && dy.size() == int64_t{xs.dims[0]} * xs.dims[3],
                "x must be [N, H, W, C] and dy must have N * C elements");
        Array<float> dx(DimsOf(xs));
        MeanGrad(dy.data(), xs, dx.mutable_data());
        return dx;
      },
      py::arg("dy"), py::arg("x_shape"));

  m.def(
      "pad_grad",
      [](const Array<float>& dy, const Array<int32_t>& paddings,
         std::vector<int> x_shape) {
        const Shape xs = ShapeOf(x_shape);
        const Shape ys = ShapeOf(dy);
        Require(ys.rank == xs.rank && paddings.size() == 2 * xs.rank,
                "paddings must be [rank, 2]");
        int32_t before[kMaxRank] = {0};
        for (int d = 0; d < xs.rank; ++d) {
          before[d] = paddings.data()[2 * d];
          Require(before[d] >= 0 && paddings.data()[2 * d + 1] >= 0 &&
                      xs.dims[d] + before[d] + paddings.data()[2 * d + 1] ==
                          ys.dims[d],
                  "paddings do not match the shapes");
        }
        Array<float> dx(DimsOf(xs));
        PadGrad(ys, dy.data(), static_cast<int>(sizeof(float)), before, xs,
                dx.mutable_data());
        return dx;
      },
      py::arg("dy"), py::arg("paddings"), py::arg("x_shape"));

  m.def(
      "reshape_grad",
      [](const Array<float>& dy, std::vector<int> x_shape) {
        const Shape xs = ShapeOf(x_shape);
        Require(xs.FlatSize() == dy.size(), "sizes differ");
        Array<float> dx(DimsOf(xs));
        ReshapeGrad(dy.data(), dy.size(), static_cast<int>(sizeof(float)),
                    dx.mutable_data());
        return dx;
      },
      py::arg("dy"), py::arg("x_shape"));

  m.def(
      "grad_sum",
      [](const std::vector<Array<float>>& grads) {
        Require(!grads.empty(), "need at least one gradient");
        std::vector<const float*> pointers;
        for (const auto& g : grads) {
          Require(g.size() == grads[0].size(), "gradients differ in size");
          pointers.push_back(g.data());
        }
        Array<float> out(std::vector<py::ssize_t>(
            grads[0].shape(), grads[0].shape() + grads[0].ndim()));
        GradSum(pointers.data(), static_cast<int>(pointers.size()),
                grads[0].size(), out.mutable_data());
        return out;
      },
      py::arg("grads"));

  m.def(
      "lr_factor",
      [](int kind, int warmup_steps, int decay_steps, float alpha,
         float decay_rate, int32_t t) {
        LrSchedule s;
        s.kind = static_cast<ScheduleKind>(kind);
        s.warmup_steps = warmup_steps;
        s.decay_steps = decay_steps;
        s.alpha = alpha;
        s.decay_rate = decay_rate;
        return LrFactor(s, t);
      },
      py::arg("kind"), py::arg("warmup_steps"), py::arg("decay_steps"),
      py::arg("alpha"), py::arg("decay_rate"), py::arg("t"));
  m.def(
      "imprint",
      [](const Array<int8_t>& x, int32_t x_zero_point, float x_scale, int shots,
         const Array<int8_t>& filter, const Array<int32_t>& bias,
         const Array<int32_t>& counts, const Array<float>& sums, int32_t label) {
        Require(filter.ndim() == 2, "filter must be [N, d]");
        const int n = static_cast<int>(filter.shape(0));
        const int d = static_cast<int>(filter.shape(1));
        Require(x.size() == d && bias.size() == n && counts.size() == n &&
                    sums.size() == static_cast<py::ssize_t>(n) * d,
                "x [d], bias [N], counts [N], sums [N, d]");
        ImprintArgs a;
        a.num_classes = n;
        a.depth = d;
        a.x = x.data();
        a.x_zero_point = x_zero_point;
        a.x_scale = x_scale;
        a.shots = shots;
        Array<int8_t> f = Copy(filter);
        Array<int32_t> b = Copy(bias);
        Array<int32_t> k = Copy(counts);
        Array<float> sm = Copy(sums);
        a.filter = f.mutable_data();
        a.bias = b.mutable_data();
        a.counts = k.mutable_data();
        a.sums = sm.mutable_data();
        std::vector<float> mean(static_cast<size_t>(d));
        a.mean_scratch = mean.data();
        std::vector<float> scales(static_cast<size_t>(n), 1.0f);
        a.filter_scales = scales.data();
        float range[2] = {0.0f, 0.0f};
        a.output_range = range;
        const bool imprinted = ImprintSample(a, label);
        return py::make_tuple(imprinted, f, b, k, sm);
      },
      "(imprinted, filter, bias, counts, sums) after ImprintSample.");
  m.def(
      "lstm_sigmoid",
      [](Array<int16_t> x) {
        Array<int16_t> y(x.request().shape);
        ref::LstmSigmoid(static_cast<int>(x.size()), x.data(), y.mutable_data());
        return y;
      },
      py::arg("x"), "The LSTM's int16 sigmoid: Q3.12 -> Q0.15.");
  m.def(
      "lstm_tanh",
      [](Array<int16_t> x, int scale_log2) {
        if (!LstmTanhSupportsScale(scale_log2))
          throw std::invalid_argument("scale_log2 out of range");
        Array<int16_t> y(x.request().shape);
        ref::LstmTanh(scale_log2, static_cast<int>(x.size()), x.data(),
                      y.mutable_data());
        return y;
      },
      py::arg("x"), py::arg("scale_log2"),
      "The LSTM's int16 tanh: scale 2^scale_log2 -> Q0.15.");

  // ---- activations, MUL and the routing ops (tests/test_grad_kernels.py)

  m.def(
      "hard_swish_grad",
      [](const Array<float>& dy, const Array<int8_t>& x, float x_scale,
         int x_zero_point, const Array<int8_t>& y) {
        Require(dy.size() == y.size() && x.size() == y.size(),
                "dy, x and y must have one size");
        Array<float> dx(DimsOf(ShapeOf(y)));
        HardSwishGrad(dy.data(), x.data(), Dequantizer{x_scale, x_zero_point},
                      y.data(), ActivationMask{}, y.size(), dx.mutable_data());
        return dx;
      },
      py::arg("dy"), py::arg("x"), py::arg("x_scale"), py::arg("x_zero_point"),
      py::arg("y"));
  m.def("hard_swish_derivative",
        py::vectorize([](float v) { return HardSwishDerivative(v); }));

  auto from_output = [&m](const char* name, auto grad) {
    m.def(
        name,
        [grad](const Array<float>& dy, const Array<int8_t>& y, float y_scale,
               int y_zero_point) {
          Require(dy.size() == y.size(), "dy must match y");
          Array<float> dx(DimsOf(ShapeOf(y)));
          grad(dy.data(), y.data(), Dequantizer{y_scale, y_zero_point},
               ActivationMask{}, y.size(), dx.mutable_data());
          return dx;
        },
        py::arg("dy"), py::arg("y"), py::arg("y_scale"),
        py::arg("y_zero_point"));
  };
  from_output("logistic_grad", LogisticGrad);
  from_output("tanh_grad", TanhGrad);

  m.def(
      "leaky_relu_grad",
      [](const Array<float>& dy, const Array<int8_t>& x, int x_zero_point,
         float alpha, const Array<int8_t>& y) {
        Require(dy.size() == y.size() && x.size() == y.size(),
                "dy, x and y must have one size");
        Array<float> dx(DimsOf(ShapeOf(y)));
        LeakyReluGrad(dy.data(), x.data(), x_zero_point, alpha, y.data(),
                      ActivationMask{}, y.size(), dx.mutable_data());
        return dx;
      },
      py::arg("dy"), py::arg("x"), py::arg("x_zero_point"), py::arg("alpha"),
      py::arg("y"));

  m.def(
      "mul_grad",
      [](const Array<float>& dy, const Array<int8_t>& y,
         const Array<int8_t>& a, float a_scale, int a_zero_point,
         const Array<int8_t>& b, float b_scale, int b_zero_point, int act_min,
         int act_max) {
        BroadcastWalk walk;
        Require(MakeBroadcastWalk(ShapeOf(a), ShapeOf(b), ShapeOf(y), &walk),
                "a and b do not broadcast to y");
        Require(dy.size() == y.size(), "dy must match y");
        BinaryGradArgs args;
        args.a = a.data();
        args.a_real = Dequantizer{a_scale, a_zero_point};
        args.b = b.data();
        args.b_real = Dequantizer{b_scale, b_zero_point};
        Array<float> da(DimsOf(ShapeOf(a)));
        Array<float> db(DimsOf(ShapeOf(b)));
        BinaryBroadcastGrad(walk, Masked(dy.data(), y.data(), act_min, act_max),
                            args, da.mutable_data(), db.mutable_data());
        return py::make_tuple(da, db);
      },
      py::arg("dy"), py::arg("y"), py::arg("a"), py::arg("a_scale"),
      py::arg("a_zero_point"), py::arg("b"), py::arg("b_scale"),
      py::arg("b_zero_point"), py::arg("act_min") = -128,
      py::arg("act_max") = 127, "(a/grad, b/grad) of y = a * b.");

  m.def(
      "concatenation_grad",
      [](const Array<float>& dy, int axis,
         const std::vector<std::vector<int>>& x_shapes) {
        const Shape ys = ShapeOf(dy);
        Require(axis >= 0 && axis < ys.rank, "axis out of range");
        py::list out;
        int32_t offset = 0;
        for (const auto& dims : x_shapes) {
          const Shape xs = ShapeOf(dims);
          Require(xs.rank == ys.rank, "ranks differ");
          for (int d = 0; d < ys.rank; ++d)
            Require(d == axis || xs.dims[d] == ys.dims[d], "shapes differ");
          Require(offset + xs.dims[axis] <= ys.dims[axis], "too wide");
          Array<float> dx(DimsOf(xs));
          ConcatenationGrad(ys, dy.data(), axis, offset, xs, dx.mutable_data());
          offset += xs.dims[axis];
          out.append(dx);
        }
        return out;
      },
      py::arg("dy"), py::arg("axis"), py::arg("x_shapes"));

  m.def(
      "transpose_grad",
      [](const Array<float>& dy, std::vector<int32_t> perm) {
        const Shape ys = ShapeOf(dy);
        Require(static_cast<int>(perm.size()) == ys.rank, "perm size != rank");
        Shape xs;
        xs.rank = ys.rank;
        std::vector<bool> seen(perm.size());
        for (int d = 0; d < ys.rank; ++d) {
          Require(perm[d] >= 0 && perm[d] < ys.rank && !seen[perm[d]],
                  "not a permutation");
          seen[perm[d]] = true;
          xs.dims[perm[d]] = ys.dims[d];
        }
        Array<float> dx(DimsOf(xs));
        TransposeGrad(ys, dy.data(), perm.data(), xs, dx.mutable_data());
        return dx;
      },
      py::arg("dy"), py::arg("perm"));

  m.def(
      "strided_slice_grad",
      [](const Array<float>& dy, std::vector<int32_t> begin,
         std::vector<int32_t> end, std::vector<int32_t> strides,
         int begin_mask, int end_mask, int shrink_axis_mask,
         std::vector<int> x_shape) {
        const Shape xs = ShapeOf(x_shape);
        Require(xs.rank <= kMaxStridedSliceRank &&
                    static_cast<int>(begin.size()) == xs.rank &&
                    end.size() == begin.size() &&
                    strides.size() == begin.size(),
                "begin, end, strides need one entry per dimension (rank <= 4)");
        SliceBox box;
        box.rank = xs.rank;
        int64_t n = 1;
        for (int d = 0; d < xs.rank; ++d) {
          Require(strides[d] != 0, "stride 0");
          const SliceAxis a = ref::ResolveSliceAxis(
              xs.dims[d], begin[d], end[d], strides[d], (begin_mask >> d) & 1,
              (end_mask >> d) & 1, (shrink_axis_mask >> d) & 1);
          box.begin[d] = a.start;
          box.stride[d] = a.stride;
          box.count[d] = a.count;
          n *= a.count;
        }
        Require(n == dy.size(), "dy size != slice size");
        Array<float> dx(DimsOf(xs));
        StridedSliceGrad(box, dy.data(), xs, dx.mutable_data());
        return dx;
      },
      py::arg("dy"), py::arg("begin"), py::arg("end"), py::arg("strides"),
      py::arg("begin_mask"), py::arg("end_mask"), py::arg("shrink_axis_mask"),
      py::arg("x_shape"));
  m.def("cos_pi", py::vectorize([](float u) { return CosPi(u); }));
  m.def("sqrt_f", py::vectorize([](float x) { return SqrtF(x); }));
  m.def("exp_f", py::vectorize([](float x) { return ExpF(x); }));
  m.def("log_f", py::vectorize([](float x) { return LogF(x); }));
  m.def(
      "xorshift32_uniform",
      [](uint32_t state, int count) {
        Array<float> u(std::vector<py::ssize_t>{count});
        for (int k = 0; k < count; ++k)
          u.mutable_data()[k] = Xorshift32Uniform(&state);
        return py::make_tuple(u, state);
      },
      py::arg("state"), py::arg("count"),
      "(count uniforms in [0, 1), the final state).");
}

}  // namespace python
}  // namespace tflm_train
