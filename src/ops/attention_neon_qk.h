// The int8 q·k step of the NEON attention (QkMode::Int8 over an INT8 cache), shared by
// attention_neon.cc (Armv8.0: SMULL/SMLAL into int16, SADALP into int32) and
// attention_dotprod_neon.cc (Armv8.2 SDOT). Included only on aarch64.
#pragma once

#include <arm_neon.h>

#include <cstdint>
#include <cstring>

#include "ops/attention_internal.h"

namespace edgevlm::attn {

using ScoresInt8 = void (*)(const Item&);

// Indexed by the number of query heads in the item − 1.
struct QkInt8Kernels {
  ScoresInt8 scores[kMaxGroup];
};

// The SDOT variant (attention_dotprod_neon.cc); call only when cpu_has_neon_dotprod().
const QkInt8Kernels& qk_int8_dotprod();

namespace {

inline float h2f(uint16_t h) {
  __fp16 f;
  std::memcpy(&f, &h, 2);
  return float(f);
}

// Unscaled Σ q8·k8 per head in int32, times the query's and the key row's scales (as
// attention_avx2's scores_int8). Dot::dot16(acc, k, q) adds the 16 products of k and q to the 4
// int32 lanes of acc; q is within ±127 (quantize_kv_row_q8), k within −128..127.
template <class Dot, int NH>
void scores_int8(const Item& it) {
  const AttentionArgs& a = it.a;
  const int hd = a.head_dim;
  const int8_t* kb = static_cast<const int8_t*>(a.k_raw) + int64_t(it.g) * hd;
  float sq[NH];
  for (int j = 0; j < NH; ++j)
    sq[j] = h2f(quantize_kv_row_q8(a.q + it.i * a.q_stride + int64_t(it.h0 + j) * hd, hd, it.qq + j * hd));
  for (int64_t t = 0; t < it.kv_len; ++t) {
    const int8_t* kt = kb + t * a.kv_stride;
    int32x4_t acc[NH];
    for (int j = 0; j < NH; ++j) acc[j] = vdupq_n_s32(0);
    int d = 0;
    for (; d + 16 <= hd; d += 16) {
      const int8x16_t k = vld1q_s8(kt + d);
      for (int j = 0; j < NH; ++j) acc[j] = Dot::dot16(acc[j], k, vld1q_s8(it.qq + j * hd + d));
    }
    for (; d + 8 <= hd; d += 8) {
      const int8x8_t k = vld1_s8(kt + d);
      for (int j = 0; j < NH; ++j) acc[j] = vpadalq_s16(acc[j], vmull_s8(k, vld1_s8(it.qq + j * hd + d)));
    }
    const float rs = a.scale * h2f(a.k_scale[t * a.n_head_kv + it.g]);
    for (int j = 0; j < NH; ++j) {
      int32_t s = vaddvq_s32(acc[j]);
      for (int e = d; e < hd; ++e) s += int32_t(it.qq[j * hd + e]) * int32_t(kt[e]);
      it.scores[j * it.kv_len + t] = float(s) * sq[j] * rs;
    }
  }
}

template <class Dot>
constexpr QkInt8Kernels make_qk_int8_kernels() {
  return QkInt8Kernels{{scores_int8<Dot, 1>, scores_int8<Dot, 2>, scores_int8<Dot, 3>, scores_int8<Dot, 4>}};
}

}  // namespace
}  // namespace edgevlm::attn
