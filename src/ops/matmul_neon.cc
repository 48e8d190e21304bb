// NEON matrix products for aarch64 (compiled with -march=armv8-a: every aarch64 CPU runs this
// file; the SDOT tiles are in matmul_dotprod_neon.cc, the SMMLA (I8MM) ones in matmul_i8mm_neon.cc). The loop
// over row blocks, reduction slices and units is matmul_driver.h's; a unit here is a tile of 4 weight
// rows, run against each pair of activation rows of the block (4×2 dot products in registers).
// With 4 or more activation rows (prefill, ViT), a tile's slice of F16/BF16 weights is converted
// to F32 and Q4_0 unpacked to int8 once, then reused by every row pair. Without SDOT the int8
// products of a block are formed with SMULL/SMLAL into int16 (two products per lane: at most
// 2·128·127 = 32512, no overflow: activations are within ±127 and weights within −128..127) and
// summed into int32 with SADALP.
#include "ops/matmul_neon.h"

#include <algorithm>

#include "core/error.h"
#include "ops/cpu_features.h"
#include "ops/matmul_blocks_neon.h"
#include "ops/matmul_driver.h"
#include "ops/matmul_internal.h"
#include "ops/matmul_neon_tiles.h"

namespace edgevlm {
namespace {

using neon::ActSlice;
using neon::h2f;
using neon::IntKernels;
using neon::kRW;
using neon::kRX;
using neon::WeightTile;

constexpr int64_t kL2Budget = 160 * 1024;  // bytes of activations kept hot per slice

struct DotMull {
  static int32x4_t dot32(int8x16_t wl, int8x16_t wh, int8x16_t xl, int8x16_t xh) {
    int16x8_t p0 = vmull_s8(vget_low_s8(wl), vget_low_s8(xl));
    p0 = vmlal_high_s8(p0, wl, xl);
    int16x8_t p1 = vmull_s8(vget_low_s8(wh), vget_low_s8(xh));
    p1 = vmlal_high_s8(p1, wh, xh);
    return vpadalq_s16(vpaddlq_s16(p0), p1);
  }
  static int32x4_t dot16(int8x16_t w, int8x16_t x) {
    return vpaddlq_s16(vmlal_high_s8(vmull_s8(vget_low_s8(w), vget_low_s8(x)), w, x));
  }
};

constexpr IntKernels kPlain = neon::make_int_kernels<DotMull>();

// ---- float kernels (F32, F16, BF16 weights; F32 activations) ---------------------------------

struct LoadF32 {
  static float32x4_t load4(const uint8_t* row, int64_t i) { return vld1q_f32(reinterpret_cast<const float*>(row) + i); }
  static float get(const uint8_t* row, int64_t i) { return reinterpret_cast<const float*>(row)[i]; }
};
struct LoadF16 {
  static float32x4_t load4(const uint8_t* row, int64_t i) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const uint16_t*>(row) + i)));
  }
  static float get(const uint8_t* row, int64_t i) { return h2f(reinterpret_cast<const uint16_t*>(row)[i]); }
};
struct LoadBF16 {
  static float32x4_t load4(const uint8_t* row, int64_t i) {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(reinterpret_cast<const uint16_t*>(row) + i), 16));
  }
  static float get(const uint8_t* row, int64_t i) { return bf16_to_f32(reinterpret_cast<const uint16_t*>(row)[i]); }
};

// Weight rows start at w0 + r·ws, activation rows at x0 + x·ldx, both at the slice's first
// element; klen elements.
template <class L, int rw, int rx>
void tile_float(const uint8_t* w0, size_t ws, const float* x0, int64_t ldx, int64_t klen, float* y, int64_t ldy,
                bool accumulate) {
  // Flat accumulators, a do-while and sums taken inside the branch: see tile_int8.
  float v[rw * rx] = {};
  int64_t i = 0;
  if (klen >= 4) {
    float32x4_t acc[rw * rx];
    for (int j = 0; j < rw * rx; ++j) acc[j] = vdupq_n_f32(0.0f);
    do {
      float32x4_t wv[rw];
      for (int r = 0; r < rw; ++r) wv[r] = L::load4(w0 + r * ws, i);
      for (int x = 0; x < rx; ++x) {
        const float32x4_t xv = vld1q_f32(x0 + x * ldx + i);
        for (int r = 0; r < rw; ++r) acc[x * rw + r] = vfmaq_f32(acc[x * rw + r], wv[r], xv);
      }
      i += 4;
    } while (i + 4 <= klen);
    for (int j = 0; j < rw * rx; ++j) v[j] = vaddvq_f32(acc[j]);
  }
  for (int x = 0; x < rx; ++x)
    for (int r = 0; r < rw; ++r) {
      float s = v[x * rw + r];
      for (int64_t j = i; j < klen; ++j) s += L::get(w0 + r * ws, j) * x0[x * ldx + j];
      float& out = y[x * ldy + r];
      out = accumulate ? out + s : s;
    }
}

