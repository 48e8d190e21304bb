// Matrix products on the block types without a repacked kernel of their own: the K-quants
// (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K), IQ4_XS, and the 32-element fallbacks Q4_1, Q5_0, Q5_1, IQ4_NL
// that llama-quantize writes for rows not a multiple of 256. The weights are read as they lie in
// the file (no dequantized or repacked copy: their size is what users chose these types for).
//
// Activations are quantized per product, the way ggml pairs them:
//   - K-quants and IQ4_XS: Q8_K super-blocks (BlockQ8_K: one float scale per 256 elements,
//     exact int8 quants, the sums of every 16 for the min terms);
//   - the 32-element types: Act32 blocks (Q8_0's arithmetic, quantize_act_q8, with the F16-rounded
//     scale kept as a float and the integer sum of the quants for the offset terms).
// Each weight block's dot product with its activation block is then exact in integers per
// sub-block; only the scales are applied in float. A scalar reference (matmul_blocks.cc) and
// per-ISA kernels for every type (matmul_blocks_avx2.cc; matmul_blocks_neon.h, instantiated by
// matmul_neon.cc and matmul_dotprod_neon.cc) compute the same sums; they differ only in the order
// of the float additions. AVX2 also has 4-activation-row forms of the K-quant and IQ4_XS dots for
// batched products (each weight block unpacked once for four rows: 1.3-1.45× on 64 rows; NEON
// has them for Q4_K, Q5_K and Q6_K), and 512-bit forms of Q4_K, Q5_K, Q6_K and IQ4_XS
// (BlockKernels::Avx512).
#pragma once

#include <cstdint>

#include "ops/matmul.h"

