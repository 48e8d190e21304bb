// AVX2 + FMA ViT attention (compiled with -mavx2 -mfma -mf16c; run only after cpu_has_avx2()).
// Per (tile, head): Kᵀ and V packed once into panels (16 keys × head_dim, and n_tok × 16
// features, each contiguous, so every inner loop streams one panel), scale folded into q; then
// blocks of kRows queries: scores = q·Kᵀ as outer products (kRows query rows × 16 keys in 12
// accumulators, one broadcast of q and two loads of Kᵀ per 12 FMAs), softmax with a vectorized
// exp, out = p·V the same way (kRows rows × 16 features). The scores of a block (kRows × 729
// floats) stay in L1, Kᵀ and V in L2. The matmul path this replaces transposed through dot products with a horizontal sum per
// output and 72-long reductions, and ran libm's exp per score.
#include "vision/vit_attention.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "vision/vit_attention_internal.h"

namespace edgevlm {
namespace {

constexpr int kRows = 6;   // query rows per block (6 × 2 accumulators + 2 loads + 1 broadcast ≤ 16 registers)
constexpr int kCols = 16;  // keys (scores) or features (output) per inner tile

// s[x·ldS + c] = Σ_e qs[x·hd + e] · kp[e·16 + c] for c < 16, x < R (kp: one panel of Kᵀ).
template <int R>
void scores_tile(const float* qs, int64_t hd, const float* kp, float* s, int64_t ldS) {
  // One-dimensional and fully unrolled: GCC kept a 2-D accumulator array in registers but also
  // stored it to the stack on every step, which halved the speed.
  __m256 a0[R], a1[R];
#pragma GCC unroll 8
  for (int x = 0; x < R; ++x) a0[x] = a1[x] = _mm256_setzero_ps();
  for (int64_t e = 0; e < hd; ++e) {
    const __m256 k0 = _mm256_loadu_ps(kp + e * kCols), k1 = _mm256_loadu_ps(kp + e * kCols + 8);
#pragma GCC unroll 8
    for (int x = 0; x < R; ++x) {
      const __m256 qb = _mm256_broadcast_ss(qs + x * hd + e);
      a0[x] = _mm256_fmadd_ps(qb, k0, a0[x]);
      a1[x] = _mm256_fmadd_ps(qb, k1, a1[x]);
    }
  }
#pragma GCC unroll 8
  for (int x = 0; x < R; ++x) {
    _mm256_storeu_ps(s + x * ldS, a0[x]);
    _mm256_storeu_ps(s + x * ldS + 8, a1[x]);
  }
}

// o[x·ldO + c] = Σ_{j<n} p[x·ldP + j] · vp[j·8C + c] for c < 8·C, x < R (vp: one panel of V).
template <int R, int C>
void pv_tile(const float* p, int64_t ldP, int64_t n, const float* vp, float* o, int64_t ldO) {
  constexpr int ldV = 8 * C;
  __m256 acc[R * C];  // as in scores_tile
#pragma GCC unroll 16
  for (int i = 0; i < R * C; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t j = 0; j < n; ++j) {
    const __m256 v0 = _mm256_loadu_ps(vp + j * ldV), v1 = C == 2 ? _mm256_loadu_ps(vp + j * ldV + 8) : v0;
#pragma GCC unroll 8
    for (int x = 0; x < R; ++x) {
      const __m256 pb = _mm256_broadcast_ss(p + x * ldP + j);
      acc[x * C] = _mm256_fmadd_ps(pb, v0, acc[x * C]);
      if constexpr (C == 2) acc[x * C + 1] = _mm256_fmadd_ps(pb, v1, acc[x * C + 1]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < R * C; ++i) _mm256_storeu_ps(o + (i / C) * ldO + 8 * (i % C), acc[i]);
}

// One block of R query rows of one (tile, head). kt: Tp/16 panels of hd × 16; vh: panels of
// T × 16 features, the last T × 8 when hdp is not a multiple of 16.
template <int R>
void query_block(const float* qs, int64_t hd, const float* kt, const float* vh, int64_t T, int64_t Tp, int64_t hdp,
                 float* s, float* o) {
  for (int64_t j0 = 0; j0 < Tp; j0 += kCols) scores_tile<R>(qs, hd, kt + j0 * hd, s + j0, Tp);
  for (int x = 0; x < R; ++x) {  // softmax; the padding keys [T, Tp) get weight 0
    float* sr = s + x * Tp;
    const __m256 vinv = _mm256_set1_ps(exp_padded_row(sr, T, Tp));
    for (int64_t j = 0; j < Tp; j += 8) _mm256_storeu_ps(sr + j, _mm256_mul_ps(_mm256_loadu_ps(sr + j), vinv));
  }
  int64_t e0 = 0;
  for (; e0 + 16 <= hdp; e0 += 16) pv_tile<R, 2>(s, Tp, T, vh + e0 * T, o + e0, hdp);
  if (e0 < hdp) pv_tile<R, 1>(s, Tp, T, vh + e0 * T, o + e0, hdp);
}

using BlockFn = void (*)(const float*, int64_t, const float*, const float*, int64_t, int64_t, int64_t, float*, float*);
const BlockFn kBlock[kRows] = {query_block<1>, query_block<2>, query_block<3>,
                               query_block<4>, query_block<5>, query_block<6>};

}  // namespace

void vit_attention_avx2(const float* q, const float* k, const float* v, float* out, int n_tiles, int n_tok,
                        int n_head, int head_dim, float scale, ThreadPool& pool) {
  const int64_t d = int64_t(n_head) * head_dim, T = n_tok, hd = head_dim;
  const int64_t Tp = (T + kCols - 1) / kCols * kCols, hdp = (hd + 7) / 8 * 8;
  pool.parallel_for(int64_t(n_tiles) * n_head, [&](int64_t begin, int64_t end) {
    // Padding keys of Kᵀ and padding features of V are zero (set once, never written).
    std::vector<float> kt(size_t(hd * Tp), 0.0f), vh(size_t(T * hdp), 0.0f), qs(size_t(kRows * hd)),
        s(size_t(kRows * Tp)), o(size_t(kRows * hdp));
    for (int64_t u = begin; u < end; ++u) {
      const int64_t row0 = (u / n_head) * T, col = (u % n_head) * hd;
      for (int64_t t = 0; t < T; ++t) {
        const float* kr = k + (row0 + t) * d + col;
        float* kp = kt.data() + (t / kCols) * kCols * hd + t % kCols;
        for (int64_t e = 0; e < hd; ++e) kp[e * kCols] = kr[e];
        // Panels as query_block reads them: 16 wide while 16 padded features remain, then 8.
        const float* vr = v + (row0 + t) * d + col;
        for (int64_t e0 = 0; e0 < hd; e0 += 16) {
          const int64_t w = e0 + 16 <= hdp ? 16 : 8;
          std::memcpy(vh.data() + e0 * T + t * w, vr + e0, sizeof(float) * size_t(std::min<int64_t>(w, hd - e0)));
        }
      }
      for (int64_t i0 = 0; i0 < T; i0 += kRows) {
        const int r = int(std::min<int64_t>(kRows, T - i0));
        for (int x = 0; x < r; ++x)
          for (int64_t e = 0; e < hd; ++e) qs[size_t(x * hd + e)] = q[(row0 + i0 + x) * d + col + e] * scale;
        kBlock[r - 1](qs.data(), hd, kt.data(), vh.data(), T, Tp, hdp, s.data(), o.data());
        for (int x = 0; x < r; ++x)
          std::memcpy(out + (row0 + i0 + x) * d + col, o.data() + x * hdp, sizeof(float) * size_t(hd));
      }
    }
  });
}

}  // namespace edgevlm

#else

namespace edgevlm {
void vit_attention_avx2(const float* q, const float* k, const float* v, float* out, int n_tiles, int n_tok,
                        int n_head, int head_dim, float scale, ThreadPool&) {
  vit_attention_ref(q, k, v, out, n_tiles, n_tok, n_head, head_dim, scale);
}
}  // namespace edgevlm

#endif
