// AVX2 attention over F32, F16 or INT8 K/V rows, one work item at a time (attention_internal.h:
// a KV head, a query row and up to 4 query heads sharing that KV head). q·k: FMA on converted
// keys (QkMode::Float) or int8 products with the query quantized per head (QkMode::Int8, INT8
// cache only); softmax with a vectorized exp; the weighted sum of V accumulated in registers
// per 16 output features (for INT8 rows on AVX-512 CPUs, all of a head's features at once).
// attention_neon.cc is the aarch64 counterpart, step for step.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "formats/quant.h"
#include "ops/attention.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include "ops/attention_internal.h"
#include "ops/matmul_internal.h"
#include "ops/simd_avx2.h"

namespace edgevlm {

namespace {

using attn::Item;

template <KvElem T>
struct Elem;
template <>
struct Elem<KvElem::F32> {
  using type = float;
  static __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
  static float at(const float* p, int i) { return p[i]; }
};
template <>
struct Elem<KvElem::F16> {
  using type = uint16_t;
  static __m256 load8(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static float at(const uint16_t* p, int i) { return _cvtsh_ss(p[i]); }
};
template <>
struct Elem<KvElem::Q8> {
  using type = int8_t;
  static __m256 load8(const int8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  static float at(const int8_t* p, int i) { return float(p[i]); }
};

// Decode reads a layer's K and V rows from memory: the layer's weights have streamed through the
// caches since the rows were last read. A KV head's rows are short and far apart (80 of every 640
// bytes at bluelm-v-3b's shape), a stride the hardware prefetchers follow poorly: attention took
// 11% of a 2-thread decode at 512 positions, 2.5× its time over the same rows in cache. So the
// score loops of a decode step prefetch each key row kKvPrefetchRows positions ahead, and the
// value row of the position they read (used after the softmax). Measured with
// `edgevlm bench -m M --attention` (docs/BENCHMARKS.md); 8 rows ahead beat 16 and 32.
constexpr int64_t kKvPrefetchRows = 8;
// always_inline: as an ordinary inline function GCC 12 -O2 found it free of side effects
// (ipa-pure-const) and deleted its calls, prefetches and all.
__attribute__((always_inline)) inline void prefetch_row(const void* row, int bytes) {
  const uintptr_t first = reinterpret_cast<uintptr_t>(row) & ~uintptr_t(63);
  const uintptr_t end = reinterpret_cast<uintptr_t>(row) + uintptr_t(bytes);
  for (uintptr_t p = first; p < end; p += 64) _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0);
}
// Whether this item's score loop prefetches: decode steps only (a prefill chunk's query rows
// share the rows, in cache after the first).
inline bool prefetches_kv(const Item& it) { return it.a.n_q == 1 && attention_kv_prefetch(); }
// The key row kKvPrefetchRows after position t and the value row of t (rows of `bytes` bytes,
// `stride` bytes apart, from kb and vb).
__attribute__((always_inline)) inline void prefetch_kv(int64_t t, int64_t stride, int bytes, const void* kb, const void* vb) {
  prefetch_row(static_cast<const uint8_t*>(kb) + (t + kKvPrefetchRows) * stride, bytes);
  prefetch_row(static_cast<const uint8_t*>(vb) + t * stride, bytes);
}

// Unscaled q·k (times the row's K scale for Q8) for each head of the group and each position.
template <KvElem T, int NH>
void scores_float(const Item& it) {
  using E = Elem<T>;
  const AttentionArgs& a = it.a;
  const int hd = a.head_dim;
  const auto* kb = static_cast<const typename E::type*>(T == KvElem::F32 ? static_cast<const void*>(a.k) : a.k_raw) +
                   int64_t(it.g) * hd;
  const auto* vb = static_cast<const typename E::type*>(T == KvElem::F32 ? static_cast<const void*>(a.v) : a.v_raw) +
                   int64_t(it.g) * hd;
  const float* qh[NH];
  for (int j = 0; j < NH; ++j) qh[j] = a.q + it.i * a.q_stride + int64_t(it.h0 + j) * hd;
  constexpr int64_t eb = sizeof(typename E::type);
  const bool pf = prefetches_kv(it);
  for (int64_t t = 0; t < it.kv_len; ++t) {
    if (pf) prefetch_kv(t, a.kv_stride * eb, int(hd * eb), kb, vb);
    const auto* kt = kb + t * a.kv_stride;
    __m256 acc[NH];
    for (int j = 0; j < NH; ++j) acc[j] = _mm256_setzero_ps();
    int d = 0;
    for (; d + 8 <= hd; d += 8) {
      const __m256 kf = E::load8(kt + d);
      for (int j = 0; j < NH; ++j) acc[j] = _mm256_fmadd_ps(_mm256_loadu_ps(qh[j] + d), kf, acc[j]);
    }
    float rs = a.scale;
    if constexpr (T == KvElem::Q8) rs *= _cvtsh_ss(a.k_scale[t * a.n_head_kv + it.g]);
    for (int j = 0; j < NH; ++j) {
      float s = simd::hsum(acc[j]);
      for (int e = d; e < hd; ++e) s += qh[j][e] * E::at(kt, e);
      it.scores[j * it.kv_len + t] = s * rs;
    }
  }
}

// The 8-row int8 q·k in the integer kernel set matmul runs (detail::IntKernels).
#define EV_QK_TARGET
#define EV_QK_DOT(acc, u, s) _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)))
#define EV_QK_FN(name) name##_avx2
#include "ops/attention_qk_avx2.inc"
#undef EV_QK_TARGET
#undef EV_QK_DOT
#undef EV_QK_FN
#define EV_QK_TARGET __attribute__((target("avx2,fma,f16c,avxvnni")))
#define EV_QK_DOT(acc, u, s) _mm256_dpbusd_avx_epi32(acc, u, s)
#define EV_QK_FN(name) name##_vnni
#include "ops/attention_qk_avx2.inc"
#undef EV_QK_TARGET
#undef EV_QK_DOT
#undef EV_QK_FN
#define EV_QK_TARGET __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define EV_QK_DOT(acc, u, s) _mm256_dpbusd_epi32(acc, u, s)
#define EV_QK_FN(name) name##_evex
#include "ops/attention_qk_avx2.inc"
#undef EV_QK_TARGET
#undef EV_QK_DOT
#undef EV_QK_FN

using QkX8 = void (*)(const int8_t*, const int8_t*, int64_t, int, int32_t*);
QkX8 qk_int8_x8_for(detail::IntKernels k) {
  return k == detail::IntKernels::Avx512Vnni ? qk_int8_x8_evex : k == detail::IntKernels::AvxVnni ? qk_int8_x8_vnni
                                                                                                  : qk_int8_x8_avx2;
}

// The F16 scales of KV rows t .. t+7 of one KV head (stride: scales between rows), as floats.
inline __m256 row_scales8(const uint16_t* scale, int64_t t, int64_t stride) {
  alignas(16) uint16_t h[8];
  for (int p = 0; p < 8; ++p) h[p] = scale[(t + p) * stride];
  return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(h)));
}

// The kernels on 512-bit registers, for INT8 rows on the CPUs of the Avx512Vnni kernel set.
#define EV_ATTN_Z __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
constexpr __mmask16 kAll16 = 0xFFFF;  // maskz forms: the plain intrinsics trip GCC 12's -Wmaybe-uninitialized

// q·k of the NH query heads of an item against 8 key rows (out[8j + p]: head j, row p), with the
// 32 registers of AVX512-VL: each key chunk is loaded and its absolute value formed once for all
// the heads, which qk_int8_x8 repeats per head. The same exact int32 sums. hd a multiple of 16.
template <int NH>
EV_ATTN_Z void qk_int8_x8_heads_z(const int8_t* qq, const int8_t* k, int64_t stride, int hd, int32_t* out) {
  for (int half = 0; half < 2; ++half) {  // 4 rows × NH heads of accumulators at a time
    const int8_t* kh = k + 4 * half * stride;
    __m256i acc[NH * 4];
    for (int i = 0; i < NH * 4; ++i) acc[i] = _mm256_setzero_si256();
    int d = 0;
    for (; d + 32 <= hd; d += 32) {
      __m256i qv[NH];
      for (int j = 0; j < NH; ++j) qv[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qq + j * hd + d));
      for (int p = 0; p < 4; ++p) {
        const __m256i kk = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kh + p * stride + d));
        const __m256i ak = _mm256_sign_epi8(kk, kk);
        for (int j = 0; j < NH; ++j) acc[j * 4 + p] = _mm256_dpbusd_epi32(acc[j * 4 + p], ak, _mm256_sign_epi8(qv[j], kk));
      }
    }
    if (d < hd) {  // 16 left: the upper halves are zero and add nothing
      __m256i qv[NH];
      for (int j = 0; j < NH; ++j)
        qv[j] = _mm256_zextsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qq + j * hd + d)));
      for (int p = 0; p < 4; ++p) {
        const __m256i kk = _mm256_zextsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kh + p * stride + d)));
        const __m256i ak = _mm256_sign_epi8(kk, kk);
        for (int j = 0; j < NH; ++j) acc[j * 4 + p] = _mm256_dpbusd_epi32(acc[j * 4 + p], ak, _mm256_sign_epi8(qv[j], kk));
      }
    }
    for (int j = 0; j < NH; ++j) {  // [rows 0-3 of lanes 0-3 | rows 0-3 of lanes 4-7], halves added
      const __m256i h01 = _mm256_hadd_epi32(acc[j * 4], acc[j * 4 + 1]), h23 = _mm256_hadd_epi32(acc[j * 4 + 2], acc[j * 4 + 3]);
      const __m256i x = _mm256_hadd_epi32(h01, h23);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 8 * j + 4 * half),
                       _mm_add_epi32(_mm256_castsi256_si128(x), _mm256_extracti128_si256(x, 1)));
    }
  }
}

