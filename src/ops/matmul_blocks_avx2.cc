// AVX2 dots of matmul_blocks (ops/matmul_blocks.h): each weight block is unpacked in registers
// to bytes and multiplied with the int8 activations by maddubs; sub-block scales are applied in
// int16/int32 (madd), the block scales in float once per block. The K-quant and IQ4_XS kernels
// also come in a 4-row form (block_dot4_avx2) that unpacks each weight block once for four
// activation rows.
#include "ops/matmul_blocks.h"

#if defined(__AVX2__)

#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "ops/simd_avx2.h"

namespace edgevlm::detail {
namespace {

inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

// Software prefetch for the decode dots, which read each weight row once: the hardware prefetcher
// alone left them waiting on memory (IQ4_XS at one thread on a Xeon: 34 % of the read bandwidth,
// most samples on the loads of the weights; with it 71 %, Q6_K 69 → 76 %). Every line of the block
// kPrefetchAhead bytes ahead, which lies in this row or the next (rows are contiguous); 1024-1536
// measured best (4096 and 8192 lower, Q6_K below no prefetch at 8192). Not for the interleaved
// Q4_K copy, whose tiles read 1184-byte group blocks: there it cost 9-20 % of decode.
constexpr int kPrefetchAhead = 1536;
template <size_t bytes>
inline void prefetch_block_ahead(const void* block) {
  const char* p = static_cast<const char*>(block) + kPrefetchAhead;
  for (size_t off = 0; off < bytes; off += 64) _mm_prefetch(p + off, _MM_HINT_T0);
  if (bytes % 64) _mm_prefetch(p + bytes - 1, _MM_HINT_T0);
}

// 16 bytes of Q4_0-ordered nibbles → 32 bytes 0..15 in element order.
inline __m256i unpack_nibbles(const uint8_t* qs) {
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i m = _mm_set1_epi8(0x0F);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m), _mm_and_si128(q, m));
}

// The 32 bits of a Q5 block's qh → 32 bytes, 0xFF where the bit is set.
inline __m256i fifth_mask(const uint8_t* qh) {
  uint32_t h;
  std::memcpy(&h, qh, 4);
  // Byte i of the result looks at byte i / 8 of h, then tests bit i % 8.
  const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
  __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(int(h)), shuf);
  const __m256i bit = _mm256_set1_epi64x(int64_t(0x8040201008040201));
  return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

inline __m256i load32(const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline __m256i load32(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// ---- 32-element types against Act32 --------------------------------------------------------

template <GGMLType T>
float dot_legacy(const void* w, const void* a, int64_t nb) {
  const Act32* x = static_cast<const Act32*>(a);
  __m256 acc = _mm256_setzero_ps();
  float offs = 0;  // the per-block offset terms of Q4_1 / Q5_1 (m·d_x·Σq)
  for (int64_t i = 0; i < nb; ++i) {
    const __m256i qx = load32(x[i].qs);
    __m256i sumi;
    float d;
    if constexpr (T == GGMLType::Q4_1) {
      const BlockQ4_1& b = static_cast<const BlockQ4_1*>(w)[i];
      sumi = simd::dot_u8i8(unpack_nibbles(b.qs), qx);
      d = h2f(b.d) * x[i].d;
      offs += h2f(b.m) * x[i].d * float(x[i].sum);
    } else if constexpr (T == GGMLType::Q5_0) {
      // q − 16 as a signed byte: the nibble where the fifth bit is set, the nibble | 0xF0 (= nibble
      // − 16) where it is clear; no offset term is left.
      const BlockQ5_0& b = static_cast<const BlockQ5_0*>(w)[i];
      const __m256i q = _mm256_or_si256(unpack_nibbles(b.qs), _mm256_andnot_si256(fifth_mask(b.qh), _mm256_set1_epi8(char(0xF0))));
      sumi = simd::dot_i8i8(q, qx);
      d = h2f(b.d) * x[i].d;
    } else if constexpr (T == GGMLType::Q5_1) {
      const BlockQ5_1& b = static_cast<const BlockQ5_1*>(w)[i];
      const __m256i q = _mm256_or_si256(unpack_nibbles(b.qs), _mm256_and_si256(fifth_mask(b.qh), _mm256_set1_epi8(0x10)));
      sumi = simd::dot_u8i8(q, qx);
      d = h2f(b.d) * x[i].d;
      offs += h2f(b.m) * x[i].d * float(x[i].sum);
    } else {  // IQ4_NL: the 16 levels looked up by pshufb
      const BlockIQ4_NL& b = static_cast<const BlockIQ4_NL*>(w)[i];
      const __m256i lut = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIQ4NLValues)));
      sumi = simd::dot_i8i8(_mm256_shuffle_epi8(lut, unpack_nibbles(b.qs)), qx);
      d = h2f(b.d) * x[i].d;
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
  }
  return simd::hsum(acc) + offs;
}

// ---- K-quants against Q8_K -----------------------------------------------------------------

// Q4_K / Q5_K scales and mins as 16 int16: scales 0-7 in the low lane, mins 0-7 in the high one
// (built in registers: through memory, the loads after the unpacking stalled on store forwarding).
inline __m256i scales_mins(const uint8_t* packed) {
  uint32_t u[3];
  std::memcpy(u, packed, 12);
  const uint32_t lo6 = 0x3f3f3f3f, lo4 = 0x0f0f0f0f, lo2 = 0x03030303;
  const uint32_t mins47 = ((u[2] >> 4) & lo4) | (((u[1] >> 6) & lo2) << 4);
  const uint32_t mins03 = u[1] & lo6;
  const uint32_t sc47 = (u[2] & lo4) | (((u[0] >> 6) & lo2) << 4);
  const uint32_t sc03 = u[0] & lo6;
  return _mm256_cvtepu8_epi16(_mm_set_epi32(int(mins47), int(mins03), int(sc47), int(sc03)));
}

