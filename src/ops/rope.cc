#include "ops/rope.h"

#include <cmath>

namespace edgevlm {

std::vector<float> rope_table(int n_dims, float freq_base, int64_t pos0, int64_t n_pos) {
  std::vector<float> t(size_t(n_pos) * size_t(n_dims / 2) * 2);
  rope_table(n_dims, freq_base, pos0, n_pos, t.data());
  return t;
}

void rope_table(int n_dims, float freq_base, int64_t pos0, int64_t n_pos, float* out) {
  rope_table(n_dims, freq_base, pos0, n_pos, out, RopeScaling{});
}

void rope_table(int n_dims, float freq_base, int64_t pos0, int64_t n_pos, float* out, const RopeScaling& s) {
  const int half = n_dims / 2;
  const float theta_scale = std::pow(freq_base, -2.0f / float(n_dims));
  for (int64_t p = 0; p < n_pos; ++p) {
    float theta = float(pos0 + p);
    float* row = out + p * half * 2;
    for (int i = 0; i < half; ++i) {
      // In ggml's order: divide by the factor, then scale.
      const float t = s.freq_scale * (s.freq_factors ? theta / s.freq_factors[i] : theta);
      row[2 * i] = std::cos(t) * s.attn_factor;
      row[2 * i + 1] = std::sin(t) * s.attn_factor;
      theta *= theta_scale;
    }
  }
}

void rope_table_sections(int n_pairs, float theta_scale, const RopeSections& sec, const int32_t* pos, int64_t n_pos,
                         float* out, const RopeScaling& s) {
  const int period = sec.t + sec.h + sec.w;
  for (int64_t p = 0; p < n_pos; ++p) {
    const int32_t* c = pos + 3 * p;
    float theta[3] = {float(c[0]), float(c[1]), float(c[2])};
    float* row = out + p * n_pairs * 2;
    for (int i = 0; i < n_pairs; ++i) {
      const int sector = period > 0 ? i % period : 0;
      const int which = sector < sec.t ? 0 : sector < sec.t + sec.h ? 1 : 2;
      if (sec.restart && (sector == 0 || sector == sec.t || sector == sec.t + sec.h)) theta[which] = float(c[which]);
      const float t = s.freq_scale * (s.freq_factors ? theta[which] / s.freq_factors[i] : theta[which]);
      row[2 * i] = std::cos(t) * s.attn_factor;
      row[2 * i + 1] = std::sin(t) * s.attn_factor;
      for (float& th : theta) th *= theta_scale;
    }
  }
}

void rope_apply(RopeType type, float* x, int n_heads, int head_dim, int n_dims, const float* cs) {
  const int half = n_dims / 2;
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + int64_t(h) * head_dim;
    if (type == RopeType::Normal) {
      for (int i = 0; i < half; ++i) {
        const float c = cs[2 * i], s = cs[2 * i + 1];
        const float x0 = v[2 * i], x1 = v[2 * i + 1];
        v[2 * i] = x0 * c - x1 * s;
        v[2 * i + 1] = x0 * s + x1 * c;
      }
    } else {
      for (int i = 0; i < half; ++i) {
        const float c = cs[2 * i], s = cs[2 * i + 1];
        const float x0 = v[i], x1 = v[i + half];
        v[i] = x0 * c - x1 * s;
        v[i + half] = x0 * s + x1 * c;
      }
    }
  }
}

}  // namespace edgevlm
