#include "ops/attention.h"

#include <vector>

#include "core/error.h"
#include "ops/activations.h"
#include "ops/cpu_features.h"

namespace edgevlm {

static void check_args(const AttentionArgs& a) {
  EV_CHECK(a.n_head > 0 && a.n_head_kv > 0 && a.n_head % a.n_head_kv == 0 && a.head_dim > 0,
           "attention: %d query heads cannot share %d KV heads", a.n_head, a.n_head_kv);
}

void attention_ref(const AttentionArgs& a) {
  check_args(a);
  const int group = a.n_head / a.n_head_kv;
  std::vector<float> scores(size_t(a.pos0 + a.n_q));
  for (int i = 0; i < a.n_q; ++i) {
    const int64_t kv_len = a.pos0 + i + 1;
    for (int h = 0; h < a.n_head; ++h) {
      const int g = h / group;
      const float* qh = a.q + i * a.q_stride + int64_t(h) * a.head_dim;
      for (int64_t t = 0; t < kv_len; ++t) {
        const float* kt = a.k + t * a.kv_stride + int64_t(g) * a.head_dim;
        float s = 0;
        for (int d = 0; d < a.head_dim; ++d) s += qh[d] * kt[d];
        scores[t] = s * a.scale;
      }
      softmax(scores.data(), kv_len);
      float* oh = a.out + i * a.out_stride + int64_t(h) * a.head_dim;
      for (int d = 0; d < a.head_dim; ++d) oh[d] = 0;
      for (int64_t t = 0; t < kv_len; ++t) {
        const float* vt = a.v + t * a.kv_stride + int64_t(g) * a.head_dim;
        for (int d = 0; d < a.head_dim; ++d) oh[d] += scores[t] * vt[d];
      }
    }
  }
}

void attention(const AttentionArgs& a, ThreadPool& pool) {
  if (a.n_q <= 0) return;
  if (cpu_has_avx2()) {
    attention_avx2(a, pool);
    return;
  }
  check_args(a);
  // Scalar path, parallel over query rows: each row is an independent attention_ref call.
  pool.parallel_for(a.n_q, [&](int64_t b, int64_t e) {
    AttentionArgs s = a;
    s.q = a.q + b * a.q_stride;
    s.out = a.out + b * a.out_stride;
    s.pos0 = a.pos0 + b;
    s.n_q = int(e - b);
    attention_ref(s);
  });
}

}  // namespace edgevlm
