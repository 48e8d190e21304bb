#include "ops/attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "formats/quant.h"
#include "ops/activations.h"
#include "ops/attention_internal.h"
#include "ops/cpu_features.h"
#if defined(__aarch64__)
#include "ops/attention_neon.h"
#endif

namespace edgevlm {

const char* kv_elem_name(KvElem t) {
  switch (t) {
    case KvElem::F32: return "f32";
    case KvElem::F16: return "f16";
    case KvElem::Q8: return "q8";
  }
  return "?";
}

namespace {

std::atomic<QkMode> g_qk_mode{QkMode::Int8};
std::atomic<bool> g_kv_prefetch{true};

void check_args(const AttentionArgs& a) {
  EV_CHECK(a.n_head > 0 && a.n_head_kv > 0 && a.n_head % a.n_head_kv == 0 && a.head_dim > 0,
           "attention: %d query heads cannot share %d KV heads", a.n_head, a.n_head_kv);
  switch (a.kv_type) {
    case KvElem::F32: EV_CHECK(a.k && a.v, "attention: F32 K/V rows missing"); break;
    case KvElem::F16: EV_CHECK(a.k_raw && a.v_raw, "attention: F16 K/V rows missing"); break;
    case KvElem::Q8:
      EV_CHECK(a.k_raw && a.v_raw && a.k_scale && a.v_scale, "attention: INT8 K/V rows or scales missing");
      break;
  }
  EV_CHECK(a.bidir_begin <= a.bidir_end && (a.bidir_begin == a.bidir_end || (a.bidir_begin >= 0 && a.bidir_end <= a.pos0 + a.n_q)),
           "attention: bidirectional span [%lld, %lld) is not within the %lld positions written",
           (long long)a.bidir_begin, (long long)a.bidir_end, (long long)(a.pos0 + a.n_q));
}

// Row of KV head g at position t as F32: a pointer into the F32 storage or into buf.
const float* kv_row(const AttentionArgs& a, bool is_k, int64_t t, int g, float* buf) {
  const int64_t off = t * a.kv_stride + int64_t(g) * a.head_dim;
  switch (a.kv_type) {
    case KvElem::F32: return (is_k ? a.k : a.v) + off;
    case KvElem::F16: {
      const uint16_t* s = static_cast<const uint16_t*>(is_k ? a.k_raw : a.v_raw) + off;
      for (int d = 0; d < a.head_dim; ++d) buf[d] = f16_to_f32(s[d]);
      return buf;
    }
    case KvElem::Q8: {
      const int8_t* s = static_cast<const int8_t*>(is_k ? a.k_raw : a.v_raw) + off;
      const uint16_t d = (is_k ? a.k_scale : a.v_scale)[t * a.n_head_kv + g];
      dequantize_kv_row_q8(s, d, a.head_dim, buf);
      return buf;
    }
  }
  return nullptr;
}

}  // namespace

void set_attention_qk_mode(QkMode m) { g_qk_mode.store(m, std::memory_order_relaxed); }
QkMode attention_qk_mode() { return g_qk_mode.load(std::memory_order_relaxed); }
bool set_attention_kv_prefetch(bool on) { return g_kv_prefetch.exchange(on, std::memory_order_relaxed); }
bool attention_kv_prefetch() { return g_kv_prefetch.load(std::memory_order_relaxed); }

uint16_t quantize_kv_row_q8(const float* x, int n, int8_t* q) {
  return cpu_has_avx2() ? quantize_kv_row_q8_avx2(x, n, q) : quantize_kv_row_q8_ref(x, n, q);
}

uint16_t quantize_kv_row_q8_ref(const float* x, int n, int8_t* q) {
  float amax = 0;
  for (int i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  // The scale is rounded to F16 first and the values divided by the stored scale, so that
  // d·q reconstructs x as closely as the stored scale allows.
  const uint16_t d16 = f32_to_f16(amax / 127.0f);
  const float d = f16_to_f32(d16);
  const float id = d > 0 ? 1.0f / d : 0.0f;
  for (int i = 0; i < n; ++i) {
    q[i] = round_to_int8(x[i] * id);
  }
  return d16;
}

void dequantize_kv_row_q8(const int8_t* q, uint16_t d16, int n, float* x) {
  const float d = f16_to_f32(d16);
  for (int i = 0; i < n; ++i) x[i] = d * float(q[i]);
}

void attention_ref(const AttentionArgs& a) {
  check_args(a);
  const int group = a.n_head / a.n_head_kv;
  std::vector<float> scores(size_t(a.pos0 + a.n_q));
  std::vector<float> buf(size_t(a.head_dim));
  for (int i = 0; i < a.n_q; ++i) {
    const int64_t p = a.pos0 + i;
    const int64_t kv_end = p >= a.bidir_begin && p < a.bidir_end ? a.bidir_end : p + 1;
    const int64_t kv_first = a.window > 0 ? std::max<int64_t>(0, p + 1 - a.window) : 0;
    const int64_t kv_len = kv_end - kv_first;
    for (int h = 0; h < a.n_head; ++h) {
      const int g = h / group;
      const float* qh = a.q + i * a.q_stride + int64_t(h) * a.head_dim;
      for (int64_t t = 0; t < kv_len; ++t) {
        const float* kt = kv_row(a, true, kv_first + t, g, buf.data());
        float s = 0;
        for (int d = 0; d < a.head_dim; ++d) s += qh[d] * kt[d];
        scores[size_t(t)] = s * a.scale;
      }
      softmax(scores.data(), kv_len);
      float* oh = a.out + i * a.out_stride + int64_t(h) * a.head_dim;
      for (int d = 0; d < a.head_dim; ++d) oh[d] = 0;
      for (int64_t t = 0; t < kv_len; ++t) {
        const float* vt = kv_row(a, false, kv_first + t, g, buf.data());
        for (int d = 0; d < a.head_dim; ++d) oh[d] += scores[size_t(t)] * vt[d];
      }
    }
  }
}

namespace attn {

AttentionArgs from_position(const AttentionArgs& a, int64_t first) {
  AttentionArgs s = a;
  const int64_t off = first * a.kv_stride;
  switch (a.kv_type) {
    case KvElem::F32:
      s.k = a.k + off;
      s.v = a.v + off;
      break;
    case KvElem::F16:
      s.k_raw = static_cast<const uint16_t*>(a.k_raw) + off;
      s.v_raw = static_cast<const uint16_t*>(a.v_raw) + off;
      break;
    case KvElem::Q8:
      s.k_raw = static_cast<const int8_t*>(a.k_raw) + off;
      s.v_raw = static_cast<const int8_t*>(a.v_raw) + off;
      s.k_scale = a.k_scale + first * a.n_head_kv;
      s.v_scale = a.v_scale + first * a.n_head_kv;
      break;
  }
  return s;
}

}  // namespace attn

void attention(const AttentionArgs& a, ThreadPool& pool) {
  if (a.n_q <= 0) return;
  check_args(a);
  const int64_t span_first = std::max(a.bidir_begin, a.pos0), span_last = std::min(a.bidir_end, a.pos0 + a.n_q);
  if (span_first < span_last) {
    // The causal kernels on three parts: the rows before the span, each row of the span on its own
    // as if it sat at the span's last position (its window widened to keep its own start), the rest.
    auto rows = [&](int64_t first, int64_t last, int64_t at, int64_t window) {
      if (first >= last) return;
      AttentionArgs s = a;
      s.bidir_begin = s.bidir_end = 0;
      s.q = a.q + (first - a.pos0) * a.q_stride;
      s.out = a.out + (first - a.pos0) * a.out_stride;
      s.pos0 = at;
      s.n_q = int(last - first);
      s.window = window;
      attention(s, pool);
    };
    rows(a.pos0, span_first, a.pos0, a.window);
    for (int64_t p = span_first; p < span_last; ++p)
      rows(p, p + 1, a.bidir_end - 1, a.window > 0 ? a.window + (a.bidir_end - 1 - p) : 0);
    rows(span_last, a.pos0 + a.n_q, span_last, a.window);
    return;
  }
  if (cpu_has_avx2()) {
    attention_avx2(a, pool);
    return;
  }
#if defined(__aarch64__)
  if (cpu_has_neon()) {
    attention_neon(a, pool);  // SDOT for the int8 q·k when the CPU has it
    return;
  }
#endif
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
