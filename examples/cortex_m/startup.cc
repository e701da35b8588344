// Bare-metal startup for QEMU mps2-an386 (Cortex-M4F): vector table, reset,
// fault handlers, and the few C/C++ runtime pieces that are not linked from
// libstdc++/libsupc++ (we link only newlib's libc, libm and librdimon).
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "platform.h"

// Symbols from mps2_an386.ld.
extern "C" {
extern uint32_t __data_load__[], __data_start__[], __data_end__[];
extern uint32_t __bss_start__[], __bss_end__[];
extern uint32_t __stack_bottom__[], __stack_top__[];
extern char __heap_start__[], __heap_end__[];
extern char __stack_guard_size__[];  // value is the symbol's address

void initialise_monitor_handles(void);  // librdimon: opens semihosting stdio
void __libc_init_array(void);           // newlib: runs .preinit/.init_array
int main(void);

void Reset_Handler(void);
void SysTick_Handler(void);
void Fault_Handler(void);
}

// A size symbol's value is its address. The empty asm hides that from GCC,
// which would otherwise fold "address != 0" to true.
static inline uint32_t stack_guard_bytes(void) {
  uint32_t v = (uint32_t)__stack_guard_size__;
  __asm__("" : "+r"(v));
  return v;
}
// Lowest stack word that programs may use (the guard below it faults on access).
static inline uint32_t *stack_usable_bottom(void) {
  return __stack_bottom__ + stack_guard_bytes() / 4;
}

#define REG32(addr) (*(volatile uint32_t *)(addr))
static const uint32_t SCB_CPACR = 0xE000ED88;  // coprocessor access (FPU = CP10/CP11)
static const uint32_t SCB_SHCSR = 0xE000ED24;  // system handler enables
static const uint32_t SCB_CCR = 0xE000ED14;    // configuration/control
static const uint32_t SCB_CFSR = 0xE000ED28;   // configurable fault status
static const uint32_t SCB_HFSR = 0xE000ED2C;   // hard fault status
static const uint32_t SCB_MMFAR = 0xE000ED34;
static const uint32_t SCB_BFAR = 0xE000ED38;
static const uint32_t MPU_CTRL = 0xE000ED94;
static const uint32_t MPU_RNR = 0xE000ED98;   // region number
static const uint32_t MPU_RBAR = 0xE000ED9C;  // region base
static const uint32_t MPU_RASR = 0xE000EDA0;  // region attributes and size

// ---------------------------------------------------------------------------
// Minimal semihosting, usable before stdio is set up and from fault handlers.

