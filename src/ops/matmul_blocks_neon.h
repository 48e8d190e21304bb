// NEON dots of matmul_blocks (ops/matmul_blocks.h), templated on the int8 dot primitive so that
// matmul_neon.cc (widening multiplies) and matmul_dotprod_neon.cc (SDOT) instantiate them with
// their own Dot policy (Dot::dot32 of two 16-byte halves, Dot::dot16 of one; both exact int32
// lane sums). Included only on aarch64, from inside those files' anonymous namespace users: the
// templates live in an anonymous namespace so that each file gets copies compiled with its own
// -march. Every weight block is unpacked in registers to signed bytes (no product pair passes
// ±2^15: |w| ≤ 127, |x| ≤ 127), sub-block scales are applied to int32 lanes, block scales in float.
#pragma once

#include <arm_neon.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "ops/matmul_blocks.h"
#include "ops/matmul_neon_tiles.h"  // h2f

namespace edgevlm::neon {
namespace {

// 16 bytes of Q4_0-ordered nibbles → elements 0-15 and 16-31 as bytes 0..15.
inline void nibbles(const uint8_t* qs, int8x16_t& lo, int8x16_t& hi) {
  const uint8x16_t q = vld1q_u8(qs);
  lo = vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F)));
  hi = vreinterpretq_s8_u8(vshrq_n_u8(q, 4));
}

// The fifth bits of 16 elements (bits of two bytes of qh) as 0x10 bytes.
inline int8x16_t fifth16(uint32_t h) {
  const uint8x16_t bytes = vcombine_u8(vdup_n_u8(uint8_t(h)), vdup_n_u8(uint8_t(h >> 8)));
  const uint8x16_t bit = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  return vreinterpretq_s8_u8(vandq_u8(vtstq_u8(bytes, bit), vdupq_n_u8(0x10)));
}

template <class Dot, GGMLType T>
float dot_legacy(const void* w, const void* a, int64_t nb) {
  const Act32* x = static_cast<const Act32*>(a);
  float s = 0;
  for (int64_t i = 0; i < nb; ++i) {
    const int8x16_t xl = vld1q_s8(x[i].qs), xh = vld1q_s8(x[i].qs + 16);
    int8x16_t lo, hi;
    if constexpr (T == GGMLType::Q4_1) {
      const BlockQ4_1& b = static_cast<const BlockQ4_1*>(w)[i];
      nibbles(b.qs, lo, hi);
      s += h2f(b.d) * x[i].d * float(vaddvq_s32(Dot::dot32(lo, hi, xl, xh))) + h2f(b.m) * x[i].d * float(x[i].sum);
    } else if constexpr (T == GGMLType::Q5_0 || T == GGMLType::Q5_1) {
      using Block = std::conditional_t<T == GGMLType::Q5_0, BlockQ5_0, BlockQ5_1>;
      const Block& b = static_cast<const Block*>(w)[i];
      uint32_t h;
      std::memcpy(&h, b.qh, 4);
      nibbles(b.qs, lo, hi);
      lo = vorrq_s8(lo, fifth16(h));
      hi = vorrq_s8(hi, fifth16(h >> 16));
      const int sumi = vaddvq_s32(Dot::dot32(lo, hi, xl, xh));
      if constexpr (T == GGMLType::Q5_0) s += h2f(b.d) * x[i].d * float(sumi - 16 * x[i].sum);
      else s += h2f(b.d) * x[i].d * float(sumi) + h2f(b.m) * x[i].d * float(x[i].sum);
    } else {  // IQ4_NL
      const BlockIQ4_NL& b = static_cast<const BlockIQ4_NL*>(w)[i];
      const int8x16_t lut = vld1q_s8(kIQ4NLValues);
      nibbles(b.qs, lo, hi);
      lo = vqtbl1q_s8(lut, vreinterpretq_u8_s8(lo));
      hi = vqtbl1q_s8(lut, vreinterpretq_u8_s8(hi));
      s += h2f(b.d) * x[i].d * float(vaddvq_s32(Dot::dot32(lo, hi, xl, xh)));
    }
  }
  return s;
}

