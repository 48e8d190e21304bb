// BF16 ViT attention for CPUs with AVX512-BF16 and AVX512-VL (Zen 4, Sapphire Rapids, Cooper
// Lake), compiled with those flags and run only after cpu_has_avx512_bf16(). The blocking of the
// AVX2 kernel (vit_attention_avx2.cc), with vdpbf16ps in place of FMA: each f32 lane adds two
// bf16 products per instruction, twice FMA's multiply-adds, and the 32 vector registers of
// AVX-512 hold 8 query rows × 32 columns (two 16-wide panels in 512-bit registers: twice the
// 256-bit rate where the datapath is 512 bits wide, Zen 5). q (scale folded in), Kᵀ, the softmax weights and V are
// rounded to bf16 (8-bit mantissa, round to nearest even); scores, softmax and sums stay f32.
// Layout: lane c of a panel holds a pair of consecutive reduction elements (two dims of key c
// for the scores, two keys' values of feature c for the output), as vdpbf16ps pairs them.
#include "vision/vit_attention.h"

#if defined(__AVX512BF16__) && defined(__AVX512VL__) && defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "formats/quant.h"
#include "vision/vit_attention_internal.h"

namespace edgevlm {
namespace {

constexpr int kRows = 8;   // query rows per block: 8 × 2 accumulators + 2 panel loads + 1 broadcast
constexpr int kCols = 16;  // keys (scores) or features (output) per panel

// dst[i] = bf16(src[i] · mul) for i < n, zero up to n_pad.
void to_bf16(const float* src, int64_t n, float mul, uint16_t* dst, int64_t n_pad) {
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

// simd::exp (ops/simd_avx2.h) on 16 lanes: the same range reduction and polynomial.
inline __m512 exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-88.3762626647949f)), _mm512_set1_ps(88.3762626647949f));
  const __m512 fx = _mm512_roundscale_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(0.5f)),
                                         _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
  x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), x);
  __m512 y = _mm512_set1_ps(1.9875691500E-4f);
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507E-3f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073E-3f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894E-2f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459E-1f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201E-1f));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(x, x), _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
  const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(fx), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(y, _mm512_castsi512_ps(e));
}

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
    const __m512 e = _mm512_maskz_mov_ps(real, exp16(_mm512_sub_ps(_mm512_loadu_ps(s + j), mx)));
    sum = _mm512_add_ps(sum, e);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + j), reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(e)));
  }
  return 1.0f / _mm512_reduce_add_ps(sum);
}

