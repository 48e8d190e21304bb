// NEON int8 tile kernels for Q8_0 / Q4_0 weights × Q8_0-quantized activations, shared by
// matmul_neon.cc (plain Armv8-A: widening multiplies) and matmul_dotprod_neon.cc (Armv8.2 SDOT).
// Included only on aarch64. The templates live in an anonymous namespace so that each file gets
// its own copies, compiled with its own -march: the plain build must never pick up a copy that
// the linker merged from the dotprod file.
//
// A tile is rw weight rows × rx activation rows over nblk blocks of 32. Per block, the 32 int8
// products are summed exactly in int32 (Dot::dot32), converted to float and accumulated with the
// product of the two block scales, as ggml does. Q4_0 nibbles are shifted to −8..7 in registers
// (or once per slice when unpacked for batched rows), so no offset correction is needed.
#pragma once

#include <arm_neon.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "formats/quant.h"

namespace edgevlm::neon {

constexpr int kRW = 4;  // weight rows per tile
constexpr int kRX = 2;  // activation rows per tile

// Activations of rows r0 .. r0+rx−1 from the slice's first block; row x's block b is at
// qs + (x·nb + b)·32, its scale at d[x·nb + b].
struct ActSlice {
  const int8_t* qs;
  const float* d;
  int64_t nb;  // blocks per activation row (row stride)
};

// Weight rows of a tile, from the slice's first block: row r at w0 + r·ws. For unpacked Q4_0
// (int8 −8..7, 32 bytes a block) the scales are wd[r·nblk + b].
struct WeightTile {
  const uint8_t* w0;
  size_t ws;
  const float* wd;
};

using IntKernel = void (*)(const WeightTile&, const ActSlice&, int64_t nblk, float* y, int64_t ldy,
                           bool accumulate);

// Kernels indexed [rw − 1][rx − 1].
struct IntKernels {
  IntKernel q8_0[kRW][kRX];
  IntKernel q4_0[kRW][kRX];
  IntKernel q4_0_unpacked[kRW][kRX];
};

// The SDOT variant (matmul_dotprod_neon.cc); call only when cpu_has_neon_dotprod().
const IntKernels& int_kernels_dotprod();
// The SMMLA variant (matmul_i8mm_neon.cc); call only when cpu_has_neon_i8mm().
const IntKernels& int_kernels_i8mm();

namespace {

inline float h2f(uint16_t h) {
  __fp16 f;
  std::memcpy(&f, &h, 2);
  return float(f);
}

// The F16 scales of rw rows' block ib, converted together (lanes ≥ rw are 0). Block is
// BlockQ8_0 or BlockQ4_0, whose scale comes first.
template <class Block, int rw>
inline float32x4_t file_scales(const WeightTile& t, int64_t ib) {
  uint64_t u = 0;
  for (int r = 0; r < rw; ++r) u |= uint64_t(reinterpret_cast<const Block*>(t.w0 + size_t(r) * t.ws)[ib].d) << (16 * r);
  return vcvt_f32_f16(vreinterpret_f16_u16(vcreate_u16(u)));
}

// Q8_0 blocks straight from the file.
struct LoadQ8_0 {
  static void load(const WeightTile& t, int r, int64_t ib, int8x16_t& lo, int8x16_t& hi) {
    const BlockQ8_0& b = reinterpret_cast<const BlockQ8_0*>(t.w0 + size_t(r) * t.ws)[ib];
    lo = vld1q_s8(b.qs);
    hi = vld1q_s8(b.qs + 16);
  }
  template <int rw>
  static float32x4_t scales(const WeightTile& t, int64_t ib) { return file_scales<BlockQ8_0, rw>(t, ib); }
};

// Q4_0 blocks straight from the file: low nibbles are elements 0..15, high nibbles 16..31.
struct LoadQ4_0 {
  static void load(const WeightTile& t, int r, int64_t ib, int8x16_t& lo, int8x16_t& hi) {
    const BlockQ4_0& b = reinterpret_cast<const BlockQ4_0*>(t.w0 + size_t(r) * t.ws)[ib];
    const uint8x16_t q = vld1q_u8(b.qs);
    const int8x16_t eight = vdupq_n_s8(8);
    lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F))), eight);
    hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), eight);
  }
  template <int rw>
  static float32x4_t scales(const WeightTile& t, int64_t ib) { return file_scales<BlockQ4_0, rw>(t, ib); }
};

