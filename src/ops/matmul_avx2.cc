// AVX2 + FMA + F16C matrix products (compiled with -mavx2 -mfma -mf16c; run only after
// cpu_has_avx2()). Layout of the work, per thread:
//   for each block of activation rows (sized so a slice of them fits in L2)
//     for each slice of the reduction dimension
//       for each tile of 4 weight rows owned by this thread
//         for each pair of activation rows: 4×2 dot products in registers
// so each weight block is loaded once per activation row block and each activation slice is
// read from L2, not memory. Quantized weights use ggml's integer dot products: Q8_0 × Q8_0 via
// the sign trick (maddubs needs one unsigned operand), Q4_0 × Q8_0 with the nibbles (0..15)
// as the unsigned operand and the offset of 8 folded out as 8·d_w·d_x·Σq_x per block.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "ops/matmul.h"
#include "ops/matmul_internal.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

#include "ops/simd_avx2.h"

namespace edgevlm {
namespace {

using detail::QuantizedActs;

constexpr int kRW = 4;  // weight rows per tile
constexpr int kRX = 2;  // activation rows per tile
constexpr int64_t kL2Budget = 160 * 1024;  // bytes of activations kept hot per slice

using simd::hsum;

inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

// ---- int8 kernels ---------------------------------------------------------------------------

template <int rw, int rx>
void tile_q8_0(const uint8_t* w0, size_t ws, const QuantizedActs& a, int64_t r0, int64_t kb0,
               int64_t kb1, float* y, int64_t ldy, bool accumulate) {
  __m256 acc[rw][rx];
  for (int r = 0; r < rw; ++r)
    for (int x = 0; x < rx; ++x) acc[r][x] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  const BlockQ8_0* wb[rw];
  for (int r = 0; r < rw; ++r) wb[r] = reinterpret_cast<const BlockQ8_0*>(w0 + r * ws);
  for (int64_t ib = kb0; ib < kb1; ++ib) {
    __m256i aw[rw], sw[rw];
    float dw[rw];
    for (int r = 0; r < rw; ++r) {
      sw[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb[r][ib].qs));
      aw[r] = _mm256_sign_epi8(sw[r], sw[r]);
      dw[r] = h2f(wb[r][ib].d);
    }
    for (int x = 0; x < rx; ++x) {
      const int64_t ai = (r0 + x) * a.nb + ib;
      const __m256i xq = _mm256_load_si256(reinterpret_cast<const __m256i*>(a.qs.get() + ai * kQK));
      const float dx = a.d[ai];
      for (int r = 0; r < rw; ++r) {
        __m256i sy = _mm256_sign_epi8(xq, sw[r]);
        __m256i dot = _mm256_madd_epi16(_mm256_maddubs_epi16(aw[r], sy), ones);
        acc[r][x] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(dw[r] * dx), acc[r][x]);
      }
    }
  }
  for (int x = 0; x < rx; ++x)
    for (int r = 0; r < rw; ++r) {
      float v = hsum(acc[r][x]);
      float& out = y[x * ldy + r];
      out = accumulate ? out + v : v;
    }
}

template <int rw, int rx>
void tile_q4_0(const uint8_t* w0, size_t ws, const QuantizedActs& a, int64_t r0, int64_t kb0,
               int64_t kb1, float* y, int64_t ldy, bool accumulate) {
  __m256 acc[rw][rx];
  float corr[rw][rx] = {};
  for (int r = 0; r < rw; ++r)
    for (int x = 0; x < rx; ++x) acc[r][x] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const BlockQ4_0* wb[rw];
  for (int r = 0; r < rw; ++r) wb[r] = reinterpret_cast<const BlockQ4_0*>(w0 + r * ws);
  for (int64_t ib = kb0; ib < kb1; ++ib) {
    __m256i wq[rw];
    float dw[rw];
    for (int r = 0; r < rw; ++r) {
      __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(wb[r][ib].qs));
      // Low nibbles are elements 0..15, high nibbles 16..31.
      wq[r] = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), m4);
      dw[r] = h2f(wb[r][ib].d);
    }
    for (int x = 0; x < rx; ++x) {
      const int64_t ai = (r0 + x) * a.nb + ib;
      const __m256i xq = _mm256_load_si256(reinterpret_cast<const __m256i*>(a.qs.get() + ai * kQK));
      const float dx = a.d[ai];
      const float sx = a.s[ai];
      for (int r = 0; r < rw; ++r) {
        __m256i dot = _mm256_madd_epi16(_mm256_maddubs_epi16(wq[r], xq), ones);
        acc[r][x] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(dw[r] * dx), acc[r][x]);
        corr[r][x] += dw[r] * sx;
      }
    }
  }
  for (int x = 0; x < rx; ++x)
    for (int r = 0; r < rw; ++r) {
      float v = hsum(acc[r][x]) - 8.0f * corr[r][x];
      float& out = y[x * ldy + r];
      out = accumulate ? out + v : v;
    }
}

// ---- float kernels (F32, F16, BF16 weights; F32 activations) ---------------------------------