// q·k with the query quantized to int8 per head: Σ q8·k8 in int32, times the query's and the key
// row's scales. Eight key rows at a time (qk_int8_x8, or qk_int8_x8_heads_z for all the heads at
// once when wide) where the head size is a multiple of 16.
template <int NH>
void scores_int8(const Item& it, QkX8 qk_x8, bool wide) {
  const AttentionArgs& a = it.a;
  const int hd = a.head_dim;
  const int8_t* kb = static_cast<const int8_t*>(a.k_raw) + int64_t(it.g) * hd;
  float sq[NH];
  for (int j = 0; j < NH; ++j)
    sq[j] = _cvtsh_ss(quantize_kv_row_q8(a.q + it.i * a.q_stride + int64_t(it.h0 + j) * hd, hd, it.qq + j * hd));
  int64_t t = 0;
  if (hd % 16 == 0) {
    alignas(32) int32_t sums[8 * NH];
    const int64_t ksb = a.kv_stride;  // bytes between key rows (int8 elements)
    const int8_t* vb = static_cast<const int8_t*>(a.v_raw) + int64_t(it.g) * hd;
    const bool pf = prefetches_kv(it);
    for (; t + 8 <= it.kv_len; t += 8) {
      if (pf)
        for (int p = 0; p < 8; ++p) prefetch_kv(t + p, ksb, hd, kb, vb);
      const __m256 rs = _mm256_mul_ps(_mm256_set1_ps(a.scale), row_scales8(a.k_scale + it.g, t, a.n_head_kv));
      if (wide) {
        qk_int8_x8_heads_z<NH>(it.qq, kb + t * ksb, ksb, hd, sums);
      } else {
        for (int j = 0; j < NH; ++j) qk_x8(it.qq + j * hd, kb + t * ksb, ksb, hd, sums + 8 * j);
      }
      for (int j = 0; j < NH; ++j) {
        const __m256 s = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(sums + 8 * j))),
                                       _mm256_set1_ps(sq[j]));
        _mm256_storeu_ps(it.scores + j * it.kv_len + t, _mm256_mul_ps(s, rs));
      }
    }
  }
  for (; t < it.kv_len; ++t) {
    const int8_t* kt = kb + t * a.kv_stride;
    const float rs = a.scale * _cvtsh_ss(a.k_scale[t * a.n_head_kv + it.g]);
    for (int j = 0; j < NH; ++j) {
      int32_t s = 0;
      for (int e = 0; e < hd; ++e) s += int(it.qq[j * hd + e]) * int(kt[e]);
      it.scores[j * it.kv_len + t] = float(s) * sq[j] * rs;
    }
  }
}