// Q4_K / Q5_K and Q6_K take NR activation rows (a + r·as): each weight block is unpacked once for
// all of them (batched products), NR = 1 being the plain dot.
template <class Dot, bool five, int NR>
void dot_q45_k_rows(const void* w, const void* a, size_t as, int64_t nb, float* out) {
  using Block = std::conditional_t<five, BlockQ5_K, BlockQ4_K>;
  const Block* b = static_cast<const Block*>(w);
  const BlockQ8_K* xr[NR];
  for (int r = 0; r < NR; ++r) xr[r] = reinterpret_cast<const BlockQ8_K*>(static_cast<const uint8_t*>(a) + r * as);
  float s[NR] = {};
  for (int64_t i = 0; i < nb; ++i) {
    uint8_t sc[8], m[8];
    for (int j = 0; j < 8; ++j) kquant_scale_min(j, b[i].scales, &sc[j], &m[j]);
    uint8x16_t qh0, qh1;
    if constexpr (five) {
      qh0 = vld1q_u8(b[i].qh);
      qh1 = vld1q_u8(b[i].qh + 16);
    }
    int32x4_t acc[NR];
    for (int r = 0; r < NR; ++r) acc[r] = vdupq_n_s32(0);
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    for (int j = 0; j < 4; ++j) {
      const uint8x16_t q0 = vld1q_u8(b[i].qs + 32 * j), q1 = vld1q_u8(b[i].qs + 32 * j + 16);
      uint8x16_t l0 = vandq_u8(q0, m4), l1 = vandq_u8(q1, m4), h0 = vshrq_n_u8(q0, 4), h1 = vshrq_n_u8(q1, 4);
      if constexpr (five) {
        const uint8x16_t one = vdupq_n_u8(1);
        const int8x16_t sl = vdupq_n_s8(int8_t(-2 * j)), sh = vdupq_n_s8(int8_t(-2 * j - 1));
        l0 = vorrq_u8(l0, vshlq_n_u8(vandq_u8(vshlq_u8(qh0, sl), one), 4));
        l1 = vorrq_u8(l1, vshlq_n_u8(vandq_u8(vshlq_u8(qh1, sl), one), 4));
        h0 = vorrq_u8(h0, vshlq_n_u8(vandq_u8(vshlq_u8(qh0, sh), one), 4));
        h1 = vorrq_u8(h1, vshlq_n_u8(vandq_u8(vshlq_u8(qh1, sh), one), 4));
      }
      for (int r = 0; r < NR; ++r) {
        const int8_t* xq = xr[r][i].qs + 64 * j;
        const int32x4_t p0 =
            Dot::dot32(vreinterpretq_s8_u8(l0), vreinterpretq_s8_u8(l1), vld1q_s8(xq), vld1q_s8(xq + 16));
        const int32x4_t p1 =
            Dot::dot32(vreinterpretq_s8_u8(h0), vreinterpretq_s8_u8(h1), vld1q_s8(xq + 32), vld1q_s8(xq + 48));
        acc[r] = vmlaq_n_s32(vmlaq_n_s32(acc[r], p0, sc[2 * j]), p1, sc[2 * j + 1]);
      }
    }
    const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
    for (int r = 0; r < NR; ++r) {
      const BlockQ8_K& x = xr[r][i];
      int summ = 0;
      for (int j = 0; j < 8; ++j) summ += m[j] * (x.bsums[2 * j] + x.bsums[2 * j + 1]);
      s[r] += x.d * (d * float(vaddvq_s32(acc[r])) - dmin * float(summ));
    }
  }
  for (int r = 0; r < NR; ++r) out[r] = s[r];
}

// Q2_K / Q3_K: element 128h + 32s + l has its 2-bit quant at bits 2s of qs[32h + l]; elements
// l < 16 belong to sub-block 8h + 2s, the others to 8h + 2s + 1.
template <class Dot>
float dot_q2_k(const void* w, const void* a, int64_t nb) {
  const BlockQ2_K* b = static_cast<const BlockQ2_K*>(w);
  const BlockQ8_K* x = static_cast<const BlockQ8_K*>(a);
  const uint8x16_t m2 = vdupq_n_u8(3);
  float s = 0;
  for (int64_t i = 0; i < nb; ++i) {
    int summ = 0;
    for (int j = 0; j < 16; ++j) summ += (b[i].scales[j] >> 4) * x[i].bsums[j];
    int32x4_t acc = vdupq_n_s32(0);
    for (int h = 0; h < 2; ++h) {
      const uint8x16_t q0 = vld1q_u8(b[i].qs + 32 * h), q1 = vld1q_u8(b[i].qs + 32 * h + 16);
      for (int sh = 0; sh < 4; ++sh) {
        const int sub = 8 * h + 2 * sh;
        const int8x16_t shift = vdupq_n_s8(int8_t(-2 * sh));
        const int8x16_t v0 = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(q0, shift), m2));
        const int8x16_t v1 = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(q1, shift), m2));
        const int8_t* xq = x[i].qs + 128 * h + 32 * sh;
        acc = vmlaq_n_s32(acc, Dot::dot16(v0, vld1q_s8(xq)), b[i].scales[sub] & 0xF);
        acc = vmlaq_n_s32(acc, Dot::dot16(v1, vld1q_s8(xq + 16)), b[i].scales[sub + 1] & 0xF);
      }
    }
    s += x[i].d * (h2f(b[i].d) * float(vaddvq_s32(acc)) - h2f(b[i].dmin) * float(summ));
  }
  return s;
}

