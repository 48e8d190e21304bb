// AVX2 attention: q·k with FMA, the softmax with a vectorized exp, and the weighted sum of V
// accumulated in a per-row buffer. Parallel over (head, query) with heads outermost, so the
// queries a thread handles share one KV head's rows in cache.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "ops/attention.h"

#if defined(__AVX2__) && defined(__FMA__)
#include "ops/simd_avx2.h"

namespace edgevlm {

namespace {

inline float dot(const float* a, const float* b, int n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  float s = simd::hsum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

inline void axpy(float alpha, const float* x, float* y, int n) {
  const __m256 va = _mm256_set1_ps(alpha);
  int i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += alpha * x[i];
}

void attend_one(const AttentionArgs& a, int i, int h, float* scores) {
  const int group = a.n_head / a.n_head_kv;
  const int g = h / group;
  const int hd = a.head_dim;
  const int64_t kv_len = a.pos0 + i + 1;
  const float* qh = a.q + i * a.q_stride + int64_t(h) * hd;
  const float* kb = a.k + int64_t(g) * hd;
  const float* vb = a.v + int64_t(g) * hd;

  float mx = -INFINITY;
  for (int64_t t = 0; t < kv_len; ++t) {
    float s = dot(qh, kb + t * a.kv_stride, hd) * a.scale;
    scores[t] = s;
    mx = std::max(mx, s);
  }
  const __m256 vmx = _mm256_set1_ps(mx);
  __m256 vsum = _mm256_setzero_ps();
  int64_t t = 0;
  for (; t + 8 <= kv_len; t += 8) {
    __m256 e = simd::exp(_mm256_sub_ps(_mm256_loadu_ps(scores + t), vmx));
    _mm256_storeu_ps(scores + t, e);
    vsum = _mm256_add_ps(vsum, e);
  }
  float sum = simd::hsum(vsum);
  for (; t < kv_len; ++t) {
    scores[t] = std::exp(scores[t] - mx);
    sum += scores[t];
  }
  const float inv = 1.0f / sum;

  float* oh = a.out + i * a.out_stride + int64_t(h) * hd;
  std::fill(oh, oh + hd, 0.0f);
  for (int64_t t2 = 0; t2 < kv_len; ++t2) axpy(scores[t2] * inv, vb + t2 * a.kv_stride, oh, hd);
}

}  // namespace

void attention_avx2(const AttentionArgs& a, ThreadPool& pool) {
  EV_CHECK(a.n_head > 0 && a.n_head_kv > 0 && a.n_head % a.n_head_kv == 0 && a.head_dim > 0,
           "attention: %d query heads cannot share %d KV heads", a.n_head, a.n_head_kv);
  if (a.n_q <= 0) return;
  const int64_t n_items = int64_t(a.n_head) * a.n_q;
  pool.parallel_for(n_items, [&](int64_t b, int64_t e) {
    std::vector<float> scores(size_t(a.pos0 + a.n_q) + 8);
    for (int64_t it = b; it < e; ++it) {
      const int h = int(it / a.n_q);
      const int i = int(it % a.n_q);
      attend_one(a, i, h, scores.data());
    }
  });
}

}  // namespace edgevlm

#else

namespace edgevlm {
void attention_avx2(const AttentionArgs& a, ThreadPool& pool) { attention(a, pool); }
}  // namespace edgevlm

#endif
