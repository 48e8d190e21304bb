#include "vision/vit.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/timer.h"
#include "ops/activations.h"
#include "ops/matmul.h"
#include "ops/norms.h"
#include "vision/vit_attention.h"

namespace edgevlm {

void unfold_patches(const float* tile_chw, int tile_size, int patch_size, float* out) {
  const int T = tile_size, P = patch_size, side = T / P;
  const size_t plane = size_t(T) * T;
  for (int py = 0; py < side; ++py)
    for (int px = 0; px < side; ++px) {
      float* row = out + (size_t(py) * side + px) * 3 * P * P;
      for (int c = 0; c < 3; ++c)
        for (int ky = 0; ky < P; ++ky) {
          const float* src = tile_chw + c * plane + size_t(py * P + ky) * T + size_t(px) * P;
          std::memcpy(row + (size_t(c) * P + ky) * P, src, sizeof(float) * P);
        }
    }
}

namespace {

// Row-parallel helpers: the ViT has thousands of rows per batch, so even LayerNorm is worth
// splitting across threads.
void layer_norm_rows(const float* x, const std::vector<float>& w, const std::vector<float>& b, float eps,
                     int64_t n, int64_t rows, float* y, ThreadPool& pool) {
  pool.parallel_for(rows, [&](int64_t r0, int64_t r1) {
    layer_norm(x + r0 * n, w.empty() ? nullptr : w.data(), b.empty() ? nullptr : b.data(), eps, n, r1 - r0,
               y + r0 * n);
  });
}

void linear(const WeightMatrix& w, const std::vector<float>& bias, const float* x, int64_t rows, float* y,
            ThreadPool& pool) {
  matmul(w, x, rows, y, pool);
  if (!bias.empty())
    pool.parallel_for(rows, [&](int64_t r0, int64_t r1) {
      add_bias(y + r0 * w.n_out, bias.data(), w.n_out, r1 - r0);
    });
}

void add_rows(float* y, const float* x, int64_t n, int64_t rows, ThreadPool& pool) {
  pool.parallel_for(rows, [&](int64_t r0, int64_t r1) { add_inplace(y + r0 * n, x + r0 * n, (r1 - r0) * n); });
}

}  // namespace

std::vector<float> vit_forward(const MmprojModel& m, const float* tiles, int n_tiles, ThreadPool& pool, int batch,
                               VitTimings* timings) {
  const VisionConfig& c = m.config();
  EV_CHECK(n_tiles >= 0, "vit_forward: negative tile count %d", n_tiles);
  const int64_t N = c.n_patches(), D = c.n_embd, F = c.n_ff, PD = c.patch_dim();
  const size_t tile_floats = size_t(3) * c.image_size * c.image_size;
  std::vector<float> result(size_t(n_tiles) * N * D);
  if (n_tiles == 0) return result;
  if (batch < 1 || batch > n_tiles) batch = n_tiles;

  const int64_t max_rows = int64_t(batch) * N;
  std::vector<float> patches(size_t(max_rows * PD)), x(size_t(max_rows * D)), q(size_t(max_rows * D)),
      k(size_t(max_rows * D)), v(size_t(max_rows * D)), a(size_t(max_rows * D)), ff(size_t(max_rows * F));
  const float scale = 1.0f / std::sqrt(float(c.head_dim()));

  for (int t0 = 0; t0 < n_tiles; t0 += batch) {
    const int bt = std::min(batch, n_tiles - t0);
    const int64_t rows = int64_t(bt) * N;
    float* h = result.data() + size_t(t0) * N * D;  // the residual stream lives in the output

    Timer timer;
    pool.parallel_for(bt, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b)
        unfold_patches(tiles + size_t(t0 + b) * tile_floats, c.image_size, c.patch_size,
                       patches.data() + size_t(b * N * PD));
    });
    matmul(m.patch_embd, patches.data(), rows, h, pool);
    pool.parallel_for(rows, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        float* hr = h + r * D;
        const float* pe = m.pos_embd.data() + (r % N) * D;
        for (int64_t i = 0; i < D; ++i) hr[i] += m.patch_bias[size_t(i)] + pe[i];
      }
    });
    if (timings) timings->patch_embed_ms += timer.elapsed_ms();

    timer.reset();
    for (const VitBlock& blk : m.blocks) {
      layer_norm_rows(h, blk.ln1_w, blk.ln1_b, c.eps, D, rows, x.data(), pool);
      linear(blk.q, blk.q_b, x.data(), rows, q.data(), pool);
      linear(blk.k, blk.k_b, x.data(), rows, k.data(), pool);
      linear(blk.v, blk.v_b, x.data(), rows, v.data(), pool);
      vit_attention(q.data(), k.data(), v.data(), a.data(), bt, int(N), c.n_head, c.head_dim(), scale, pool);
      linear(blk.o, blk.o_b, a.data(), rows, x.data(), pool);
      add_rows(h, x.data(), D, rows, pool);

      layer_norm_rows(h, blk.ln2_w, blk.ln2_b, c.eps, D, rows, x.data(), pool);
      linear(blk.up, blk.up_b, x.data(), rows, ff.data(), pool);
      pool.parallel_for(rows, [&](int64_t r0, int64_t r1) { gelu_tanh(ff.data() + r0 * F, (r1 - r0) * F); });
      linear(blk.down, blk.down_b, ff.data(), rows, x.data(), pool);
      add_rows(h, x.data(), D, rows, pool);
    }
    if (!m.post_ln_w.empty()) layer_norm_rows(h, m.post_ln_w, m.post_ln_b, c.eps, D, rows, h, pool);
    if (timings) timings->blocks_ms += timer.elapsed_ms();
  }
  return result;
}

}  // namespace edgevlm