struct LoadF32 {
  static __m256 load8(const uint8_t* row, int64_t i) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + i);
  }
  static float get(const uint8_t* row, int64_t i) { return reinterpret_cast<const float*>(row)[i]; }
};
struct LoadF16 {
  static __m256 load8(const uint8_t* row, int64_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint16_t*>(row) + i)));
  }
  static float get(const uint8_t* row, int64_t i) { return h2f(reinterpret_cast<const uint16_t*>(row)[i]); }
};
struct LoadBF16 {
  static __m256 load8(const uint8_t* row, int64_t i) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint16_t*>(row) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static float get(const uint8_t* row, int64_t i) { return bf16_to_f32(reinterpret_cast<const uint16_t*>(row)[i]); }
};

template <class L, int rw, int rx>
void tile_float(const uint8_t* w0, size_t ws, const float* x0, int64_t ldx, int64_t k0, int64_t k1,
                float* y, int64_t ldy, bool accumulate) {
  __m256 acc[rw][rx];
  for (int r = 0; r < rw; ++r)
    for (int x = 0; x < rx; ++x) acc[r][x] = _mm256_setzero_ps();
  int64_t i = k0;
  for (; i + 8 <= k1; i += 8) {
    __m256 wv[rw];
    for (int r = 0; r < rw; ++r) wv[r] = L::load8(w0 + r * ws, i);
    for (int x = 0; x < rx; ++x) {
      __m256 xv = _mm256_loadu_ps(x0 + x * ldx + i);
      for (int r = 0; r < rw; ++r) acc[r][x] = _mm256_fmadd_ps(wv[r], xv, acc[r][x]);
    }
  }
  for (int x = 0; x < rx; ++x)
    for (int r = 0; r < rw; ++r) {
      float v = hsum(acc[r][x]);
      for (int64_t j = i; j < k1; ++j) v += L::get(w0 + r * ws, j) * x0[x * ldx + j];
      float& out = y[x * ldy + r];
      out = accumulate ? out + v : v;
    }
}

using QKernel = void (*)(const uint8_t*, size_t, const QuantizedActs&, int64_t, int64_t, int64_t,
                         float*, int64_t, bool);
using FKernel = void (*)(const uint8_t*, size_t, const float*, int64_t, int64_t, int64_t, float*,
                         int64_t, bool);

#define EV_TILE_TABLE(...)                                                         \
  {                                                                                \
    {__VA_ARGS__<1, 1>, __VA_ARGS__<1, 2>}, {__VA_ARGS__<2, 1>, __VA_ARGS__<2, 2>}, \
        {__VA_ARGS__<3, 1>, __VA_ARGS__<3, 2>}, {__VA_ARGS__<4, 1>, __VA_ARGS__<4, 2> } \
  }

template <int rw, int rx>
void tile_f32(const uint8_t* w, size_t ws, const float* x, int64_t ldx, int64_t k0, int64_t k1, float* y, int64_t ldy, bool acc) {
  tile_float<LoadF32, rw, rx>(w, ws, x, ldx, k0, k1, y, ldy, acc);
}
template <int rw, int rx>
void tile_f16(const uint8_t* w, size_t ws, const float* x, int64_t ldx, int64_t k0, int64_t k1, float* y, int64_t ldy, bool acc) {
  tile_float<LoadF16, rw, rx>(w, ws, x, ldx, k0, k1, y, ldy, acc);
}
template <int rw, int rx>
void tile_bf16(const uint8_t* w, size_t ws, const float* x, int64_t ldx, int64_t k0, int64_t k1, float* y, int64_t ldy, bool acc) {
  tile_float<LoadBF16, rw, rx>(w, ws, x, ldx, k0, k1, y, ldy, acc);
}

const QKernel kQ8_0[kRW][kRX] = EV_TILE_TABLE(tile_q8_0);
const QKernel kQ4_0[kRW][kRX] = EV_TILE_TABLE(tile_q4_0);
const FKernel kF32[kRW][kRX] = EV_TILE_TABLE(tile_f32);
const FKernel kF16[kRW][kRX] = EV_TILE_TABLE(tile_f16);
const FKernel kBF16[kRW][kRX] = EV_TILE_TABLE(tile_bf16);