// int16 k of each 128-bit lane across the lane, as one byte shuffle.
struct WordShuffles {
  alignas(32) uint8_t ctrl[8][32];
  constexpr WordShuffles() : ctrl{} {
    for (int k = 0; k < 8; ++k)
      for (int b = 0; b < 32; ++b) ctrl[k][b] = uint8_t(2 * k + (b & 1));
  }
};
constexpr WordShuffles kWordShuffles;
inline __m256i word_bcast(__m256i v, int k) {
  return _mm256_shuffle_epi8(v, _mm256_load_si256(reinterpret_cast<const __m256i*>(kWordShuffles.ctrl[k])));
}

// Σ_s m_s·(bsums[2s] + bsums[2s + 1]) as 4 int32 lanes, for 8 int16 mins.
inline __m128i kquant_min_prod(__m128i mins, const int16_t* bsums) {
  const __m128i b0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bsums));
  const __m128i b1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bsums + 8));
  return _mm_madd_epi16(mins, _mm_hadd_epi16(b0, b1));
}

// The K-quant kernels take NR activation rows (a + r·as): each weight block is unpacked once
// for all of them (prefill), NR = 1 being the plain dot.
template <int NR>
struct RowsQ8K {
  const BlockQ8_K* x[NR];
  RowsQ8K(const void* a, size_t as) {
    for (int r = 0; r < NR; ++r) x[r] = reinterpret_cast<const BlockQ8_K*>(static_cast<const uint8_t*>(a) + r * as);
  }
};

template <bool five, int NR>
void dot_q45_k(const void* w, const void* a, size_t as, int64_t nb, float* out) {
  using Block = std::conditional_t<five, BlockQ5_K, BlockQ4_K>;
  const Block* b = static_cast<const Block*>(w);
  const RowsQ8K<NR> xs(a, as);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256 acc[NR];
  __m128 acc_m[NR];
  for (int r = 0; r < NR; ++r) acc[r] = _mm256_setzero_ps(), acc_m[r] = _mm_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    if constexpr (NR == 1) prefetch_block_ahead<sizeof(Block)>(b + i);
    const __m256i sm = scales_mins(b[i].scales);
    const __m256i scales = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sm));
    const __m128i mins = _mm256_extracti128_si256(sm, 1);
    __m256i sumi[NR];
    for (int r = 0; r < NR; ++r) sumi[r] = _mm256_setzero_si256();
    __m256i hb;
    if constexpr (five) hb = load32(b[i].qh);
    for (int j = 0; j < 4; ++j) {
      const __m256i q = load32(b[i].qs + 32 * j);
      __m256i lo = _mm256_and_si256(q, m4);
      __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      if constexpr (five) {
        const __m256i one = _mm256_set1_epi8(1);
        lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * j), one), 4));
        hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * j + 1), one), 4));
      }
      const __m256i s0 = word_bcast(scales, 2 * j), s1 = word_bcast(scales, 2 * j + 1);
      for (int r = 0; r < NR; ++r) {
        const __m256i p0 = _mm256_maddubs_epi16(lo, load32(xs.x[r][i].qs + 64 * j));
        const __m256i p1 = _mm256_maddubs_epi16(hi, load32(xs.x[r][i].qs + 64 * j + 32));
        sumi[r] = _mm256_add_epi32(sumi[r], _mm256_add_epi32(_mm256_madd_epi16(p0, s0), _mm256_madd_epi16(p1, s1)));
      }
    }
    const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
    for (int r = 0; r < NR; ++r) {
      const BlockQ8_K& x = xs.x[r][i];
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(x.d * d), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
      acc_m[r] = _mm_fmadd_ps(_mm_set1_ps(x.d * dmin), _mm_cvtepi32_ps(kquant_min_prod(mins, x.bsums)), acc_m[r]);
    }
  }
  for (int r = 0; r < NR; ++r) {
    __m128 m = _mm_add_ps(acc_m[r], _mm_movehl_ps(acc_m[r], acc_m[r]));
    m = _mm_add_ss(m, _mm_movehdup_ps(m));
    out[r] = simd::hsum(acc[r]) - _mm_cvtss_f32(m);
  }
}

// Q2_K / Q3_K: the 2-bit quants of elements 128h + 32s + l sit at bits 2s of byte 32h + l; those
// 32 elements span sub-blocks 8h + 2s and 8h + 2s + 1 (16 each), one per 128-bit half of the
// int16 products, so one madd applies both scales.
// The scales of one 128-element half come as 8 int16 in both 128-bit lanes (half_scales); the
// pair of sub-blocks 2s, 2s + 1 is then one byte shuffle: int16 2s across the low lane, 2s + 1
// across the high lane.
inline __m256i half_scales(__m256i sc16, int h) {
  return _mm256_broadcastsi128_si256(h == 0 ? _mm256_castsi256_si128(sc16) : _mm256_extracti128_si256(sc16, 1));
}
struct PairShuffles {
  alignas(32) uint8_t ctrl[4][32];
  constexpr PairShuffles() : ctrl{} {
    for (int s = 0; s < 4; ++s)
      for (int b = 0; b < 32; ++b) ctrl[s][b] = uint8_t((b < 16 ? 4 * s : 4 * s + 2) + (b & 1));
  }
};
constexpr PairShuffles kPairShuffles;
inline __m256i pair_scales(__m256i half, int s) {
  return _mm256_shuffle_epi8(half, _mm256_load_si256(reinterpret_cast<const __m256i*>(kPairShuffles.ctrl[s])));
}

