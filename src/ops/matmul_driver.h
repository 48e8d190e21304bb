// The loop nest of every dense matrix product, whatever the kernel set (matmul_avx2.cc for x86,
// matmul_neon.cc for aarch64):
//   for each unit of output rows a thread owns (the pool shares the units out)
//     for each block of activation rows      (the block's slice of activations stays in L2)
//       for each slice of the reduction      (a unit's slice of weights stays in L1 across the block)
//         for each unit: the kernel file's body, which runs its per-ISA tiles over the block's rows.
// The kernel files choose the units and the blocking and give the body; the loop is written once.
#pragma once

#include <algorithm>
#include <cstdint>

#include "core/thread_pool.h"

namespace edgevlm::detail {

struct Blocking {
  int64_t row_block;  // activation rows per block
  int64_t kslice;     // reduction elements per slice (a multiple of 32, or the whole reduction)
};

// Blocking that keeps a row block's slice of activations (bytes_per_input each) within budget
// bytes: the whole product when it fits; else slices of at least 256 inputs and as many rows (a
// multiple of row_step) as the budget then allows.
inline Blocking activation_blocking(int64_t n_rows, int64_t n_in, int64_t bytes_per_input, int64_t budget,
                                    int64_t row_step) {
  Blocking b{n_rows, n_in};
  if (n_rows * n_in * bytes_per_input <= budget) return b;
  b.kslice = std::max<int64_t>(256, budget / (n_rows * bytes_per_input)) / 32 * 32;
  if (b.kslice >= n_in) b.kslice = n_in;
  b.row_block = std::min(n_rows, std::max<int64_t>(row_step, budget / (b.kslice * bytes_per_input) / row_step * row_step));
  return b;
}

// Runs body(unit, rb0, rb1, k0, k1) for every unit in [0, n_units), row block [rb0, rb1) and
// reduction slice [k0, k1), in the order above; units are shared out over the pool.
template <class Body>
void for_each_block(ThreadPool& pool, int64_t n_units, int64_t n_rows, int64_t n_in, const Blocking& b, Body&& body) {
  pool.parallel_for(n_units, [&](int64_t u0, int64_t u1) {
    for (int64_t rb0 = 0; rb0 < n_rows; rb0 += b.row_block) {
      const int64_t rb1 = std::min(n_rows, rb0 + b.row_block);
      for (int64_t k0 = 0; k0 < n_in; k0 += b.kslice) {
        const int64_t k1 = std::min(n_in, k0 + b.kslice);
        for (int64_t u = u0; u < u1; ++u) body(u, rb0, rb1, k0, k1);
      }
    }
  });
}

}  // namespace edgevlm::detail