// s[x·ldS + 16p + c] = Σ_e q[x][e] · k_{16p+c}[e] for P panels of 16 keys (panel p at kp + p·16·h2,
// h2 × 16 pairs each): q2 rows of h2 bf16 pairs. One 512-bit register per row and panel; two panels
// keep 2R sums in flight, more than vdpbf16ps's latency × rate.
template <int R, int P>
void scores_tile(const uint32_t* q2, int64_t h2, const uint32_t* kp, float* s, int64_t ldS) {
  __m512 acc[R * P];
#pragma GCC unroll 16
  for (int i = 0; i < R * P; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t e = 0; e < h2; ++e) {
    __m512i kv[P];
    for (int p = 0; p < P; ++p) kv[p] = _mm512_loadu_si512(kp + p * kCols * h2 + e * kCols);
#pragma GCC unroll 8
    for (int x = 0; x < R; ++x) {
      const __m512i qb = _mm512_set1_epi32(int(q2[x * h2 + e]));
      for (int p = 0; p < P; ++p) acc[x * P + p] = _mm512_dpbf16_ps(acc[x * P + p], as_bh(qb), as_bh(kv[p]));
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < R * P; ++i) _mm512_storeu_ps(s + (i / P) * ldS + kCols * (i % P), acc[i]);
}

// o[x·ldO + 16p + c] = Σ_j p[x][j] · v_j[16p + c] for P panels of 16 features (panel p at
// vp + p·vstride, n2 × 16 pairs): p2 rows of n2 key pairs (ldP apart).
template <int R, int P>
void pv_tile(const uint32_t* p2, int64_t ldP, int64_t n2, const uint32_t* vp, int64_t vstride, float* o, int64_t ldO) {
  __m512 acc[R * P];
#pragma GCC unroll 16
  for (int i = 0; i < R * P; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t j = 0; j < n2; ++j) {
    __m512i vv[P];
    for (int p = 0; p < P; ++p) vv[p] = _mm512_loadu_si512(vp + p * vstride + j * kCols);
#pragma GCC unroll 8
    for (int x = 0; x < R; ++x) {
      const __m512i pb = _mm512_set1_epi32(int(p2[x * ldP + j]));
      for (int p = 0; p < P; ++p) acc[x * P + p] = _mm512_dpbf16_ps(acc[x * P + p], as_bh(pb), as_bh(vv[p]));
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < R * P; ++i) _mm512_storeu_ps(o + (i / P) * ldO + kCols * (i % P), acc[i]);
}

// The last panel of V when hdp is not a multiple of 16: 8 features, n2 × 8 pairs.
template <int R>
void pv_tile8(const uint32_t* p2, int64_t ldP, int64_t n2, const uint32_t* vp, float* o, int64_t ldO) {
  __m256 acc[R];
#pragma GCC unroll 8
  for (int x = 0; x < R; ++x) acc[x] = _mm256_setzero_ps();
  for (int64_t j = 0; j < n2; ++j) {
    const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(vp + j * 8));
#pragma GCC unroll 8
    for (int x = 0; x < R; ++x)
      acc[x] = _mm256_dpbf16_ps(acc[x], as_bh(_mm256_set1_epi32(int(p2[x * ldP + j]))), as_bh(v0));
  }
#pragma GCC unroll 8
  for (int x = 0; x < R; ++x) _mm256_storeu_ps(o + x * ldO, acc[x]);
}

// One block of R query rows of one (tile, head): kt Tp/16 panels of h2 × 16 pairs, vh panels of
// Tp/2 × 16 pairs (the last × 8 when hdp is not a multiple of 16).
template <int R>
void query_block(const uint32_t* q2, int64_t h2, const uint32_t* kt, const uint32_t* vh, int64_t T, int64_t Tp,
                 int64_t hdp, float* s, uint32_t* p2, float* o, float* inv) {
  int64_t j0 = 0;
  for (; j0 + 2 * kCols <= Tp; j0 += 2 * kCols) scores_tile<R, 2>(q2, h2, kt + j0 * h2, s + j0, Tp);
  if (j0 < Tp) scores_tile<R, 1>(q2, h2, kt + j0 * h2, s + j0, Tp);
  for (int x = 0; x < R; ++x) inv[x] = softmax_bf16(s + x * Tp, T, Tp, reinterpret_cast<uint16_t*>(p2 + x * (Tp / 2)));
  const int64_t n2 = Tp / 2, vstride = kCols * n2;
  int64_t e0 = 0;
  for (; e0 + 2 * kCols <= hdp; e0 += 2 * kCols) pv_tile<R, 2>(p2, n2, n2, vh + e0 * n2, vstride, o + e0, hdp);
  if (e0 + kCols <= hdp) {
    pv_tile<R, 1>(p2, n2, n2, vh + e0 * n2, vstride, o + e0, hdp);
    e0 += kCols;
  }
  if (e0 < hdp) pv_tile8<R>(p2, n2, n2, vh + e0 * n2, o + e0, hdp);
}

using BlockFn = void (*)(const uint32_t*, int64_t, const uint32_t*, const uint32_t*, int64_t, int64_t, int64_t, float*,
                         uint32_t*, float*, float*);
const BlockFn kBlock[kRows] = {query_block<1>, query_block<2>, query_block<3>, query_block<4>,
                               query_block<5>, query_block<6>, query_block<7>, query_block<8>};

}  // namespace