template <int NR>
void dot_q2_k(const void* w, const void* a, size_t as, int64_t nb, float* out) {
  const BlockQ2_K* b = static_cast<const BlockQ2_K*>(w);
  const RowsQ8K<NR> xs(a, as);
  const __m256i m2 = _mm256_set1_epi8(3);
  __m256 acc[NR];
  float acc_m[NR];
  for (int r = 0; r < NR; ++r) acc[r] = _mm256_setzero_ps(), acc_m[r] = 0;
  for (int64_t i = 0; i < nb; ++i) {
    if constexpr (NR == 1) prefetch_block_ahead<sizeof(BlockQ2_K)>(b + i);
    // Min term: Σ (sc >> 4)·bsums over the 16 sub-blocks.
    const __m128i sc8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].scales));
    const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc8, 4), _mm_set1_epi8(0x0F)));
    const __m256i scales = _mm256_cvtepu8_epi16(_mm_and_si128(sc8, _mm_set1_epi8(0x0F)));
    __m256i sumi[NR];
    for (int r = 0; r < NR; ++r) sumi[r] = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i q = load32(b[i].qs + 32 * h);
      const __m256i hs = half_scales(scales, h);
      for (int s = 0; s < 4; ++s) {
        const __m256i qv = _mm256_and_si256(_mm256_srli_epi16(q, 2 * s), m2);
        const __m256i sc = pair_scales(hs, s);
        for (int r = 0; r < NR; ++r) {
          const __m256i p = _mm256_maddubs_epi16(qv, load32(xs.x[r][i].qs + 128 * h + 32 * s));
          sumi[r] = _mm256_add_epi32(sumi[r], _mm256_madd_epi16(p, sc));
        }
      }
    }
    const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
    for (int r = 0; r < NR; ++r) {
      const BlockQ8_K& x = xs.x[r][i];
      const int summ = simd::hsum_i32(_mm256_madd_epi16(mins, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.bsums))));
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(x.d * d), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
      acc_m[r] += x.d * dmin * float(summ);
    }
  }
  for (int r = 0; r < NR; ++r) out[r] = simd::hsum(acc[r]) - acc_m[r];
}

// The 16 six-bit Q3_K scales, minus 32, as bytes (built in registers: a byte-wise pass through
// memory stalled the 16-byte load that followed it on store forwarding).
inline __m128i q3k_scales_vec(const uint8_t* packed) {
  uint32_t u[3];
  std::memcpy(u, packed, 12);
  const uint32_t lo4 = 0x0f0f0f0f, lo2 = 0x03030303;
  const __m128i v = _mm_set_epi32(int(((u[1] >> 4) & lo4) | (((u[2] >> 6) & lo2) << 4)),
                                  int(((u[0] >> 4) & lo4) | (((u[2] >> 4) & lo2) << 4)),
                                  int((u[1] & lo4) | (((u[2] >> 2) & lo2) << 4)), int((u[0] & lo4) | ((u[2] & lo2) << 4)));
  return _mm_sub_epi8(v, _mm_set1_epi8(32));
}

template <int NR>
void dot_q3_k(const void* w, const void* a, size_t as, int64_t nb, float* out) {
  const BlockQ3_K* b = static_cast<const BlockQ3_K*>(w);
  const RowsQ8K<NR> xs(a, as);
  const __m256i m2 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
  __m256 acc[NR];
  for (int r = 0; r < NR; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    if constexpr (NR == 1) prefetch_block_ahead<sizeof(BlockQ3_K)>(b + i);
    const __m256i scales = _mm256_cvtepi8_epi16(q3k_scales_vec(b[i].scales));
    const __m256i hm = load32(b[i].hmask);
    __m256i sumi[NR];
    for (int r = 0; r < NR; ++r) sumi[r] = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i q = load32(b[i].qs + 32 * h);
      const __m256i hs = half_scales(scales, h);
      for (int s = 0; s < 4; ++s) {
        const __m256i lo = _mm256_and_si256(_mm256_srli_epi16(q, 2 * s), m2);
        // q − 4 where the high bit (bit 4h + s of hmask[l]) is clear: subtract 4·x there.
        const __m256i hbit = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + s), one);
        const __m256i four = _mm256_slli_epi16(_mm256_xor_si256(hbit, one), 2);
        const __m256i scv = pair_scales(hs, s);
        for (int r = 0; r < NR; ++r) {
          const __m256i xv = load32(xs.x[r][i].qs + 128 * h + 32 * s);
          const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(lo, xv), _mm256_maddubs_epi16(four, xv));
          sumi[r] = _mm256_add_epi32(sumi[r], _mm256_madd_epi16(p, scv));
        }
      }
    }
    const float d = h2f(b[i].d);
    for (int r = 0; r < NR; ++r)
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(xs.x[r][i].d * d), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
  }
  for (int r = 0; r < NR; ++r) out[r] = simd::hsum(acc[r]);
}

template <int NR>
void dot_q6_k(const void* w, const void* a, size_t as, int64_t nb, float* out) {
  const BlockQ6_K* b = static_cast<const BlockQ6_K*>(w);
  const RowsQ8K<NR> xs(a, as);
  const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03);
  __m256 acc[NR];
  for (int r = 0; r < NR; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    if constexpr (NR == 1) prefetch_block_ahead<sizeof(BlockQ6_K)>(b + i);
    // The −32 offset through the activation sums: Σ sc·(q − 32)·x = Σ sc·q·x − 32·Σ sc·bsum.
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].scales)));
    __m256i sumi[NR];
    for (int r = 0; r < NR; ++r) {
      const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs.x[r][i].bsums));
      sumi[r] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 5));
    }
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = load32(b[i].ql + 64 * h), ql1 = load32(b[i].ql + 64 * h + 32);
      const __m256i qh = load32(b[i].qh + 32 * h);
      const __m256i q[4] = {
          _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4)),
          _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4)),
      };
      const __m256i hs = half_scales(sc16, h);
      for (int s = 0; s < 4; ++s) {
        const __m256i scv = pair_scales(hs, s);  // sub-blocks 8h + 2s and 8h + 2s + 1
        for (int r = 0; r < NR; ++r) {
          const __m256i p = _mm256_maddubs_epi16(q[s], load32(xs.x[r][i].qs + 128 * h + 32 * s));
          sumi[r] = _mm256_add_epi32(sumi[r], _mm256_madd_epi16(p, scv));
        }
      }
    }
    const float d = h2f(b[i].d);
    for (int r = 0; r < NR; ++r)
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(xs.x[r][i].d * d), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
  }
  for (int r = 0; r < NR; ++r) out[r] = simd::hsum(acc[r]);
}

