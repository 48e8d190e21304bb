// NEON attention over F32, F16 or INT8 K/V rows for aarch64 (compiled with -march=armv8-a: every
// aarch64 CPU runs this file; the SDOT q·k is in attention_dotprod_neon.cc). The counterpart of
// attention_avx2.cc, step for step, on the same work items (attention_internal.h): q·k by FMA on
// keys converted to F32 in registers (QkMode::Float) or by exact int8 products with the query
// quantized per head (QkMode::Int8, INT8 cache only: attention_neon_qk.h); softmax with a
// vectorized exp; the weighted sum of V accumulated in registers per 16 output features.
#include "ops/attention_neon.h"

#include <arm_neon.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "ops/attention_internal.h"
#include "ops/attention_neon_qk.h"
#include "ops/cpu_features.h"

namespace edgevlm {

namespace {

using attn::h2f;
using attn::Item;

template <KvElem T>
struct Elem;
template <>
struct Elem<KvElem::F32> {
  using type = float;
  static float32x4_t load4(const float* p) { return vld1q_f32(p); }
  static void load8(const float* p, float32x4_t& lo, float32x4_t& hi) {
    lo = vld1q_f32(p);
    hi = vld1q_f32(p + 4);
  }
  static float at(const float* p, int i) { return p[i]; }
};
template <>
struct Elem<KvElem::F16> {
  using type = uint16_t;
  static float32x4_t load4(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
  static void load8(const uint16_t* p, float32x4_t& lo, float32x4_t& hi) {
    const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(p));
    lo = vcvt_f32_f16(vget_low_f16(h));
    hi = vcvt_high_f32_f16(h);
  }
  static float at(const uint16_t* p, int i) { return h2f(p[i]); }
};
template <>
struct Elem<KvElem::Q8> {
  using type = int8_t;
  static float32x4_t load4(const int8_t* p) {
    int32_t u;  // exactly 4 bytes: the last row of the cache may end here
    std::memcpy(&u, p, 4);
    return vcvtq_f32_s32(vmovl_s16(vget_low_s16(vmovl_s8(vreinterpret_s8_s32(vdup_n_s32(u))))));
  }
  static void load8(const int8_t* p, float32x4_t& lo, float32x4_t& hi) {
    const int16x8_t w = vmovl_s8(vld1_s8(p));
    lo = vcvtq_f32_s32(vmovl_s16(vget_low_s16(w)));
    hi = vcvtq_f32_s32(vmovl_high_s16(w));
  }
  static float at(const int8_t* p, int i) { return float(p[i]); }
};

// e^x for 4 floats: the Cephes polynomial of simd::exp (simd_avx2.h), same constants and clamp.
inline float32x4_t exp4(float32x4_t x) {
  x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-88.3762626647949f)), vdupq_n_f32(88.3762626647949f));
  const float32x4_t fx = vrndmq_f32(vfmaq_f32(vdupq_n_f32(0.5f), x, vdupq_n_f32(1.44269504088896341f)));
  x = vfmsq_f32(x, fx, vdupq_n_f32(0.693359375f));
  x = vfmsq_f32(x, fx, vdupq_n_f32(-2.12194440e-4f));
  float32x4_t y = vdupq_n_f32(1.9875691500E-4f);
  y = vfmaq_f32(vdupq_n_f32(1.3981999507E-3f), y, x);
  y = vfmaq_f32(vdupq_n_f32(8.3334519073E-3f), y, x);
  y = vfmaq_f32(vdupq_n_f32(4.1665795894E-2f), y, x);
  y = vfmaq_f32(vdupq_n_f32(1.6666665459E-1f), y, x);
  y = vfmaq_f32(vdupq_n_f32(5.0000001201E-1f), y, x);
  y = vfmaq_f32(vaddq_f32(x, vdupq_n_f32(1.0f)), y, vmulq_f32(x, x));
  // fx ≥ −127 after the clamp, so the biased exponent stays ≥ 0 (see simd::exp).
  const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(fx), vdupq_n_s32(127)), 23);
  return vmulq_f32(y, vreinterpretq_f32_s32(e));
}