// Converts rw rows × klen elements to F32.
template <class L>
void unpack_float(const uint8_t* w0, size_t ws, int rw, int64_t klen, float* out) {
  for (int r = 0; r < rw; ++r) {
    int64_t i = 0;
    for (; i + 4 <= klen; i += 4) vst1q_f32(out + r * klen + i, L::load4(w0 + r * ws, i));
    for (; i < klen; ++i) out[r * klen + i] = L::get(w0 + r * ws, i);
  }
}

// Unpacks rw rows × nblk blocks of Q4_0 into int8 −8..7 (row r at q + r·nblk·32) and float
// scales, block-major as LoadUnpacked reads them (d[b·4 + r], zero for rows past rw).
void unpack_q4_0(const uint8_t* w0, size_t ws, int rw, int64_t nblk, int8_t* q, float* d) {
  const WeightTile t{w0, ws, nullptr};
  for (int r = 0; r < rw; ++r)
    for (int64_t ib = 0; ib < nblk; ++ib) {
      int8x16_t lo, hi;
      neon::LoadQ4_0::load(t, r, ib, lo, hi);
      vst1q_s8(q + (r * nblk + ib) * kQK, lo);
      vst1q_s8(q + (r * nblk + ib) * kQK + 16, hi);
    }
  for (int64_t ib = 0; ib < nblk; ++ib)
    for (int r = 0; r < kRW; ++r)
      d[ib * kRW + r] = r < rw ? h2f(reinterpret_cast<const BlockQ4_0*>(w0 + size_t(r) * ws)[ib].d) : 0.0f;
}

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

const FKernel kF32[kRW][kRX] = EV_TILE_TABLE(tile_f32);
const FKernel kF16[kRW][kRX] = EV_TILE_TABLE(tile_f16);
const FKernel kBF16[kRW][kRX] = EV_TILE_TABLE(tile_bf16);

// quantize_act_q8's arithmetic: q = round-to-nearest-even(x · 127/amax) (FCVTNS), scale
// amax/127 rounded to F16 (FCVT, round to nearest even as f32_to_f16 does).
void quantize_row_neon(const float* x, int64_t nb, int8_t* qs, float* d) {
  for (int64_t b = 0; b < nb; ++b) {
    const float* xb = x + b * kQK;
    float32x4_t v[8];
    float32x4_t mx = vdupq_n_f32(0.0f);
    for (int j = 0; j < 8; ++j) {
      v[j] = vld1q_f32(xb + 4 * j);
      mx = vmaxq_f32(mx, vabsq_f32(v[j]));
    }
    const float amax = vmaxvq_f32(mx);
    const __fp16 scale = __fp16(amax / 127.0f);
    const float inv = amax != 0 ? 127.0f / amax : 0.0f;
    int16x8_t h[4];
    for (int j = 0; j < 4; ++j)
      h[j] = vcombine_s16(vqmovn_s32(vcvtnq_s32_f32(vmulq_n_f32(v[2 * j], inv))),
                          vqmovn_s32(vcvtnq_s32_f32(vmulq_n_f32(v[2 * j + 1], inv))));
    vst1q_s8(qs + b * kQK, vcombine_s8(vqmovn_s16(h[0]), vqmovn_s16(h[1])));
    vst1q_s8(qs + b * kQK + 16, vcombine_s8(vqmovn_s16(h[2]), vqmovn_s16(h[3])));
    d[b] = float(scale);
  }
}

}  // namespace

