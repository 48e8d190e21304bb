// Runtime CPU feature checks for kernel dispatch.
#pragma once

namespace edgevlm {

// True when the CPU has AVX2, FMA and F16C (the *_avx2.cc kernels may run) and the environment
// variable EDGEVLM_NO_SIMD is unset or "0" (set it to force the scalar reference kernels).
// Evaluated once.
bool cpu_has_avx2();
// AVX-VNNI (VEX-encoded vpdpbusd on 256-bit registers: Alder Lake+, Zen 5), from CPUID.
bool cpu_has_avx_vnni();

// x86-64 with AVX512-BF16 and AVX512-VL (and F/BW; Zen 4, Sapphire Rapids, Cooper Lake) besides
// cpu_has_avx2(): the *_avx512bf16.cc kernels may run. EDGEVLM_NO_AVX512=1 turns it off.
bool cpu_has_avx512_bf16();

// x86-64 with AMX-TILE and AMX-BF16 (Sapphire Rapids and later Xeons) besides cpu_has_avx512_bf16(),
// and the kernel's permission to use the tile state (Linux arch_prctl(ARCH_REQ_XCOMP_PERM), asked
// for once here): the *_amx.cc kernels may run. EDGEVLM_NO_AMX=1 turns it off.
bool cpu_has_amx_bf16();

// aarch64: NEON (Advanced SIMD) is part of the base ISA, so this is true on every aarch64 CPU
// unless EDGEVLM_NO_SIMD is set; false on other architectures. The *_neon.cc kernels may run.
bool cpu_has_neon();

// aarch64 with the Armv8.2 dot-product instructions (SDOT/UDOT, Linux HWCAP_ASIMDDP; Cortex-A55,
// A75 and later, not A53/A57/A72): the *_dotprod_neon.cc kernels may run. Implies cpu_has_neon().
// EDGEVLM_NO_DOTPROD=1 turns it off alone (to run the plain-NEON kernels on a dotprod CPU).
bool cpu_has_neon_dotprod();
// Armv8.6 int8 matrix multiply (FEAT_I8MM, SMMLA: AT_HWCAP2's HWCAP2_I8MM; Cortex-A710/X2 and later,
// the Dimensity 9300's cores): the *_i8mm_neon.cc kernels may run. Implies cpu_has_neon_dotprod().
// EDGEVLM_NO_I8MM=1 turns it off alone.
bool cpu_has_neon_i8mm();

}  // namespace edgevlm