// Same arithmetic as quantize_act_q8 (scale = amax/127, q = nearest-even(x / scale)), so the
// integer result can be rebuilt exactly in tests.
void quantize_row_avx2(const float* x, int64_t nb, int8_t* qs, float* d, float* s) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int64_t b = 0; b < nb; ++b) {
    const float* xb = x + b * kQK;
    __m256 v[4];
    __m256 mx = _mm256_setzero_ps();
    for (int j = 0; j < 4; ++j) {
      v[j] = _mm256_loadu_ps(xb + 8 * j);
      mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, v[j]));
    }
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    const float amax = _mm_cvtss_f32(m);
    const float scale = amax / 127.0f;
    const float inv = scale != 0 ? 1.0f / scale : 0.0f;
    const __m256 vinv = _mm256_set1_ps(inv);
    __m256i q[4];
    for (int j = 0; j < 4; ++j)
      q[j] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[j], vinv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    // Pack 32 int32 → 32 int8; packs interleave 128-bit lanes, the permute restores order.
    __m256i p01 = _mm256_packs_epi32(q[0], q[1]);
    __m256i p23 = _mm256_packs_epi32(q[2], q[3]);
    __m256i p = _mm256_packs_epi16(p01, p23);
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_store_si256(reinterpret_cast<__m256i*>(qs + b * kQK), p);
    // Σq: maddubs with ones needs an unsigned operand, so sum via sign-extension instead.
    __m256i lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(p));
    __m256i hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(p, 1));
    __m256i s32 = _mm256_madd_epi16(_mm256_add_epi16(lo, hi), _mm256_set1_epi16(1));
    __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s32), _mm256_extracti128_si256(s32, 1));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4E));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xB1));
    d[b] = scale;
    s[b] = scale * float(_mm_cvtsi128_si32(t));
  }
}

}  // namespace

void matmul_avx2(const WeightMatrix& w, const float* x, int64_t n_rows, float* y, ThreadPool& pool) {
  EV_CHECK(matmul_supports(w.type), "matmul: unsupported weight type %s", type_name(w.type).c_str());
  if (n_rows <= 0) return;
  const int64_t n_in = w.n_in, n_out = w.n_out;
  const bool quant = w.type == GGMLType::Q8_0 || w.type == GGMLType::Q4_0;

  QuantizedActs acts;
  if (quant) {
    acts.n_rows = n_rows;
    acts.nb = n_in / kQK;
    acts.qs = detail::aligned_alloc_n<int8_t>(size_t(n_rows * n_in));
    acts.d = detail::aligned_alloc_n<float>(size_t(n_rows * acts.nb));
    acts.s = detail::aligned_alloc_n<float>(size_t(n_rows * acts.nb));
    auto quant_rows = [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r)
        quantize_row_avx2(x + r * n_in, acts.nb, acts.qs.get() + r * n_in, acts.d.get() + r * acts.nb,
                          acts.s.get() + r * acts.nb);
    };
    if (n_rows >= 8) pool.parallel_for(n_rows, quant_rows); else quant_rows(0, n_rows);
  }

  // Slice the reduction so that (row block × slice) of activations stays within kL2Budget.
  const int64_t bpe = quant ? 1 : 4;
  int64_t row_block = n_rows;
  int64_t kslice = n_in;
  if (n_rows * n_in * bpe > kL2Budget) {
    kslice = std::max<int64_t>(256, kL2Budget / (n_rows * bpe)) / 32 * 32;
    if (kslice >= n_in) kslice = n_in;
    row_block = std::max<int64_t>(kRX, kL2Budget / (kslice * bpe) / kRX * kRX);
    if (row_block > n_rows) row_block = n_rows;
  }

  const QKernel(*qtab)[kRX] = nullptr;
  const FKernel(*ftab)[kRX] = nullptr;
  switch (w.type) {
    case GGMLType::Q8_0: qtab = kQ8_0; break;
    case GGMLType::Q4_0: qtab = kQ4_0; break;
    case GGMLType::F32: ftab = kF32; break;
    case GGMLType::F16: ftab = kF16; break;
    default: ftab = kBF16; break;
  }

  const int64_t n_tiles = (n_out + kRW - 1) / kRW;
  pool.parallel_for(n_tiles, [&](int64_t tb, int64_t te) {
    for (int64_t rb0 = 0; rb0 < n_rows; rb0 += row_block) {
      const int64_t rb1 = std::min(n_rows, rb0 + row_block);
      for (int64_t k0 = 0; k0 < n_in; k0 += kslice) {
        const int64_t k1 = std::min(n_in, k0 + kslice);
        const bool accumulate = k0 > 0;
        for (int64_t t = tb; t < te; ++t) {
          const int64_t o0 = t * kRW;
          const int rw = int(std::min<int64_t>(kRW, n_out - o0));
          const uint8_t* w0 = w.data + size_t(o0) * w.row_stride;
          for (int64_t r0 = rb0; r0 < rb1; r0 += kRX) {
            const int rx = int(std::min<int64_t>(kRX, rb1 - r0));
            float* yt = y + r0 * n_out + o0;
            if (qtab) {
              qtab[rw - 1][rx - 1](w0, w.row_stride, acts, r0, k0 / kQK, k1 / kQK, yt, n_out, accumulate);
            } else {
              ftab[rw - 1][rx - 1](w0, w.row_stride, x + r0 * n_in, n_in, k0, k1, yt, n_out, accumulate);
            }
          }
        }
      }
    }
  });
}

}  // namespace edgevlm

#else  // no AVX2 at compile time (another architecture): the dispatcher never calls this.

namespace edgevlm {
void matmul_avx2(const WeightMatrix& w, const float* x, int64_t n_rows, float* y, ThreadPool& pool) {
  matmul_ref(w, x, n_rows, y, &pool);
}
}  // namespace edgevlm

#endif