// In place: scores → softmax weights (times the V row's scale for Q8, so the V loop needs none).
template <KvElem T>
void softmax_rows(const Item& it, int nh) {
  const int64_t n = it.kv_len;
  float inv[attn::kMaxGroup];
  for (int j = 0; j < nh; ++j) {
    float* s = it.scores + j * n;
    __m256 vmx = _mm256_set1_ps(-INFINITY);
    int64_t t = 0;
    for (; t + 8 <= n; t += 8) vmx = _mm256_max_ps(vmx, _mm256_loadu_ps(s + t));
    float mx = simd::hmax(vmx);
    for (; t < n; ++t) mx = std::max(mx, s[t]);
    vmx = _mm256_set1_ps(mx);
    __m256 vsum = _mm256_setzero_ps();
    t = 0;
    for (; t + 8 <= n; t += 8) {
      const __m256 e = simd::exp(_mm256_sub_ps(_mm256_loadu_ps(s + t), vmx));
      _mm256_storeu_ps(s + t, e);
      vsum = _mm256_add_ps(vsum, e);
    }
    float sum = simd::hsum(vsum);
    for (; t < n; ++t) {
      s[t] = std::exp(s[t] - mx);
      sum += s[t];
    }
    inv[j] = 1.0f / sum;
    if constexpr (T != KvElem::Q8) {
      const __m256 vinv = _mm256_set1_ps(inv[j]);
      for (t = 0; t + 8 <= n; t += 8) _mm256_storeu_ps(s + t, _mm256_mul_ps(_mm256_loadu_ps(s + t), vinv));
      for (; t < n; ++t) s[t] *= inv[j];
    }
  }
  if constexpr (T == KvElem::Q8) {  // each V row's scale, converted once for all the heads
    const uint16_t* vs = it.a.v_scale + it.g;
    const int nkv = it.a.n_head_kv;
    int64_t t = 0;
    for (; t + 8 <= n; t += 8) {
      const __m256 vd = row_scales8(vs, t, nkv);
      for (int j = 0; j < nh; ++j) {
        float* s = it.scores + j * n + t;
        _mm256_storeu_ps(s, _mm256_mul_ps(_mm256_loadu_ps(s), _mm256_mul_ps(_mm256_set1_ps(inv[j]), vd)));
      }
    }
    for (; t < n; ++t)
      for (int j = 0; j < nh; ++j) it.scores[j * n + t] *= inv[j] * _cvtsh_ss(vs[t * nkv]);
  }
}

