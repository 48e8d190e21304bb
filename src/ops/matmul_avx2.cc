// AVX2 + FMA + F16C matrix products (compiled with -mavx2 -mfma -mf16c; run only after
// cpu_has_avx2()). Layout of the work, per thread:
//   for each block of activation rows (sized so a slice of them fits in L2)
//     for each slice of the reduction dimension
//       for each tile of 4 weight rows owned by this thread
//         for each pair of activation rows: 4×2 dot products in registers
// so each weight block is loaded once per activation row block and each activation slice is
// read from L2, not memory. With several activation rows, a tile's slice of F16/BF16 weights is
// first converted to F32 (and Q4_0 unpacked to bytes) once, then reused by every row pair. Quantized weights use ggml's integer dot products: Q8_0 × Q8_0 via
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
// Each computes a tile of rw weight rows × rx activation rows over nblk blocks. Weight rows are
// ws bytes apart and start at the slice's first block; activation row x's blocks start at
// xq + x·x_nb·32 (scales xd/xs + x·x_nb).

struct ActSlice {
  const int8_t* qs;  // row r0, first block of the slice
  const float* d;
  const float* s;
  int64_t nb;  // blocks per activation row (row stride)
};

inline void store_tile(float* y, int64_t ldy, int x, int r, float v, bool accumulate) {
  float& out = y[x * ldy + r];
  out = accumulate ? out + v : v;
}

template <int rw, int rx>
void tile_q8_0(const uint8_t* w0, size_t ws, const ActSlice& a, int64_t nblk, float* y, int64_t ldy,
               bool accumulate) {
  __m256 acc[rw][rx];
  for (int r = 0; r < rw; ++r)
    for (int x = 0; x < rx; ++x) acc[r][x] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  const BlockQ8_0* wb[rw];
  for (int r = 0; r < rw; ++r) wb[r] = reinterpret_cast<const BlockQ8_0*>(w0 + r * ws);
  for (int64_t ib = 0; ib < nblk; ++ib) {
    __m256i aw[rw], sw[rw];
    float dw[rw];
    for (int r = 0; r < rw; ++r) {
      sw[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb[r][ib].qs));
      aw[r] = _mm256_sign_epi8(sw[r], sw[r]);
      dw[r] = h2f(wb[r][ib].d);
    }
    for (int x = 0; x < rx; ++x) {
      const int64_t ai = x * a.nb + ib;
      const __m256i xq = _mm256_load_si256(reinterpret_cast<const __m256i*>(a.qs + ai * kQK));
      const float dx = a.d[ai];
      for (int r = 0; r < rw; ++r) {
        __m256i sy = _mm256_sign_epi8(xq, sw[r]);
        __m256i dot = _mm256_madd_epi16(_mm256_maddubs_epi16(aw[r], sy), ones);
        acc[r][x] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(dw[r] * dx), acc[r][x]);
      }
    }
  }
  for (int x = 0; x < rx; ++x)
    for (int r = 0; r < rw; ++r) store_tile(y, ldy, x, r, hsum(acc[r][x]), accumulate);
}

// Q4_0 weights, either straight from the file's blocks (Packed = false) or from a tile already
// unpacked to one byte per weight (0..15) plus float scales (Packed = true: wq rows are nblk·32
// bytes apart, wd rows nblk floats apart), which prefill reuses across many activation rows.
template <bool Packed, int rw, int rx>
void tile_q4_0_impl(const uint8_t* w0, size_t ws, const float* wd_packed, const ActSlice& a, int64_t nblk,
                    float* y, int64_t ldy, bool accumulate) {
  __m256 acc[rw][rx];
  float corr[rw][rx] = {};
  for (int r = 0; r < rw; ++r)
    for (int x = 0; x < rx; ++x) acc[r][x] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int64_t ib = 0; ib < nblk; ++ib) {
    __m256i wq[rw];
    float dw[rw];
    for (int r = 0; r < rw; ++r) {
      if constexpr (Packed) {
        wq[r] = _mm256_load_si256(reinterpret_cast<const __m256i*>(w0 + r * ws + ib * kQK));
        dw[r] = wd_packed[r * nblk + ib];
      } else {
        const BlockQ4_0& b = reinterpret_cast<const BlockQ4_0*>(w0 + r * ws)[ib];
        __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs));
        // Low nibbles are elements 0..15, high nibbles 16..31.
        wq[r] = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), m4);
        dw[r] = h2f(b.d);
      }
    }
    for (int x = 0; x < rx; ++x) {
      const int64_t ai = x * a.nb + ib;
      const __m256i xq = _mm256_load_si256(reinterpret_cast<const __m256i*>(a.qs + ai * kQK));
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
    for (int r = 0; r < rw; ++r) store_tile(y, ldy, x, r, hsum(acc[r][x]) - 8.0f * corr[r][x], accumulate);
}

