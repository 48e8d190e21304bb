// NEON attention for aarch64 (attention_neon.cc, attention_dotprod_neon.cc; built on aarch64 only —
// include this header from code guarded by `#if defined(__aarch64__)`). Same contract and the same
// steps as attention_avx2 in attention.h; with QkMode::Int8 over an INT8 cache the query is
// quantized to int8 per head and q·k summed exactly in int32 (SDOT, or SMULL/SMLAL + SADALP).
#pragma once

#include "core/thread_pool.h"
#include "ops/attention.h"
#include "ops/matmul_neon.h"  // NeonKernels: the same choice of plain or SDOT kernels as matmul_neon

namespace edgevlm {

// Call only when cpu_has_neon(). Parallel over (KV head, query row, query-head group) items.
// NeonKernels::Dotprod throws edgevlm::Error when the CPU lacks SDOT.
void attention_neon(const AttentionArgs& a, ThreadPool& pool, NeonKernels kernels = NeonKernels::Auto);

}  // namespace edgevlm
