// The AMX-BF16 peak for `edgevlm bench` (compiled with the AMX flags, run only where
// detail::matmul_amx_active()): tile products from tiles already loaded, the rate the prefill and
// ViT products of matmul_amx.cc reach at best.
#include "ops/matmul_internal.h"
#include "tools/bench_kernels.h"

#if defined(__AMX_TILE__) && defined(__AMX_BF16__)
#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace edgevlm::bench_detail {

double amx_bf16_loop(long iters) {
  detail::AmxTileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  alignas(64) static uint16_t a[2][512], b[2][512];
  for (int i = 0; i < 512; ++i)  // BF16 values near 1: no denormals or overflow
    for (int j = 0; j < 2; ++j) a[j][i] = b[j][i] = uint16_t(0x3F80 + (i + j) % 64);
  detail::amx_load_config(cfg);
  _tile_loadd(4, a[0], 64);
  _tile_loadd(5, a[1], 64);
  _tile_loadd(6, b[0], 64);
  _tile_loadd(7, b[1], 64);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (long i = 0; i < iters; ++i) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  alignas(64) static thread_local float c[256];
  _tile_stored(0, c, 64);
  _tile_release();
  detail::matmul_amx_thread_reset();
  return double(c[0]);
}

}  // namespace edgevlm::bench_detail

#else

namespace edgevlm::bench_detail {
double amx_bf16_loop(long) { return 0; }
}  // namespace edgevlm::bench_detail

#endif