static inline uint32_t semihost(uint32_t op, const void *arg) {
  register uint32_t r0 __asm__("r0") = op;
  register const void *r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

extern "C" void cm_semihost_puts(const char *s) { semihost(0x04 /*SYS_WRITE0*/, s); }

static void put_hex(uint32_t v) {
  char buf[11] = "0x";
  for (int i = 0; i < 8; i++) buf[2 + i] = "0123456789abcdef"[(v >> (28 - 4 * i)) & 0xF];
  buf[10] = 0;
  cm_semihost_puts(buf);
}

// Exit QEMU with a status code. SYS_EXIT_EXTENDED carries the code on 32-bit
// ARM (plain SYS_EXIT only has "success/failure"); QEMU 7.2 supports it.
extern "C" __attribute__((noreturn)) void cm_exit_now(int code) {
  uint32_t block[2] = {0x20026 /*ADP_Stopped_ApplicationExit*/, (uint32_t)code};
  semihost(0x20 /*SYS_EXIT_EXTENDED*/, block);
  semihost(0x18 /*SYS_EXIT*/, (const void *)0x20023);  // fallback: "failure"
  for (;;) {
  }
}

static __attribute__((noreturn)) void die(const char *msg) {
  cm_semihost_puts(msg);
  cm_exit_now(134);  // like SIGABRT
}

// ---------------------------------------------------------------------------
// Faults: print what happened and exit (137 for stack overflow, 139 otherwise)
// instead of spinning forever.
//
// Fault_Handler is naked: it picks the exception frame on whichever stack was
// active (EXC_RETURN bit 2), reads the stacked PC/LR unless the frame lies in
// the stack guard (stacking itself faulted), then moves SP to the top of the
// stack so the C code below has room even after a stack overflow.

extern "C" __attribute__((used, noreturn)) void fault_report(uint32_t ipsr, const uint32_t *frame,
                                                            uint32_t pc, uint32_t lr) {
  static const char *const names[16] = {
      "?",     "Reset", "NMI", "HardFault",    "MemManage", "BusFault", "UsageFault", "?",
      "?",     "?",     "?",   "SVCall",       "DebugMon",  "?",        "PendSV",     "SysTick"};
  uint32_t n = ipsr & 0x1FF, cfsr = REG32(SCB_CFSR), mmfar = REG32(SCB_MMFAR);
  uint32_t guard_lo = (uint32_t)__stack_bottom__, guard_hi = (uint32_t)stack_usable_bottom();
  bool overflow = (uint32_t)frame < guard_hi ||          // frame pushed into/below the guard
                  (cfsr & (1u << 4)) ||                  // MSTKERR: stacking hit the guard
                  ((cfsr & (1u << 7)) && mmfar >= guard_lo && mmfar < guard_hi);
  cm_semihost_puts(overflow ? "\n*** stack overflow (MPU stack guard): raise STACK_SIZE\n" : "\n");
  cm_semihost_puts("*** CPU exception ");
  cm_semihost_puts(n < 16 ? names[n] : "external IRQ");
  cm_semihost_puts(" (exception #");
  put_hex(n);
  cm_semihost_puts(")\n  PC=");
  put_hex(pc);
  cm_semihost_puts(" LR=");
  put_hex(lr);
  cm_semihost_puts(" SP=");
  put_hex((uint32_t)frame);
  cm_semihost_puts(" CFSR=");
  put_hex(cfsr);
  cm_semihost_puts(" HFSR=");
  put_hex(REG32(SCB_HFSR));
  cm_semihost_puts(" MMFAR=");
  put_hex(mmfar);
  cm_semihost_puts(" BFAR=");
  put_hex(REG32(SCB_BFAR));
  cm_semihost_puts("\n");
  cm_exit_now(overflow ? 137 : 139);  // like SIGKILL / SIGSEGV
}

extern "C" __attribute__((naked)) void Fault_Handler(void) {
  __asm__ volatile(
      "mrs r0, ipsr\n"
      "tst lr, #4\n"
      "ite eq\n"
      "mrseq r1, msp\n"
      "mrsne r1, psp\n"
      "movs r2, #0\n"  // pc, lr = 0 if the frame is unreadable
      "movs r3, #0\n"
      "ldr r12, =__stack_bottom__\n"  // r12 = end of the guard
      "ldr lr, =__stack_guard_size__\n"  // (lr is free: we never return)
      "add r12, r12, lr\n"
      "cmp r1, r12\n"
      "blo 1f\n"
      "ldr r2, [r1, #24]\n"  // stacked PC
      "ldr r3, [r1, #20]\n"  // stacked LR
      "1:\n"
      "ldr r12, =__stack_top__\n"
      "mov sp, r12\n"
      "b fault_report\n"
      ".ltorg\n");
}

// ---------------------------------------------------------------------------
// Vector table: 16 core entries + 32 external IRQs (mps2-an386 has 32).

typedef void (*vector_t)(void);

extern "C" __attribute__((section(".vectors"), used)) const vector_t cm_vectors[16 + 32] = {
    (vector_t)__stack_top__,  // 0: initial MSP
    Reset_Handler,            // 1
    Fault_Handler,            // 2: NMI
    Fault_Handler,            // 3: HardFault
    Fault_Handler,            // 4: MemManage
    Fault_Handler,            // 5: BusFault
    Fault_Handler,            // 6: UsageFault
    0, 0, 0, 0,               // 7-10: reserved
    Fault_Handler,            // 11: SVCall (unused)
    Fault_Handler,            // 12: DebugMonitor (unused)
    0,                        // 13: reserved
    Fault_Handler,            // 14: PendSV (unused)
    SysTick_Handler,          // 15: instruction counter wrap (platform.cc)
    // 16..47: external interrupts, none used -> report as unexpected.
    Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler,
};

// ---------------------------------------------------------------------------
// Reset. Runs on the initial MSP (= __stack_top__). Loops use volatile
// pointers so GCC cannot turn them into memcpy/memset calls (which would run
// before .data/.bss are ready, and below SP while we paint the stack).

extern "C" __attribute__((noreturn)) void Reset_Handler(void) {
  // FPU: full access to CP10/CP11. Must precede any float instruction.
  REG32(SCB_CPACR) |= 0xFu << 20;
  __asm__ volatile("dsb\n isb" ::: "memory");

  // Report MemManage/BusFault/UsageFault separately instead of as HardFault,
  // and trap integer division by zero (x86 traps too; M4 would return 0).
  REG32(SCB_SHCSR) |= (1u << 16) | (1u << 17) | (1u << 18);
  REG32(SCB_CCR) |= 1u << 4;  // DIV_0_TRP

  volatile uint32_t *src = __data_load__;
  for (volatile uint32_t *dst = __data_start__; dst < __data_end__;) *dst++ = *src++;
  for (volatile uint32_t *dst = __bss_start__; dst < __bss_end__;) *dst++ = 0;

  // Paint the unused part of the stack: from the bottom up to 64 bytes below
  // the current SP (the margin covers this function's own pushes).
  uint32_t *sp;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  for (volatile uint32_t *p = __stack_bottom__; p < sp - 16;) *p++ = CM_STACK_PAINT;

  // Stack guard: an MPU region with no access at the bottom of the stack, so
  // an overflow faults instead of silently overwriting the heap.
  if (stack_guard_bytes() != 0) {
    REG32(MPU_RNR) = 0;
    REG32(MPU_RBAR) = (uint32_t)__stack_bottom__;
    // XN | AP=000 (no access) | SIZE: region is 2^(SIZE+1) bytes | ENABLE
    REG32(MPU_RASR) = (1u << 28) | ((uint32_t)(__builtin_ctz(stack_guard_bytes()) - 1) << 1) | 1u;
    REG32(MPU_CTRL) = (1u << 2) | 1u;  // PRIVDEFENA (default map elsewhere) | ENABLE
    __asm__ volatile("dsb\n isb" ::: "memory");
  }

  cm_counter_start();  // SysTick-based instruction counter (platform.cc)
  initialise_monitor_handles();
  __libc_init_array();  // static constructors

  int rc = main();

  // Second line of defence (e.g. with the guard disabled): the lowest usable
  // stack word is only overwritten if the stack (nearly) overflowed.
  if (*stack_usable_bottom() != CM_STACK_PAINT) {
    cm_semihost_puts("\n*** stack overflow: raise STACK_SIZE\n");
    if (rc == 0) rc = 137;
  }
  exit(rc);  // flushes stdio, runs atexit handlers, then SYS_EXIT_EXTENDED
}

// ---------------------------------------------------------------------------
// C runtime glue.

extern "C" {
// No crti.o/crtn.o (-nostartfiles): __libc_init_array calls _init.
void _init(void) {}
void _fini(void) {}

// malloc's backing store: [__heap_start__, __heap_end__). Replaces librdimon's
// weak _sbrk, which would compare against SP and semihosting heap info.
static char *heap_brk = __heap_start__;
void *_sbrk(ptrdiff_t incr) {
  char *prev = heap_brk;
  if (incr > __heap_end__ - heap_brk || incr < __heap_start__ - heap_brk) {
    return (void *)-1;  // malloc then returns NULL (errno ENOMEM)
  }
  heap_brk += incr;
  return prev;
}
size_t cm_heap_used_bytes(void) { return (size_t)(heap_brk - __heap_start__); }

// newlib's abort() goes through raise()/_kill and leaves QEMU with status 2;
// make it report and use the conventional 134 (also reached by assert()).
void abort(void) { die("\n*** abort()\n"); }

// C++ ABI pieces normally provided by libsupc++/crtbegin, which we do not link.
void *__dso_handle = 0;
void __cxa_pure_virtual(void) { die("\n*** pure virtual function called\n"); }
}

// Deleting destructors of classes with virtual destructors reference these;
// the firmware does not use the heap from C++, so reaching one is a bug.
void operator delete(void *) noexcept { die("\n*** operator delete called\n"); }
void operator delete(void *, size_t) noexcept { die("\n*** operator delete called\n"); }
