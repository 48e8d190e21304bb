#include "vision/vit_attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/activations.h"
#include "ops/cpu_features.h"
#include "ops/matmul.h"
#include "ops/matmul_internal.h"  // detail::matmul_amx_active

namespace edgevlm {

void vit_attention(const float* q, const float* k, const float* v, float* out, int n_tiles, int n_tok,
                   int n_head, int head_dim, float scale, ThreadPool& pool, bool bf16) {
  if (bf16 && cpu_has_avx512_bf16()) {
    if (detail::matmul_amx_active()) vit_attention_amx(q, k, v, out, n_tiles, n_tok, n_head, head_dim, scale, pool);
    else vit_attention_bf16(q, k, v, out, n_tiles, n_tok, n_head, head_dim, scale, pool);
    return;
  }
  if (cpu_has_avx2()) {
    vit_attention_avx2(q, k, v, out, n_tiles, n_tok, n_head, head_dim, scale, pool);
    return;
  }
  const int64_t d = int64_t(n_head) * head_dim;
  const int64_t T = n_tok, hd = head_dim;
  pool.parallel_for(int64_t(n_tiles) * n_head, [&](int64_t begin, int64_t end) {
    std::vector<float> qh(size_t(T * hd)), kh(size_t(T * hd)), vt(size_t(hd * T)), s(size_t(T * T)),
        oh(size_t(T * hd));
    for (int64_t u = begin; u < end; ++u) {
      const int64_t tile = u / n_head, h = u % n_head;
      const int64_t row0 = tile * T;
      for (int64_t t = 0; t < T; ++t) {
        const int64_t src = (row0 + t) * d + h * hd;
        for (int64_t i = 0; i < hd; ++i) {
          qh[size_t(t * hd + i)] = q[src + i];
          kh[size_t(t * hd + i)] = k[src + i];
          vt[size_t(i * T + t)] = v[src + i];
        }
      }
      // Nested in parallel_for, these products run on this thread alone.
      matmul(WeightMatrix::from_data(GGMLType::F32, kh.data(), hd, T), qh.data(), T, s.data(), pool);
      for (int64_t t = 0; t < T; ++t) {
        float* sr = s.data() + t * T;
        for (int64_t j = 0; j < T; ++j) sr[j] *= scale;
        softmax(sr, T);
      }
      matmul(WeightMatrix::from_data(GGMLType::F32, vt.data(), T, hd), s.data(), T, oh.data(), pool);
      for (int64_t t = 0; t < T; ++t) {
        float* dst = out + (row0 + t) * d + h * hd;
        for (int64_t i = 0; i < hd; ++i) dst[i] = oh[size_t(t * hd + i)];
      }
    }
  });
}

void vit_attention_ref(const float* q, const float* k, const float* v, float* out, int n_tiles, int n_tok,
                       int n_head, int head_dim, float scale) {
  const int64_t d = int64_t(n_head) * head_dim;
  std::vector<float> p(static_cast<size_t>(n_tok));
  for (int tile = 0; tile < n_tiles; ++tile)
    for (int h = 0; h < n_head; ++h)
      for (int i = 0; i < n_tok; ++i) {
        const float* qi = q + (int64_t(tile) * n_tok + i) * d + h * head_dim;
        float mx = -INFINITY;
        for (int j = 0; j < n_tok; ++j) {
          const float* kj = k + (int64_t(tile) * n_tok + j) * d + h * head_dim;
          float acc = 0;
          for (int e = 0; e < head_dim; ++e) acc += qi[e] * kj[e];
          p[size_t(j)] = acc * scale;
          mx = std::max(mx, p[size_t(j)]);
        }
        float sum = 0;
        for (int j = 0; j < n_tok; ++j) sum += (p[size_t(j)] = std::exp(p[size_t(j)] - mx));
        float* o = out + (int64_t(tile) * n_tok + i) * d + h * head_dim;
        for (int e = 0; e < head_dim; ++e) o[e] = 0;
        for (int j = 0; j < n_tok; ++j) {
          const float* vj = v + (int64_t(tile) * n_tok + j) * d + h * head_dim;
          const float w = p[size_t(j)] / sum;
          for (int e = 0; e < head_dim; ++e) o[e] += w * vj[e];
        }
      }
}

}  // namespace edgevlm
