// Shared between the matmul kernel files and their tests; not part of the public API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "ops/matmul.h"

namespace edgevlm::detail {

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};
template <typename T>
using AlignedBuf = std::unique_ptr<T[], AlignedFree>;

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
// bytes per block); Q8_0: 8 steps of int8 (256 bytes). After the nb blocks of quants come the
// nb × 8 F16 scales (row order). Groups are group_stride bytes apart, 64-byte aligned.
//
// Matrices of at least kRepackMinBytes are repacked once, on their first product, into a cache
// keyed by the weight data's address, shape and type, and checked against a fingerprint of the
// data (a few sampled cache lines) on every use: weights must not change in place while cached
// (GGUF files are mapped read-only) unless matmul_packed_drop is called. Smaller matrices, and
// any matrix while the cache is disabled, are repacked per call into per-thread scratch.
constexpr size_t kRepackMinBytes = 32 * 1024;

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

// Whether the CPU has AVX-VNNI (and EDGEVLM_NO_VNNI is unset): the AVX2 integer kernels then use
// vpdpbusd. matmul_avx2_use_vnni switches between the two kernel sets (for tests; on is honoured
// only when the CPU has it) and returns the previous setting.
bool matmul_avx2_has_vnni();
bool matmul_avx2_use_vnni(bool on);
// Whether the AVX2 integer kernels tile two 8-row weight groups per activation broadcast (default
// on; off runs one group per tile, the earlier kernels: for tests of both and the kernel A/B in
// `edgevlm bench --gemm`). Returns the previous setting.
bool matmul_avx2_group_pairs(bool on);

}  // namespace edgevlm::detail
