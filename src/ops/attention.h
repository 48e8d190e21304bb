// Causal grouped-query attention over a key/value history (the KV cache's rows).
// Query row i (i < n_q) sits at position pos0 + i and attends to positions 0 .. pos0 + i, or only
// to the last `window` of them in a sliding-window layer (gemma3's local layers); inside a
// bidirectional span also to the span's later positions.
// Query head h reads KV head h / (n_head / n_head_kv).
//
// The K/V rows may be stored as F32, F16 or INT8 (KvElem). INT8 rows carry one scale per
// (position, KV head): x = d · q with q in [−127, 127] and d = max|x| / 127 stored as F16. One
// scale per head row rather than per block of 32: head sizes need not be multiples of 32 (the
// bluelm-v-3b shape has 80), the q·k product of a head is then one integer-or-float sum times one
// scale, and the scale costs 2 bytes per head_dim bytes (2.5% at 80), so the cache is 0.51× F16.
#pragma once

#include <cstdint>

#include "core/thread_pool.h"

namespace edgevlm {

enum class KvElem { F32, F16, Q8 };
const char* kv_elem_name(KvElem t);  // "f32", "f16", "q8"

struct AttentionArgs {
  const float* q = nullptr;  // n_q rows, q_stride floats apart, each n_head × head_dim
  int64_t q_stride = 0;
  // F32 rows: position p, KV head g at k + p·kv_stride + g·head_dim (kv_stride in elements).
  const float* k = nullptr;
  const float* v = nullptr;
  int64_t kv_stride = 0;
  float* out = nullptr;  // n_q rows, out_stride floats apart, each n_head × head_dim
  int64_t out_stride = 0;
  int n_q = 0;
  int64_t pos0 = 0;
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim = 0;
  float scale = 1.0f;  // applied to q·k before the softmax (usually 1/√head_dim)
  // Sliding window: when > 0, the query at position p sees positions p − window + 1 .. p only
  // (llama.cpp's LLAMA_SWA_TYPE_STANDARD masks p' when p − p' ≥ window). 0: all of 0 .. p.
  int64_t window = 0;
  // A bidirectional span: the queries at positions in [bidir_begin, bidir_end) also see the later
  // positions of the span (llama.cpp decodes a Gemma 3 image with non-causal attention). The span's
  // positions must all be in the history (bidir_end ≤ pos0 + n_q). Empty (begin = end): causal.
  int64_t bidir_begin = 0, bidir_end = 0;

  // Other storage (kv_type F16 or Q8): the rows are read from k_raw / v_raw instead of k / v,
  // same element layout (uint16_t F16 or int8_t elements); Q8 scales (F16 bits) of position p,
  // KV head g at k_scale[p·n_head_kv + g] and v_scale[...].
  KvElem kv_type = KvElem::F32;
  const void* k_raw = nullptr;
  const void* v_raw = nullptr;
  const uint16_t* k_scale = nullptr;
  const uint16_t* v_scale = nullptr;
};

// Dispatches to AVX2 (x86-64) or NEON (aarch64, attention_neon.h) when the CPU has it, else the
// scalar path. Parallel over (KV head, query) pairs.
void attention(const AttentionArgs& a, ThreadPool& pool);
// Scalar reference (rows converted to F32, softmax in float with a double sum).
void attention_ref(const AttentionArgs& a);
// AVX2 path (call only when cpu_has_avx2()).
void attention_avx2(const AttentionArgs& a, ThreadPool& pool);

// How the SIMD paths form q·k over INT8 keys: Float converts the keys to F32 in registers (each
// conversion shared by the query heads of a group) and multiplies by the F32 query; Int8 also
// quantizes the query to 8 bits (one scale per head) and sums int8 products exactly in int32
// (AVX2 maddubs; NEON SDOT, or SMULL/SMLAL on cores without it). Int8 is the default: with AVX2
// as fast at short contexts and 2-4× faster at 4096 positions (`edgevlm bench --attention`,
// docs/BENCHMARKS.md), at an extra error of < 1% of max|v| (attention_test.cc).
enum class QkMode { Float, Int8 };
void set_attention_qk_mode(QkMode m);  // process-wide; for benchmarks and tests
QkMode attention_qk_mode();

// Whether a decode step's score loops prefetch the K and V rows ahead of their reads (default on;
// attention_avx2.cc says why). Process-wide, for the A/B in `edgevlm bench -m M --attention`.
// Returns the previous setting.
bool set_attention_kv_prefetch(bool on);
bool attention_kv_prefetch();

// INT8 KV row format: quantizes n floats to q (n bytes), returns the scale as F16 bits. Runs the
// AVX2 version where the CPU has it (bit-identical to the scalar reference, which calls libm's
// nearbyint per element: 296 against 33 ns per 80-element row, alternated A/B on Zen 4; a
// bluelm-v-3b decode step quantizes 1536 such rows, its query heads and new K and V rows: 0.4 ms).
uint16_t quantize_kv_row_q8(const float* x, int n, int8_t* q);
uint16_t quantize_kv_row_q8_ref(const float* x, int n, int8_t* q);
uint16_t quantize_kv_row_q8_avx2(const float* x, int n, int8_t* q);  // call only when cpu_has_avx2()
// x = d · q for n elements.
void dequantize_kv_row_q8(const int8_t* q, uint16_t d, int n, float* x);

}  // namespace edgevlm