namespace edgevlm {

// Q8_0-style activation block for the 32-element weight types.
struct Act32 {
  float d;      // scale (F16-rounded, as block_q8_0 stores it)
  int32_t sum;  // Σ qs
  int8_t qs[kQK];
};

// True for the types matmul_blocks computes.
bool matmul_blocks_supports(GGMLType t);

// The kernel sets of matmul_blocks; Auto is the best this CPU has.
// Avx512: 512-bit forms of the Q4_K, Q5_K, Q6_K and IQ4_XS dots (the AVX2 ones for the other types),
// available with the Avx512Vnni integer set (matmul_internal.h) and the default while that set is
// the one in use (matmul_use_int_kernels, EDGEVLM_NO_AVX512 switch it too).
enum class BlockKernels { Auto, Scalar, Avx2, Avx512, Neon, NeonDotprod };
const char* block_kernels_name(BlockKernels k);
bool block_kernels_available(BlockKernels k);

// y[r·n_out + o] = Σ_i W[o, i] · x[r·n_in + i] for r < n_rows, W of a matmul_blocks_supports type.
// Parallel over output rows. Throws when k is not available on this CPU. A Q4_K matrix prepared by
// matmul_blocks_prepare is read from its interleaved copy when k is Auto, Avx512 or Avx2.
void matmul_blocks(const WeightMatrix& w, const float* x, int64_t n_rows, float* y, ThreadPool& pool,
                   BlockKernels k = BlockKernels::Auto);

// Q4_K matrices get a copy with their rows interleaved 8 at a time (detail::Q4KGroupBlock), built
// once here (a model loader calls it through matmul_prepare), when the CPU has AVX2 (tiles of
// vpdpbusd with AVX512-VNNI, of maddubs otherwise): batched products then run at several times the
// rate of the row-by-row dots, and decode at one thread keeps up with memory. The copy replaces the original in memory: the
// original's pages are given back when they lie in a read-only file mapping. Returns whether w has
// a copy now. matmul_prepare honours the repack switch (EDGEVLM_NO_REPACK) before calling it. As
// with matmul_prepare, the caller must call matmul_blocks_forget before w's memory changes or goes away.
bool matmul_blocks_prepare(const WeightMatrix& w, ThreadPool& pool);
void matmul_blocks_forget(const void* data);
size_t matmul_blocks_prepared_bytes();  // held by the interleaved copies

namespace detail {

// One weight row (nb blocks of its type) against one quantized activation row (Q8_K or Act32).
using BlockDot = float (*)(const void* w, const void* act, int64_t nb);
// The dot of type t in kernel set k (never Auto); nullptr when the set has none for t (the
// driver then uses the scalar one).
BlockDot block_dot(GGMLType t, BlockKernels k);
// Whether type t pairs with Q8_K activations (else Act32).
inline bool block_uses_q8k(GGMLType t) {
  return t == GGMLType::Q2_K || t == GGMLType::Q3_K || t == GGMLType::Q4_K || t == GGMLType::Q5_K ||
         t == GGMLType::Q6_K || t == GGMLType::IQ4_XS;
}
// Quantizes one activation row of n elements for type t's dot (Q8_K or Act32 blocks).
void block_quantize_act(GGMLType t, const float* x, int64_t n, void* out);
size_t block_act_bytes(GGMLType t, int64_t n);

// Four activation rows at once (act, act + act_stride, ...; out[0..3]), each weight block unpacked
// once for all four: the batched (prefill) form where a kernel set has it.
using BlockDotRows = void (*)(const void* w, const void* act, size_t act_stride, int64_t nb, float* out);
BlockDotRows block_dot4(GGMLType t, BlockKernels k);  // nullptr: none (the driver loops block_dot)

// Q4_K rows interleaved 8 at a time (matmul_blocks_prepare): one super-block of a group of 8 weight
// rows, laid out for kernels that produce the 8 rows' sums in the 8 lanes of one register. 1184
// bytes against the 1152 of the 8 rows' BlockQ4_K (the scales unpacked from their 6-bit packing).
struct alignas(32) Q4KGroupBlock {
  // [pair p][step k]: bytes 4k..4k+3 of quant bytes 32p.. of each row, row r at 4r..4r+3: low
  // nibbles are elements 4k..4k+3 of sub-block 2p, high nibbles those of sub-block 2p + 1.
  uint8_t qs[4][8][32];
  uint8_t mins[4][8][2];  // [pair t][row r]: the mins of sub-blocks 2t and 2t + 1
  uint8_t scales[8][8];   // [sub-block s][row r]
  uint16_t d[8], dmin[8];  // F16, per row
};
static_assert(sizeof(Q4KGroupBlock) == 1184);
// Rows [0, nr) of activations (Q8_K rows as_ bytes apart) against the group of 8 rows stored as nb
// Q4KGroupBlocks at b: y[r·ldy + j] for j < 8. nullptr where the CPU or build has none.
using Q4KGroupTile = void (*)(const Q4KGroupBlock* b, const void* act, size_t act_stride, int64_t nb, float* y,
                              size_t ldy);
Q4KGroupTile q4k_x8_tile_avx512(int nr);  // nr 1..4; AVX512-VNNI on 256-bit registers
Q4KGroupTile q4k_x8_tile_avx2(int nr);    // nr 1..2; AVX2 (maddubs)
// Two groups (b0: rows 8g.., b1: rows 8g + 8..) into y[r·ldy + j] for j < 16, on 512-bit registers.
using Q4KPairTile = void (*)(const Q4KGroupBlock* b0, const Q4KGroupBlock* b1, const void* act, size_t act_stride,
                             int64_t nb, float* y, size_t ldy);
Q4KPairTile q4k_x16_tile_avx512(int nr);  // nr 1..4
// Interleaves rows 8g..8g+7 of a Q4_K matrix (nb super-blocks a row, rows row_stride bytes apart)
// into nb Q4KGroupBlocks at out. Rows past n_out are zero.
void pack_q4k_group(const uint8_t* w, size_t row_stride, int64_t n_out, int64_t g, int64_t nb, Q4KGroupBlock* out);

// Per-ISA tables, indexed by block_dot; each returns nullptr for types it has no kernel for.
BlockDot block_dot_scalar(GGMLType t);
BlockDot block_dot_avx2(GGMLType t);         // matmul_blocks_avx2.cc (nullptr without AVX2)
BlockDotRows block_dot4_avx2(GGMLType t);
BlockDot block_dot_avx512(GGMLType t);       // also matmul_blocks_avx2.cc (per-function target)
BlockDotRows block_dot4_avx512(GGMLType t);
BlockDot block_dot_neon(GGMLType t);         // matmul_neon.cc (aarch64; elsewhere nullptr)
BlockDot block_dot_neon_dotprod(GGMLType t); // matmul_dotprod_neon.cc (aarch64; elsewhere nullptr)
BlockDotRows block_dot4_neon(GGMLType t);
BlockDotRows block_dot4_neon_dotprod(GGMLType t);

}  // namespace detail
}  // namespace edgevlm
