// Shared between the matmul kernel files and their tests; not part of the public API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "core/pages.h"
#include "ops/matmul.h"

namespace edgevlm::detail {

// The epilogue of MatmulOut after a product without it: y (ldy apart) from the plain product
// w·x, then the sum and the bias in a row-parallel pass.
void matmul_unfused(const WeightMatrix& w, const float* x, int64_t n_rows, float* y, ThreadPool& pool,
                    const MatmulOut& out);
// matmul_avx2 with an epilogue (fused for Q8_0/Q4_0, matmul_unfused for the float types).
void matmul_avx2_out(const WeightMatrix& w, const float* x, int64_t n_rows, float* y, ThreadPool& pool,
                     const MatmulOut& out);

template <typename T>
using AlignedBuf = HugeBuffer<T>;  // the same owner as core/pages' buffers (freed with std::free)

template <typename T>
AlignedBuf<T> aligned_alloc_n(size_t n) {
  size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
  if (bytes == 0) bytes = 64;
  return AlignedBuf<T>(static_cast<T*>(std::aligned_alloc(64, bytes)));
}

// A growable 64-byte-aligned buffer for per-thread scratch (no allocation once large enough).
template <typename T>
struct Scratch {
  AlignedBuf<T> buf;
  size_t cap = 0;
  T* get(size_t n) {
    if (n > cap) {
      buf = aligned_alloc_n<T>(n);
      cap = n;
    }
    return buf.get();
  }
};

// ---- AVX2 integer kernels: weights repacked into groups of 8 interleaved rows ----------------
// A group holds weight rows 8g..8g+7 (rows past n_out are zero). For each 32-element block it
// stores the quants of the 8 rows interleaved 4 bytes at a time (kernel step k holds bytes
// 4k..4k+3 of every row, row r at bytes 4r..4r+3), so one 32-byte load feeds all 8 rows and the
// 8 dot products finish in the 8 lanes of one register. Q4_0: 4 steps of packed nibbles (128
// bytes per block); Q8_0: 8 steps of int8 (256 bytes). Each block's 8 F16 scales (row order) are
// kept apart from the quants: a cached copy holds every group's quants back to back (nb blocks
// per group), then every group's scales, so that decode reads two unbroken streams. With the scales
// at the end of each group instead, every group broke the quant stream with a 1/9 gap, and the
// hardware prefetcher lost it at each one: streaming such a copy from memory ran at about half the
// read bandwidth, whatever the kernel (measured on Zen 4: 12 against 24 GB/s for the same bytes).
// The pair layout (the Avx512Vnni set's, with its 512-bit tiles on) interleaves groups 2j and
// 2j + 1: per block, step k of one then step k of the other (64 bytes, one zmm), and the 8 scales
// of one then the 8 of the other. A pair's blocks go two at a time, quants then scales (576 bytes
// of Q4_0, 1088 of Q8_0), so that decode reads each pair as one unbroken stream: on Zen 5, one
// core read the two streams of the split layout at 0.82-0.84 of a plain read of as many bytes, a
// single stream at 0.91-0.95 (load-only loops over 1 GB, 4 KiB software prefetch, medians of 11
// alternated rounds, three runs). An odd last group keeps
// the plain layout after the pairs.
//
// Matrices of at least kRepackMinBytes are repacked once, on their first product, into a cache
// keyed by the weight data's address, shape and type, and checked against a fingerprint of the
// data (a few sampled cache lines) on every use: weights must not change in place while cached
// (GGUF files are mapped read-only) unless matmul_packed_drop is called. Smaller matrices, and
// any matrix while the cache is disabled, are repacked per call into per-thread scratch.
constexpr size_t kRepackMinBytes = 32 * 1024;

// The layouts' geometry (the integer kernels and the AMX products read the same copies).
constexpr int kGR = 8;  // weight rows per group
// Packed quant bytes per block and group.
inline int packed_qb(GGMLType t) { return t == GGMLType::Q4_0 ? 128 : 256; }
// The pair layout stores blocks two at a time: both blocks' interleaved quants, then both blocks'
// 16 scales, so a pair is one unbroken stream. With pq bytes of a pair's quants per block: a
// super-block of two blocks (a multiple of 64 bytes), and where block ib's quants and scales lie
// from the pair's start (packing, the 512-bit tiles, their prefetch and the AMX products use these).
constexpr int kPairScaleBytes = 2 * kGR * 2;  // a pair's 16 F16 scales of one block
constexpr size_t pair_super_bytes(int pq) { return 2 * size_t(pq) + 2 * kPairScaleBytes; }
constexpr size_t pair_steps_offset(int pq, int64_t ib) { return size_t(ib >> 1) * pair_super_bytes(pq) + size_t(ib & 1) * size_t(pq); }
constexpr size_t pair_scales_offset(int pq, int64_t ib) {
  return size_t(ib >> 1) * pair_super_bytes(pq) + 2 * size_t(pq) + size_t(ib & 1) * kPairScaleBytes;
}
inline int pair_qbytes(GGMLType t) { return 2 * packed_qb(t); }
// A pair over nblk blocks (an odd count leaves the last super-block's second half unused).
inline size_t pair_bytes(GGMLType t, int64_t nblk) { return size_t((nblk + 1) / 2) * pair_super_bytes(pair_qbytes(t)); }

// ---- AMX-BF16 products (matmul_amx.cc) ------------------------------------------------------
// Products of at least kAmxMinRows rows of a Q4_0/Q8_0 matrix with a cached pair-layout copy run
// on the CPU's matrix engine where it has AMX-BF16 (cpu_has_amx_bf16), the weights converted to
// BF16 per panel and the activations rounded to BF16; fewer rows (decode) stay on the integer
// kernels, bound by memory, except within a PromptRowsScope (ops/matmul.h). An odd last group of 8
// rows outside the pairs stays on the integer kernels too.
constexpr int64_t kAmxMinRows = 16;
// The pairs of a cached copy: n_pairs pairs of 16 weight rows, pstride bytes apart, nb blocks per
// row; n_out rows in all (a last pair may be part zero); flip: Q8_0 stored as q + 128.
struct AmxPairs {
  GGMLType type = GGMLType::Q4_0;
  const uint8_t* data = nullptr;
  size_t pstride = 0;
  int64_t n_pairs = 0, nb = 0, n_out = 0;
  bool flip = false;
};
// An AMX tile configuration (palette 1) as ldtilecfg reads it, and its loading. The load is an asm
// statement that reads the struct: GCC 12 does not see _tile_loadconfig read its operand and
// deletes the stores that fill it, -fno-tree-dse or not (at -O3 its RTL pass removes them too; the
// llama.cpp peer's AMX path, built that way, faulted in ldtilecfg with only the palette byte stored).
struct alignas(64) AmxTileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};
#if defined(__x86_64__)
inline void amx_load_config(const AmxTileConfig& c) { __asm__ volatile("ldtilecfg %0" : : "m"(c)); }
#endif
// Whether this build has the AMX kernels (x86-64 with a compiler that has AMX).
bool matmul_amx_compiled();
// y[r·ldy + o] (+)= Σ_i W[o, i] · x[r·n_in + i] (+ bias[o]) for o < min(n_out, 16·n_pairs).
// Call only when cpu_has_amx_bf16() and matmul_amx_compiled().
void matmul_amx_pairs(const AmxPairs& m, const float* x, int64_t n_rows, int64_t n_in, float* y, int64_t ldy,
                      const float* bias, bool accumulate, ThreadPool& pool);
