// The int8 tile kernels with the Armv8.6 int8 matrix multiply (SMMLA, FEAT_I8MM; compiled with
// -march=armv8.2-a+dotprod+i8mm, called only after cpu_has_neon_i8mm()). SMMLA multiplies a 2×8
// int8 matrix by an 8×2 one into a 2×2 int32 tile: two weight rows × two activation rows per
// instruction, four instructions a block of 32, so a block's four dot products come out summed
// exactly in int32 (SDOT gives each product's partial sums in four lanes). Used for products of
// two or more activation rows (prefill, the ViT); one row (decode) stays on SDOT, where half of
// each SMMLA would be wasted.
#include "ops/matmul_neon_tiles.h"

#if !defined(__ARM_FEATURE_MATMUL_INT8)
#error "matmul_i8mm_neon.cc must be compiled with -march=armv8.2-a+dotprod+i8mm (see CMakeLists.txt)"
#endif

namespace edgevlm::neon {
namespace {

// Rows a and b's 16 bytes as two 2×8 SMMLA operands: [a0..7 | b0..7] and [a8..15 | b8..15].
inline void pair_rows(int8x16_t a, int8x16_t b, int8x16_t& lo, int8x16_t& hi) {
  lo = vreinterpretq_s8_s64(vzip1q_s64(vreinterpretq_s64_s8(a), vreinterpretq_s64_s8(b)));
  hi = vreinterpretq_s8_s64(vzip2q_s64(vreinterpretq_s64_s8(a), vreinterpretq_s64_s8(b)));
}

// rw ≤ 4 weight rows (as pairs (0, 1), (2, 3); a missing row is zeros) × rx ≤ 2 activation rows.
// Accumulator lanes of pair p: (row 2p, act 0), (2p, act 1), (2p + 1, act 0), (2p + 1, act 1).
template <class Load, int rw, int rx>
void tile_i8mm(const WeightTile& t, const ActSlice& a, int64_t nblk, float* y, int64_t ldy, bool accumulate) {
  constexpr int np = (rw + 1) / 2;
  float32x4_t acc[np];
  for (int p = 0; p < np; ++p) acc[p] = vdupq_n_f32(0.0f);
  const int8x16_t zero = vdupq_n_s8(0);
  int64_t ib = 0;
  do {
    // The activation pair's four operands for this block (row 1 zeros when rx = 1).
    const int8_t* x0 = a.qs + ib * kQK;
    const int8x16_t x0l = vld1q_s8(x0), x0h = vld1q_s8(x0 + 16);
    const int8x16_t x1l = rx > 1 ? vld1q_s8(x0 + a.nb * kQK) : zero;
    const int8x16_t x1h = rx > 1 ? vld1q_s8(x0 + a.nb * kQK + 16) : zero;
    int8x16_t xo[4];
    pair_rows(x0l, x1l, xo[0], xo[1]);
    pair_rows(x0h, x1h, xo[2], xo[3]);
    const float dx0 = a.d[ib], dx1 = rx > 1 ? a.d[a.nb + ib] : 0.0f;
    const float32x4_t dxv = {dx0, dx1, dx0, dx1};
    const float32x4_t dw = Load::template scales<rw>(t, ib);
    for (int p = 0; p < np; ++p) {
      int8x16_t wl0, wh0, wl1 = zero, wh1 = zero;
      Load::load(t, 2 * p, ib, wl0, wh0);
      if (2 * p + 1 < rw) Load::load(t, 2 * p + 1, ib, wl1, wh1);
      int8x16_t wo[4];
      pair_rows(wl0, wl1, wo[0], wo[1]);
      pair_rows(wh0, wh1, wo[2], wo[3]);
      int32x4_t s = vmmlaq_s32(vdupq_n_s32(0), wo[0], xo[0]);
      s = vmmlaq_s32(s, wo[1], xo[1]);
      s = vmmlaq_s32(s, wo[2], xo[2]);
      s = vmmlaq_s32(s, wo[3], xo[3]);
      const float32x4_t dwp = p == 0 ? vzip1q_f32(dw, dw) : vzip2q_f32(dw, dw);  // (w 2p, 2p, 2p+1, 2p+1)
      acc[p] = vfmaq_f32(acc[p], vcvtq_f32_s32(s), vmulq_f32(dwp, dxv));
    }
  } while (++ib < nblk);
  for (int p = 0; p < np; ++p) {
    float v[4];
    vst1q_f32(v, acc[p]);
    for (int r = 2 * p; r < std::min(2 * p + 2, rw); ++r)
      for (int x = 0; x < rx; ++x) {
        float& out = y[x * ldy + r];
        const float s = v[(r - 2 * p) * 2 + x];
        out = accumulate ? out + s : s;
      }
  }
}

template <class Load>
constexpr void fill_i8mm(IntKernel (&tab)[kRW][kRX]) {
  tab[0][0] = tile_i8mm<Load, 1, 1>;
  tab[0][1] = tile_i8mm<Load, 1, 2>;
  tab[1][0] = tile_i8mm<Load, 2, 1>;
  tab[1][1] = tile_i8mm<Load, 2, 2>;
  tab[2][0] = tile_i8mm<Load, 3, 1>;
  tab[2][1] = tile_i8mm<Load, 3, 2>;
  tab[3][0] = tile_i8mm<Load, 4, 1>;
  tab[3][1] = tile_i8mm<Load, 4, 2>;
}

constexpr IntKernels make_i8mm_kernels() {
  IntKernels k{};
  fill_i8mm<LoadQ8_0>(k.q8_0);
  fill_i8mm<LoadQ4_0>(k.q4_0);
  fill_i8mm<LoadUnpacked>(k.q4_0_unpacked);
  return k;
}

// Constant-initialized: no guard variable, no code of this file runs before the CPU check.
constexpr IntKernels kI8mm = make_i8mm_kernels();

}  // namespace

const IntKernels& int_kernels_i8mm() { return kI8mm; }

}  // namespace edgevlm::neon