template <class Dot>
float dot_q3_k(const void* w, const void* a, int64_t nb) {
  const BlockQ3_K* b = static_cast<const BlockQ3_K*>(w);
  const BlockQ8_K* x = static_cast<const BlockQ8_K*>(a);
  const uint8x16_t m2 = vdupq_n_u8(3), one = vdupq_n_u8(1);
  float s = 0;
  for (int64_t i = 0; i < nb; ++i) {
    int8_t sc[16];
    q3k_scales(b[i].scales, sc);
    const uint8x16_t hm0 = vld1q_u8(b[i].hmask), hm1 = vld1q_u8(b[i].hmask + 16);
    int32x4_t acc = vdupq_n_s32(0);
    for (int h = 0; h < 2; ++h) {
      const uint8x16_t q0 = vld1q_u8(b[i].qs + 32 * h), q1 = vld1q_u8(b[i].qs + 32 * h + 16);
      for (int sh = 0; sh < 4; ++sh) {
        const int sub = 8 * h + 2 * sh;
        const int8x16_t shift = vdupq_n_s8(int8_t(-2 * sh)), hshift = vdupq_n_s8(int8_t(-(4 * h + sh)));
        // q − 4 where the high bit (bit 4h + s of hmask[l]) is clear.
        const uint8x16_t f0 = vshlq_n_u8(veorq_u8(vandq_u8(vshlq_u8(hm0, hshift), one), one), 2);
        const uint8x16_t f1 = vshlq_n_u8(veorq_u8(vandq_u8(vshlq_u8(hm1, hshift), one), one), 2);
        const int8x16_t v0 = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(vshlq_u8(q0, shift), m2)), vreinterpretq_s8_u8(f0));
        const int8x16_t v1 = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(vshlq_u8(q1, shift), m2)), vreinterpretq_s8_u8(f1));
        const int8_t* xq = x[i].qs + 128 * h + 32 * sh;
        acc = vmlaq_n_s32(acc, Dot::dot16(v0, vld1q_s8(xq)), sc[sub]);
        acc = vmlaq_n_s32(acc, Dot::dot16(v1, vld1q_s8(xq + 16)), sc[sub + 1]);
      }
    }
    s += x[i].d * h2f(b[i].d) * float(vaddvq_s32(acc));
  }
  return s;
}