template <int rw, int rx>
void tile_q4_0(const uint8_t* w0, size_t ws, const ActSlice& a, int64_t nblk, float* y, int64_t ldy,
               bool accumulate) {
  tile_q4_0_impl<false, rw, rx>(w0, ws, nullptr, a, nblk, y, ldy, accumulate);
}

// Unpacks rw rows × nblk blocks of Q4_0 into bytes 0..15 and float scales.
void unpack_q4_0(const uint8_t* w0, size_t ws, int rw, int64_t nblk, uint8_t* q, float* d) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int r = 0; r < rw; ++r) {
    const BlockQ4_0* b = reinterpret_cast<const BlockQ4_0*>(w0 + r * ws);
    for (int64_t ib = 0; ib < nblk; ++ib) {
      __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[ib].qs));
      _mm256_store_si256(reinterpret_cast<__m256i*>(q + (r * nblk + ib) * kQK),
                         _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), m4));
      d[r * nblk + ib] = h2f(b[ib].d);
    }
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

// Weight rows start at w0 + r·ws, activation rows at x0 + x·ldx, both at the slice's first
// element; klen elements.
template <class L, int rw, int rx>
void tile_float(const uint8_t* w0, size_t ws, const float* x0, int64_t ldx, int64_t klen, float* y,
                int64_t ldy, bool accumulate) {
  __m256 acc[rw][rx];
  for (int r = 0; r < rw; ++r)
    for (int x = 0; x < rx; ++x) acc[r][x] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= klen; i += 8) {
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
      for (int64_t j = i; j < klen; ++j) v += L::get(w0 + r * ws, j) * x0[x * ldx + j];
      store_tile(y, ldy, x, r, v, accumulate);
    }
}

// Converts rw rows × klen elements to F32 (klen a multiple of 8 except possibly the last slice).
template <class L>
void unpack_float(const uint8_t* w0, size_t ws, int rw, int64_t klen, float* out) {
  for (int r = 0; r < rw; ++r) {
    int64_t i = 0;
    for (; i + 8 <= klen; i += 8) _mm256_storeu_ps(out + r * klen + i, L::load8(w0 + r * ws, i));
    for (; i < klen; ++i) out[r * klen + i] = L::get(w0 + r * ws, i);
  }
}

using QKernel = void (*)(const uint8_t*, size_t, const ActSlice&, int64_t, float*, int64_t, bool);
using PKernel = void (*)(const uint8_t*, size_t, const float*, const ActSlice&, int64_t, float*, int64_t, bool);
using FKernel = void (*)(const uint8_t*, size_t, const float*, int64_t, int64_t, float*, int64_t, bool);

#define EV_TILE_TABLE(...)                                                         \
  {                                                                                \
    {__VA_ARGS__<1, 1>, __VA_ARGS__<1, 2>}, {__VA_ARGS__<2, 1>, __VA_ARGS__<2, 2>}, \
        {__VA_ARGS__<3, 1>, __VA_ARGS__<3, 2>}, {__VA_ARGS__<4, 1>, __VA_ARGS__<4, 2> } \
  }

template <int rw, int rx>
void tile_f32(const uint8_t* w, size_t ws, const float* x, int64_t ldx, int64_t k, float* y, int64_t ldy, bool acc) {
  tile_float<LoadF32, rw, rx>(w, ws, x, ldx, k, y, ldy, acc);
}
template <int rw, int rx>
void tile_f16(const uint8_t* w, size_t ws, const float* x, int64_t ldx, int64_t k, float* y, int64_t ldy, bool acc) {
  tile_float<LoadF16, rw, rx>(w, ws, x, ldx, k, y, ldy, acc);
}
template <int rw, int rx>
void tile_bf16(const uint8_t* w, size_t ws, const float* x, int64_t ldx, int64_t k, float* y, int64_t ldy, bool acc) {
  tile_float<LoadBF16, rw, rx>(w, ws, x, ldx, k, y, ldy, acc);
}
template <int rw, int rx>
void tile_q4_0_packed(const uint8_t* w, size_t ws, const float* wd, const ActSlice& a, int64_t nblk, float* y,
                      int64_t ldy, bool acc) {
  tile_q4_0_impl<true, rw, rx>(w, ws, wd, a, nblk, y, ldy, acc);
}

const QKernel kQ8_0[kRW][kRX] = EV_TILE_TABLE(tile_q8_0);
const QKernel kQ4_0[kRW][kRX] = EV_TILE_TABLE(tile_q4_0);
const PKernel kQ4_0P[kRW][kRX] = EV_TILE_TABLE(tile_q4_0_packed);
const FKernel kF32[kRW][kRX] = EV_TILE_TABLE(tile_f32);
const FKernel kF16[kRW][kRX] = EV_TILE_TABLE(tile_f16);
const FKernel kBF16[kRW][kRX] = EV_TILE_TABLE(tile_bf16);

