// NEON matrix products for aarch64 (matmul_neon.cc, matmul_dotprod_neon.cc; built on aarch64
// only — include this header from code guarded by `#if defined(__aarch64__)`). Same contract as
// matmul_avx2 in matmul.h: F32/F16/BF16 weights in float (F16 through vcvt, BF16 by a shift),
// Q8_0/Q4_0 with the activations quantized to Q8_0 on the fly by quantize_act_q8's arithmetic
// (scales rounded to F16 like ggml's block_q8_0) and exact int8 dot products per block.
#pragma once

#include <cstdint>

#include "ops/matmul.h"

namespace edgevlm {

enum class NeonKernels {
  Auto,     // I8mm when cpu_has_neon_i8mm(), else SDOT when cpu_has_neon_dotprod(), else Plain
  Plain,    // Armv8.0 NEON: widening multiplies (SMULL/SMLAL) and pairwise adds (SADALP)
  Dotprod,  // Armv8.2 SDOT; throws edgevlm::Error when the CPU lacks it
  I8mm,     // Armv8.6 SMMLA for two or more activation rows, SDOT for one; throws without FEAT_I8MM
};

// Call only when cpu_has_neon(). Parallel over tiles of output rows.
void matmul_neon(const WeightMatrix& w, const float* x, int64_t n_rows, float* y, ThreadPool& pool,
                 NeonKernels kernels = NeonKernels::Auto);

}  // namespace edgevlm