template <class Dot, int NR>
void dot_q6_k_rows(const void* w, const void* a, size_t as, int64_t nb, float* out) {
  const BlockQ6_K* b = static_cast<const BlockQ6_K*>(w);
  const BlockQ8_K* xr[NR];
  for (int r = 0; r < NR; ++r) xr[r] = reinterpret_cast<const BlockQ8_K*>(static_cast<const uint8_t*>(a) + r * as);
  const uint8x16_t m4 = vdupq_n_u8(0x0F), m2 = vdupq_n_u8(0x03);
  const int8x16_t off = vdupq_n_s8(32);
  float s[NR] = {};
  for (int64_t i = 0; i < nb; ++i) {
    int32x4_t acc[NR];
    for (int r = 0; r < NR; ++r) acc[r] = vdupq_n_s32(0);
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = b[i].ql + 64 * h;
      const uint8_t* qh = b[i].qh + 32 * h;
      for (int half = 0; half < 2; ++half) {  // elements l = 16·half .. 16·half + 15 of each 32
        const uint8x16_t l0 = vld1q_u8(ql + 16 * half), l1 = vld1q_u8(ql + 32 + 16 * half);
        const uint8x16_t hb = vld1q_u8(qh + 16 * half);
        const uint8x16_t q[4] = {
            vorrq_u8(vandq_u8(l0, m4), vshlq_n_u8(vandq_u8(hb, m2), 4)),
            vorrq_u8(vandq_u8(l1, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 2), m2), 4)),
            vorrq_u8(vshrq_n_u8(l0, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 4), m2), 4)),
            vorrq_u8(vshrq_n_u8(l1, 4), vshlq_n_u8(vshrq_n_u8(hb, 6), 4)),
        };
        for (int sb = 0; sb < 4; ++sb) {
          const int e = 128 * h + 32 * sb + 16 * half;  // first element; its sub-block is e / 16
          const int8x16_t wq = vsubq_s8(vreinterpretq_s8_u8(q[sb]), off);
          for (int r = 0; r < NR; ++r)
            acc[r] = vmlaq_n_s32(acc[r], Dot::dot16(wq, vld1q_s8(xr[r][i].qs + e)), b[i].scales[e / 16]);
        }
      }
    }
    const float d = h2f(b[i].d);
    for (int r = 0; r < NR; ++r) s[r] += xr[r][i].d * d * float(vaddvq_s32(acc[r]));
  }
  for (int r = 0; r < NR; ++r) out[r] = s[r];
}

// The one-row dot of a rows kernel.
template <void (*K)(const void*, const void*, size_t, int64_t, float*)>
float one_row(const void* w, const void* a, int64_t nb) {
  float y;
  K(w, a, 0, nb, &y);
  return y;
}

template <class Dot>
float dot_iq4_xs(const void* w, const void* a, int64_t nb) {
  const BlockIQ4_XS* b = static_cast<const BlockIQ4_XS*>(w);
  const BlockQ8_K* x = static_cast<const BlockQ8_K*>(a);
  const int8x16_t lut = vld1q_s8(kIQ4NLValues);
  float s = 0;
  for (int64_t i = 0; i < nb; ++i) {
    int32x4_t acc = vdupq_n_s32(0);
    for (int sb = 0; sb < 8; ++sb) {
      int8x16_t lo, hi;
      nibbles(b[i].qs + 16 * sb, lo, hi);
      lo = vqtbl1q_s8(lut, vreinterpretq_u8_s8(lo));
      hi = vqtbl1q_s8(lut, vreinterpretq_u8_s8(hi));
      const int32x4_t p = Dot::dot32(lo, hi, vld1q_s8(x[i].qs + 32 * sb), vld1q_s8(x[i].qs + 32 * sb + 16));
      acc = vmlaq_n_s32(acc, p, iq4xs_scale(b[i], sb) - 32);
    }
    s += x[i].d * h2f(b[i].d) * float(vaddvq_s32(acc));
  }
  return s;
}

template <class Dot>
detail::BlockDot block_dots(GGMLType t) {
  switch (t) {
    case GGMLType::Q4_1: return dot_legacy<Dot, GGMLType::Q4_1>;
    case GGMLType::Q5_0: return dot_legacy<Dot, GGMLType::Q5_0>;
    case GGMLType::Q5_1: return dot_legacy<Dot, GGMLType::Q5_1>;
    case GGMLType::IQ4_NL: return dot_legacy<Dot, GGMLType::IQ4_NL>;
    case GGMLType::Q4_K: return one_row<dot_q45_k_rows<Dot, false, 1>>;
    case GGMLType::Q5_K: return one_row<dot_q45_k_rows<Dot, true, 1>>;
    case GGMLType::Q6_K: return one_row<dot_q6_k_rows<Dot, 1>>;
    case GGMLType::IQ4_XS: return dot_iq4_xs<Dot>;
    case GGMLType::Q2_K: return dot_q2_k<Dot>;
    case GGMLType::Q3_K: return dot_q3_k<Dot>;
    default: return nullptr;
  }
}

template <class Dot>
detail::BlockDotRows block_dots4(GGMLType t) {
  switch (t) {
    case GGMLType::Q4_K: return dot_q45_k_rows<Dot, false, 4>;
    case GGMLType::Q5_K: return dot_q45_k_rows<Dot, true, 4>;
    case GGMLType::Q6_K: return dot_q6_k_rows<Dot, 4>;
    default: return nullptr;
  }
}

}  // namespace
}  // namespace edgevlm::neon