// out_j = Σ_t w_j[t] · v_t, 16 features at a time in registers.
template <KvElem T, int NH>
void weighted_v(const Item& it) {
  using E = Elem<T>;
  const AttentionArgs& a = it.a;
  const int hd = a.head_dim;
  const auto* vb = static_cast<const typename E::type*>(T == KvElem::F32 ? static_cast<const void*>(a.v) : a.v_raw) +
                   int64_t(it.g) * hd;
  float* oh[NH];
  for (int j = 0; j < NH; ++j) oh[j] = a.out + it.i * a.out_stride + int64_t(it.h0 + j) * hd;
  const int64_t n = it.kv_len;
  int d = 0;
  for (; d + 16 <= hd; d += 16) {
    __m256 acc0[NH], acc1[NH];
    for (int j = 0; j < NH; ++j) acc0[j] = acc1[j] = _mm256_setzero_ps();
    for (int64_t t = 0; t < n; ++t) {
      const auto* vt = vb + t * a.kv_stride + d;
      const __m256 v0 = E::load8(vt), v1 = E::load8(vt + 8);
      for (int j = 0; j < NH; ++j) {
        const __m256 w = _mm256_broadcast_ss(it.scores + j * n + t);
        acc0[j] = _mm256_fmadd_ps(w, v0, acc0[j]);
        acc1[j] = _mm256_fmadd_ps(w, v1, acc1[j]);
      }
    }
    for (int j = 0; j < NH; ++j) {
      _mm256_storeu_ps(oh[j] + d, acc0[j]);
      _mm256_storeu_ps(oh[j] + d + 8, acc1[j]);
    }
  }
  for (; d + 8 <= hd; d += 8) {
    __m256 acc[NH];
    for (int j = 0; j < NH; ++j) acc[j] = _mm256_setzero_ps();
    for (int64_t t = 0; t < n; ++t) {
      const __m256 v0 = E::load8(vb + t * a.kv_stride + d);
      for (int j = 0; j < NH; ++j) acc[j] = _mm256_fmadd_ps(_mm256_broadcast_ss(it.scores + j * n + t), v0, acc[j]);
    }
    for (int j = 0; j < NH; ++j) _mm256_storeu_ps(oh[j] + d, acc[j]);
  }
  for (; d < hd; ++d) {
    for (int j = 0; j < NH; ++j) {
      float s = 0;
      for (int64_t t = 0; t < n; ++t) s += it.scores[j * n + t] * E::at(vb + t * a.kv_stride, d);
      oh[j][d] = s;
    }
  }
}