// y[r·n_out + o] = Σ_i W[o, i] · x[r·n_in + i] for a block type's matrix (ops/matmul_blocks.h) read as
// it lies in the file, or for Q4_K from its interleaved copy (q4k, nb super-blocks a group of 8 rows):
// each block dequantized and rounded to BF16 per panel, as the pairs are. Call only when
// matmul_amx_active() and matmul_amx_converts(w.type): the types whose super-blocks have a vectorized
// conversion (Q4_K, Q5_K, Q6_K, IQ4_XS); the others converted element by element ran slower than the
// integer kernels.
struct Q4KGroupBlock;
bool matmul_amx_converts(GGMLType t);
void matmul_amx_blocks(const WeightMatrix& w, const float* x, int64_t n_rows, float* y, ThreadPool& pool,
                       const Q4KGroupBlock* q4k = nullptr);
// Forget the tile configuration this thread's AMX products last loaded (call after other code on
// the thread loaded its own or released the tiles; the next product loads its configuration again).
void matmul_amx_thread_reset();
// Whether products of several rows use the AMX kernels where the CPU has them (default on;
// EDGEVLM_NO_AMX=1 turns them off, as it does cpu_has_amx_bf16). Returns the previous setting.
bool matmul_amx_enable(bool on);
// Whether the AMX kernels run now (the CPU has them, the build has them, and they are enabled).
bool matmul_amx_active();

