// Bidirectional (unmasked) multi-head attention of the ViT, batched over tiles: every token of a
// tile attends to every token of the same tile, never across tiles. On AVX2 a blocked kernel of
// its own (vit_attention_avx2.cc); elsewhere the two products per (tile, head) run through the
// matmul kernels (NEON on aarch64): scores = K_h·q (K_h as the weight matrix) and out = V_hᵀ·p.
#pragma once

#include <cstdint>

#include "core/thread_pool.h"

namespace edgevlm {

// q, k, v, out: n_tiles·n_tok rows of n_head·head_dim floats (row-major, tile-major), head j in
// features [j·head_dim, (j+1)·head_dim). out = concat_j softmax(scale · q_j k_jᵀ) v_j per tile.
// out must not alias q, k or v. Parallel over (tile, head) pairs.
// bf16: products on bf16-rounded q, k, softmax weights and v with f32 sums (vdpbf16ps, about twice
// the f32 rate) where the CPU has AVX512-BF16 (cpu_has_avx512_bf16), on AMX tiles where it has
// those too; f32 elsewhere. vit_forward
// asks for it when the ViT's matrices are quantized (the INT8 ViT), never for float files.
void vit_attention(const float* q, const float* k, const float* v, float* out, int n_tiles, int n_tok,
                   int n_head, int head_dim, float scale, ThreadPool& pool, bool bf16 = false);

// The AVX2 kernel directly (tests compare it to the reference). Call only when cpu_has_avx2().
void vit_attention_avx2(const float* q, const float* k, const float* v, float* out, int n_tiles, int n_tok,
                        int n_head, int head_dim, float scale, ThreadPool& pool);

// The AVX512-BF16 kernel directly. Call only when cpu_has_avx512_bf16().
void vit_attention_bf16(const float* q, const float* k, const float* v, float* out, int n_tiles, int n_tok,
                        int n_head, int head_dim, float scale, ThreadPool& pool);

// The AMX-BF16 kernel directly: the BF16 kernel's arithmetic on tile products. Call only when
// detail::matmul_amx_active() (ops/matmul_internal.h: the CPU has AMX-BF16, the build has the
// kernels, and they are not switched off); vit_attention takes it then for bf16.
void vit_attention_amx(const float* q, const float* k, const float* v, float* out, int n_tiles, int n_tok,
                       int n_head, int head_dim, float scale, ThreadPool& pool);

// Plain scalar loops: the reference the tests compare the matmul path against.
void vit_attention_ref(const float* q, const float* k, const float* v, float* out, int n_tiles, int n_tok,
                       int n_head, int head_dim, float scale);

}  // namespace edgevlm