// The weighted sum of INT8 V rows on 512-bit registers, for the CPUs of the Avx512Vnni kernel set:
// position-outer, with up to 80 features of every head of the group in registers, so each row is
// loaded and converted once per pass and each weight broadcast once, instead of once per 16
// features. Per output the same FMAs in the same order as weighted_v: bit-identical results.
template <int NH, int NC>
EV_ATTN_Z void weighted_v_q8_pass_z(const Item& it, int d0) {
  const AttentionArgs& a = it.a;
  const int8_t* vb = static_cast<const int8_t*>(a.v_raw) + int64_t(it.g) * a.head_dim + d0;
  const int64_t n = it.kv_len;
  __m512 acc[NH * NC];
  for (int i = 0; i < NH * NC; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t t = 0; t < n; ++t) {
    const int8_t* vt = vb + t * a.kv_stride;
    __m512 v[NC];
    for (int c = 0; c < NC; ++c)
      v[c] = _mm512_maskz_cvtepi32_ps(
          kAll16, _mm512_maskz_cvtepi8_epi32(kAll16, _mm_loadu_si128(reinterpret_cast<const __m128i*>(vt + 16 * c))));
    for (int j = 0; j < NH; ++j) {
      const __m512 w = _mm512_set1_ps(it.scores[j * n + t]);
      for (int c = 0; c < NC; ++c) acc[j * NC + c] = _mm512_fmadd_ps(w, v[c], acc[j * NC + c]);
    }
  }
  for (int j = 0; j < NH; ++j) {
    float* o = a.out + it.i * a.out_stride + int64_t(it.h0 + j) * a.head_dim + d0;
    for (int c = 0; c < NC; ++c) _mm512_storeu_ps(o + 16 * c, acc[j * NC + c]);
  }
}
// Head sizes that are multiples of 16, in passes of up to 80 features (4 heads × 5 accumulators,
// 5 rows and a weight: 26 of the 32 zmm registers).
template <int NH>
EV_ATTN_Z void weighted_v_q8_z(const Item& it) {
  constexpr int kMaxChunks = 5;
  for (int d0 = 0; d0 < it.a.head_dim; d0 += 16 * kMaxChunks) {
    switch (std::min(kMaxChunks, (it.a.head_dim - d0) / 16)) {
      case 1: weighted_v_q8_pass_z<NH, 1>(it, d0); break;
      case 2: weighted_v_q8_pass_z<NH, 2>(it, d0); break;
      case 3: weighted_v_q8_pass_z<NH, 3>(it, d0); break;
      case 4: weighted_v_q8_pass_z<NH, 4>(it, d0); break;
      default: weighted_v_q8_pass_z<NH, 5>(it, d0); break;
    }
  }
}