template <int NR>
void dot_iq4_xs(const void* w, const void* a, size_t as, int64_t nb, float* out) {
  const BlockIQ4_XS* b = static_cast<const BlockIQ4_XS*>(w);
  const RowsQ8K<NR> xs(a, as);
  const __m256i lut = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIQ4NLValues)));
  __m256 acc[NR];
  for (int r = 0; r < NR; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    if constexpr (NR == 1) prefetch_block_ahead<sizeof(BlockIQ4_XS)>(b + i);
    __m256i sumi[NR];
    for (int r = 0; r < NR; ++r) sumi[r] = _mm256_setzero_si256();
    for (int s = 0; s < 8; ++s) {
      // Signed levels: maddubs takes |v| and moves v's sign onto the activations.
      const __m256i v = _mm256_shuffle_epi8(lut, unpack_nibbles(b[i].qs + 16 * s));
      const __m256i av = _mm256_sign_epi8(v, v);
      const __m256i sc = _mm256_set1_epi16(int16_t(iq4xs_scale(b[i], s) - 32));
      for (int r = 0; r < NR; ++r) {
        const __m256i p = _mm256_maddubs_epi16(av, _mm256_sign_epi8(load32(xs.x[r][i].qs + 32 * s), v));
        sumi[r] = _mm256_add_epi32(sumi[r], _mm256_madd_epi16(p, sc));
      }
    }
    const float d = h2f(b[i].d);
    for (int r = 0; r < NR; ++r)
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(xs.x[r][i].d * d), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
  }
  for (int r = 0; r < NR; ++r) out[r] = simd::hsum(acc[r]);
}

// ---- 512-bit forms (AVX512F + BW, compiled per function; run when the Avx512Vnni integer set is
// available, matmul_internal.h) of the most used types (Q4_K, Q5_K, Q6_K, IQ4_XS): the same arithmetic on twice the bytes
// per instruction, so that decode keeps up with the memory. Two 256-bit halves of each zmm hold
// two of the AVX2 kernels' steps.
#define EV_Z512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl")))


EV_Z512 inline __m512i join(__m256i lo, __m256i hi) { return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); }
EV_Z512 inline float hsum512(__m512 v) { return _mm512_reduce_add_ps(v); }

// vpermw indices: word k of the result takes word idx[k] of the source.
struct WordIndex {
  alignas(64) uint16_t q4k[2][2][32];  // Q4_K: [j pair][lo/hi]: scales of sub-blocks (4jj, 4jj+2) / (4jj+1, 4jj+3)
  alignas(64) uint16_t q6k[2][2][32];  // Q6_K: [h][part]: sub-blocks 8h + 4·part + k / 8 (16 elements each)
  constexpr WordIndex() : q4k{}, q6k{} {
    for (int jj = 0; jj < 2; ++jj)
      for (int hi = 0; hi < 2; ++hi)
        for (int k = 0; k < 32; ++k) q4k[jj][hi][k] = uint16_t(4 * jj + hi + (k < 16 ? 0 : 2));
    for (int h = 0; h < 2; ++h)
      for (int part = 0; part < 2; ++part)
        for (int k = 0; k < 32; ++k) q6k[h][part][k] = uint16_t(8 * h + 4 * part + k / 8);
  }
};
constexpr WordIndex kWordIndex;
EV_Z512 inline __m512i words(const uint16_t* idx, __m512i src) {
  return _mm512_permutexvar_epi16(_mm512_load_si512(idx), src);
}