// Same arithmetic as quantize_act_q8 (q = nearest-even(x · 127/amax), scale amax/127 rounded to
// F16), so the integer result can be rebuilt exactly in tests.
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
    const float scale = _cvtsh_ss(_cvtss_sh(amax / 127.0f, _MM_FROUND_TO_NEAREST_INT));
    const float inv = amax != 0 ? 127.0f / amax : 0.0f;
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

  // Weight tiles are converted once per slice (F16/BF16 → F32, Q4_0 → bytes) when at least
  // kPackMinRows activation rows will reuse them; decode reads the file's layout directly.
  constexpr int64_t kPackMinRows = 4;
  const GGMLType t = w.type;
  const bool pack = n_rows >= kPackMinRows && (t == GGMLType::F16 || t == GGMLType::BF16 || t == GGMLType::Q4_0);
  const QKernel(*qtab)[kRX] = t == GGMLType::Q8_0 ? kQ8_0 : t == GGMLType::Q4_0 ? kQ4_0 : nullptr;
  const FKernel(*ftab)[kRX] = t == GGMLType::F32 ? kF32 : t == GGMLType::F16 ? kF16 : kBF16;
  const size_t elem_bytes = t == GGMLType::F32 ? 4 : 2;  // float types only

  const int64_t n_tiles = (n_out + kRW - 1) / kRW;
  pool.parallel_for(n_tiles, [&](int64_t tb, int64_t te) {
    detail::AlignedBuf<uint8_t> scratch;
    detail::AlignedBuf<float> scratch_d;
    if (pack) {
      scratch = detail::aligned_alloc_n<uint8_t>(size_t(kRW * kslice) * 4);
      scratch_d = detail::aligned_alloc_n<float>(size_t(kRW * (kslice / kQK + 1)));
    }
    for (int64_t rb0 = 0; rb0 < n_rows; rb0 += row_block) {
      const int64_t rb1 = std::min(n_rows, rb0 + row_block);
      for (int64_t k0 = 0; k0 < n_in; k0 += kslice) {
        const int64_t k1 = std::min(n_in, k0 + kslice);
        const int64_t klen = k1 - k0;
        const bool accumulate = k0 > 0;
        for (int64_t tile = tb; tile < te; ++tile) {
          const int64_t o0 = tile * kRW;
          const int rw = int(std::min<int64_t>(kRW, n_out - o0));
          const uint8_t* wrow = w.data + size_t(o0) * w.row_stride;
          if (quant) {
            const int64_t kb0 = k0 / kQK, nblk = klen / kQK;
            const uint8_t* w0 = wrow + size_t(kb0) * type_block_bytes(t);
            if (pack) unpack_q4_0(w0, w.row_stride, rw, nblk, scratch.get(), scratch_d.get());
            for (int64_t r0 = rb0; r0 < rb1; r0 += kRX) {
              const int rx = int(std::min<int64_t>(kRX, rb1 - r0));
              const int64_t ai = r0 * acts.nb + kb0;
              const ActSlice as{acts.qs.get() + ai * kQK, acts.d.get() + ai, acts.s.get() + ai, acts.nb};
              float* yt = y + r0 * n_out + o0;
              if (pack) {
                kQ4_0P[rw - 1][rx - 1](scratch.get(), size_t(nblk) * kQK, scratch_d.get(), as, nblk, yt, n_out, accumulate);
              } else {
                qtab[rw - 1][rx - 1](w0, w.row_stride, as, nblk, yt, n_out, accumulate);
              }
            }
          } else {
            const uint8_t* w0 = wrow + size_t(k0) * elem_bytes;
            const uint8_t* wk = w0;
            size_t wks = w.row_stride;
            const FKernel(*tab)[kRX] = ftab;
            if (pack) {
              float* f = reinterpret_cast<float*>(scratch.get());
              if (t == GGMLType::F16) unpack_float<LoadF16>(w0, w.row_stride, rw, klen, f);
              else unpack_float<LoadBF16>(w0, w.row_stride, rw, klen, f);
              wk = scratch.get();
              wks = size_t(klen) * 4;
              tab = kF32;
            }
            for (int64_t r0 = rb0; r0 < rb1; r0 += kRX) {
              const int rx = int(std::min<int64_t>(kRX, rb1 - r0));
              tab[rw - 1][rx - 1](wk, wks, x + r0 * n_in + k0, n_in, klen, y + r0 * n_out + o0, n_out, accumulate);
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