// How an item runs: int8_qk, the 8-row q·k kernel for QkMode::Int8 over INT8 rows (null for float
// q·k); wide, the 512-bit kernels for INT8 rows (q·k of all heads at once, the weighted sum; head
// sizes that are multiples of 16).
struct Kernels {
  QkX8 int8_qk = nullptr;
  bool wide = false;
};

template <KvElem T, int NH>
void attend(const Item& it, const Kernels& k) {
  if constexpr (T == KvElem::Q8) {
    if (k.int8_qk) {
      scores_int8<NH>(it, k.int8_qk, k.wide);
    } else {
      scores_float<T, NH>(it);
    }
  } else {
    scores_float<T, NH>(it);
  }
  softmax_rows<T>(it, NH);
  if (T == KvElem::Q8 && k.wide && it.a.head_dim % 16 == 0) {
    weighted_v_q8_z<NH>(it);
  } else {
    weighted_v<T, NH>(it);
  }
}

template <KvElem T>
void attend_n(const Item& it, int nh, const Kernels& k) {
  switch (nh) {
    case 1: attend<T, 1>(it, k); break;
    case 2: attend<T, 2>(it, k); break;
    case 3: attend<T, 3>(it, k); break;
    default: attend<T, 4>(it, k); break;
  }
}

}  // namespace

// quantize_kv_row_q8_ref step for step: the same scale (F16-rounded by the same function), the same
// product x·(1/d), rounding to nearest even (nearbyint's default mode) and clamp to ±127.
uint16_t quantize_kv_row_q8_avx2(const float* x, int n, int8_t* q) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 vmax = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8) vmax = _mm256_max_ps(vmax, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
  float amax = simd::hmax(vmax);
  for (; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  const uint16_t d16 = f32_to_f16(amax / 127.0f);
  const float d = f16_to_f32(d16);
  const float id = d > 0 ? 1.0f / d : 0.0f;
  const __m256 vid = _mm256_set1_ps(id), hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-127.0f);
  auto q8 = [&](int j) {
    const __m256 v = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j), vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v, lo), hi));
  };
  i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q8(i), q8(i + 8)), _mm256_packs_epi32(q8(i + 16), q8(i + 24)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i),
                        _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
  }
  for (; i + 8 <= n; i += 8) {
    const __m256i v = q8(i);
    const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(q + i), _mm_packs_epi16(w, w));
  }
  for (; i < n; ++i) {
    q[i] = round_to_int8(x[i] * id);
  }
  return d16;
}

void attention_avx2(const AttentionArgs& a, ThreadPool& pool) {
  const detail::IntKernels ik = detail::matmul_int_kernels();
  Kernels k;
  if (a.kv_type == KvElem::Q8) {
    if (attention_qk_mode() == QkMode::Int8) k.int8_qk = qk_int8_x8_for(ik);
    k.wide = ik == detail::IntKernels::Avx512Vnni;
  }
  attn::for_each_item(a, pool, k.int8_qk != nullptr, [&](const Item& it, int nh) {
    switch (a.kv_type) {
      case KvElem::F32: attend_n<KvElem::F32>(it, nh, {}); break;
      case KvElem::F16: attend_n<KvElem::F16>(it, nh, {}); break;
      case KvElem::Q8: attend_n<KvElem::Q8>(it, nh, k); break;
    }
  });
}

}  // namespace edgevlm

#else

namespace edgevlm {
void attention_avx2(const AttentionArgs& a, ThreadPool& pool) {
  fail("attention: this build has no AVX2 kernels");
}
uint16_t quantize_kv_row_q8_avx2(const float* x, int n, int8_t* q) { return quantize_kv_row_q8_ref(x, n, q); }
}  // namespace edgevlm

#endif