template <bool five, int NR>
EV_Z512 void dot_q45_k_z(const void* w, const void* a, size_t as, int64_t nb, float* out) {
  using Block = std::conditional_t<five, BlockQ5_K, BlockQ4_K>;
  const Block* b = static_cast<const Block*>(w);
  const RowsQ8K<NR> xs(a, as);
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  __m512 acc[NR];
  __m128 acc_m[NR];
  for (int r = 0; r < NR; ++r) acc[r] = _mm512_setzero_ps(), acc_m[r] = _mm_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    if constexpr (NR == 1) prefetch_block_ahead<sizeof(Block)>(b + i);
    const __m256i sm = scales_mins(b[i].scales);
    const __m512i sc = _mm512_castsi256_si512(sm);  // words 0-7: the scales
    const __m128i mins = _mm256_extracti128_si256(sm, 1);
    __m512i sumi[NR];
    for (int r = 0; r < NR; ++r) sumi[r] = _mm512_setzero_si512();
    __m512i qh;
    if constexpr (five) qh = _mm512_broadcast_i64x4(load32(b[i].qh));
    for (int jj = 0; jj < 2; ++jj) {
      // 64 bytes: low nibbles are sub-blocks 4jj and 4jj + 2, high nibbles 4jj + 1 and 4jj + 3.
      const __m512i q = _mm512_loadu_si512(b[i].qs + 64 * jj);
      __m512i lo = _mm512_and_si512(q, m4), hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
      if constexpr (five) {  // sub-block k's fifth bits are bit k of qh
        const __m512i one = _mm512_set1_epi8(1);
        const __m512i slo = join(_mm256_set1_epi16(int16_t(4 * jj)), _mm256_set1_epi16(int16_t(4 * jj + 2)));
        const __m512i shi = join(_mm256_set1_epi16(int16_t(4 * jj + 1)), _mm256_set1_epi16(int16_t(4 * jj + 3)));
        lo = _mm512_or_si512(lo, _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, slo), one), 4));
        hi = _mm512_or_si512(hi, _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, shi), one), 4));
      }
      const __m512i slo = words(kWordIndex.q4k[jj][0], sc), shi = words(kWordIndex.q4k[jj][1], sc);
      for (int r = 0; r < NR; ++r) {
        const int8_t* xq = xs.x[r][i].qs + 128 * jj;
        const __m512i xlo = join(load32(xq), load32(xq + 64)), xhi = join(load32(xq + 32), load32(xq + 96));
        const __m512i plo = _mm512_madd_epi16(_mm512_maddubs_epi16(lo, xlo), slo);
        const __m512i phi = _mm512_madd_epi16(_mm512_maddubs_epi16(hi, xhi), shi);
        sumi[r] = _mm512_add_epi32(sumi[r], _mm512_add_epi32(plo, phi));
      }
    }
    const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
    for (int r = 0; r < NR; ++r) {
      const BlockQ8_K& x = xs.x[r][i];
      acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(x.d * d), _mm512_cvtepi32_ps(sumi[r]), acc[r]);
      acc_m[r] = _mm_fmadd_ps(_mm_set1_ps(x.d * dmin), _mm_cvtepi32_ps(kquant_min_prod(mins, x.bsums)), acc_m[r]);
    }
  }
  for (int r = 0; r < NR; ++r) {
    __m128 m = _mm_add_ps(acc_m[r], _mm_movehl_ps(acc_m[r], acc_m[r]));
    m = _mm_add_ss(m, _mm_movehdup_ps(m));
    out[r] = hsum512(acc[r]) - _mm_cvtss_f32(m);
  }
}

template <int NR>
EV_Z512 void dot_q6_k_z(const void* w, const void* a, size_t as, int64_t nb, float* out) {
  const BlockQ6_K* b = static_cast<const BlockQ6_K*>(w);
  const RowsQ8K<NR> xs(a, as);
  const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(0x03);
  // Per-half shift counts of the high bits: [0 | 2] for elements 0-63 of a 128, [4 | 6] for 64-127.
  const __m512i sh01 = join(_mm256_set1_epi16(0), _mm256_set1_epi16(2));
  const __m512i sh23 = join(_mm256_set1_epi16(4), _mm256_set1_epi16(6));
  __m512 acc[NR];
  for (int r = 0; r < NR; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    if constexpr (NR == 1) prefetch_block_ahead<sizeof(BlockQ6_K)>(b + i);
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].scales)));
    const __m512i sc = _mm512_castsi256_si512(sc16);
    __m512i sumi[NR];
    for (int r = 0; r < NR; ++r) {
      // The −32 offset through the activation sums, as in the AVX2 kernel.
      const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs.x[r][i].bsums));
      sumi[r] = _mm512_castsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 5)));
      sumi[r] = _mm512_inserti64x4(sumi[r], _mm256_setzero_si256(), 1);
    }
    for (int h = 0; h < 2; ++h) {
      const __m512i ql = _mm512_loadu_si512(b[i].ql + 64 * h);  // [ql0 | ql1]
      const __m512i qh = _mm512_broadcast_i64x4(load32(b[i].qh + 32 * h));
      // Elements 0-63 of the 128: low nibbles with qh bits 0-1 / 2-3; 64-127: high nibbles, bits 4-5 / 6-7.
      const __m512i q01 = _mm512_or_si512(_mm512_and_si512(ql, m4),
                                          _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, sh01), m2), 4));
      const __m512i q23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                          _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, sh23), m2), 4));
      const __m512i s01 = words(kWordIndex.q6k[h][0], sc), s23 = words(kWordIndex.q6k[h][1], sc);
      for (int r = 0; r < NR; ++r) {
        const int8_t* xq = xs.x[r][i].qs + 128 * h;
        const __m512i p01 = _mm512_madd_epi16(_mm512_maddubs_epi16(q01, _mm512_loadu_si512(xq)), s01);
        const __m512i p23 = _mm512_madd_epi16(_mm512_maddubs_epi16(q23, _mm512_loadu_si512(xq + 64)), s23);
        sumi[r] = _mm512_add_epi32(sumi[r], _mm512_add_epi32(p01, p23));
      }
    }
    const float d = h2f(b[i].d);
    for (int r = 0; r < NR; ++r)
      acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(xs.x[r][i].d * d), _mm512_cvtepi32_ps(sumi[r]), acc[r]);
  }
  for (int r = 0; r < NR; ++r) out[r] = hsum512(acc[r]);
}

// ---- Q4_K over 8 interleaved rows (Q4KGroupBlock, matmul_blocks.h) ------------------------------
// Each 32-byte step holds 4 quant bytes of 8 rows: one vpdpbusd per activation row and nibble half
// gives the 8 rows' sums in the 8 lanes, with no horizontal sums and no per-row scale shuffles.
// The sub-block scales multiply the int32 sums (vpmulld), the mins go through vpmaddwd against the
// activation row's sums per 32, and the float scales apply once per super-block for 8 rows.
#define EV_VNNI256 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))

// vpdpbusd's sum of 4 u8·i8 products per int32 lane, in AVX2 (maddubs cannot saturate here: the
// unsigned side is a nibble, so each pair sum stays within ±3810).
inline __m256i dpbusd_avx2(__m256i acc, __m256i u, __m256i s) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
}

