#include "ops/norms.h"

#include <cmath>

namespace edgevlm {

void rms_norm(const float* x, const float* w, float eps, int64_t n, int64_t n_rows, float* y) {
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += double(xr[i]) * xr[i];
    const float scale = 1.0f / std::sqrt(float(ss / double(n)) + eps);
    for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] * scale * w[i];
  }
}

void layer_norm(const float* x, const float* w, const float* b, float eps, int64_t n,
                int64_t n_rows, float* y) {
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += xr[i];
    const double mean = sum / double(n);
    double var = 0;
    for (int64_t i = 0; i < n; ++i) {
      double d = xr[i] - mean;
      var += d * d;
    }
    const float inv = 1.0f / std::sqrt(float(var / double(n)) + eps);
    const float m = float(mean);
    for (int64_t i = 0; i < n; ++i) {
      float v = (xr[i] - m) * inv;
      if (w) v *= w[i];
      if (b) v += b[i];
      yr[i] = v;
    }
  }
}

}  // namespace edgevlm
