// AVX2 + FMA activations (compiled with -mavx2 -mfma -mf16c; run only after cpu_has_avx2()).
// Both are x · sigmoid(·) with one vectorized exp per element: GELU's 0.5·x·(1 + tanh(u)) is
// exactly x · sigmoid(2u). libm's tanhf/expf per element took 15% of a so400m ViT encode.
#include "ops/activations.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#include "ops/simd_avx2.h"

namespace edgevlm {

namespace {
// x / (1 + e^t): simd::exp clamps t to ±88.4, so huge |t| gives x or a harmless ~1e-38·x, never
// inf or NaN from a finite x.
inline __m256 div_one_plus_exp(__m256 x, __m256 t) {
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), simd::exp(t)));
}
}  // namespace

int64_t gelu_tanh_avx2(const float* x, float* y, int64_t n) {
  const __m256 a = _mm256_set1_ps(-2.0f * 0.7978845608028654f), b = _mm256_set1_ps(0.044715f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    // −2u = −2·√(2/π)·(v + 0.044715·v³)
    const __m256 t = _mm256_mul_ps(_mm256_mul_ps(a, v), _mm256_fmadd_ps(_mm256_mul_ps(b, v), v, _mm256_set1_ps(1.0f)));
    _mm256_storeu_ps(y + i, div_one_plus_exp(v, t));
  }
  return i;
}

int64_t swiglu_avx2(float* gate, const float* up, int64_t n) {
  const __m256 neg = _mm256_set1_ps(-0.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    _mm256_storeu_ps(gate + i, _mm256_mul_ps(div_one_plus_exp(g, _mm256_xor_ps(g, neg)), _mm256_loadu_ps(up + i)));
  }
  return i;
}

}  // namespace edgevlm

#else

namespace edgevlm {
int64_t gelu_tanh_avx2(const float*, float*, int64_t) { return 0; }
int64_t swiglu_avx2(float*, const float*, int64_t) { return 0; }
}  // namespace edgevlm

#endif
