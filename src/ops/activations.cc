#include "ops/activations.h"

#include <algorithm>
#include <cmath>

#include "ops/cpu_features.h"

namespace edgevlm {

void swiglu(float* gate, const float* up, int64_t n) {
  const int64_t done = cpu_has_avx2() ? swiglu_avx2(gate, up, n) : 0;
  swiglu_ref(gate + done, up + done, n - done);
}

void swiglu_ref(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void geglu_tanh(float* gate, const float* up, int64_t n) {
  gelu_tanh(gate, gate, n);
  for (int64_t i = 0; i < n; ++i) gate[i] *= up[i];
}

void gelu_tanh(const float* x, float* y, int64_t n) {
  const int64_t done = cpu_has_avx2() ? gelu_tanh_avx2(x, y, n) : 0;
  gelu_tanh_ref(x + done, y + done, n - done);
}

void gelu_tanh_ref(const float* x, float* y, int64_t n) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    y[i] = 0.5f * v * (1.0f + std::tanh(kSqrt2OverPi * v * (1.0f + 0.044715f * v * v)));
  }
}

void gelu_quick(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = x[i] / (1.0f + std::exp(-1.702f * x[i]));
}

void softmax(float* x, int64_t n) {
  if (n <= 0) return;
  float mx = *std::max_element(x, x + n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = float(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void add_bias(float* y, const float* b, int64_t n, int64_t n_rows) {
  for (int64_t r = 0; r < n_rows; ++r)
    for (int64_t i = 0; i < n; ++i) y[r * n + i] += b[i];
}

void add_inplace(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

}  // namespace edgevlm