// Bytes held by repacked weights (the memory cost of the cache).
size_t matmul_packed_bytes();
// Number of cached matrices.
size_t matmul_packed_count();
// Forget the repacked copy of weights at this address (call before freeing or rewriting them).
void matmul_packed_drop(const void* data);
// Forget every repacked copy.
void matmul_packed_clear();
// Enable or disable the cache (default on; EDGEVLM_NO_REPACK=1 in the environment turns it off).
// Returns the previous setting.
bool matmul_packed_enable(bool on);
// Whether building a cached copy gives back the original's pages when they belong to a read-only
// file mapping (default on; see release_file_pages — the bytes read never change, the pages are
// faulted back in from the file if read again). Returns the previous setting.
bool matmul_release_originals(bool on);
// Bytes of original weights given back so far (cumulative).
size_t matmul_released_bytes();

// The x86 integer kernel sets (Q8_0/Q4_0 weights, 8-bit activations), chosen at run time:
//   Avx2:       maddubs → madd (every AVX2 CPU);
//   AvxVnni:    vpdpbusd on 256-bit registers, VEX-encoded (AVX-VNNI: Alder Lake+, Zen 5);
//   Avx512Vnni: AVX512-VNNI + VL (Ice Lake+, Zen 4+): 512-bit tiles over the pair layout
//               (matmul_avx512_tiles.inc: twice the int8 rate on Zen 5), decode included; with
//               the 512-bit tiles off, the 256-bit tiles EVEX-encoded over the plain layout.
// The default is the highest the CPU has; EDGEVLM_NO_VNNI=1 leaves only Avx2, EDGEVLM_NO_AVX512=1
// drops Avx512Vnni. The two VNNI sets store Q8_0 weights as q + 128 in the repacked copy.
enum class IntKernels : int { Avx2 = 0, AvxVnni = 1, Avx512Vnni = 2 };
inline const char* int_kernels_name(IntKernels k) {
  return k == IntKernels::Avx512Vnni ? "avx512-vnni" : k == IntKernels::AvxVnni ? "avx-vnni" : "avx2";
}
bool matmul_int_kernels_available(IntKernels k);
IntKernels matmul_int_kernels();
// Switches kernel sets (for tests and benchmarks; throws when the CPU lacks k); returns the previous.
IntKernels matmul_use_int_kernels(IntKernels k);
// Whether the CPU has a VNNI set (either), and a switch between the best one and Avx2 (returns
// whether a VNNI set was in use).
bool matmul_avx2_has_vnni();
bool matmul_avx2_use_vnni(bool on);
// Whether cached copies keep the scales apart from the quants (default on, the layout above) or at
// the end of each group, the earlier layout (for tests of both and the A/B in `edgevlm bench
// --gemv`); copies of both layouts can be cached at once. Returns the previous setting.
bool matmul_avx2_split_scales(bool on);
// Software prefetch distance of the decode tiles (one activation row) in bytes, 0 for none (for
// tuning in `edgevlm bench --gemv`); returns the previous.
int matmul_avx2_prefetch_bytes(int bytes);
// Lines prefetched at the start of each 4 KiB page entering the prefetch window (0: every line of
// the window; for the A/B in `edgevlm bench --gemv`); returns the previous.
int matmul_avx2_prefetch_page_lines(int lines);
// Whether the AVX2 integer kernels tile two 8-row weight groups per activation broadcast (default
// on; off runs one group per tile, the earlier kernels: for tests of both and the kernel A/B in
// `edgevlm bench --gemm`). Returns the previous setting.
bool matmul_avx2_group_pairs(bool on);
// Whether the Avx512Vnni set runs its 512-bit tiles over the pair layout (matmul_avx512_tiles.inc;
// default on, with group pairs and split scales; off runs the 256-bit tiles over the plain layout,
// for tests of both and the A/Bs in `edgevlm bench --gemm` and `--gemv`). Returns the previous
// setting.
bool matmul_avx512_wide_tiles(bool on);
// Pairs of weight groups per 512-bit tile in products of several rows: 0 (the default) chooses by
// type (3 for Q4_0 over longer weight slices, 2 for Q8_0); 2 or 3 forces that many over 40 KiB
// slices, the earlier blocking (for tests of both and the A/B in `edgevlm bench
// --gemm`). Returns the previous setting.
int matmul_avx512_tile_pairs(int pairs);

}  // namespace edgevlm::detail
