// Elementwise activations and softmax.
#pragma once

#include <cstdint>

namespace edgevlm {

// SwiGLU: gate[i] = silu(gate[i]) · up[i], silu(x) = x / (1 + e^−x).
void swiglu(float* gate, const float* up, int64_t n);
// GEGLU with the tanh GELU: gate[i] = gelu_tanh(gate[i]) · up[i] (Gemma's feed-forward).
void geglu_tanh(float* gate, const float* up, int64_t n);
// GELU, tanh approximation: y = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))); y may be x.
void gelu_tanh(const float* x, float* y, int64_t n);
inline void gelu_tanh(float* x, int64_t n) { gelu_tanh(x, x, n); }
// QuickGELU (CLIP's, Qwen2-VL's ViT): x · sigmoid(1.702·x), in place.
void gelu_quick(float* x, int64_t n);
// In-place softmax over n values (max-subtracted).
void softmax(float* x, int64_t n);
// y[r·n + i] += b[i] for every row.
void add_bias(float* y, const float* b, int64_t n, int64_t n_rows);
// y[i] += x[i].
void add_inplace(float* y, const float* x, int64_t n);

// swiglu and gelu_tanh dispatch to AVX2 (a vectorized exp, within 1e-6 relative of libm's
// results; ops_test) when cpu_has_avx2(), else run these scalar loops over libm.
void swiglu_ref(float* gate, const float* up, int64_t n);
void gelu_tanh_ref(const float* x, float* y, int64_t n);
// The AVX2 loops over whole groups of 8; return how many elements they did (0 off x86).
int64_t swiglu_avx2(float* gate, const float* up, int64_t n);
int64_t gelu_tanh_avx2(const float* x, float* y, int64_t n);

}  // namespace edgevlm
