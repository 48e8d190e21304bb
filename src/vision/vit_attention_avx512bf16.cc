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
      pack_head_bf16(k + row0 * d + col, v + row0 * d + col, d, T, Tp, hd, h2, hdp, kt.data(), vh.data(), row.data(),
                     rows.data());
      for (int64_t i0 = 0; i0 < T; i0 += kRows) {
        const int r = int(std::min<int64_t>(kRows, T - i0));
        for (int64_t a = i0 + kRows; a < std::min(T, i0 + 2 * kRows); ++a) prefetch_slice(q + (row0 + a) * d + col, hd);
        for (int x = 0; x < r; ++x)
          to_bf16(q + (row0 + i0 + x) * d + col, hd, scale, reinterpret_cast<uint16_t*>(q2.data() + x * h2), 2 * h2);
        kBlock[r - 1](q2.data(), h2, kt.data(), vh.data(), T, Tp, hdp, s.data(), p2.data(), o.data(), inv);
        for (int x = 0; x < r; ++x)  // the softmax's normalization
          store_scaled(o.data() + x * hdp, hd, inv[x], out + (row0 + i0 + x) * d + col);
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
