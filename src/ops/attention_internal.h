// The work split shared by the SIMD attention kernels (attention_avx2.cc, attention_neon.cc,
// attention_dotprod_neon.cc). One work item is (KV head, query row, a group of up to kMaxGroup
// query heads sharing that KV head): every K and V row is loaded and converted to F32 once and
// used by all the heads of the group, so an INT8 or F16 cache costs little more arithmetic than
// F32 while reading a half or a quarter of the bytes. Each item then runs the same three steps:
// scores (q·k), softmax in place, weighted sum of V.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "ops/attention.h"

namespace edgevlm::attn {

constexpr int kMaxGroup = 4;

// a with its K/V rows (and INT8 scales) starting at position `first`: a sliding window's first row.
AttentionArgs from_position(const AttentionArgs& a, int64_t first);

struct Item {
  const AttentionArgs& a;  // with a sliding window: K/V moved to the window's first position
  int g;      // KV head
  int h0;     // first query head of the group
  int i;      // query row
  int64_t kv_len;  // positions attended to, from a's first K/V row
  float* scores;  // NH × kv_len
  int8_t* qq;     // NH × head_dim (QkMode::Int8)
};

// Templates here live in an anonymous namespace so that each kernel file gets its own copy,
// compiled with its own ISA flags (the linker must not merge an AVX2 or SDOT copy into code that
// runs on CPUs without them).
namespace {

// Calls run(item, nh) for every item, nh = query heads in the item (1 .. kMaxGroup), parallel
// over items. int8_qk: the items need the quantized-query scratch.
template <class Run>
void for_each_item(const AttentionArgs& a, ThreadPool& pool, bool int8_qk, const Run& run) {
  EV_CHECK(a.n_head > 0 && a.n_head_kv > 0 && a.n_head % a.n_head_kv == 0 && a.head_dim > 0,
           "attention: %d query heads cannot share %d KV heads", a.n_head, a.n_head_kv);
  if (a.n_q <= 0) return;
  const int group = a.n_head / a.n_head_kv;
  // Query heads per item: up to kMaxGroup sharing one KV head, fewer when that would leave
  // threads idle (decode of a model with few KV heads).
  int sub = std::min(group, kMaxGroup);
  while (sub > 1 && int64_t(a.n_head_kv) * ((group + sub - 1) / sub) * a.n_q < 2 * int64_t(pool.size())) sub = (sub + 1) / 2;
  const int n_sub = (group + sub - 1) / sub;
  const int64_t n_items = int64_t(a.n_head_kv) * n_sub * a.n_q;
  pool.parallel_for(n_items, [&](int64_t b, int64_t e) {
    std::vector<float> scores(size_t(sub) * size_t(a.pos0 + a.n_q) + 8);
    std::vector<int8_t> qq(int8_qk ? size_t(sub) * size_t(a.head_dim) + 32 : 0);
    for (int64_t idx = b; idx < e; ++idx) {
      const int i = int(idx % a.n_q);
      const int64_t gs = idx / a.n_q;
      const int g = int(gs / n_sub), s = int(gs % n_sub);
      const int h0 = g * group + s * sub;
      const int nh = std::min(sub, (g + 1) * group - h0);
      const int64_t p = a.pos0 + i;  // the query's position
      if (a.window > 0 && p >= a.window) {
        const AttentionArgs w = from_position(a, p - a.window + 1);
        run(Item{w, g, h0, i, a.window, scores.data(), qq.data()}, nh);
      } else {
        run(Item{a, g, h0, i, p + 1, scores.data(), qq.data()}, nh);
      }
    }
  });
}

}  // namespace
}  // namespace edgevlm::attn