// Unscaled q·k (times the row's K scale for Q8) for each head of the group and each position.
template <KvElem T, int NH>
void scores_float(const Item& it) {
  using E = Elem<T>;
  const AttentionArgs& a = it.a;
  const int hd = a.head_dim;
  const auto* kb = static_cast<const typename E::type*>(T == KvElem::F32 ? static_cast<const void*>(a.k) : a.k_raw) +
                   int64_t(it.g) * hd;
  const float* qh[NH];
  for (int j = 0; j < NH; ++j) qh[j] = a.q + it.i * a.q_stride + int64_t(it.h0 + j) * hd;
  for (int64_t t = 0; t < it.kv_len; ++t) {
    const auto* kt = kb + t * a.kv_stride;
    float32x4_t acc0[NH], acc1[NH];
    for (int j = 0; j < NH; ++j) acc0[j] = acc1[j] = vdupq_n_f32(0.0f);
    int d = 0;
    for (; d + 8 <= hd; d += 8) {
      float32x4_t k0, k1;
      E::load8(kt + d, k0, k1);
      for (int j = 0; j < NH; ++j) {
        acc0[j] = vfmaq_f32(acc0[j], vld1q_f32(qh[j] + d), k0);
        acc1[j] = vfmaq_f32(acc1[j], vld1q_f32(qh[j] + d + 4), k1);
      }
    }
    for (; d + 4 <= hd; d += 4) {
      const float32x4_t k0 = E::load4(kt + d);
      for (int j = 0; j < NH; ++j) acc0[j] = vfmaq_f32(acc0[j], vld1q_f32(qh[j] + d), k0);
    }
    float rs = a.scale;
    if constexpr (T == KvElem::Q8) rs *= h2f(a.k_scale[t * a.n_head_kv + it.g]);
    for (int j = 0; j < NH; ++j) {
      float s = vaddvq_f32(vaddq_f32(acc0[j], acc1[j]));
      for (int e = d; e < hd; ++e) s += qh[j][e] * E::at(kt, e);
      it.scores[j * it.kv_len + t] = s * rs;
    }
  }
}

// Armv8.0 int8 products: SMULL/SMLAL put two products in each int16 lane (|q| ≤ 127, |k| ≤ 128:
// at most 32512, no overflow), SADALP adds the pairs into the int32 lanes.
struct DotMull {
  static int32x4_t dot16(int32x4_t acc, int8x16_t k, int8x16_t q) {
    return vpadalq_s16(acc, vmlal_high_s8(vmull_s8(vget_low_s8(k), vget_low_s8(q)), k, q));
  }
};

constexpr attn::QkInt8Kernels kPlainQk = attn::make_qk_int8_kernels<DotMull>();

// In place: scores → softmax weights (times the V row's scale for Q8, so the V loop needs none).
template <KvElem T>
void softmax_rows(const Item& it, int nh) {
  const int64_t n = it.kv_len;
  for (int j = 0; j < nh; ++j) {
    float* s = it.scores + j * n;
    float32x4_t vmx = vdupq_n_f32(-INFINITY);
    int64_t t = 0;
    for (; t + 4 <= n; t += 4) vmx = vmaxq_f32(vmx, vld1q_f32(s + t));
    float mx = vmaxvq_f32(vmx);
    for (; t < n; ++t) mx = std::max(mx, s[t]);
    vmx = vdupq_n_f32(mx);
    float32x4_t vsum = vdupq_n_f32(0.0f);
    t = 0;
    for (; t + 4 <= n; t += 4) {
      const float32x4_t e = exp4(vsubq_f32(vld1q_f32(s + t), vmx));
      vst1q_f32(s + t, e);
      vsum = vaddq_f32(vsum, e);
    }
    float sum = vaddvq_f32(vsum);
    for (; t < n; ++t) {
      s[t] = std::exp(s[t] - mx);
      sum += s[t];
    }
    const float inv = 1.0f / sum;
    if constexpr (T == KvElem::Q8) {
      const uint16_t* vs = it.a.v_scale + it.g;
      for (t = 0; t < n; ++t) s[t] *= inv * h2f(vs[t * it.a.n_head_kv]);
    } else {
      for (t = 0; t + 4 <= n; t += 4) vst1q_f32(s + t, vmulq_n_f32(vld1q_f32(s + t), inv));
      for (; t < n; ++t) s[t] *= inv;
    }
  }
}

