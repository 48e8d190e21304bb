#include "vision/projector.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "ops/activations.h"
#include "ops/matmul.h"
#include "ops/norms.h"

namespace edgevlm {

void merge_patches(const float* h, int n_tiles, int side, int d, int s, float* out) {
  merge_patches(h, n_tiles, PatchGrid{side, side}, d, s, out);
}

void merge_patches(const float* h, int n_tiles, PatchGrid g, int d, int s, float* out) {
  const int mw = (g.w + s - 1) / s, mh = (g.h + s - 1) / s;
  const size_t merged = size_t(s) * s * d;
  for (int t = 0; t < n_tiles; ++t) {
    const float* ht = h + size_t(t) * g.n() * d;
    float* ot = out + size_t(t) * mw * mh * merged;
    for (int my = 0; my < mh; ++my)
      for (int mx = 0; mx < mw; ++mx) {
        float* dst = ot + (size_t(my) * mw + mx) * merged;
        for (int dy = 0; dy < s; ++dy)
          for (int dx = 0; dx < s; ++dx) {
            const int x = s * mx + dx, y = s * my + dy;
            float* part = dst + (size_t(dy) * s + dx) * d;
            if (x < g.w && y < g.h) {
              std::memcpy(part, ht + (size_t(y) * g.w + x) * d, sizeof(float) * d);
            } else {
              std::memset(part, 0, sizeof(float) * d);  // padding of an odd side
            }
          }
      }
  }
}

void average_pool(const float* h, int n_tiles, PatchGrid g, int d, int s, float* out) {
  const int mw = g.w / s, mh = g.h / s;
  const float inv = 1.0f / float(s * s);
  for (int t = 0; t < n_tiles; ++t) {
    const float* ht = h + size_t(t) * g.n() * d;
    float* ot = out + size_t(t) * mw * mh * d;
    for (int my = 0; my < mh; ++my)
      for (int mx = 0; mx < mw; ++mx) {
        float* dst = ot + (size_t(my) * mw + mx) * d;
        std::fill(dst, dst + d, 0.0f);
        for (int dy = 0; dy < s; ++dy)
          for (int dx = 0; dx < s; ++dx) {
            const float* src = ht + (size_t(s * my + dy) * g.w + size_t(s * mx + dx)) * d;
            for (int i = 0; i < d; ++i) dst[i] += src[i];
          }
        for (int i = 0; i < d; ++i) dst[i] *= inv;
      }
  }
}

namespace {

// y = x·Wᵀ (+ W's LoRA term on the fly) + bias.
void linear(const WeightMatrix& w, const std::vector<float>& bias, const float* x, int64_t rows, float* y,
            ThreadPool& pool, const LoraWeights* lora) {
  matmul_lora(w, x, rows, y, pool, lora);
  if (!bias.empty()) add_bias(y, bias.data(), w.n_out, rows);
}

}  // namespace

PatchGrid merged_grid(const VisionConfig& c, PatchGrid g) {
  if (g.n() == 0) g = {c.patches_per_side(), c.patches_per_side()};
  const int s = c.scale_factor;
  return {(g.w + s - 1) / s, (g.h + s - 1) / s};
}

int merged_tokens(const VisionConfig& c, PatchGrid g) { return int(merged_grid(c, g).n()); }

std::vector<float> project_tiles(const MmprojModel& m, const float* vit_out, int n_tiles, ThreadPool& pool,
                                 PatchGrid g) {
  const VisionConfig& c = m.config();
  EV_CHECK(n_tiles >= 0, "project_tiles: negative tile count %d", n_tiles);
  if (g.n() == 0) g = {c.patches_per_side(), c.patches_per_side()};
  const int64_t rows = int64_t(n_tiles) * merged_tokens(c, g);
  const int64_t MD = c.merged_dim();
  std::vector<float> merged(size_t(rows * MD));
  if (c.projector == ProjectorType::Gemma3) average_pool(vit_out, n_tiles, g, c.n_embd, c.scale_factor, merged.data());
  else merge_patches(vit_out, n_tiles, g, c.n_embd, c.scale_factor, merged.data());
  std::vector<float> out(size_t(rows) * c.projection_dim);
  if (rows == 0) return out;

  if (c.projector == ProjectorType::Gemma3) {
    pool.parallel_for(rows, [&](int64_t r0, int64_t r1) {
      rms_norm(merged.data() + r0 * MD, m.mm_soft_norm_w.data(), c.eps, MD, r1 - r0, merged.data() + r0 * MD);
    });
    matmul(m.mm_input_proj, merged.data(), rows, out.data(), pool);
    return out;
  }

  if (c.projector == ProjectorType::Idefics3) {
    linear(m.mm_fc, m.mm_fc_b, merged.data(), rows, out.data(), pool, m.lora());
    return out;
  }
  if (!m.mm_norm_w.empty()) {
    pool.parallel_for(rows, [&](int64_t r0, int64_t r1) {
      layer_norm(merged.data() + r0 * MD, m.mm_norm_w.data(), m.mm_norm_b.data(), c.proj_norm_eps, MD, r1 - r0,
                 merged.data() + r0 * MD);
    });
  }
  std::vector<float> hidden(size_t(rows * m.mm_1.n_out));
  linear(m.mm_1, m.mm_1_b, merged.data(), rows, hidden.data(), pool, m.lora());
  gelu_tanh(hidden.data(), int64_t(hidden.size()));
  linear(m.mm_2, m.mm_2_b, hidden.data(), rows, out.data(), pool, m.lora());
  return out;
}

}  // namespace edgevlm
