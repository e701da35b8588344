// LoadFloats<N>(p, v): v[0..N) = p[0..N) for N in {3, 4, 8}, as one VLDM on
// a Cortex-M with an FPU (GCC emits one VLDR per float) and plain loads
// elsewhere: only loads, the same values on every target. VLDM needs
// consecutive registers, so the values are pinned to the top of the FPU
// register file (s24-s31 for 8, s28-s30 / s28-s31 for 3 / 4); the kernels
// that use it keep their sums in the others.
#ifndef TFLM_TRAIN_KERNELS_GRAD_FLOAT_LOADS_H_
#define TFLM_TRAIN_KERNELS_GRAD_FLOAT_LOADS_H_

namespace tflm_train {

template <int N>
inline void LoadFloats(const float* p, float* v) {
  static_assert(N == 3 || N == 4 || N == 8, "LoadFloats: N is 3, 4 or 8");
#if defined(__GNUC__) && defined(__ARM_ARCH_7EM__) && defined(__ARM_FP)
  if constexpr (N == 8) {
    register float v0 asm("s24");
    register float v1 asm("s25");
    register float v2 asm("s26");
    register float v3 asm("s27");
    register float v4 asm("s28");
    register float v5 asm("s29");
    register float v6 asm("s30");
    register float v7 asm("s31");
    asm("vldmia %[p], {s24-s31}"
        : "=t"(v0), "=t"(v1), "=t"(v2), "=t"(v3), "=t"(v4), "=t"(v5),
          "=t"(v6), "=t"(v7)
        : [p] "r"(p), "m"(*reinterpret_cast<const float(*)[8]>(p)));
    v[0] = v0, v[1] = v1, v[2] = v2, v[3] = v3;
    v[4] = v4, v[5] = v5, v[6] = v6, v[7] = v7;
  } else if constexpr (N == 4) {
    register float v0 asm("s28");
    register float v1 asm("s29");
    register float v2 asm("s30");
    register float v3 asm("s31");
    asm("vldmia %[p], {s28-s31}"
        : "=t"(v0), "=t"(v1), "=t"(v2), "=t"(v3)
        : [p] "r"(p), "m"(*reinterpret_cast<const float(*)[4]>(p)));
    v[0] = v0, v[1] = v1, v[2] = v2, v[3] = v3;
  } else {
    register float v0 asm("s28");
    register float v1 asm("s29");
    register float v2 asm("s30");
    asm("vldmia %[p], {s28-s30}"
        : "=t"(v0), "=t"(v1), "=t"(v2)
        : [p] "r"(p), "m"(*reinterpret_cast<const float(*)[3]>(p)));
    v[0] = v0, v[1] = v1, v[2] = v2;
  }
#else
  for (int j = 0; j < N; ++j) v[j] = p[j];
#endif
}

}  // namespace tflm_train

#endif  // TFLM_TRAIN_KERNELS_GRAD_FLOAT_LOADS_H_
