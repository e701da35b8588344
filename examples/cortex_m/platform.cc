// Memory figures and the instruction counter (see platform.h).
#include "platform.h"

extern "C" {
extern uint32_t __stack_bottom__[], __stack_top__[];
extern char __data_start__[], __bss_end__[], __heap_start__[], __heap_end__[];
// Size symbols: the value is the symbol's address.
extern char __ram_size__[], __stack_size__[], __stack_guard_size__[], __flash_end__[];
}

#define REG32(addr) (*(volatile uint32_t *)(addr))
static const uint32_t SYST_CSR = 0xE000E010;  // SysTick control/status
static const uint32_t SYST_RVR = 0xE000E014;  // reload value
static const uint32_t SYST_CVR = 0xE000E018;  // current value (counts down)
static const uint32_t SCB_ICSR = 0xE000ED04;  // bit 26: SysTick pending
static const uint32_t SYST_MAX = 0xFFFFFF;    // 24-bit counter

// --- memory -----------------------------------------------------------------

size_t cm_ram_budget_bytes(void) { return (size_t)__ram_size__; }
size_t cm_static_ram_bytes(void) { return (size_t)(__bss_end__ - __data_start__); }
size_t cm_stack_size_bytes(void) { return (size_t)__stack_size__; }
size_t cm_heap_capacity_bytes(void) { return (size_t)(__heap_end__ - __heap_start__); }
size_t cm_flash_bytes(void) { return (size_t)__flash_end__; }  // FLASH starts at 0

size_t cm_peak_stack_bytes(void) {
  // The stack grows down; the lowest word no longer holding the paint is the
  // high-water mark. (A push of a value equal to the pattern would hide one
  // word; harmless.)
  // Start above the MPU guard (reading it would fault).
  const volatile uint32_t *p = __stack_bottom__ + (uint32_t)__stack_guard_size__ / 4;
  while (p < __stack_top__ && *p == CM_STACK_PAINT) p++;
  return (size_t)((const char *)__stack_top__ - (const char *)p);
}

// --- time -------------------------------------------------------------------
// SysTick runs on the processor clock (CLKSOURCE=1), 25 MHz on mps2. Under
// -icount, QEMU's virtual clock advances 2^shift ns per guest instruction,
// so a tick (40 ns) is 40 / 2^shift instructions. An interrupt every 2^24
// ticks extends the 24-bit down-counter to 64 bits.
// (The DWT cycle counter is not modelled by QEMU 7.2: CYCCNT reads 0.)

static volatile uint32_t systick_wraps;

extern "C" void SysTick_Handler(void) { systick_wraps = systick_wraps + 1; }

void cm_counter_start(void) {
  REG32(SYST_CSR) = 0;
  REG32(SYST_RVR) = SYST_MAX;
  REG32(SYST_CVR) = 0;  // any write clears it; it reloads on the next tick
  systick_wraps = 0;
  REG32(SYST_CSR) = (1u << 2) | (1u << 1) | 1u;  // CLKSOURCE=cpu, TICKINT, ENABLE
}

uint64_t cm_ticks(void) {
  uint32_t wraps, value, pending;
  do {
    wraps = systick_wraps;
    value = REG32(SYST_CVR);
    pending = REG32(SCB_ICSR) & (1u << 26);
  } while (wraps != systick_wraps);
  // Wrapped after `wraps` was read but the interrupt has not run yet
  // (e.g. interrupts masked): the high value belongs to the next period.
  if (pending && value > SYST_MAX / 2) wraps++;
  return ((uint64_t)wraps << 24) + (SYST_MAX - value);
}

uint64_t cm_instructions(void) {
  // 1 tick = 1e9 / 25e6 = 40 ns; 1 instruction = 2^CM_ICOUNT_SHIFT ns.
  return (cm_ticks() * 40u) >> CM_ICOUNT_SHIFT;
}
