#include "ops/short_conv.h"

#include <algorithm>
#include <vector>

namespace edgevlm {

void short_conv_causal(const float* x, int64_t n, int64_t dim, const float* w, int kernel, float* state,
                       float* y) {
  const int64_t past = kernel - 1;
  // Input row τ (τ from −past): a state row before the new positions, else a new row.
  auto row = [&](int64_t tau) { return tau < 0 ? state + (past + tau) * dim : x + tau * dim; };
  for (int64_t t = 0; t < n; ++t) {
    float* out = y + t * dim;
    std::fill(out, out + dim, 0.0f);
    for (int j = 0; j < kernel; ++j) {
      const float* in = row(t - past + j);
      for (int64_t c = 0; c < dim; ++c) out[c] += w[c * kernel + j] * in[c];
    }
  }
  // New state: the last `past` rows of (old state, x).
  std::vector<float> keep(size_t(past * dim));
  for (int64_t r = 0; r < past; ++r) {
    const float* src = row(n - past + r);
    std::copy(src, src + dim, keep.begin() + r * dim);
  }
  std::copy(keep.begin(), keep.end(), state);
}

}  // namespace edgevlm