// Q4_0 already unpacked to int8 (−8..7), row r's block ib at w0 + r·ws + ib·32, with the float
// scales of block ib for the 4 rows of the tile at wd[ib·4 ..] (zero past the tile's rows).
struct LoadUnpacked {
  static void load(const WeightTile& t, int r, int64_t ib, int8x16_t& lo, int8x16_t& hi) {
    const int8_t* q = reinterpret_cast<const int8_t*>(t.w0 + size_t(r) * t.ws) + ib * kQK;
    lo = vld1q_s8(q);
    hi = vld1q_s8(q + 16);
  }
  template <int rw>
  static float32x4_t scales(const WeightTile& t, int64_t ib) { return vld1q_f32(t.wd + ib * kRW); }
};

// acc + v · s[lane] (FMLA by element); lane is a constant once the tile loops are unrolled.
inline float32x4_t fma_lane(float32x4_t acc, float32x4_t v, float32x4_t s, int lane) {
  switch (lane) {
    case 0: return vfmaq_laneq_f32(acc, v, s, 0);
    case 1: return vfmaq_laneq_f32(acc, v, s, 1);
    case 2: return vfmaq_laneq_f32(acc, v, s, 2);
    default: return vfmaq_laneq_f32(acc, v, s, 3);
  }
}

// The block scales of the rw weight rows travel in one register and are multiplied by the
// activation's scale once per (block, activation row), which leaves enough of the 32 vector
// registers for a 4×2 tile. nblk ≥ 1: the do-while (and the flat accumulator array) keep GCC 12
// from mirroring the accumulators to the stack on every block.
template <class Dot, class Load, int rw, int rx>
void tile_int8(const WeightTile& t, const ActSlice& a, int64_t nblk, float* y, int64_t ldy, bool accumulate) {
  float32x4_t acc[rw * rx];
  for (int i = 0; i < rw * rx; ++i) acc[i] = vdupq_n_f32(0.0f);
  int64_t ib = 0;
  do {
    int8x16_t wl[rw], wh[rw];
    for (int r = 0; r < rw; ++r) Load::load(t, r, ib, wl[r], wh[r]);
    const float32x4_t dw = Load::template scales<rw>(t, ib);
    for (int x = 0; x < rx; ++x) {
      const int64_t ai = x * a.nb + ib;
      const int8x16_t xl = vld1q_s8(a.qs + ai * kQK);
      const int8x16_t xh = vld1q_s8(a.qs + ai * kQK + 16);
      const float32x4_t d = vmulq_n_f32(dw, a.d[ai]);
      for (int r = 0; r < rw; ++r)
        acc[x * rw + r] = fma_lane(acc[x * rw + r], vcvtq_f32_s32(Dot::dot32(wl[r], wh[r], xl, xh)), d, r);
    }
  } while (++ib < nblk);
  float v[rw * rx];
  for (int i = 0; i < rw * rx; ++i) v[i] = vaddvq_f32(acc[i]);
  for (int x = 0; x < rx; ++x)
    for (int r = 0; r < rw; ++r) {
      float& out = y[x * ldy + r];
      out = accumulate ? out + v[x * rw + r] : v[x * rw + r];
    }
}

template <class Dot, class Load>
constexpr void fill_table(IntKernel (&tab)[kRW][kRX]) {
  tab[0][0] = tile_int8<Dot, Load, 1, 1>;
  tab[0][1] = tile_int8<Dot, Load, 1, 2>;
  tab[1][0] = tile_int8<Dot, Load, 2, 1>;
  tab[1][1] = tile_int8<Dot, Load, 2, 2>;
  tab[2][0] = tile_int8<Dot, Load, 3, 1>;
  tab[2][1] = tile_int8<Dot, Load, 3, 2>;
  tab[3][0] = tile_int8<Dot, Load, 4, 1>;
  tab[3][1] = tile_int8<Dot, Load, 4, 2>;
}

template <class Dot>
constexpr IntKernels make_int_kernels() {
  IntKernels k{};
  fill_table<Dot, LoadQ8_0>(k.q8_0);
  fill_table<Dot, LoadQ4_0>(k.q4_0);
  fill_table<Dot, LoadUnpacked>(k.q4_0_unpacked);
  return k;
}

}  // namespace
}  // namespace edgevlm::neon
