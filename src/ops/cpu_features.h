// Runtime CPU feature checks for kernel dispatch.
#pragma once

namespace edgevlm {

// True when the CPU has AVX2, FMA and F16C (the *_avx2.cc kernels may run) and the environment
// variable EDGEVLM_NO_SIMD is unset or "0" (set it to force the scalar reference kernels).
// Evaluated once.
bool cpu_has_avx2();

}  // namespace edgevlm
