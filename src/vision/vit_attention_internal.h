// What the SIMD ViT attention kernels share (vit_attention_avx2.cc, vit_attention_avx512bf16.cc,
// vit_attention_amx.cc).
// In an anonymous namespace so each kernel file compiles its own copy with its own ISA flags.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

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


#if defined(__AVX512BF16__) && defined(__AVX512VL__)
// ---- the BF16 kernels' (vit_attention_avx512bf16.cc, vit_attention_amx.cc) ----------------------
constexpr int kBf16Cols = 16;  // keys or features per panel

// dst[i] = bf16(src[i] · mul) for i < n, zero up to n_pad.
inline void to_bf16(const float* src, int64_t n, float mul, uint16_t* dst, int64_t n_pad) {
  const __m256 m = _mm256_set1_ps(mul);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                     reinterpret_cast<__m128i>(_mm256_cvtneps_pbh(_mm256_mul_ps(_mm256_loadu_ps(src + i), m))));
  for (; i < n; ++i) dst[i] = f32_to_bf16(src[i] * mul);
  for (; i < n_pad; ++i) dst[i] = 0;
}

inline __m256bh as_bh(__m256i v) { return reinterpret_cast<__m256bh>(v); }

// One head's slice of a token row is a few cache lines 4.6 KB (the model width) after the last
// one: the hardware prefetcher misses that pattern, and the gathers into Kᵀ, V and q waited on
// memory for each row (in a profile they took as long as the score products). Rows this far ahead
// are fetched in software.
constexpr int64_t kRowsAhead = 8;
inline void prefetch_slice(const float* p, int64_t n) {
  const char* b = reinterpret_cast<const char*>(p);
  for (int64_t off = 0; off < n * int64_t(sizeof(float)) + 63; off += 64) _mm_prefetch(b + off, _MM_HINT_T0);
}

inline __m512bh as_bh(__m512i v) { return reinterpret_cast<__m512bh>(v); }


// Softmax of a row of T scores (s, padded to Tp, a multiple of 16), unnormalized, straight to bf16:
// p[j] = bf16(exp(s[j] − max)), 0 for the padding keys. Returns 1 / Σ exp, which the caller applies
// to the row's outputs (hd values) instead of to its Tp weights.
inline float softmax_bf16(const float* s, int64_t T, int64_t Tp, uint16_t* p) {
  __m512 vmx = _mm512_set1_ps(-INFINITY);
  int64_t j = 0;
  for (; j + 16 <= T; j += 16) vmx = _mm512_max_ps(vmx, _mm512_loadu_ps(s + j));
  if (j < T) vmx = _mm512_max_ps(vmx, _mm512_mask_loadu_ps(vmx, __mmask16((1u << (T - j)) - 1), s + j));
  const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vmx));
  __m512 sum = _mm512_setzero_ps();
  for (j = 0; j < Tp; j += 16) {
    const __mmask16 real = j + 16 <= T ? __mmask16(0xFFFF) : j < T ? __mmask16((1u << (T - j)) - 1) : __mmask16(0);
    const __m512 e = _mm512_maskz_mov_ps(real, simd::exp(_mm512_sub_ps(_mm512_loadu_ps(s + j), mx)));
    sum = _mm512_add_ps(sum, e);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + j), reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(e)));
  }
  return 1.0f / _mm512_reduce_add_ps(sum);
}

// Kᵀ and V of one (tile, head) in the panels the BF16 products read (k and v at the head's first
// row and column, rows d floats apart; T keys padded to Tp with zeros):
//   kt: panels of 16 keys, key t in panel t/16, lane t%16; per panel h2s rows of 16 lanes, row e
//       holding dims 2e and 2e+1 of the lane's key (dims past hd zero up to 2·h2s);
//   vh: panels of 16 features (the last of 8 when hdp is not a multiple of 16), panel e0 at
//       vh + e0·Tp/2; per panel Tp/2 rows, row j holding keys 2j and 2j+1 of each feature.
// row (2·h2s) and rows (2·hdp) are scratch; padding keys and features must already be zero in kt
// and vh (they are never written).
inline void pack_head_bf16(const float* k, const float* v, int64_t d, int64_t T, int64_t Tp, int64_t hd, int64_t h2s,
                           int64_t hdp, uint32_t* kt, uint32_t* vh, uint16_t* row, uint16_t* rows) {
  for (int64_t t = 0; t < T; ++t) {  // Kᵀ: key t's dims, two per lane
    if (t + kRowsAhead < T) prefetch_slice(k + (t + kRowsAhead) * d, hd);
    to_bf16(k + t * d, hd, 1.0f, row, 2 * h2s);
    uint32_t* kp = kt + (t / kBf16Cols) * kBf16Cols * h2s + t % kBf16Cols;
    for (int64_t e = 0; e < h2s; ++e) std::memcpy(kp + e * kBf16Cols, row + 2 * e, 4);
  }
  for (int64_t t = 0; t < T; t += 2) {  // V: keys t and t + 1 of each feature, paired
    for (int64_t a = t + kRowsAhead; a < std::min(T, t + kRowsAhead + 2); ++a) prefetch_slice(v + a * d, hd);
    to_bf16(v + t * d, hd, 1.0f, rows, hdp);
    if (t + 1 < T) to_bf16(v + (t + 1) * d, hd, 1.0f, rows + hdp, hdp);
    else std::fill(rows + hdp, rows + 2 * hdp, uint16_t(0));
    for (int64_t e0 = 0; e0 < hdp; e0 += 16) {  // panels as the products read them: 16 wide, then 8
      const int64_t w = e0 + 16 <= hdp ? 16 : 8;
      uint32_t* dst = vh + e0 * (Tp / 2) + (t / 2) * w;
      // (key t, key t + 1) of features c..c+7: unpack interleaves within 128-bit halves.
      const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows + e0));
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows + hdp + e0));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm_unpacklo_epi16(a, b));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 4), _mm_unpackhi_epi16(a, b));
      if (w == 16) {
        const __m128i a1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows + e0 + 8));
        const __m128i b1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows + hdp + e0 + 8));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 8), _mm_unpacklo_epi16(a1, b1));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 12), _mm_unpackhi_epi16(a1, b1));
      }
    }
  }
}

// dst[e] = o[e] · inv for e < hd: a row's outputs with the softmax's normalization.
inline void store_scaled(const float* o, int64_t hd, float inv, float* dst) {
  int64_t e = 0;
  for (; e + 16 <= hd; e += 16) _mm512_storeu_ps(dst + e, _mm512_mul_ps(_mm512_loadu_ps(o + e), _mm512_set1_ps(inv)));
  if (e < hd) {
    const __mmask16 m = __mmask16((1u << (hd - e)) - 1);
    _mm512_mask_storeu_ps(dst + e, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, o + e), _mm512_set1_ps(inv)));
  }
}
#endif

}  // namespace
}  // namespace edgevlm
