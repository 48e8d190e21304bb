// ViT attention on AMX-BF16 tiles (CPUs with cpu_has_amx_bf16, where the products of several rows
// run on AMX too: detail::matmul_amx_active()). The arithmetic of the AVX512-BF16 kernel
// (vit_attention_avx512bf16.cc: q with the scale folded in, Kᵀ, the softmax weights and V rounded
// to bf16, scores, softmax and sums in f32), with its two products as tile products: per block of
// 16 query rows, scores = q·Kᵀ 32 keys at a time (two accumulator tiles), then out = p·V over every
// feature panel at once (up to six accumulator tiles). The reductions run 16 bf16 pairs per tile
// step, so Kᵀ's dims are padded to a multiple of 32, V's keys to a multiple of 32 and its
// features to a multiple of 16 (zeros, which add nothing).
//
// Tiles: 0-5 accumulate (rows: the block's query rows), 6 holds q or the softmax weights (the same
// rows), 7 a panel of Kᵀ or V (16 rows of 16 pairs).
#include "vision/vit_attention.h"

#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && defined(__AVX512BF16__) && defined(__AVX512VL__)
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "formats/quant.h"
#include "ops/matmul_internal.h"
#include "vision/vit_attention_internal.h"

namespace edgevlm {
namespace {

constexpr int kQRows = 16;    // query rows per block (one tile)
constexpr int kMaxPanels = 6;  // feature panels of 16 in the accumulator tiles: head_dim ≤ 96 at once

// Tiles 0-6 with `rows` rows of 64 bytes, tile 7 with 16.
void load_config(int rows) {
  detail::AmxTileConfig c;
  for (int t = 0; t < 8; ++t) {
    c.rows[t] = uint8_t(t == 7 ? 16 : rows);
    c.colsb[t] = 64;
  }
  detail::amx_load_config(c);
}

template <int n>
inline void zero_tiles() {
  if constexpr (n > 0) _tile_zero(0);
  if constexpr (n > 1) _tile_zero(1);
  if constexpr (n > 2) _tile_zero(2);
  if constexpr (n > 3) _tile_zero(3);
  if constexpr (n > 4) _tile_zero(4);
  if constexpr (n > 5) _tile_zero(5);
}

// out[x·ldo + 16f + c] = Σ_j a[x][j] · b_f[j][c] for f < nf feature panels: a is rows of pairs
// (lda bytes apart, `steps` × 16 pairs), panel f at b + f·bstride (steps × 16 rows of 16 pairs).
template <int nf>
void tile_products(const uint32_t* a, size_t lda, int64_t steps, const uint32_t* b, int64_t bstride, float* out,
                   size_t ldo) {
  zero_tiles<nf>();
  for (int64_t s = 0; s < steps; ++s) {
    _tile_loadd(6, a + s * 16, lda);
    const uint32_t* bs = b + s * 256;
    _tile_loadd(7, bs, 64);
    _tile_dpbf16ps(0, 6, 7);
    if constexpr (nf > 1) { _tile_loadd(7, bs + bstride, 64); _tile_dpbf16ps(1, 6, 7); }
    if constexpr (nf > 2) { _tile_loadd(7, bs + 2 * bstride, 64); _tile_dpbf16ps(2, 6, 7); }
    if constexpr (nf > 3) { _tile_loadd(7, bs + 3 * bstride, 64); _tile_dpbf16ps(3, 6, 7); }
    if constexpr (nf > 4) { _tile_loadd(7, bs + 4 * bstride, 64); _tile_dpbf16ps(4, 6, 7); }
    if constexpr (nf > 5) { _tile_loadd(7, bs + 5 * bstride, 64); _tile_dpbf16ps(5, 6, 7); }
  }
  _tile_stored(0, out, ldo);
  if constexpr (nf > 1) _tile_stored(1, out + 16, ldo);
  if constexpr (nf > 2) _tile_stored(2, out + 32, ldo);
  if constexpr (nf > 3) _tile_stored(3, out + 48, ldo);
  if constexpr (nf > 4) _tile_stored(4, out + 64, ldo);
  if constexpr (nf > 5) _tile_stored(5, out + 80, ldo);
}

using TileProducts = void (*)(const uint32_t*, size_t, int64_t, const uint32_t*, int64_t, float*, size_t);
const TileProducts kTileProducts[kMaxPanels] = {tile_products<1>, tile_products<2>, tile_products<3>,
                                               tile_products<4>, tile_products<5>, tile_products<6>};

}  // namespace

void vit_attention_amx(const float* q, const float* k, const float* v, float* out, int n_tiles, int n_tok,
                       int n_head, int head_dim, float scale, ThreadPool& pool) {
  const int64_t d = int64_t(n_head) * head_dim, T = n_tok, hd = head_dim;
  // Keys padded to 32 (16 pairs per step of p·V), dims to 32 (16 pairs per step of q·Kᵀ), features to 16.
  const int64_t Tp = (T + 31) / 32 * 32, h2s = (hd + 31) / 32 * 16, hdp = (hd + 15) / 16 * 16;
  const int64_t n_panels = hdp / 16;
  pool.parallel_for(int64_t(n_tiles) * n_head, [&](int64_t begin, int64_t end) {
    // Padding keys of Kᵀ, padding dims of q and k, and padding keys and features of V are zero
    // (set once, never written): their products add nothing.
    std::vector<uint32_t> kt(size_t(h2s * Tp), 0u), vh(size_t(Tp / 2 * hdp), 0u), q2(size_t(kQRows * h2s), 0u),
        p2(size_t(kQRows * Tp / 2));
    std::vector<uint16_t> row(size_t(2 * h2s)), rows(size_t(2 * hdp), 0);
    std::vector<float> s(size_t(kQRows * Tp)), o(size_t(kQRows * hdp));
    int config_rows = 0;
    for (int64_t u = begin; u < end; ++u) {
      const int64_t row0 = (u / n_head) * T, col = (u % n_head) * hd;
      pack_head_bf16(k + row0 * d + col, v + row0 * d + col, d, T, Tp, hd, h2s, hdp, kt.data(), vh.data(), row.data(),
                     rows.data());
      for (int64_t i0 = 0; i0 < T; i0 += kQRows) {
        const int r = int(std::min<int64_t>(kQRows, T - i0));
        if (r != config_rows) load_config(config_rows = r);
        for (int64_t a = i0 + kQRows; a < std::min(T, i0 + 2 * kQRows); ++a) prefetch_slice(q + (row0 + a) * d + col, hd);
        for (int x = 0; x < r; ++x)
          to_bf16(q + (row0 + i0 + x) * d + col, hd, scale, reinterpret_cast<uint16_t*>(q2.data() + x * h2s), 2 * h2s);
        // Scores, 32 keys (two panels of Kᵀ, h2s rows of 16 pairs each) at a time.
        for (int64_t j0 = 0; j0 < Tp; j0 += 32)
          tile_products<2>(q2.data(), size_t(h2s) * 4, h2s / 16, kt.data() + j0 * h2s, 16 * h2s, s.data() + j0,
                           size_t(Tp) * 4);
        float inv[kQRows];
        for (int x = 0; x < r; ++x)
          inv[x] = softmax_bf16(s.data() + x * Tp, T, Tp, reinterpret_cast<uint16_t*>(p2.data() + x * (Tp / 2)));
        // Outputs, up to six feature panels of V (Tp/2 rows of 16 pairs each) at a time.
        for (int64_t f0 = 0; f0 < n_panels; f0 += kMaxPanels) {
          const int nf = int(std::min<int64_t>(kMaxPanels, n_panels - f0));
          kTileProducts[nf - 1](p2.data(), size_t(Tp / 2) * 4, Tp / 32, vh.data() + f0 * 16 * (Tp / 2), 16 * (Tp / 2),
                                o.data() + f0 * 16, size_t(hdp) * 4);
        }
        for (int x = 0; x < r; ++x)  // the softmax's normalization
          store_scaled(o.data() + x * hdp, hd, inv[x], out + (row0 + i0 + x) * d + col);
      }
    }
    detail::matmul_amx_thread_reset();  // this thread's matrix products load their own configuration
  });
}

}  // namespace edgevlm

#else

namespace edgevlm {
// Built without AMX: never called (vit_attention checks detail::matmul_amx_active()).
void vit_attention_amx(const float* q, const float* k, const float* v, float* out, int n_tiles, int n_tok, int n_head,
                       int head_dim, float scale, ThreadPool& pool) {
  vit_attention_bf16(q, k, v, out, n_tiles, n_tok, n_head, head_dim, scale, pool);
}
}  // namespace edgevlm

#endif
