// The activation mask shared by the backward kernels, and the view of a
// layer's output gradient they read through it.
#ifndef TFLM_TRAIN_KERNELS_GRAD_GRAD_COMMON_H_
#define TFLM_TRAIN_KERNELS_GRAD_GRAD_COMMON_H_

#include <cstdint>

namespace tflm_train {

// Straight-through estimator of a clamped int8 output: the gradient passes
// where act_min < q_y < act_max and is zero elsewhere (a select, so a
// non-finite gradient at a masked position also becomes 0).
struct ActivationMask {
  int32_t act_min = -128;
  int32_t act_max = 127;

  bool Passes(int8_t q_y) const { return q_y > act_min && q_y < act_max; }
  float Apply(float grad, int8_t q_y) const {
    return Passes(q_y) ? grad : 0.0f;
  }
};

// The gradient g of a forward op's output as the backward kernels read it:
// g[k] = dy[k] where the output's activation mask passes, else 0. The mask
// comes from one of
//   * q_y: the int8 output itself, passing where range.Passes(q_y[k]);
//   * bits: the packed mask of TFLMTRAIN_PACK_MASK, bit k % 8 (LSB first) of
//     byte k / 8, 1 where the mask passes (the range was applied there);
//   * neither: no mask (the output layer, whose loss reads its real-valued
//     output, TFLMTRAIN_*_REAL_OUTPUT, instead of the clamped int8 one).
// dy is float32, or with dy_q set an int8 gradient (int8_grad.h) whose
// element i reads dy_q[i] * dy_scale.
// With broadcast_cells > 0, dy is the gradient of a spatial MEAN of the
// output: [N, C] for an output [N, H, W, C], broadcast_cells = H * W, and
// element k reads dy[n, c] / float(H * W), TFLMTRAIN_MEAN_GRAD's expression,
// so a MEAN gradient fused into the layer's gradient is bit-identical.
struct OutputGrad {
  const float* dy = nullptr;
  const int8_t* dy_q = nullptr;
  float dy_scale = 0.0f;
  const int8_t* q_y = nullptr;
  const uint8_t* bits = nullptr;
  ActivationMask range;
  int32_t broadcast_cells = 0;
  int32_t channels = 0;  // C, when broadcast_cells > 0

  bool Passes(int64_t k) const {
    if (q_y != nullptr) return range.Passes(q_y[k]);
    if (bits != nullptr) return (bits[k >> 3] >> (k & 7)) & 1;
    return true;
  }
  float DyAt(int64_t i) const {
    return dy_q != nullptr ? static_cast<float>(dy_q[i]) * dy_scale : dy[i];
  }
  float Dy(int64_t k) const {
    if (broadcast_cells == 0) return DyAt(k);
    return DyAt(BroadcastIndex(k)) / static_cast<float>(broadcast_cells);
  }
  // The dy index element k reads when broadcast_cells > 0: n * C + c.
  int64_t BroadcastIndex(int64_t k) const {
    const int64_t per_batch = static_cast<int64_t>(broadcast_cells) * channels;
    // In 32 bits when k fits (always on a microcontroller, whose 64-bit
    // division is a library call).
    if ((k >> 31) == 0 && (per_batch >> 31) == 0) {
      const uint32_t k32 = static_cast<uint32_t>(k);
      return k32 / static_cast<uint32_t>(per_batch) * channels +
             k32 % static_cast<uint32_t>(channels);
    }
    return k / per_batch * channels + k % channels;
  }
  float At(int64_t k) const { return Passes(k) ? Dy(k) : 0.0f; }
  // Passes(k0 + j) as bit j, for j < n <= 25 (one read of the packed mask
  // instead of one per element).
  uint32_t PassBits(int64_t k0, int n) const {
    if (q_y != nullptr) {
      uint32_t pass = 0;
      for (int j = 0; j < n; ++j)
        pass |= static_cast<uint32_t>(range.Passes(q_y[k0 + j])) << j;
      return pass;
    }
    const uint32_t all = n == 32 ? ~0u : (1u << n) - 1;
    if (bits == nullptr) return all;
    const int shift = static_cast<int>(k0 & 7);
    const uint8_t* p = bits + (k0 >> 3);
    uint32_t word = 0;
    for (int b = 0; b * 8 < shift + n; ++b)
      word |= static_cast<uint32_t>(p[b]) << (8 * b);
    return (word >> shift) & all;
  }
  // out[j] = At(k0 + j) for j < n, the mask read 24 elements at a time.
  void Values(int64_t k0, int64_t n, float* out) const {
    if (broadcast_cells > 0) {
      for (int64_t j = 0; j < n; ++j) out[j] = At(k0 + j);
      return;
    }
    for (int64_t j0 = 0; j0 < n; j0 += 24) {
      const int len = n - j0 < 24 ? static_cast<int>(n - j0) : 24;
      const uint32_t pass = PassBits(k0 + j0, len);
      for (int j = 0; j < len; ++j)
        out[j0 + j] = (pass >> j) & 1 ? DyAt(k0 + j0 + j) : 0.0f;
    }
  }
  // gs[j] = At(k0 + j) * scales[j], or +0 where At(k0 + j) is 0, for the
  // n elements k0 .. k0 + n - 1 of one output cell (n at most its channel
  // count, so with broadcast_cells their dy elements are consecutive too).
  // The mask is read 24 elements at a time (PassBits).
  void ScaledRun(int64_t k0, int n, const float* scales, float* gs) const {
    // One loop per way dy is read, so that none tests the way per element.
    if (broadcast_cells > 0) {
      const int64_t i0 = BroadcastIndex(k0);  // DyAt index of element k0
      const float cells = static_cast<float>(broadcast_cells);
      ScaledRunOf(k0, n, scales, gs,
                  [&](int j) { return DyAt(i0 + j) / cells; });
    } else if (dy_q != nullptr) {
      const int8_t* q = dy_q + k0;
      ScaledRunOf(k0, n, scales, gs, [&](int j) {
        return static_cast<float>(q[j]) * dy_scale;
      });
    } else {
      const float* d = dy + k0;
      ScaledRunOf(k0, n, scales, gs, [&](int j) { return d[j]; });
    }
  }

 private:
  // ScaledRun with Dy(k0 + j) = dy_of(j).
  template <typename DyOf>
  void ScaledRunOf(int64_t k0, int n, const float* scales, float* gs,
                   const DyOf& dy_of) const {
    if (q_y != nullptr) {  // the int8 output's range, element by element
      const int8_t* y = q_y + k0;
      for (int j = 0; j < n; ++j) {
        const float v = range.Passes(y[j]) ? dy_of(j) : 0.0f;
        gs[j] = v == 0.0f ? 0.0f : v * scales[j];
      }
      return;
    }
    for (int j0 = 0; j0 < n; j0 += 24) {
      const int len = n - j0 < 24 ? n - j0 : 24;
      const uint32_t pass = PassBits(k0 + j0, len);
      for (int j = j0; j < j0 + len; ++j) {
        const float v = (pass >> (j - j0)) & 1 ? dy_of(j) : 0.0f;
        gs[j] = v == 0.0f ? 0.0f : v * scales[j];
      }
    }
  }
};

// Packs the mask of n int8 outputs: bit k % 8 of bits[k / 8] (LSB first) is
// 1 iff range.Passes(q_y[k]); the unused high bits of the last byte are 0.
void PackMask(const int8_t* q_y, int64_t n, const ActivationMask& range,
              uint8_t* bits);

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_GRAD_GRAD_COMMON_H_
