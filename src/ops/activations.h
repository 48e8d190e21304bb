// Elementwise activations and softmax.
#pragma once

#include <cstdint>

namespace edgevlm {

// SwiGLU: gate[i] = silu(gate[i]) · up[i], silu(x) = x / (1 + e^−x).
void swiglu(float* gate, const float* up, int64_t n);
// GELU, tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). In place.
void gelu_tanh(float* x, int64_t n);
// In-place softmax over n values (max-subtracted).
void softmax(float* x, int64_t n);
// y[r·n + i] += b[i] for every row.
void add_bias(float* y, const float* b, int64_t n, int64_t n_rows);
// y[i] += x[i].
void add_inplace(float* y, const float* x, int64_t n);

}  // namespace edgevlm