// One body for both instruction sets (a function's target decides which it may use, so the two
// tiles cannot share an inline helper that holds vpdpbusd).
#define EV_Q4K_X8_BODY(DPBUSD) \
  const RowsQ8K<NR> xs(a, as); \
  const __m256i m4 = _mm256_set1_epi8(0x0F); \
  __m256 acc[NR], acc_m[NR]; \
  for (int r = 0; r < NR; ++r) acc[r] = _mm256_setzero_ps(), acc_m[r] = _mm256_setzero_ps(); \
  for (int64_t i = 0; i < nb; ++i) { \
    const Q4KGroupBlock& g = b[i]; \
    __m256i sumi[NR]; \
    for (int r = 0; r < NR; ++r) sumi[r] = _mm256_setzero_si256(); \
    for (int p = 0; p < 4; ++p) { \
      __m256i s0[NR], s1[NR]; \
      for (int r = 0; r < NR; ++r) s0[r] = _mm256_setzero_si256(), s1[r] = _mm256_setzero_si256(); \
      for (int k = 0; k < 8; ++k) { \
        const __m256i q = _mm256_load_si256(reinterpret_cast<const __m256i*>(g.qs[p][k])); \
        const __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4); \
        for (int r = 0; r < NR; ++r) { \
          const int8_t* xq = xs.x[r][i].qs + 64 * p + 4 * k; \
          int32_t x0, x1; \
          std::memcpy(&x0, xq, 4); \
          std::memcpy(&x1, xq + 32, 4); \
          s0[r] = DPBUSD(s0[r], lo, _mm256_set1_epi32(x0)); \
          s1[r] = DPBUSD(s1[r], hi, _mm256_set1_epi32(x1)); \
        } \
      } \
      const __m256i sc0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(g.scales[2 * p]))); \
      const __m256i sc1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(g.scales[2 * p + 1]))); \
      for (int r = 0; r < NR; ++r) \
        sumi[r] = _mm256_add_epi32(sumi[r], _mm256_add_epi32(_mm256_mullo_epi32(s0[r], sc0), _mm256_mullo_epi32(s1[r], sc1))); \
    } \
    const __m256 d = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(g.d))); \
    const __m256 dmin = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(g.dmin))); \
    for (int r = 0; r < NR; ++r) { \
      const BlockQ8_K& x = xs.x[r][i]; \
      /* The activation sums per 32 as int16 pairs (sub-blocks 2t, 2t + 1 in int32 lane t). */ \
      const __m128i bs = _mm_hadd_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x.bsums)), \
                                        _mm_loadu_si128(reinterpret_cast<const __m128i*>(x.bsums + 8))); \
      const __m256i bs8 = _mm256_castsi128_si256(bs); \
      __m256i mn = _mm256_setzero_si256(); \
      for (int t = 0; t < 4; ++t) { \
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(g.mins[t]))); \
        mn = _mm256_add_epi32(mn, _mm256_madd_epi16(mins, _mm256_permutevar8x32_epi32(bs8, _mm256_set1_epi32(t)))); \
      } \
      const __m256 xd = _mm256_set1_ps(x.d); \
      acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(d, xd), _mm256_cvtepi32_ps(sumi[r]), acc[r]); \
      acc_m[r] = _mm256_fmadd_ps(_mm256_mul_ps(dmin, xd), _mm256_cvtepi32_ps(mn), acc_m[r]); \
    } \
  } \
  for (int r = 0; r < NR; ++r) _mm256_storeu_ps(y + r * ldy, _mm256_sub_ps(acc[r], acc_m[r]));

template <int NR>
EV_VNNI256 void q4k_x8_tile(const Q4KGroupBlock* b, const void* a, size_t as, int64_t nb, float* y, size_t ldy) {
  EV_Q4K_X8_BODY(_mm256_dpbusd_epi32)
}

// AVX2 only (16 registers: at most 2 activation rows per tile).
template <int NR>
void q4k_x8_tile_maddubs(const Q4KGroupBlock* b, const void* a, size_t as, int64_t nb, float* y, size_t ldy) {
  EV_Q4K_X8_BODY(dpbusd_avx2)
}

// Two adjacent groups (16 rows) per tile on 512-bit registers: each step's two 32-byte halves meet
// the same broadcast activations, so one vpdpbusd does 64 multiply-adds (twice the 256-bit rate
// on Zen 5). Same arithmetic as q4k_x8_tile; b1 is the second group's super-blocks.
#define EV_VNNI512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))

EV_VNNI512 inline __m512i join2(const void* a, const void* b) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_load_si256(static_cast<const __m256i*>(a))),
                            _mm256_load_si256(static_cast<const __m256i*>(b)), 1);
}
EV_VNNI512 inline __m128i join8(const void* a, const void* b) {
  return _mm_unpacklo_epi64(_mm_loadl_epi64(static_cast<const __m128i*>(a)), _mm_loadl_epi64(static_cast<const __m128i*>(b)));
}

