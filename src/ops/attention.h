// Causal grouped-query attention over a key/value history (the KV cache's F32 rows).
// Query row i (i < n_q) sits at position pos0 + i and attends to positions 0 .. pos0 + i.
// Query head h reads KV head h / (n_head / n_head_kv).
#pragma once

#include <cstdint>

#include "core/thread_pool.h"

namespace edgevlm {

struct AttentionArgs {
  const float* q = nullptr;  // n_q rows, q_stride floats apart, each n_head × head_dim
  int64_t q_stride = 0;
  const float* k = nullptr;  // position p, KV head g at k + p·kv_stride + g·head_dim
  const float* v = nullptr;  // same layout as k
  int64_t kv_stride = 0;
  float* out = nullptr;  // n_q rows, out_stride floats apart, each n_head × head_dim
  int64_t out_stride = 0;
  int n_q = 0;
  int64_t pos0 = 0;
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim = 0;
  float scale = 1.0f;  // applied to q·k before the softmax (usually 1/√head_dim)
};

// Dispatches to AVX2 when the CPU has it. Parallel over (head, query) pairs.
void attention(const AttentionArgs& a, ThreadPool& pool);
// Scalar reference (softmax in float with a double sum).
void attention_ref(const AttentionArgs& a);
// AVX2 path (call only when cpu_has_avx2()).
void attention_avx2(const AttentionArgs& a, ThreadPool& pool);

}  // namespace edgevlm
