// Q8_0 / Q4_0 weights in the integer kernels' layouts (groups of 8 interleaved rows, and pairs of
// groups for the 512-bit tiles and the AMX path: matmul_internal.h describes both), and the cache of
// prepared copies that replaces the mapped weights in memory (matmul_prepare / matmul_forget in
// ops/matmul.h). The kernels that read these layouts are in matmul_avx2.cc and matmul_amx.cc.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/thread_pool.h"
#include "ops/matmul.h"
#include "ops/matmul_internal.h"

namespace edgevlm::detail {

inline size_t group_qstride(GGMLType t, int64_t nb) { return size_t(nb) * size_t(packed_qb(t)); }
inline size_t group_dstride(int64_t nb) { return size_t(nb) * kGR * 2; }
// The earlier layout, kept for the A/B in `edgevlm bench --gemv` (matmul_avx2_split_scales(false)):
// each group's scales right after its quants, groups this many bytes apart (64-byte aligned).
inline size_t group_stride_legacy(GGMLType t, int64_t nb) { return (group_qstride(t, nb) + group_dstride(nb) + 63) / 64 * 64; }

// Repacks blocks [b0, b0 + nblk) of rows 8g..8g+7 into q (nblk·QB bytes) and d (nblk·8 scales).
// flip: store Q8_0 quants as q + 128 (unsigned), the VNNI kernels' layout.
void pack_group(GGMLType t, const uint8_t* w, size_t ws, int64_t n_out, int64_t g, int64_t b0, int64_t nblk,
                uint8_t* q, uint16_t* d, bool flip);
// Groups g and g + 1 (g + 1 below the group count), blocks [b0, b0 + nblk), into out
// (pair_bytes(t, nblk)): per block, step k of g then step k of g + 1 (64 bytes, one zmm), and the
// 8 scales of g then the 8 of g + 1.
void pack_pair(GGMLType t, const uint8_t* w, size_t ws, int64_t n_out, int64_t g, int64_t b0, int64_t nblk, uint8_t* out,
               bool flip);

// Where a cached copy keeps each group of a matrix of nb blocks per row and n_groups groups, as byte
// offsets from its start. Split: every group's quants, then every group's scales. Legacy (split
// off): each group's quants followed by its scales. Pairs: pairs back to back (pair_bytes each),
// then an odd last group's quants followed by its scales.
struct CopyLayout {
  GGMLType t;
  int64_t nb, n_groups;
  bool split, pairs;

  size_t qs() const { return group_qstride(t, nb); }
  size_t ds() const { return group_dstride(nb); }
  size_t pair_stride() const { return pair_bytes(t, nb); }
  size_t bytes() const {
    if (pairs) return size_t(n_groups / 2) * pair_stride() + size_t(n_groups % 2) * (qs() + ds());
    return split ? (qs() + ds()) * size_t(n_groups) : group_stride_legacy(t, nb) * size_t(n_groups);
  }
  // The pair starting at group g (even).
  size_t pair_offset(int64_t g) const { return size_t(g / 2) * pair_stride(); }
  // A group outside a pair (with pairs, only the odd last one).
  size_t quant_offset(int64_t g) const {
    if (pairs) return size_t(n_groups / 2) * pair_stride();
    return split ? size_t(g) * qs() : size_t(g) * group_stride_legacy(t, nb);
  }
  size_t scale_offset(int64_t g) const {
    return split && !pairs ? qs() * size_t(n_groups) + size_t(g) * ds() : quant_offset(g) + qs();
  }
  // Bytes from group g to group g + 1 outside pairs, for the quants and for the scales.
  size_t next_group_q() const { return split ? qs() : group_stride_legacy(t, nb); }
  size_t next_group_d() const { return split ? ds() : group_stride_legacy(t, nb); }
};

// The cached copy of w in the given layout, built on first use (in parallel on the pool; its
// original's file pages are then given back), or null when w is small or the cache is off.
// prepare: built or claimed by matmul_prepare (trusted without the fingerprint check).
const uint8_t* packed_weights(const WeightMatrix& w, bool flip, bool split, bool pairs, ThreadPool& pool,
                              bool prepare = false);
// Whether the cache is on (EDGEVLM_NO_REPACK=1 or matmul_packed_enable(false) turn it off).
bool packed_cache_enabled();

}  // namespace edgevlm::detail
