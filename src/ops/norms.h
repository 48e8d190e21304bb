// Normalizations over rows of n floats. y may equal x (in place).
#pragma once

#include <cstdint>

namespace edgevlm {

// RMSNorm (LLaMA): y = x / sqrt(mean(x²) + eps) · w. Sum of squares in double, as ggml does.
void rms_norm(const float* x, const float* w, float eps, int64_t n, int64_t n_rows, float* y);

// LayerNorm (ViT): y = (x − mean) / sqrt(var + eps) · w + b; w or b may be null (1 and 0).
void layer_norm(const float* x, const float* w, const float* b, float eps, int64_t n,
                int64_t n_rows, float* y);

}  // namespace edgevlm
