// Matrix products y = W·x for a batch of activation rows, the bulk of every forward pass.
// W is a weight tensor in GGUF layout: n_out rows of n_in elements (ne[0] = n_in), stored as
// F32, F16, BF16, Q8_0 or Q4_0 (the other block types: ops/matmul_blocks.h). Two implementations:
//   - matmul_ref: portable scalar reference (each weight row dequantized to F32, float dot);
//   - the AVX2+FMA+F16C kernels (matmul_avx2.cc), chosen at run time: F16/BF16 converted in
//     registers; for Q8_0/Q4_0 the activations are quantized to Q8_0 blocks on the fly and the
//     dot products run on 8-bit integers, as ggml does (vpdpbusd where the CPU has AVX-VNNI or
//     AVX512-VNNI; see detail::IntKernels in matmul_internal.h).
//     Several activation rows share each weight block loaded (integer tiles of 16 weight rows ×
//     4 activation rows; float tiles of 4 × 2), and the reduction is cut into slices whose
//     activations stay in L2, so batched prefill is bound by arithmetic.
//     Where the CPU has AMX-BF16, Q8_0/Q4_0 products of several rows run on its tiles instead
//     (matmul_amx.cc, see PromptRowsScope below).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/thread_pool.h"
#include "formats/gguf.h"
#include "formats/quant.h"

namespace edgevlm {

struct WeightMatrix {
  GGMLType type = GGMLType::F32;
  const uint8_t* data = nullptr;  // row o starts at data + o * row_stride (a view, not owned)
  int64_t n_in = 0;
  int64_t n_out = 0;
  size_t row_stride = 0;

  size_t bytes() const { return row_stride * size_t(n_out); }  // of the whole matrix

  // A view of a 2-D GGUF tensor; throws edgevlm::Error naming the tensor when it is not 2-D,
  // its type has no matmul kernel, or its rows do not fill whole blocks.
  static WeightMatrix from_tensor(const GGUFTensorInfo& t);
  // A view of caller-owned memory in the given type (rows packed back to back).
  static WeightMatrix from_data(GGMLType type, const void* data, int64_t n_in, int64_t n_out);
};

// Types the matmul kernels accept: F32, F16, BF16, Q8_0, Q4_0, and those of matmul_blocks
// (ops/matmul_blocks.h: Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K..Q6_K, IQ4_XS).
bool matmul_supports(GGMLType t);

// y[r·n_out + o] = Σ_i W[o, i] · x[r·n_in + i] for r < n_rows. Dispatches to AVX2 when the CPU
// has it (see cpu_has_avx2), else to matmul_ref. Parallel over output rows.
void matmul(const WeightMatrix& w, const float* x, int64_t n_rows, float* y, ThreadPool& pool);

// What a product does with its outputs besides y = W·x (a linear layer's epilogue): adds a bias
// per output, adds into y instead of overwriting it (a residual connection), and writes rows ldy
// floats apart (0: n_out; a wider buffer's other columns are left alone). The Q8_0/Q4_0 AVX2
// kernels do it while a tile's outputs are still in cache, saving the passes over memory;
// other paths in a pass over the rows after the product. (GELU stays a pass of its own: it is
// bound by arithmetic, and fused per tile it ran slower, ViT 2 threads.)
//
// same_x: x is the input of this thread's previous product, unchanged since (Q, K and V of one
// normalized input; gate and up). The Q8_0/Q4_0 kernels then reuse that product's 8-bit
// quantization of x instead of redoing it. They check the pointer, the shape and a few of x's
// values and quantize again on any mismatch; a change to other values is the caller's bug.
struct MatmulOut {
  const float* bias = nullptr;
  bool accumulate = false;
  int64_t ldy = 0;
  bool same_x = false;
};
void matmul(const WeightMatrix& w, const float* x, int64_t n_rows, float* y, ThreadPool& pool, const MatmulOut& out);

// The AVX2 kernels read Q8_0/Q4_0 matrices of at least 32 KiB from a repacked copy, built on the
// first product (ops/matmul_internal.h). matmul_prepare builds it now, on the pool, so that a
// model loader pays the one-time cost at load time rather than the first prefill; once built,
// the original's pages are given back when they lie in a read-only file mapping (the copy
// replaces them in memory; read again, e.g. as embedding rows, they fault back in from the file).
// Returns whether w now has a copy: false for float types, small matrices, other CPUs, or with
// the cache disabled (EDGEVLM_NO_REPACK). A prepared copy is trusted: products use it without
// checking that w's bytes are unchanged (unprepared ones check a fingerprint of a few of them on
// every product), so the caller must call matmul_forget before w's memory changes or goes away.
bool matmul_prepare(const WeightMatrix& w, ThreadPool& pool);
// Frees w's repacked copy, if any (call before w's memory is unmapped or reused).
void matmul_forget(const WeightMatrix& w);

// Products of a prompt's rows. Where the CPU has AMX, Q4_0/Q8_0 products of several rows run on it
// (BF16 tiles) and single rows on the integer kernels (decode, bound by memory): the two round the
// activations differently (to BF16, to 8-bit blocks), so a prompt's numbers would depend on how it
// is cut into chunks. Within this scope (on the constructing thread) every product takes the
// kernels of several rows, whatever its row count; prefill_chunked opens it. `on` false suspends
// an enclosing scope (a product whose row count does not depend on the chunking: the last
// position's logits). Nested scopes restore the previous setting.
class PromptRowsScope {
 public:
  explicit PromptRowsScope(bool on = true);
  ~PromptRowsScope();
  PromptRowsScope(const PromptRowsScope&) = delete;
  PromptRowsScope& operator=(const PromptRowsScope&) = delete;
  static bool active();  // on this thread

 private:
  bool was_;
};

// Scalar reference; pool may be null (single thread).
void matmul_ref(const WeightMatrix& w, const float* x, int64_t n_rows, float* y, ThreadPool* pool = nullptr);

// The AVX2 path directly (tests compare it to matmul_ref). Call only when cpu_has_avx2().
void matmul_avx2(const WeightMatrix& w, const float* x, int64_t n_rows, float* y, ThreadPool& pool);

// Q8_0 quantization of activations as the integer kernels use it, the arithmetic of ggml's AVX2
// quantize_row_q8_0 (q = round-to-even(x · 127/max|x|), scale d = max|x|/127 kept at F16
// precision, as block_q8_0 stores it), so that products match llama.cpp's closely. Exposed so
// tests can rebuild the exact integer result.
// n must be a multiple of 32; qs gets n bytes, d gets n/32 scales.
void quantize_act_q8(const float* x, int64_t n, int8_t* qs, float* d);

}  // namespace edgevlm