// out_j = Σ_t w_j[t] · v_t, 16 features at a time in registers (4 × NH accumulators).
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
    float32x4_t acc[NH * 4];
    for (int j = 0; j < NH * 4; ++j) acc[j] = vdupq_n_f32(0.0f);
    for (int64_t t = 0; t < n; ++t) {
      const auto* vt = vb + t * a.kv_stride + d;
      float32x4_t v[4];
      E::load8(vt, v[0], v[1]);
      E::load8(vt + 8, v[2], v[3]);
      for (int j = 0; j < NH; ++j) {
        const float w = it.scores[j * n + t];
        for (int c = 0; c < 4; ++c) acc[j * 4 + c] = vfmaq_n_f32(acc[j * 4 + c], v[c], w);
      }
    }
    for (int j = 0; j < NH; ++j)
      for (int c = 0; c < 4; ++c) vst1q_f32(oh[j] + d + 4 * c, acc[j * 4 + c]);
  }
  for (; d + 4 <= hd; d += 4) {
    float32x4_t acc[NH];
    for (int j = 0; j < NH; ++j) acc[j] = vdupq_n_f32(0.0f);
    for (int64_t t = 0; t < n; ++t) {
      const float32x4_t v0 = E::load4(vb + t * a.kv_stride + d);
      for (int j = 0; j < NH; ++j) acc[j] = vfmaq_n_f32(acc[j], v0, it.scores[j * n + t]);
    }
    for (int j = 0; j < NH; ++j) vst1q_f32(oh[j] + d, acc[j]);
  }
  for (; d < hd; ++d) {
    for (int j = 0; j < NH; ++j) {
      float s = 0;
      for (int64_t t = 0; t < n; ++t) s += it.scores[j * n + t] * E::at(vb + t * a.kv_stride, d);
      oh[j][d] = s;
    }
  }
}

// qk: the int8 q·k kernels (plain or SDOT) when QkMode::Int8 applies, else null.
template <KvElem T, int NH>
void attend(const Item& it, const attn::QkInt8Kernels* qk) {
  if (T == KvElem::Q8 && qk) {
    qk->scores[NH - 1](it);
  } else {
    scores_float<T, NH>(it);
  }
  softmax_rows<T>(it, NH);
  weighted_v<T, NH>(it);
}

template <KvElem T>
void attend_n(const Item& it, int nh, const attn::QkInt8Kernels* qk) {
  switch (nh) {
    case 1: attend<T, 1>(it, qk); break;
    case 2: attend<T, 2>(it, qk); break;
    case 3: attend<T, 3>(it, qk); break;
    default: attend<T, 4>(it, qk); break;
  }
}

}  // namespace

void attention_neon(const AttentionArgs& a, ThreadPool& pool, NeonKernels kernels) {
  EV_CHECK(kernels != NeonKernels::Dotprod || cpu_has_neon_dotprod(),
           "attention: this CPU has no Armv8.2 dot product (SDOT) for the int8 q·k");
  const bool int8_qk = a.kv_type == KvElem::Q8 && attention_qk_mode() == QkMode::Int8;
  // No SMMLA attention kernels: I8mm takes the SDOT ones (I8MM implies SDOT).
  const bool sdot = kernels == NeonKernels::Dotprod || (kernels == NeonKernels::I8mm && cpu_has_neon_dotprod()) ||
                    (kernels == NeonKernels::Auto && cpu_has_neon_dotprod());
  const attn::QkInt8Kernels* qk = !int8_qk ? nullptr : sdot ? &attn::qk_int8_dotprod() : &kPlainQk;
  attn::for_each_item(a, pool, int8_qk, [&](const Item& it, int nh) {
    switch (a.kv_type) {
      case KvElem::F32: attend_n<KvElem::F32>(it, nh, nullptr); break;
      case KvElem::F16: attend_n<KvElem::F16>(it, nh, nullptr); break;
      case KvElem::Q8: attend_n<KvElem::Q8>(it, nh, qk); break;
    }
  });
}

}  // namespace edgevlm