void vit_attention_bf16(const float* q, const float* k, const float* v, float* out, int n_tiles, int n_tok,
                        int n_head, int head_dim, float scale, ThreadPool& pool) {
  const int64_t d = int64_t(n_head) * head_dim, T = n_tok, hd = head_dim;
  const int64_t Tp = (T + kCols - 1) / kCols * kCols, hdp = (hd + 7) / 8 * 8, h2 = (hd + 1) / 2;
  pool.parallel_for(int64_t(n_tiles) * n_head, [&](int64_t begin, int64_t end) {
    // Padding keys of Kᵀ, padding dims of q and k, and padding keys and features of V are zero
    // (set once, never written): their products add nothing.
    std::vector<uint32_t> kt(size_t(h2 * Tp), 0u), vh(size_t(Tp / 2 * hdp), 0u), q2(size_t(kRows * h2)),
        p2(size_t(kRows * Tp / 2));
    std::vector<uint16_t> row(size_t(2 * h2)), rows(size_t(2 * hdp), 0);
    std::vector<float> s(size_t(kRows * Tp)), o(size_t(kRows * hdp));
    float inv[kRows];
    for (int64_t u = begin; u < end; ++u) {
      const int64_t row0 = (u / n_head) * T, col = (u % n_head) * hd;
      for (int64_t t = 0; t < T; ++t) {  // Kᵀ: key t's dims, two per lane
        if (t + kRowsAhead < T) prefetch_slice(k + (row0 + t + kRowsAhead) * d + col, hd);
        to_bf16(k + (row0 + t) * d + col, hd, 1.0f, row.data(), 2 * h2);
        uint32_t* kp = kt.data() + (t / kCols) * kCols * h2 + t % kCols;
        for (int64_t e = 0; e < h2; ++e) std::memcpy(kp + e * kCols, row.data() + 2 * e, 4);
      }
      for (int64_t t = 0; t < T; t += 2) {  // V: keys t and t + 1 of each feature, paired
        for (int64_t a = t + kRowsAhead; a < std::min(T, t + kRowsAhead + 2); ++a) prefetch_slice(v + (row0 + a) * d + col, hd);
        to_bf16(v + (row0 + t) * d + col, hd, 1.0f, rows.data(), hdp);
        if (t + 1 < T) to_bf16(v + (row0 + t + 1) * d + col, hd, 1.0f, rows.data() + hdp, hdp);
        else std::fill(rows.begin() + hdp, rows.end(), uint16_t(0));
        for (int64_t e0 = 0; e0 < hdp; e0 += 16) {  // panels as query_block reads them: 16 wide, then 8
          const int64_t w = e0 + 16 <= hdp ? 16 : 8;
          uint32_t* dst = vh.data() + e0 * (Tp / 2) + (t / 2) * w;
          // (key t, key t + 1) of features c..c+7: unpack interleaves within 128-bit halves.
          const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows.data() + e0));
          const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows.data() + hdp + e0));
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm_unpacklo_epi16(a, b));
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 4), _mm_unpackhi_epi16(a, b));
          if (w == 16) {
            const __m128i a1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows.data() + e0 + 8));
            const __m128i b1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows.data() + hdp + e0 + 8));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 8), _mm_unpacklo_epi16(a1, b1));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 12), _mm_unpackhi_epi16(a1, b1));
          }
        }
      }
      for (int64_t i0 = 0; i0 < T; i0 += kRows) {
        const int r = int(std::min<int64_t>(kRows, T - i0));
        for (int64_t a = i0 + kRows; a < std::min(T, i0 + 2 * kRows); ++a) prefetch_slice(q + (row0 + a) * d + col, hd);
        for (int x = 0; x < r; ++x)
          to_bf16(q + (row0 + i0 + x) * d + col, hd, scale, reinterpret_cast<uint16_t*>(q2.data() + x * h2), 2 * h2);
        kBlock[r - 1](q2.data(), h2, kt.data(), vh.data(), T, Tp, hdp, s.data(), p2.data(), o.data(), inv);
        for (int x = 0; x < r; ++x) {  // the softmax's normalization
          const float* ox = o.data() + x * hdp;
          float* dst = out + (row0 + i0 + x) * d + col;
          int64_t e = 0;
          for (; e + 16 <= hd; e += 16) _mm512_storeu_ps(dst + e, _mm512_mul_ps(_mm512_loadu_ps(ox + e), _mm512_set1_ps(inv[x])));
          if (e < hd) {
            const __mmask16 m = __mmask16((1u << (hd - e)) - 1);
            _mm512_mask_storeu_ps(dst + e, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, ox + e), _mm512_set1_ps(inv[x])));
          }
        }
      }
    }
  });
}

}  // namespace edgevlm

#else

namespace edgevlm {
// Built without the AVX512-BF16 flags (EDGEVLM_NATIVE_X86=OFF): the f32 kernel.
void vit_attention_bf16(const float* q, const float* k, const float* v, float* out, int n_tiles, int n_tok, int n_head,
                        int head_dim, float scale, ThreadPool& pool) {
  vit_attention_avx2(q, k, v, out, n_tiles, n_tok, n_head, head_dim, scale, pool);
}
}  // namespace edgevlm

#endif
