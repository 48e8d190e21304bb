#include "tools/bench_kernels.h"

#include <cstdint>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

namespace edgevlm::bench_detail {

double read_sum_avx2(const void* p, size_t bytes, int prefetch, int page_lines) {
  const __m256i* v = static_cast<const __m256i*>(p);
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  const size_t n = bytes / 128;
  for (size_t i = 0; i < n; ++i) {
    // As the decode tiles do (T0; may run past the end: harmless): every line, or the first
    // page_lines lines of each 4 KiB page (the 128-byte steps meet every page start).
    const char* ahead = reinterpret_cast<const char*>(v + 4 * i) + prefetch;
    if (prefetch > 0 && page_lines == 0) {
      _mm_prefetch(ahead, _MM_HINT_T0);
      _mm_prefetch(ahead + 64, _MM_HINT_T0);
    } else if (prefetch > 0 && (reinterpret_cast<uintptr_t>(ahead) & 4095) == 0) {
      for (int l = 0; l < page_lines; ++l) _mm_prefetch(ahead + 64 * l, _MM_HINT_T0);
    }
    a0 = _mm256_add_epi64(a0, _mm256_load_si256(v + 4 * i));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256(v + 4 * i + 1));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256(v + 4 * i + 2));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256(v + 4 * i + 3));
  }
  const __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  alignas(32) int64_t out[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(out), s);
  return double(out[0] + out[1] + out[2] + out[3]);
}

double fma_loop_avx2(long iters) {
  const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
  __m256 a[10];
  for (int k = 0; k < 10; ++k) a[k] = _mm256_set1_ps(1.0f + float(k));
  // Ten independent chains (more than FMA latency × throughput), kept in registers; the result is
  // used at the end, and without -ffast-math no step can be folded away.
  for (long i = 0; i < iters; ++i)
    for (int k = 0; k < 10; ++k) a[k] = _mm256_fmadd_ps(a[k], x, y);
  __m256 s = a[0];
  for (int k = 1; k < 10; ++k) s = _mm256_add_ps(s, a[k]);
  alignas(32) float out[8];
  _mm256_store_ps(out, s);
  return double(out[0]);
}

double int8_loop_avx2(long iters) {
  const __m256i u = _mm256_set1_epi8(3), s8 = _mm256_set1_epi8(-2), ones = _mm256_set1_epi16(1);
  __m256i a[8];
  for (int k = 0; k < 8; ++k) a[k] = _mm256_set1_epi32(k);
  __m256i x = u;
  for (long i = 0; i < iters; ++i) {
    for (int k = 0; k < 8; ++k) {
      a[k] = _mm256_add_epi32(a[k], _mm256_madd_epi16(_mm256_maddubs_epi16(x, s8), ones));
      __asm__ volatile("" : "+x"(x));  // x "changes": every product is computed, none shared or hoisted
    }
  }
  __m256i s = a[0];
  for (int k = 1; k < 8; ++k) s = _mm256_add_epi32(s, a[k]);
  return double(_mm256_extract_epi32(s, 0));
}

// Ten chains of vpdpbusd (32 u8 × s8 multiply-adds each, summed into int32 in one instruction):
// more than its latency × throughput, so the loop runs at the instruction's issue rate.
__attribute__((target("avx2,fma,avxvnni"))) double int8_loop_vnni(long iters) {
  const __m256i s8 = _mm256_set1_epi8(-2);
  __m256i a[10];
  for (int k = 0; k < 10; ++k) a[k] = _mm256_set1_epi32(k);
  __m256i x = _mm256_set1_epi8(3);
  for (long i = 0; i < iters; ++i) {
    for (int k = 0; k < 10; ++k) {
      a[k] = _mm256_dpbusd_avx_epi32(a[k], x, s8);
      __asm__ volatile("" : "+x"(x));
    }
  }
  __m256i s = a[0];
  for (int k = 1; k < 10; ++k) s = _mm256_add_epi32(s, a[k]);
  return double(_mm256_extract_epi32(s, 0));
}

// The same on 512-bit registers: the instruction the Avx512Vnni set's prefill and ViT tiles run
// (matmul_avx512_tiles.inc), and this CPU's highest int8 rate — twice the 256-bit one where the
// datapath is 512 bits wide (Zen 5), the same where 512-bit operations are split in two (Zen 4).
__attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni"))) double int8_loop_zmm(long iters) {
  const __m512i s8 = _mm512_set1_epi8(-2);
  __m512i a[10];
  for (int k = 0; k < 10; ++k) a[k] = _mm512_set1_epi32(k);
  __m512i x = _mm512_set1_epi8(3);
  for (long i = 0; i < iters; ++i) {
    for (int k = 0; k < 10; ++k) {
      a[k] = _mm512_dpbusd_epi32(a[k], x, s8);
      __asm__ volatile("" : "+v"(x));
    }
  }
  __m512i s = a[0];
  for (int k = 1; k < 10; ++k) s = _mm512_add_epi32(s, a[k]);
  alignas(64) int32_t out[16];
  _mm512_store_si512(out, s);
  return double(out[0]);
}

}  // namespace edgevlm::bench_detail

#else

namespace edgevlm::bench_detail {
double read_sum_avx2(const void*, size_t, int, int) { return 0; }
double fma_loop_avx2(long) { return 0; }
double int8_loop_avx2(long) { return 0; }
double int8_loop_vnni(long) { return 0; }
double int8_loop_zmm(long) { return 0; }
}  // namespace edgevlm::bench_detail

#endif
