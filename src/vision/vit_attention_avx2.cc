// AVX2 + FMA ViT attention (compiled with -mavx2 -mfma -mf16c; run only after cpu_has_avx2()).
// Per (tile, head): Kᵀ and V packed once (scale folded into q), then blocks of kRows queries:
// scores = q·Kᵀ as outer products (kRows query rows × 16 keys in 12 accumulators, one broadcast
// of q and two loads of Kᵀ per 12 FMAs), softmax with a vectorized exp, out = p·V the same way
// (kRows rows × 16 features). The scores of a block (kRows × 729 floats) stay in L1, Kᵀ and V in
// L2. The matmul path this replaces transposed through dot products with a horizontal sum per
// output and 72-long reductions, and ran libm's exp per score.
#include "vision/vit_attention.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "ops/simd_avx2.h"

namespace edgevlm {
namespace {

constexpr int kRows = 6;   // query rows per block (6 × 2 accumulators + 2 loads + 1 broadcast ≤ 16 registers)
constexpr int kCols = 16;  // keys (scores) or features (output) per inner tile

// s[x·ldS + j0 .. + 16] = Σ_e qs[x·hd + e] · kt[e·ldK + j0 .. + 16] for x < R.
template <int R>
void scores_tile(const float* qs, int64_t hd, const float* kt, int64_t ldK, float* s, int64_t ldS) {
  __m256 acc[R][2];
  for (int x = 0; x < R; ++x) acc[x][0] = acc[x][1] = _mm256_setzero_ps();
  for (int64_t e = 0; e < hd; ++e) {
    const __m256 k0 = _mm256_loadu_ps(kt + e * ldK), k1 = _mm256_loadu_ps(kt + e * ldK + 8);
    for (int x = 0; x < R; ++x) {
      const __m256 qb = _mm256_broadcast_ss(qs + x * hd + e);
      acc[x][0] = _mm256_fmadd_ps(qb, k0, acc[x][0]);
      acc[x][1] = _mm256_fmadd_ps(qb, k1, acc[x][1]);
    }
  }
  for (int x = 0; x < R; ++x) {
    _mm256_storeu_ps(s + x * ldS, acc[x][0]);
    _mm256_storeu_ps(s + x * ldS + 8, acc[x][1]);
  }
}

// o[x·ldO + c] = Σ_{j<n} p[x·ldP + j] · vh[j·ldV + e0 + c] for c < 8·C, x < R.
template <int R, int C>
void pv_tile(const float* p, int64_t ldP, int64_t n, const float* vh, int64_t ldV, float* o, int64_t ldO) {
  __m256 acc[R][C];
  for (int x = 0; x < R; ++x)
    for (int c = 0; c < C; ++c) acc[x][c] = _mm256_setzero_ps();
  for (int64_t j = 0; j < n; ++j) {
    __m256 vv[C];
    for (int c = 0; c < C; ++c) vv[c] = _mm256_loadu_ps(vh + j * ldV + 8 * c);
    for (int x = 0; x < R; ++x) {
      const __m256 pb = _mm256_broadcast_ss(p + x * ldP + j);
      for (int c = 0; c < C; ++c) acc[x][c] = _mm256_fmadd_ps(pb, vv[c], acc[x][c]);
    }
  }
  for (int x = 0; x < R; ++x)
    for (int c = 0; c < C; ++c) _mm256_storeu_ps(o + x * ldO + 8 * c, acc[x][c]);
}

// One block of R query rows of one (tile, head).
template <int R>
void query_block(const float* qs, int64_t hd, const float* kt, const float* vh, int64_t T, int64_t Tp, int64_t hdp,
                 float* s, float* o) {
  for (int64_t j0 = 0; j0 < Tp; j0 += kCols) scores_tile<R>(qs, hd, kt + j0, Tp, s + j0, Tp);
  // Softmax over the T real keys; the padding keys [T, Tp) get weight 0.
  for (int x = 0; x < R; ++x) {
    float* sr = s + x * Tp;
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
    const float inv = 1.0f / simd::hsum(vs);
    const __m256 vinv = _mm256_set1_ps(inv);
    for (j = 0; j < Tp; j += 8) _mm256_storeu_ps(sr + j, _mm256_mul_ps(_mm256_loadu_ps(sr + j), vinv));
  }
  int64_t e0 = 0;
  for (; e0 + 16 <= hdp; e0 += 16) pv_tile<R, 2>(s, Tp, T, vh + e0, hdp, o + e0, hdp);
  if (e0 < hdp) pv_tile<R, 1>(s, Tp, T, vh + e0, hdp, o + e0, hdp);
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
        for (int64_t e = 0; e < hd; ++e) kt[size_t(e * Tp + t)] = kr[e];
        std::memcpy(vh.data() + t * hdp, v + (row0 + t) * d + col, sizeof(float) * size_t(hd));
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
