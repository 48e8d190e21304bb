#include "ops/cpu_features.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)  // arch/arm64/include/uapi/asm/hwcap.h
#endif
#endif

namespace edgevlm {

static bool env_set(const char* name) {
  const char* env = std::getenv(name);
  return env && *env && std::strcmp(env, "0") != 0;
}

#if defined(__x86_64__) || defined(__i386__)
// F16C from CPUID leaf 1 (ECX bit 29): clang's __builtin_cpu_supports does not know "f16c".
static bool cpuid_f16c() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29)) != 0;
}
#endif

bool cpu_has_avx_vnni() {
#if defined(__x86_64__) || defined(__i386__)
  // CPUID leaf 7 subleaf 1, EAX bit 4 (neither compiler's __builtin_cpu_supports knows it in all versions).
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 4)) != 0;
#else
  return false;
#endif
}

static bool detect_avx2() {
  if (env_set("EDGEVLM_NO_SIMD")) return false;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpuid_f16c();
#else
  return false;
#endif
}

static bool detect_avx512_bf16() {
  if (!cpu_has_avx2() || env_set("EDGEVLM_NO_AVX512")) return false;
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

static bool detect_amx_bf16() {
  if (!cpu_has_avx512_bf16() || env_set("EDGEVLM_NO_AMX")) return false;
#if defined(__x86_64__) && defined(__linux__)
  // CPUID leaf 7: EDX bit 22 AMX-BF16, bit 24 AMX-TILE; the OS enables the tile state in XCR0
  // (bits 17 and 18) and hands it to a process that asks (Linux 5.16+).
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 22)) || !(d & (1u << 24))) return false;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return false;  // OSXSAVE
  unsigned xcr0_lo = 0, xcr0_hi = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  if ((xcr0_lo & (3u << 17)) != (3u << 17)) return false;
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

static bool detect_neon() {
  if (env_set("EDGEVLM_NO_SIMD")) return false;
#if defined(__aarch64__)
  return true;
#else
  return false;
#endif
}

static bool detect_neon_dotprod() {
  if (!cpu_has_neon() || env_set("EDGEVLM_NO_DOTPROD")) return false;
#if defined(__aarch64__) && defined(__linux__)
  return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#else
  return false;
#endif
}

static bool detect_neon_i8mm() {
  if (!cpu_has_neon_dotprod() || env_set("EDGEVLM_NO_I8MM")) return false;
#if defined(__aarch64__) && defined(__linux__)
  constexpr unsigned long kHwcap2I8mm = 1ul << 13;  // HWCAP2_I8MM (asm/hwcap.h; older headers lack it)
  return (getauxval(AT_HWCAP2) & kHwcap2I8mm) != 0;
#else
  return false;
#endif
}

bool cpu_has_avx2() {
  static const bool has = detect_avx2();
  return has;
}

bool cpu_has_avx512_bf16() {
  static const bool has = detect_avx512_bf16();
  return has;
}

bool cpu_has_amx_bf16() {
  static const bool has = detect_amx_bf16();
  return has;
}

bool cpu_has_neon() {
  static const bool has = detect_neon();
  return has;
}

bool cpu_has_neon_dotprod() {
  static const bool has = detect_neon_dotprod();
  return has;
}

bool cpu_has_neon_i8mm() {
  static const bool has = detect_neon_i8mm();
  return has;
}

}  // namespace edgevlm