template <int NR>
EV_VNNI512 void q4k_x16_tile(const Q4KGroupBlock* b0, const Q4KGroupBlock* b1, const void* a, size_t as, int64_t nb,
                             float* y, size_t ldy) {
  const RowsQ8K<NR> xs(a, as);
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  __m512 acc[NR], acc_m[NR];
  for (int r = 0; r < NR; ++r) acc[r] = _mm512_setzero_ps(), acc_m[r] = _mm512_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    const Q4KGroupBlock &g0 = b0[i], &g1 = b1[i];
    __m512i sumi[NR];
    for (int r = 0; r < NR; ++r) sumi[r] = _mm512_setzero_si512();
    for (int p = 0; p < 4; ++p) {
      __m512i s0[NR], s1[NR];
      for (int r = 0; r < NR; ++r) s0[r] = _mm512_setzero_si512(), s1[r] = _mm512_setzero_si512();
      for (int k = 0; k < 8; ++k) {
        const __m512i q = join2(g0.qs[p][k], g1.qs[p][k]);
        const __m512i lo = _mm512_and_si512(q, m4), hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
        for (int r = 0; r < NR; ++r) {
          const int8_t* xq = xs.x[r][i].qs + 64 * p + 4 * k;
          int32_t x0, x1;
          std::memcpy(&x0, xq, 4);
          std::memcpy(&x1, xq + 32, 4);
          s0[r] = _mm512_dpbusd_epi32(s0[r], lo, _mm512_set1_epi32(x0));
          s1[r] = _mm512_dpbusd_epi32(s1[r], hi, _mm512_set1_epi32(x1));
        }
      }
      const __m512i sc0 = _mm512_cvtepu8_epi32(join8(g0.scales[2 * p], g1.scales[2 * p]));
      const __m512i sc1 = _mm512_cvtepu8_epi32(join8(g0.scales[2 * p + 1], g1.scales[2 * p + 1]));
      for (int r = 0; r < NR; ++r)
        sumi[r] = _mm512_add_epi32(sumi[r], _mm512_add_epi32(_mm512_mullo_epi32(s0[r], sc0), _mm512_mullo_epi32(s1[r], sc1)));
    }
    const __m512 d = _mm512_cvtph_ps(_mm256_set_m128i(_mm_load_si128(reinterpret_cast<const __m128i*>(g1.d)),
                                                      _mm_load_si128(reinterpret_cast<const __m128i*>(g0.d))));
    const __m512 dmin = _mm512_cvtph_ps(_mm256_set_m128i(_mm_load_si128(reinterpret_cast<const __m128i*>(g1.dmin)),
                                                         _mm_load_si128(reinterpret_cast<const __m128i*>(g0.dmin))));
    __m512i mins[4];
    for (int t = 0; t < 4; ++t)
      mins[t] = _mm512_cvtepu8_epi16(_mm256_set_m128i(_mm_load_si128(reinterpret_cast<const __m128i*>(g1.mins[t])),
                                                       _mm_load_si128(reinterpret_cast<const __m128i*>(g0.mins[t]))));
    for (int r = 0; r < NR; ++r) {
      const BlockQ8_K& x = xs.x[r][i];
      const __m128i bs = _mm_hadd_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x.bsums)),
                                        _mm_loadu_si128(reinterpret_cast<const __m128i*>(x.bsums + 8)));
      const __m512i bs16 = _mm512_castsi128_si512(bs);
      __m512i mn = _mm512_setzero_si512();
      for (int t = 0; t < 4; ++t)
        mn = _mm512_add_epi32(mn, _mm512_madd_epi16(mins[t], _mm512_permutexvar_epi32(_mm512_set1_epi32(t), bs16)));
      const __m512 xd = _mm512_set1_ps(x.d);
      acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(d, xd), _mm512_cvtepi32_ps(sumi[r]), acc[r]);
      acc_m[r] = _mm512_fmadd_ps(_mm512_mul_ps(dmin, xd), _mm512_cvtepi32_ps(mn), acc_m[r]);
    }
  }
  for (int r = 0; r < NR; ++r) _mm512_storeu_ps(y + r * ldy, _mm512_sub_ps(acc[r], acc_m[r]));
}

// IQ4_XS on AVX512-VNNI. The levels offset by +128 to unsigned bytes (the table with its sign bit
// flipped), so one vpdpbusd takes 64 elements of an activation row with no sign tricks; the offset
// comes back out through the activations' sums per sub-block (128·Σx, from Q8_K's bsums). The 8
// sub-block scales are unpacked with vector shifts and applied in float to the lanes' sums (lanes
// 0-7 of a vpdpbusd hold one sub-block, 8-15 the next), once per super-block. The earlier 512-bit
// form (abs/sign, maddubs, scalar scales) spent most of its time on that work: decode at 27 % of
// the read bandwidth.
template <int NR>
EV_VNNI512 void dot_iq4_xs_vnni(const void* w, const void* a, size_t as, int64_t nb, float* out) {
  const BlockIQ4_XS* b = static_cast<const BlockIQ4_XS*>(w);
  const RowsQ8K<NR> xs(a, as);
  const __m512i lut = _mm512_broadcast_i32x4(
      _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIQ4NLValues)), _mm_set1_epi8(char(0x80))));
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  // 128-bit lanes [lo.0, hi.0, lo.1, hi.1] and [lo.2, hi.2, lo.3, hi.3] of (low nibbles, high nibbles):
  // each sub-block's 16 low-nibble elements, then its 16 high ones.
  const __m512i pick01 = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), pick23 = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
  const __m256i shift_l = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28), shift_h = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
  __m512i lane_scale[4];  // lanes of vpdpbusd k: sub-block 2k (0-7), 2k + 1 (8-15)
  for (int k = 0; k < 4; ++k)
    lane_scale[k] = _mm512_setr_epi32(2 * k, 2 * k, 2 * k, 2 * k, 2 * k, 2 * k, 2 * k, 2 * k, 2 * k + 1, 2 * k + 1, 2 * k + 1,
                                      2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1);
  __m512 acc[NR];
  __m256 acc_off[NR];
  for (int r = 0; r < NR; ++r) acc[r] = _mm512_setzero_ps(), acc_off[r] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    if constexpr (NR == 1) prefetch_block_ahead<sizeof(BlockIQ4_XS)>(b + i);
    uint32_t sl;
    std::memcpy(&sl, b[i].scales_l, 4);
    const __m256i ls = _mm256_or_si256(
        _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(int(sl)), shift_l), _mm256_set1_epi32(0xF)),
        _mm256_slli_epi32(_mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(b[i].scales_h), shift_h), _mm256_set1_epi32(3)), 4));
    const __m256 sc = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(ls, _mm256_set1_epi32(32))),
                                    _mm256_set1_ps(h2f(b[i].d)));
    const __m512 sc16 = _mm512_castps256_ps512(sc);
    __m512i v[4];
    for (int h = 0; h < 2; ++h) {
      const __m512i q = _mm512_loadu_si512(b[i].qs + 64 * h);
      const __m512i lo = _mm512_and_si512(q, m4), hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
      v[2 * h] = _mm512_shuffle_epi8(lut, _mm512_permutex2var_epi64(lo, pick01, hi));
      v[2 * h + 1] = _mm512_shuffle_epi8(lut, _mm512_permutex2var_epi64(lo, pick23, hi));
    }
    __m512 scale[4];
    for (int k = 0; k < 4; ++k) scale[k] = _mm512_permutexvar_ps(lane_scale[k], sc16);
    for (int r = 0; r < NR; ++r) {
      const BlockQ8_K& x = xs.x[r][i];
      __m512 sum = _mm512_setzero_ps();
      for (int k = 0; k < 4; ++k) {
        const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v[k], _mm512_loadu_si512(x.qs + 64 * k));
        sum = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale[k], sum);
      }
      const __m256i sx = _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.bsums)), _mm256_set1_epi16(1));
      acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(x.d), sum, acc[r]);
      acc_off[r] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(x.d), sc), _mm256_cvtepi32_ps(sx), acc_off[r]);
    }
  }
  for (int r = 0; r < NR; ++r) out[r] = hsum512(acc[r]) - 128.0f * simd::hsum(acc_off[r]);
}

