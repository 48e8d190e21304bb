// What the SIMD ViT attention kernels share (vit_attention_avx2.cc, vit_attention_avx512bf16.cc).
// In an anonymous namespace so each kernel file compiles its own copy with its own ISA flags.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "ops/simd_avx2.h"

namespace edgevlm {
namespace {

// Softmax in place over the T real scores of a row of Tp (a multiple of 8), unnormalized:
// sr[j] = exp(sr[j] − max), the padding scores [T, Tp) become 0. Returns 1 / Σ sr, for the caller
// to fold into its next pass over the row.
inline float exp_padded_row(float* sr, int64_t T, int64_t Tp) {
  __m256 vmx = _mm256_set1_ps(-INFINITY);
  int64_t j = 0;
  for (; j + 8 <= T; j += 8) vmx = _mm256_max_ps(vmx, _mm256_loadu_ps(sr + j));
  float mx = simd::hmax(vmx);
  for (; j < T; ++j) mx = std::max(mx, sr[j]);
  for (j = T; j < Tp; ++j) sr[j] = -INFINITY;  // exp(−inf − mx) = 0 below (simd::exp clamps to ~1e-38·0)
  const __m256 m8 = _mm256_set1_ps(mx);
  __m256 vs = _mm256_setzero_ps();
  for (j = 0; j < Tp; j += 8) {
    const __m256 e = simd::exp(_mm256_sub_ps(_mm256_loadu_ps(sr + j), m8));
    _mm256_storeu_ps(sr + j, e);
    vs = _mm256_add_ps(vs, e);
  }
  return 1.0f / simd::hsum(vs);
}

}  // namespace
}  // namespace edgevlm