void matmul_neon(const WeightMatrix& w, const float* x, int64_t n_rows, float* y, ThreadPool& pool,
                 NeonKernels kernels) {
  EV_CHECK(matmul_supports(w.type), "matmul: unsupported weight type %s", type_name(w.type).c_str());
  EV_CHECK(kernels != NeonKernels::Dotprod || cpu_has_neon_dotprod(),
           "matmul: the dot-product kernels were asked for but this CPU lacks Armv8.2 SDOT");
  EV_CHECK(kernels != NeonKernels::I8mm || cpu_has_neon_i8mm(),
           "matmul: the int8 matrix-multiply kernels were asked for but this CPU lacks Armv8.6 I8MM");
  if (n_rows <= 0) return;
  // SMMLA fills its 2×2 tiles with two activation rows; one row (decode) takes SDOT.
  const bool i8mm = n_rows >= 2 && (kernels == NeonKernels::I8mm || (kernels == NeonKernels::Auto && cpu_has_neon_i8mm()));
  const bool sdot = kernels == NeonKernels::Dotprod || kernels == NeonKernels::I8mm ||
                    (kernels == NeonKernels::Auto && cpu_has_neon_dotprod());
  const IntKernels& ik = i8mm ? neon::int_kernels_i8mm() : sdot ? neon::int_kernels_dotprod() : kPlain;
  const int64_t n_in = w.n_in, n_out = w.n_out;
  const GGMLType t = w.type;
  const bool quant = t == GGMLType::Q8_0 || t == GGMLType::Q4_0;

  const int64_t nb = n_in / kQK;
  detail::AlignedBuf<int8_t> act_q;
  detail::AlignedBuf<float> act_d;
  if (quant) {
    act_q = detail::aligned_alloc_n<int8_t>(size_t(n_rows * n_in));
    act_d = detail::aligned_alloc_n<float>(size_t(n_rows * nb));
    auto quant_rows = [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) quantize_row_neon(x + r * n_in, nb, act_q.get() + r * n_in, act_d.get() + r * nb);
    };
    if (n_rows >= 8) pool.parallel_for(n_rows, quant_rows); else quant_rows(0, n_rows);
  }

  // Blocks of rows and slices of the reduction that keep the activations within kL2Budget.
  const detail::Blocking blocking = detail::activation_blocking(n_rows, n_in, quant ? 1 : 4, kL2Budget, kRX);
  const int64_t kslice = blocking.kslice;

  // Weight tiles are converted once per slice when at least kPackMinRows activation rows reuse
  // them; decode reads the file's layout directly.
  constexpr int64_t kPackMinRows = 4;
  const bool pack = n_rows >= kPackMinRows && (t == GGMLType::F16 || t == GGMLType::BF16 || t == GGMLType::Q4_0);
  const neon::IntKernel(*qtab)[kRX] = t == GGMLType::Q8_0 ? ik.q8_0 : ik.q4_0;
  const FKernel(*ftab)[kRX] = t == GGMLType::F32 ? kF32 : t == GGMLType::F16 ? kF16 : kBF16;
  const size_t elem_bytes = t == GGMLType::F32 ? 4 : 2;  // float types only

  // Units of one tile of kRW weight rows.
  detail::for_each_block(pool, (n_out + kRW - 1) / kRW, n_rows, n_in, blocking,
                         [&](int64_t tile, int64_t rb0, int64_t rb1, int64_t k0, int64_t k1) {
    thread_local detail::Scratch<uint8_t> scratch_buf;
    thread_local detail::Scratch<float> scratch_d_buf;
    uint8_t* scratch = pack ? scratch_buf.get(size_t(kRW * kslice) * 4) : nullptr;
    float* scratch_d = pack ? scratch_d_buf.get(size_t(kRW * (kslice / kQK))) : nullptr;
    const int64_t klen = k1 - k0;
    const bool accumulate = k0 > 0;
    const int64_t o0 = tile * kRW;
    const int rw = int(std::min<int64_t>(kRW, n_out - o0));
    const uint8_t* wrow = w.data + size_t(o0) * w.row_stride;
    if (quant) {
      const int64_t kb0 = k0 / kQK, nblk = klen / kQK;
      WeightTile wt{wrow + size_t(kb0) * type_block_bytes(t), w.row_stride, nullptr};
      const neon::IntKernel(*tab)[kRX] = qtab;
      if (pack) {
        unpack_q4_0(wt.w0, wt.ws, rw, nblk, reinterpret_cast<int8_t*>(scratch), scratch_d);
        wt = WeightTile{scratch, size_t(nblk) * kQK, scratch_d};
        tab = ik.q4_0_unpacked;
      }
      for (int64_t r0 = rb0; r0 < rb1; r0 += kRX) {
        const int rx = int(std::min<int64_t>(kRX, rb1 - r0));
        const int64_t ai = r0 * nb + kb0;
        const ActSlice as{act_q.get() + ai * kQK, act_d.get() + ai, nb};
        tab[rw - 1][rx - 1](wt, as, nblk, y + r0 * n_out + o0, n_out, accumulate);
      }
    } else {
      const uint8_t* wk = wrow + size_t(k0) * elem_bytes;
      size_t wks = w.row_stride;
      const FKernel(*tab)[kRX] = ftab;
      if (pack) {
        float* f = reinterpret_cast<float*>(scratch);
        if (t == GGMLType::F16) unpack_float<LoadF16>(wk, w.row_stride, rw, klen, f);
        else unpack_float<LoadBF16>(wk, w.row_stride, rw, klen, f);
        wk = scratch;
        wks = size_t(klen) * 4;
        tab = kF32;
      }
      for (int64_t r0 = rb0; r0 < rb1; r0 += kRX) {
        const int rx = int(std::min<int64_t>(kRX, rb1 - r0));
        tab[rw - 1][rx - 1](wk, wks, x + r0 * n_in + k0, n_in, klen, y + r0 * n_out + o0, n_out, accumulate);
      }
    }
  });
}

namespace detail {
BlockDot block_dot_neon(GGMLType t) { return neon::block_dots<DotMull>(t); }
BlockDotRows block_dot4_neon(GGMLType t) { return neon::block_dots4<DotMull>(t); }
}  // namespace detail

}  // namespace edgevlm
