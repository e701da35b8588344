// Self-test of the Cortex-M platform layer: FPU + libm, C++ virtual calls and
// static constructors, printf over semihosting, memory figures, instruction
// counter. Exit status 0 = all checks passed.
//
// Built with -DSELFTEST_MODE=N, it instead exercises a failure path so the
// Makefile's `check` target can verify that QEMU reports it:
//   1: return 3            -> QEMU exits 3
//   2: undefined instr.    -> UsageFault report, exit 139
//   3: integer divide by 0 -> UsageFault report, exit 139
//   4: stack overflow      -> "stack overflow" report, exit 137
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "platform.h"

#ifndef SELFTEST_MODE
#define SELFTEST_MODE 0
#endif

static int failures = 0;
#define CHECK(cond)                                                \
  do {                                                             \
    if (!(cond)) {                                                 \
      printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);       \
      failures++;                                                  \
    }                                                              \
  } while (0)

static uint32_t float_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

// --- C++: virtual dispatch and a static constructor --------------------------
struct Shape {
  virtual ~Shape() {}
  virtual float area() const = 0;
};
struct Square : Shape {
  explicit Square(float s) : side(s) {}
  float area() const override { return side * side; }
  float side;
};
struct Circle : Shape {
  explicit Circle(float r) : radius(r) {}
  float area() const override { return 3.14159265f * radius * radius; }
  float radius;
};

static int constructed = 0;
struct StaticInit {
  StaticInit() : magic(0x1234) { constructed++; }
  int magic;
};
static StaticInit static_init;  // must run before main (via __libc_init_array)

// Opaque to the optimiser so calls are real virtual calls / real float ops.
template <typename T>
static T launder_value(T v) {
  __asm__ volatile("" : "+m"(v));
  return v;
}

// --- instruction counter ------------------------------------------------------
// Exactly 2 instructions per iteration (subs + bne), 2*n in total.
static void __attribute__((noinline)) known_loop(uint32_t n) {
  __asm__ volatile(
      "1: subs %0, %0, #1\n"
      "   bne 1b\n"
      : "+r"(n)
      :
      : "cc");
}

static float __attribute__((noinline)) dot(const float *a, const float *b, int n) {
  float s = 0.0f;
  for (int i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

static int __attribute__((noinline)) recurse(int depth) {
  volatile char pad[256];
  pad[0] = (char)depth;
  return depth == 0 ? pad[0] : recurse(depth - 1) + pad[0];
}

int main(void) {
  printf("cortex-m selftest (mps2-an386, Cortex-M4F, -icount shift=%d)\n", CM_ICOUNT_SHIFT);

  if (SELFTEST_MODE == 1) return 3;
  if (SELFTEST_MODE == 2) __asm__ volatile("udf #0");
  if (SELFTEST_MODE == 3) printf("%d\n", launder_value(7) / launder_value(0));
  if (SELFTEST_MODE == 4) printf("%d\n", recurse(100));  // ~100 * 264 B > STACK_SIZE

  // Static constructor ran once, before main.
  CHECK(constructed == 1 && static_init.magic == 0x1234);

  // Virtual dispatch through a base pointer.
  Square sq(launder_value(3.0f));
  Circle ci(launder_value(1.0f));
  Shape *shapes[2] = {&sq, &ci};
  Shape *const *ps = launder_value(shapes + 0);
  float total = ps[0]->area() + ps[1]->area();
  CHECK(float_bits(total) == float_bits(9.0f + 3.14159265f));

  // -ffp-contract=off: a*b+c must round twice like x86 SSE. With a fused
  // multiply-add, (1+2^-12)^2 - 1 would keep the 2^-24 term.
  float a = launder_value(1.0f + 0x1p-12f), c = launder_value(-1.0f);
  float r = a * a + c;
  CHECK(r == 0x1p-11f);

  // libm (single precision) and printf("%f").
  float s = sqrtf(launder_value(2.0f)), e = expf(launder_value(1.0f));
  printf("sqrtf(2)=%.7f expf(1)=%.7f bits=%08lx %08lx area=%f\n", (double)s, (double)e,
         (unsigned long)float_bits(s), (unsigned long)float_bits(e), (double)total);
  CHECK(float_bits(s) == 0x3fb504f3u);  // correctly rounded sqrt(2)
  CHECK(fabsf(e - 2.7182817f) < 1e-6f);

  // Instruction counter: calibrate the cost of the measurement itself, then
  // a loop with a known count.
  uint64_t t0 = cm_instructions();
  uint64_t t1 = cm_instructions();
  uint64_t overhead = t1 - t0;
  const uint32_t n = 100000;
  t0 = cm_instructions();
  known_loop(n);
  t1 = cm_instructions();
  uint64_t measured = t1 - t0 - overhead;
  long err = (long)measured - 2L * (long)n;
  // (Small values printed as long: newlib-nano's printf has no %ll.)
  printf("instructions: known loop of %lu iterations measured %lu (expected %lu, err %ld, "
         "overhead %lu)\n",
         (unsigned long)n, (unsigned long)measured, (unsigned long)(2 * n), err,
         (unsigned long)overhead);
  CHECK(err > -16 && err < 16);  // call/return + rounding only

  static float va[1024], vb[1024];
  for (int i = 0; i < 1024; i++) {
    va[i] = (float)i * 0.5f;
    vb[i] = 1.0f / (float)(i + 1);
  }
  t0 = cm_instructions();
  float d = dot(va, vb, 1024);
  t1 = cm_instructions();
  printf("instructions: dot(1024) = %f took %lu\n", (double)d,
         (unsigned long)(t1 - t0 - overhead));

  printf("memory: ram budget %u, static ram (.data+.bss) %u, stack %u (peak %u), "
         "heap capacity %u (used %u), flash %u\n",
         (unsigned)cm_ram_budget_bytes(), (unsigned)cm_static_ram_bytes(),
         (unsigned)cm_stack_size_bytes(), (unsigned)cm_peak_stack_bytes(),
         (unsigned)cm_heap_capacity_bytes(), (unsigned)cm_heap_used_bytes(),
         (unsigned)cm_flash_bytes());
  CHECK(cm_peak_stack_bytes() > 0 && cm_peak_stack_bytes() < cm_stack_size_bytes());
  CHECK(cm_static_ram_bytes() + cm_heap_capacity_bytes() + cm_stack_size_bytes() <=
        cm_ram_budget_bytes());

  printf("selftest: %s (%d failures)\n", failures ? "FAILED" : "OK", failures);
  return failures ? 1 : 0;
}
