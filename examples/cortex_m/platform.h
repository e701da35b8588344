// Platform layer for the bare-metal Cortex-M4F build (QEMU mps2-an386).
// Memory figures come from linker symbols in mps2_an386.ld; the instruction
// counter is SysTick under QEMU -icount (see README.md for the conversion).
#ifndef EXAMPLES_CORTEX_M_PLATFORM_H_
#define EXAMPLES_CORTEX_M_PLATFORM_H_

#include <stddef.h>
#include <stdint.h>

// QEMU -icount shift the image is run with; must match the Makefile's
// ICOUNT_SHIFT (the Makefile passes both).
#ifndef CM_ICOUNT_SHIFT
#define CM_ICOUNT_SHIFT 6
#endif

// Pattern written over the free stack at reset (peak-stack measurement).
#define CM_STACK_PAINT 0x5AA5C33Cu

#ifdef __cplusplus
extern "C" {
#endif

// --- memory -----------------------------------------------------------------
size_t cm_ram_budget_bytes(void);    // RAM region size (__ram_size__)
size_t cm_static_ram_bytes(void);    // .data + .bss
size_t cm_stack_size_bytes(void);    // reserved stack (__stack_size__, includes the MPU guard)
size_t cm_peak_stack_bytes(void);    // deepest stack use since reset (high-water mark)
size_t cm_heap_capacity_bytes(void); // RAM left for malloc between .bss and the stack
size_t cm_heap_used_bytes(void);     // malloc's current break (newlib never shrinks it)
size_t cm_flash_bytes(void);         // code + rodata + tables + .data image

// --- time -------------------------------------------------------------------
// SysTick ticks (processor clock, 25 MHz on mps2) since reset, 64-bit.
uint64_t cm_ticks(void);
// Guest instructions executed since reset, derived from cm_ticks():
//   instructions = ticks * 40 ns / 2^CM_ICOUNT_SHIFT ns.
// Exact to within 40/2^shift instructions (< 1 for shift >= 6), and
// deterministic only when QEMU runs with -icount shift=CM_ICOUNT_SHIFT.
uint64_t cm_instructions(void);

// --- low level (used by startup.cc; safe in fault context) -------------------
void cm_counter_start(void);
void cm_semihost_puts(const char *s);         // write a string to QEMU's stdout/stderr
void cm_exit_now(int code) __attribute__((noreturn));  // exit QEMU, no stdio flush

#ifdef __cplusplus
}
#endif

#endif  // EXAMPLES_CORTEX_M_PLATFORM_H_