// The one-row dot of a rows kernel.
template <void (*K)(const void*, const void*, size_t, int64_t, float*)>
float one_row(const void* w, const void* a, int64_t nb) {
  float y;
  K(w, a, 0, nb, &y);
  return y;
}

}  // namespace

BlockDot block_dot_avx2(GGMLType t) {
  switch (t) {
    case GGMLType::Q4_1: return dot_legacy<GGMLType::Q4_1>;
    case GGMLType::Q5_0: return dot_legacy<GGMLType::Q5_0>;
    case GGMLType::Q5_1: return dot_legacy<GGMLType::Q5_1>;
    case GGMLType::IQ4_NL: return dot_legacy<GGMLType::IQ4_NL>;
    case GGMLType::Q2_K: return one_row<dot_q2_k<1>>;
    case GGMLType::Q3_K: return one_row<dot_q3_k<1>>;
    case GGMLType::Q4_K: return one_row<dot_q45_k<false, 1>>;
    case GGMLType::Q5_K: return one_row<dot_q45_k<true, 1>>;
    case GGMLType::Q6_K: return one_row<dot_q6_k<1>>;
    case GGMLType::IQ4_XS: return one_row<dot_iq4_xs<1>>;
    default: return nullptr;
  }
}

BlockDot block_dot_avx512(GGMLType t) {
  switch (t) {
    case GGMLType::Q4_K: return one_row<dot_q45_k_z<false, 1>>;
    case GGMLType::Q5_K: return one_row<dot_q45_k_z<true, 1>>;
    case GGMLType::Q6_K: return one_row<dot_q6_k_z<1>>;
    case GGMLType::IQ4_XS: return one_row<dot_iq4_xs_vnni<1>>;
    default: return nullptr;
  }
}

BlockDotRows block_dot4_avx512(GGMLType t) {
  switch (t) {
    case GGMLType::Q4_K: return dot_q45_k_z<false, 4>;
    case GGMLType::Q5_K: return dot_q45_k_z<true, 4>;
    case GGMLType::Q6_K: return dot_q6_k_z<4>;
    case GGMLType::IQ4_XS: return dot_iq4_xs_vnni<4>;
    default: return nullptr;
  }
}

Q4KGroupTile q4k_x8_tile_avx512(int nr) {
  switch (nr) {
    case 1: return q4k_x8_tile<1>;
    case 2: return q4k_x8_tile<2>;
    case 3: return q4k_x8_tile<3>;
    case 4: return q4k_x8_tile<4>;
    default: return nullptr;
  }
}

Q4KGroupTile q4k_x8_tile_avx2(int nr) {
  switch (nr) {
    case 1: return q4k_x8_tile_maddubs<1>;
    case 2: return q4k_x8_tile_maddubs<2>;
    default: return nullptr;
  }
}

Q4KPairTile q4k_x16_tile_avx512(int nr) {
  switch (nr) {
    case 1: return q4k_x16_tile<1>;
    case 2: return q4k_x16_tile<2>;
    case 3: return q4k_x16_tile<3>;
    case 4: return q4k_x16_tile<4>;
    default: return nullptr;
  }
}

BlockDotRows block_dot4_avx2(GGMLType t) {
  switch (t) {
    case GGMLType::Q2_K: return dot_q2_k<4>;
    case GGMLType::Q3_K: return dot_q3_k<4>;
    case GGMLType::Q4_K: return dot_q45_k<false, 4>;
    case GGMLType::Q5_K: return dot_q45_k<true, 4>;
    case GGMLType::Q6_K: return dot_q6_k<4>;
    case GGMLType::IQ4_XS: return dot_iq4_xs<4>;
    default: return nullptr;
  }
}

}  // namespace edgevlm::detail

#else  // no AVX2 at compile time

namespace edgevlm::detail {
BlockDot block_dot_avx2(GGMLType) { return nullptr; }
BlockDotRows block_dot4_avx2(GGMLType) { return nullptr; }
BlockDot block_dot_avx512(GGMLType) { return nullptr; }
BlockDotRows block_dot4_avx512(GGMLType) { return nullptr; }
Q4KGroupTile q4k_x8_tile_avx512(int) { return nullptr; }
Q4KGroupTile q4k_x8_tile_avx2(int) { return nullptr; }
Q4KPairTile q4k_x16_tile_avx512(int) { return nullptr; }
}  // namespace edgevlm::detail

#endif
