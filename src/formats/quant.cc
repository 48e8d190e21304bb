#include "formats/quant.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "core/error.h"

// The quantizers' searches compare float sums; a fused multiply-add rounds differently and flips
// some of their choices. GCC fuses by default where the ISA has FMA (aarch64), so it is turned off
// here: files written on every CPU equal ggml's reference build (x86, no FMA in libggml-base).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace edgevlm {

const int8_t kIQ4NLValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

void q3k_scales(const uint8_t* packed, int8_t* out) {
  for (int j = 0; j < 16; ++j) {
    const int lo = j < 8 ? packed[j] & 0xF : packed[j - 8] >> 4;
    const int hi = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
    out[j] = int8_t((lo | (hi << 4)) - 32);
  }
}

namespace {

// ---- dequantizers, one block type each ---------------------------------------------------------

// The Q4_0 nibble order shared by Q4_1, Q5_0, Q5_1 and IQ4_NL: byte j holds elements j and j + 16.
inline int nibble(const uint8_t* qs, int j) { return j < 16 ? qs[j] & 0xF : qs[j - 16] >> 4; }
inline int fifth_bit(const uint8_t* qh, int j) {
  uint32_t h;
  std::memcpy(&h, qh, 4);
  return int((h >> j) & 1) << 4;
}

void dequant_q4_1(const BlockQ4_1* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = f16_to_f32(b[i].d), m = f16_to_f32(b[i].m);
    for (int j = 0; j < kQK; ++j) y[j] = float(nibble(b[i].qs, j)) * d + m;
  }
}
void dequant_q5_0(const BlockQ5_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = f16_to_f32(b[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = float((nibble(b[i].qs, j) | fifth_bit(b[i].qh, j)) - 16) * d;
  }
}
void dequant_q5_1(const BlockQ5_1* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = f16_to_f32(b[i].d), m = f16_to_f32(b[i].m);
    for (int j = 0; j < kQK; ++j) y[j] = float(nibble(b[i].qs, j) | fifth_bit(b[i].qh, j)) * d + m;
  }
}
void dequant_iq4_nl(const BlockIQ4_NL* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = f16_to_f32(b[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = d * float(kIQ4NLValues[nibble(b[i].qs, j)]);
  }
}
void dequant_q2_k(const BlockQ2_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
    for (int e = 0; e < kQK_K; ++e) {
      const int q = (b[i].qs[32 * (e / 128) + e % 32] >> (2 * ((e / 32) % 4))) & 3;
      const uint8_t sc = b[i].scales[e / 16];
      y[e] = d * float(sc & 0xF) * float(q) - dmin * float(sc >> 4);
    }
    y += kQK_K;
  }
}
void dequant_q3_k(const BlockQ3_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = f16_to_f32(b[i].d);
    int8_t sc[16];
    q3k_scales(b[i].scales, sc);
    for (int e = 0; e < kQK_K; ++e) {
      const int lo = (b[i].qs[32 * (e / 128) + e % 32] >> (2 * ((e / 32) % 4))) & 3;
      const int hi = (b[i].hmask[e % 32] >> (e / 32)) & 1;
      y[e] = d * float(sc[e / 16]) * float(lo - (hi ? 0 : 4));
    }
    y += kQK_K;
  }
}
void dequant_q4_k(const BlockQ4_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
    for (int s = 0; s < 8; ++s) {
      uint8_t sc, m;
      kquant_scale_min(s, b[i].scales, &sc, &m);
      const float ds = d * sc, ms = dmin * m;
      const uint8_t* q = b[i].qs + 32 * (s / 2);
      for (int l = 0; l < 32; ++l) y[32 * s + l] = ds * float((s & 1) ? q[l] >> 4 : q[l] & 0xF) - ms;
    }
    y += kQK_K;
  }
}
void dequant_q5_k(const BlockQ5_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
    for (int s = 0; s < 8; ++s) {
      uint8_t sc, m;
      kquant_scale_min(s, b[i].scales, &sc, &m);
      const float ds = d * sc, ms = dmin * m;
      const uint8_t* q = b[i].qs + 32 * (s / 2);
      for (int l = 0; l < 32; ++l) {
        const int v = ((s & 1) ? q[l] >> 4 : q[l] & 0xF) + (((b[i].qh[l] >> s) & 1) << 4);
        y[32 * s + l] = ds * float(v) - ms;
      }
    }
    y += kQK_K;
  }
}
void dequant_q6_k(const BlockQ6_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = f16_to_f32(b[i].d);
    for (int e = 0; e < kQK_K; ++e) {
      const int h = e / 128, s = (e / 32) % 4, l = e % 32;
      const uint8_t ql = b[i].ql[64 * h + 32 * (s & 1) + l];
      const int lo = s < 2 ? ql & 0xF : ql >> 4;
      const int hi = (b[i].qh[32 * h + l] >> (2 * s)) & 3;
      y[e] = d * float(b[i].scales[e / 16]) * float((lo | (hi << 4)) - 32);
    }
    y += kQK_K;
  }
}
void dequant_q8_k(const BlockQ8_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK_K)
    for (int j = 0; j < kQK_K; ++j) y[j] = b[i].d * b[i].qs[j];
}
void dequant_iq4_xs(const BlockIQ4_XS* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = f16_to_f32(b[i].d);
    for (int s = 0; s < 8; ++s) {
      const float dl = d * float(iq4xs_scale(b[i], s) - 32);
      for (int j = 0; j < 32; ++j) y[32 * s + j] = dl * float(kIQ4NLValues[nibble(b[i].qs + 16 * s, j)]);
    }
    y += kQK_K;
  }
}

// ---- quantizers: ggml's reference algorithms (no importance matrix), written anew ------------

constexpr float kGroupMaxEps = 1e-15f;

// Round to nearest, ties to even, by ggml's float trick (|x| ≤ 2^22): the exact integers ggml gets.
inline int nearest_int(float f) {
  const float v = f + 12582912.f;
  int i;
  std::memcpy(&i, &v, 4);
  return (i & 0x007fffff) - 0x00400000;
}

// Signed quants L + nmax in [0, 2·nmax) for a symmetric scale; rmse_type 1 searches 19 scales
// around −nmax/max for the least weighted (x²) squared error. Returns the scale (ggml's
// make_qx_quants without importance weights).
float make_qx_quants(int n, int nmax, const float* x, int8_t* L, int rmse_type, const float* qw) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = -nmax / max;
  auto clampq = [&](int l) { return std::max(-nmax, std::min(nmax - 1, l)); };
  if (rmse_type == 0) {
    for (int i = 0; i < n; ++i) L[i] = int8_t(nmax + clampq(nearest_int(iscale * x[i])));
    return 1 / iscale;
  }
  auto weight = [&](int i) { return qw ? qw[i] : x[i] * x[i]; };  // rmse_type 1
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = clampq(nearest_int(iscale * x[i]));
    L[i] = int8_t(l + nmax);
    const float w = weight(i);
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = clampq(nearest_int(iscale * x[i]));
      const float w = weight(i);
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) L[i] = int8_t(nmax + clampq(nearest_int(iscale * x[i])));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Q3_K's sub-block fit: symmetric quants refined one element at a time (5 passes at most).
float make_q3_quants(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  const float iscale = -nmax / max;
  auto clampq = [&](int l) { return std::max(-nmax, std::min(nmax - 1, l)); };
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = clampq(nearest_int(iscale * x[i]));
    L[i] = int8_t(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * L[i];
      if (slx > 0) {
        float sl2 = suml2 - w * L[i] * L[i];
        const int new_l = clampq(nearest_int(x[i] * sl2 / slx));
        if (new_l != L[i]) {
          slx += w * x[i] * new_l;
          sl2 += w * new_l * new_l;
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = int8_t(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (!n_changed) break;
  }
  for (int i = 0; i < n; ++i) L[i] = int8_t(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Asymmetric fit x ≈ scale·L − min, L in 0..nmax: the min-max start, then nstep + 1 scales
// around it, each refit by weighted least squares (ggml's make_qkx2_quants). Returns the scale;
// *the_min gets the (non-negative) min.
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad) {
  float min = x[0], max = x[0];
  float sum_w = weights[0], sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  auto err = [&](float diff) { return use_mad ? std::fabs(diff) : diff * diff; };
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = uint8_t(std::max(0, std::min(nmax, l)));
    best_error += weights[i] * err(scale * L[i] + min - x[i]);
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::max(0, std::min(nmax, nearest_int(iscale * (x[i] - min))));
      Laux[i] = uint8_t(l);
      const float w = weights[i];
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) cur_error += weights[i] * err(this_scale * Laux[i] + this_min - x[i]);
      if (cur_error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// The 2-bit-per-element packing of Q2_K / Q3_K: element 32·s + l of each half at bits 2s of byte l.
void pack_2bit(const uint8_t* L, uint8_t* qs) {
  for (int h = 0; h < kQK_K; h += 128)
    for (int l = 0; l < 32; ++l)
      qs[h / 4 + l] = uint8_t(L[h + l] | (L[h + l + 32] << 2) | (L[h + l + 64] << 4) | (L[h + l + 96] << 6));
}

void quant_q4_1(const float* x, BlockQ4_1* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < kQK; ++j) {
      min = std::min(min, x[j]);
      max = std::max(max, x[j]);
    }
    const float d = (max - min) / 15;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = f32_to_f16(d);
    b[i].m = f32_to_f16(min);
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = std::min(15, int(int8_t((x[j] - min) * id + 0.5f)));
      const int q1 = std::min(15, int(int8_t((x[j + 16] - min) * id + 0.5f)));
      b[i].qs[j] = uint8_t(q0 | (q1 << 4));
    }
  }
}
void quant_q5_0(const float* x, BlockQ5_0* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0, max = 0;
    for (int j = 0; j < kQK; ++j) {
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -16;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = f32_to_f16(d);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = std::min(31, int(int8_t(x[j] * id + 16.5f)));
      const int q1 = std::min(31, int(int8_t(x[j + 16] * id + 16.5f)));
      b[i].qs[j] = uint8_t((q0 & 0xF) | ((q1 & 0xF) << 4));
      qh |= uint32_t(q0 >> 4) << j | uint32_t(q1 >> 4) << (j + 16);
    }
    std::memcpy(b[i].qh, &qh, 4);
  }
}
void quant_q5_1(const float* x, BlockQ5_1* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < kQK; ++j) {
      min = std::min(min, x[j]);
      max = std::max(max, x[j]);
    }
    const float d = (max - min) / 31;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = f32_to_f16(d);
    b[i].m = f32_to_f16(min);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = uint8_t((x[j] - min) * id + 0.5f);
      const int q1 = uint8_t((x[j + 16] - min) * id + 0.5f);
      b[i].qs[j] = uint8_t((q0 & 0xF) | ((q1 & 0xF) << 4));
      qh |= uint32_t((q0 >> 4) & 1) << j | uint32_t((q1 >> 4) & 1) << (j + 16);
    }
    std::memcpy(b[i].qh, &qh, 4);
  }
}

void quant_q2_k(const float* x, BlockQ2_K* b, int64_t nb) {
  uint8_t L[kQK_K], Laux[16];
  float weights[16], mins[16], scales[16];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 16; ++j) {
      for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
      scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
      max_scale = std::max(max_scale, scales[j]);
      max_min = std::max(max_min, mins[j]);
    }
    if (max_scale > 0) {
      const float iscale = 15.f / max_scale;
      for (int j = 0; j < 16; ++j) b[i].scales[j] = uint8_t(nearest_int(iscale * scales[j]));
      b[i].d = f32_to_f16(max_scale / 15.f);
    } else {
      for (int j = 0; j < 16; ++j) b[i].scales[j] = 0;
      b[i].d = f32_to_f16(0.f);
    }
    if (max_min > 0) {
      const float iscale = 15.f / max_min;
      for (int j = 0; j < 16; ++j) b[i].scales[j] |= uint8_t(nearest_int(iscale * mins[j]) << 4);
      b[i].dmin = f32_to_f16(max_min / 15.f);
    } else {
      b[i].dmin = f32_to_f16(0.f);
    }
    for (int j = 0; j < 16; ++j) {
      const float d = f16_to_f32(b[i].d) * float(b[i].scales[j] & 0xF);
      if (d == 0) continue;
      const float dm = f16_to_f32(b[i].dmin) * float(b[i].scales[j] >> 4);
      for (int l = 0; l < 16; ++l) L[16 * j + l] = uint8_t(std::max(0, std::min(3, nearest_int((x[16 * j + l] + dm) / d))));
    }
    pack_2bit(L, b[i].qs);
  }
}

void quant_q3_k(const float* x, BlockQ3_K* b, int64_t nb) {
  int8_t L[kQK_K];
  float scales[16];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    float max_scale = 0, amax = 0;
    for (int j = 0; j < 16; ++j) {
      scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
      if (std::fabs(scales[j]) > amax) {
        amax = std::fabs(scales[j]);
        max_scale = scales[j];
      }
    }
    std::memset(b[i].scales, 0, 12);
    if (max_scale != 0) {
      const float iscale = -32.f / max_scale;
      for (int j = 0; j < 16; ++j) {
        int l = int(int8_t(nearest_int(iscale * scales[j])));
        l = std::max(-32, std::min(31, l)) + 32;
        if (j < 8) b[i].scales[j] = uint8_t(l & 0xF);
        else b[i].scales[j - 8] |= uint8_t((l & 0xF) << 4);
        b[i].scales[j % 4 + 8] |= uint8_t((l >> 4) << (2 * (j / 4)));
      }
      b[i].d = f32_to_f16(1 / iscale);
    } else {
      b[i].d = f32_to_f16(0.f);
    }
    int8_t sc[16];
    q3k_scales(b[i].scales, sc);
    for (int j = 0; j < 16; ++j) {
      const float d = f16_to_f32(b[i].d) * sc[j];
      if (d == 0) continue;
      for (int l = 0; l < 16; ++l) L[16 * j + l] = int8_t(std::max(-4, std::min(3, nearest_int(x[16 * j + l] / d))) + 4);
    }
    std::memset(b[i].hmask, 0, sizeof b[i].hmask);
    uint8_t U[kQK_K];
    for (int j = 0; j < kQK_K; ++j) {
      int l = L[j];
      if (l > 3) {
        b[i].hmask[j % 32] |= uint8_t(1 << (j / 32));
        l -= 4;
      }
      U[j] = uint8_t(l);
    }
    pack_2bit(U, b[i].qs);
  }
}

// Packs the 6-bit scales and mins of the 8 sub-blocks of a Q4_K / Q5_K super-block.
void pack_scale_min(const uint8_t* ls, const uint8_t* lm, uint8_t* q) {
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      q[j] = ls[j];
      q[j + 4] = lm[j];
    } else {
      q[j + 4] = uint8_t((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
      q[j - 4] |= uint8_t((ls[j] >> 4) << 6);
      q[j] |= uint8_t((lm[j] >> 4) << 6);
    }
  }
}

// Q4_K and Q5_K share the fit (nmax 15 or 31, and the scale search's range); out gets L.
template <typename Block>
void quant_k_scale_min(const float* x, Block& b, int nmax, float rmin, float rdelta, int nstep, uint8_t* L) {
  uint8_t Laux[32];
  float weights[32], mins[8], scales[8];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, rdelta, nstep, false);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    ls[j] = std::min<uint8_t>(63, uint8_t(nearest_int(inv_scale * scales[j])));
    lm[j] = std::min<uint8_t>(63, uint8_t(nearest_int(inv_min * mins[j])));
  }
  pack_scale_min(ls, lm, b.scales);
  b.d = f32_to_f16(max_scale / 63.f);
  b.dmin = f32_to_f16(max_min / 63.f);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    kquant_scale_min(j, b.scales, &sc, &m);
    const float d = f16_to_f32(b.d) * sc;
    if (d == 0) continue;
    const float dm = f16_to_f32(b.dmin) * m;
    for (int l = 0; l < 32; ++l) L[32 * j + l] = uint8_t(std::max(0, std::min(nmax, nearest_int((x[32 * j + l] + dm) / d))));
  }
}

void quant_q4_k(const float* x, BlockQ4_K* b, int64_t nb) {
  uint8_t L[kQK_K];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    quant_k_scale_min(x, b[i], 15, -1.f, 0.1f, 20, L);
    for (int h = 0; h < 4; ++h)
      for (int l = 0; l < 32; ++l) b[i].qs[32 * h + l] = uint8_t(L[64 * h + l] | (L[64 * h + l + 32] << 4));
  }
}

void quant_q5_k(const float* x, BlockQ5_K* b, int64_t nb) {
  uint8_t L[kQK_K];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    quant_k_scale_min(x, b[i], 31, -0.5f, 0.1f, 15, L);
    std::memset(b[i].qh, 0, sizeof b[i].qh);
    for (int h = 0; h < 4; ++h) {
      for (int l = 0; l < 32; ++l) {
        const int l1 = L[64 * h + l], l2 = L[64 * h + l + 32];
        b[i].qh[l] |= uint8_t(((l1 >> 4) << (2 * h)) | ((l2 >> 4) << (2 * h + 1)));
        b[i].qs[32 * h + l] = uint8_t((l1 & 0xF) | ((l2 & 0xF) << 4));
      }
    }
  }
}

void quant_q6_k(const float* x, BlockQ6_K* b, int64_t nb) {
  int8_t L[kQK_K];
  float scales[16];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    float max_scale = 0, max_abs_scale = 0;
    for (int j = 0; j < 16; ++j) {
      scales[j] = make_qx_quants(16, 32, x + 16 * j, L + 16 * j, 1, nullptr);
      if (std::fabs(scales[j]) > max_abs_scale) {
        max_abs_scale = std::fabs(scales[j]);
        max_scale = scales[j];
      }
    }
    if (max_abs_scale < kGroupMaxEps) {
      std::memset(&b[i], 0, sizeof b[i]);
      continue;
    }
    const float iscale = -128.f / max_scale;
    b[i].d = f32_to_f16(1 / iscale);
    for (int j = 0; j < 16; ++j) b[i].scales[j] = int8_t(std::min(127, nearest_int(iscale * scales[j])));
    for (int j = 0; j < 16; ++j) {
      const float d = f16_to_f32(b[i].d) * b[i].scales[j];
      if (d == 0) continue;
      for (int l = 0; l < 16; ++l) L[16 * j + l] = int8_t(std::max(-32, std::min(31, nearest_int(x[16 * j + l] / d))) + 32);
    }
    for (int h = 0; h < 2; ++h) {
      const int8_t* Lh = L + 128 * h;
      uint8_t* ql = b[i].ql + 64 * h;
      uint8_t* qh = b[i].qh + 32 * h;
      for (int l = 0; l < 32; ++l) {
        ql[l] = uint8_t((Lh[l] & 0xF) | ((Lh[l + 64] & 0xF) << 4));
        ql[l + 32] = uint8_t((Lh[l + 32] & 0xF) | ((Lh[l + 96] & 0xF) << 4));
        qh[l] = uint8_t((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) | ((Lh[l + 64] >> 4) << 4) | ((Lh[l + 96] >> 4) << 6));
      }
    }
  }
}

void quant_q8_k(const float* x, BlockQ8_K* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    float max = 0, amax = 0;
    for (int j = 0; j < kQK_K; ++j) {
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    if (amax == 0) {
      std::memset(&b[i], 0, sizeof b[i]);
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < kQK_K; ++j) b[i].qs[j] = int8_t(std::min(127, nearest_int(iscale * x[j])));
    for (int j = 0; j < 16; ++j) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += b[i].qs[16 * j + l];
      b[i].bsums[j] = int16_t(sum);
    }
    b[i].d = 1 / iscale;
  }
}

// The nearest of the 16 IQ4_NL levels (ties to the upper one, as ggml).
inline int iq4_index(float x) {
  const int8_t* v = kIQ4NLValues;
  if (x <= v[0]) return 0;
  if (x >= v[15]) return 15;
  int lo = 0, hi = 15;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (x < v[mid]) hi = mid;
    else lo = mid;
  }
  return x - v[hi - 1] < v[hi] - x ? hi - 1 : hi;
}

// IQ4_NL / IQ4_XS: per 32-element block, the best of 15 scales around max/−127 by weighted
// (x²) least squares; IQ4_XS then rounds the block scales to 6 bits under one f16 scale and
// requantizes (ggml's quantize_row_iq4_nl_impl without importance weights, ntry = 7).
// L gets n indices; scales (nb/32 of them) the block scales; returns the super-block's d.
void iq4_fit(const float* x, int n, bool six_bit_scales, uint8_t* L, uint16_t* d_out, uint16_t* scales_h,
             uint8_t* scales_l) {
  constexpr int ntry = 7;
  const int8_t* values = kIQ4NLValues;
  float scales[kQK_K / 32];
  float max_scale = 0, amax_scale = 0;
  const int nblk = n / 32;
  for (int ib = 0; ib < nblk; ++ib) {
    const float* xb = x + 32 * ib;
    uint8_t* Lb = L + 32 * ib;
    float amax = 0, max = 0;
    for (int j = 0; j < 32; ++j) {
      if (std::fabs(xb[j]) > amax) {
        amax = std::fabs(xb[j]);
        max = xb[j];
      }
    }
    if (amax < kGroupMaxEps) {
      scales[ib] = 0;
      for (int j = 0; j < 32; ++j) Lb[j] = 0;
      continue;
    }
    float d = -max / values[0];
    float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < 32; ++j) {
      const int l = iq4_index(id * xb[j]);
      Lb[j] = uint8_t(l);
      const float q = values[l], w = xb[j] * xb[j];
      sumqx += w * q * xb[j];
      sumq2 += w * q * q;
    }
    d = sumqx / sumq2;
    float best = d * sumqx;
    for (int itry = -ntry; itry <= ntry; ++itry) {
      id = (itry + values[0]) / max;
      sumqx = sumq2 = 0;
      for (int j = 0; j < 32; ++j) {
        const float q = values[iq4_index(id * xb[j])], w = xb[j] * xb[j];
        sumqx += w * q * xb[j];
        sumq2 += w * q * q;
      }
      if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
        d = sumqx / sumq2;
        best = d * sumqx;
      }
    }
    scales[ib] = d;
    if (std::fabs(d) > amax_scale) {
      amax_scale = std::fabs(d);
      max_scale = d;
    }
  }
  if (six_bit_scales) {
    *scales_h = 0;
    std::memset(scales_l, 0, size_t(nblk / 2));
    const float d = -max_scale / 32;
    *d_out = f32_to_f16(d);
    const float id = d != 0 ? 1 / d : 0.f;
    for (int ib = 0; ib < nblk; ++ib) {
      int l = std::max(-32, std::min(31, nearest_int(id * scales[ib])));
      const float dl = d * l;
      const float idl = dl != 0 ? 1 / dl : 0.f;
      for (int j = 0; j < 32; ++j) L[32 * ib + j] = uint8_t(iq4_index(idl * x[32 * ib + j]));
      l += 32;
      scales_l[ib / 2] |= uint8_t((l & 0xF) << (4 * (ib % 2)));
      *scales_h |= uint16_t((l >> 4) << (2 * ib));
    }
  } else {
    *d_out = f32_to_f16(scales[0]);
    const float id = scales[0] != 0 ? 1 / scales[0] : 0;
    for (int j = 0; j < 32; ++j) L[j] = uint8_t(iq4_index(id * x[j]));
  }
}

// Q4_0 nibble order from 32 indices.
void pack_nibbles32(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < 16; ++j) qs[j] = uint8_t(L[j] | (L[j + 16] << 4));
}

void quant_iq4_nl(const float* x, BlockIQ4_NL* b, int64_t nb) {
  uint8_t L[32];
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    iq4_fit(x, 32, false, L, &b[i].d, nullptr, nullptr);
    pack_nibbles32(L, b[i].qs);
  }
}

void quant_iq4_xs(const float* x, BlockIQ4_XS* b, int64_t nb) {
  uint8_t L[kQK_K];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    iq4_fit(x, kQK_K, true, L, &b[i].d, &b[i].scales_h, b[i].scales_l);
    for (int s = 0; s < 8; ++s) pack_nibbles32(L + 32 * s, b[i].qs + 16 * s);
  }
}

}  // namespace

bool type_supported(GGMLType t) {
  switch (t) {
    case GGMLType::F32:
    case GGMLType::F16:
    case GGMLType::BF16:
    case GGMLType::Q8_0:
    case GGMLType::Q4_0:
    case GGMLType::Q4_1:
    case GGMLType::Q5_0:
    case GGMLType::Q5_1:
    case GGMLType::Q2_K:
    case GGMLType::Q3_K:
    case GGMLType::Q4_K:
    case GGMLType::Q5_K:
    case GGMLType::Q6_K:
    case GGMLType::IQ4_NL:
    case GGMLType::IQ4_XS:
      return true;
    default:  // Q8_K is an activation type: quantize_row / dequantize_row take it, files do not
      return false;
  }
}

std::string type_name(GGMLType t) {
  switch (t) {
    case GGMLType::F32: return "f32";
    case GGMLType::F16: return "f16";
    case GGMLType::Q4_0: return "q4_0";
    case GGMLType::Q4_1: return "q4_1";
    case GGMLType::Q5_0: return "q5_0";
    case GGMLType::Q5_1: return "q5_1";
    case GGMLType::Q8_0: return "q8_0";
    case GGMLType::Q8_1: return "q8_1";
    case GGMLType::Q2_K: return "q2_k";
    case GGMLType::Q3_K: return "q3_k";
    case GGMLType::Q4_K: return "q4_k";
    case GGMLType::Q5_K: return "q5_k";
    case GGMLType::Q6_K: return "q6_k";
    case GGMLType::Q8_K: return "q8_k";
    case GGMLType::IQ2_XXS: return "iq2_xxs";
    case GGMLType::IQ2_XS: return "iq2_xs";
    case GGMLType::IQ3_XXS: return "iq3_xxs";
    case GGMLType::IQ1_S: return "iq1_s";
    case GGMLType::IQ4_NL: return "iq4_nl";
    case GGMLType::IQ3_S: return "iq3_s";
    case GGMLType::IQ2_S: return "iq2_s";
    case GGMLType::IQ4_XS: return "iq4_xs";
    case GGMLType::IQ1_M: return "iq1_m";
    case GGMLType::TQ1_0: return "tq1_0";
    case GGMLType::TQ2_0: return "tq2_0";
    case GGMLType::MXFP4: return "mxfp4";
    case GGMLType::I8: return "i8";
    case GGMLType::I16: return "i16";
    case GGMLType::I32: return "i32";
    case GGMLType::I64: return "i64";
    case GGMLType::F64: return "f64";
    case GGMLType::BF16: return "bf16";
  }
  return "type(" + std::to_string(static_cast<uint32_t>(t)) + ")";
}

// Block geometry of the types this engine computes with and of the plain types, so that files
// holding tensors we do not use still parse (their sizes are validated); a tensor of any other
// type stops the reader with "unsupported tensor type" (gguf.cc).
size_t type_block_elems(GGMLType t) {
  switch (t) {
    case GGMLType::IQ4_NL: return 32;
    case GGMLType::IQ4_XS: return 256;
    case GGMLType::F32: case GGMLType::F16: case GGMLType::BF16: case GGMLType::I8:
    case GGMLType::I16: case GGMLType::I32: case GGMLType::I64: case GGMLType::F64:
      return 1;
    case GGMLType::Q4_0: case GGMLType::Q4_1: case GGMLType::Q5_0: case GGMLType::Q5_1:
    case GGMLType::Q8_0: case GGMLType::Q8_1:
      return 32;
    case GGMLType::Q2_K: case GGMLType::Q3_K: case GGMLType::Q4_K: case GGMLType::Q5_K:
    case GGMLType::Q6_K: case GGMLType::Q8_K:
      return 256;
    default:
      return 0;
  }
}

size_t type_block_bytes(GGMLType t) {
  switch (t) {
    case GGMLType::F32: return 4;
    case GGMLType::F16: return 2;
    case GGMLType::BF16: return 2;
    case GGMLType::I8: return 1;
    case GGMLType::I16: return 2;
    case GGMLType::I32: return 4;
    case GGMLType::I64: return 8;
    case GGMLType::F64: return 8;
    case GGMLType::Q4_0: return 18;
    case GGMLType::Q4_1: return 20;
    case GGMLType::Q5_0: return 22;
    case GGMLType::Q5_1: return 24;
    case GGMLType::Q8_0: return 34;
    case GGMLType::Q8_1: return 36;
    case GGMLType::Q2_K: return 84;
    case GGMLType::Q3_K: return 110;
    case GGMLType::Q4_K: return 144;
    case GGMLType::Q5_K: return 176;
    case GGMLType::Q6_K: return 210;
    case GGMLType::Q8_K: return 292;
    case GGMLType::IQ4_NL: return 18;
    case GGMLType::IQ4_XS: return 136;
    default: return 0;
  }
}

size_t row_bytes(GGMLType t, int64_t n) {
  const size_t be = type_block_elems(t);
  EV_CHECK(be != 0, "unknown tensor type %s", type_name(t).c_str());
  EV_CHECK(n >= 0 && n % static_cast<int64_t>(be) == 0,
           "row of %lld elements is not a multiple of the %s block size %zu", static_cast<long long>(n),
           type_name(t).c_str(), be);
  return static_cast<size_t>(n) / be * type_block_bytes(t);
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      int e = -1;
      do {
        mant <<= 1;
        ++e;
      } while ((mant & 0x400) == 0);
      mant &= 0x3ff;
      bits = sign | uint32_t(127 - 15 - e) << 23 | mant << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | mant << 13;
  } else {
    bits = sign | (exp - 15 + 127) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000;
  const uint32_t abs = x & 0x7fffffff;
  if (abs > 0x7f800000u) return uint16_t(sign | 0x7e00);  // NaN
  if (abs >= 0x477ff000u) return uint16_t(sign | 0x7c00);  // rounds to inf
  if (abs < 0x38800000u) {                                 // subnormal or zero in f16
    // Shift the implicit-one mantissa into place with round to nearest even.
    if (abs < 0x33000000u) return uint16_t(sign);
    const uint32_t e = abs >> 23;
    const uint32_t m = (abs & 0x7fffff) | 0x800000;
    const uint32_t shift = 126 - e;  // 14 + (113 - e)
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1))) ++r;
    return uint16_t(sign | r);
  }
  uint32_t r = abs - 0x38000000u;  // rebias exponent 127 → 15
  const uint32_t rem = r & 0x1fff;
  r >>= 13;
  if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) ++r;
  return uint16_t(sign | r);
}

uint16_t f32_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000u) return uint16_t((x >> 16) | 64);  // quiet NaN
  return uint16_t((x + (0x7fff + ((x >> 16) & 1))) >> 16);
}

void dequantize_row(GGMLType t, const void* src, float* dst, int64_t n) {
  switch (t) {
    case GGMLType::F32:
      std::memcpy(dst, src, size_t(n) * 4);
      return;
    case GGMLType::F16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
      return;
    }
    case GGMLType::BF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case GGMLType::Q8_0: {
      EV_CHECK(n % kQK == 0, "q8_0 row length %lld is not a multiple of 32", static_cast<long long>(n));
      const BlockQ8_0* b = static_cast<const BlockQ8_0*>(src);
      for (int64_t i = 0; i < n / kQK; ++i) {
        const float d = f16_to_f32(b[i].d);
        for (int j = 0; j < kQK; ++j) dst[i * kQK + j] = d * b[i].qs[j];
      }
      return;
    }
    case GGMLType::Q4_0: {
      EV_CHECK(n % kQK == 0, "q4_0 row length %lld is not a multiple of 32", static_cast<long long>(n));
      const BlockQ4_0* b = static_cast<const BlockQ4_0*>(src);
      for (int64_t i = 0; i < n / kQK; ++i) {
        const float d = f16_to_f32(b[i].d);
        for (int j = 0; j < kQK / 2; ++j) {
          dst[i * kQK + j] = d * (int(b[i].qs[j] & 0x0f) - 8);
          dst[i * kQK + j + kQK / 2] = d * (int(b[i].qs[j] >> 4) - 8);
        }
      }
      return;
    }
    default:
      break;
  }
  const int64_t be = int64_t(type_block_elems(t));
  EV_CHECK(be > 0 && n % be == 0, "cannot dequantize %lld elements of tensor type %s", static_cast<long long>(n),
           type_name(t).c_str());
  const int64_t nb = n / be;
  switch (t) {
    case GGMLType::Q4_1: return dequant_q4_1(static_cast<const BlockQ4_1*>(src), dst, nb);
    case GGMLType::Q5_0: return dequant_q5_0(static_cast<const BlockQ5_0*>(src), dst, nb);
    case GGMLType::Q5_1: return dequant_q5_1(static_cast<const BlockQ5_1*>(src), dst, nb);
    case GGMLType::IQ4_NL: return dequant_iq4_nl(static_cast<const BlockIQ4_NL*>(src), dst, nb);
    case GGMLType::Q2_K: return dequant_q2_k(static_cast<const BlockQ2_K*>(src), dst, nb);
    case GGMLType::Q3_K: return dequant_q3_k(static_cast<const BlockQ3_K*>(src), dst, nb);
    case GGMLType::Q4_K: return dequant_q4_k(static_cast<const BlockQ4_K*>(src), dst, nb);
    case GGMLType::Q5_K: return dequant_q5_k(static_cast<const BlockQ5_K*>(src), dst, nb);
    case GGMLType::Q6_K: return dequant_q6_k(static_cast<const BlockQ6_K*>(src), dst, nb);
    case GGMLType::Q8_K: return dequant_q8_k(static_cast<const BlockQ8_K*>(src), dst, nb);
    case GGMLType::IQ4_XS: return dequant_iq4_xs(static_cast<const BlockIQ4_XS*>(src), dst, nb);
    default:
      fail("cannot dequantize tensor type %s", type_name(t).c_str());
  }
}

// Quantizers follow ggml's reference rounding so that files match other tools bit for bit.
void quantize_row(GGMLType t, const float* src, void* dst, int64_t n) {
  if (type_block_elems(t) > 1 && t != GGMLType::Q8_K) {  // weights; Q8_K is the activations' type
    for (int64_t i = 0; i < n; ++i)
      if (!std::isfinite(src[i]))
        fail("cannot quantize to %s: element %lld of the row is %s", type_name(t).c_str(), static_cast<long long>(i),
             std::isnan(src[i]) ? "NaN" : "infinite");
  }
  switch (t) {
    case GGMLType::F32:
      std::memcpy(dst, src, size_t(n) * 4);
      return;
    case GGMLType::F16: {
      uint16_t* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]);
      return;
    }
    case GGMLType::BF16: {
      uint16_t* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
      return;
    }
    case GGMLType::Q8_0: {
      EV_CHECK(n % kQK == 0, "q8_0 row length %lld is not a multiple of 32", static_cast<long long>(n));
      BlockQ8_0* b = static_cast<BlockQ8_0*>(dst);
      for (int64_t i = 0; i < n / kQK; ++i) {
        const float* x = src + i * kQK;
        float amax = 0;
        for (int j = 0; j < kQK; ++j) amax = std::fmax(amax, std::fabs(x[j]));
        const float d = amax / 127.f;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        b[i].d = f32_to_f16(d);
        for (int j = 0; j < kQK; ++j) b[i].qs[j] = static_cast<int8_t>(std::round(x[j] * id));  // roundf: half away from zero, as ggml
      }
      return;
    }
    case GGMLType::Q4_0: {
      EV_CHECK(n % kQK == 0, "q4_0 row length %lld is not a multiple of 32", static_cast<long long>(n));
      BlockQ4_0* b = static_cast<BlockQ4_0*>(dst);
      for (int64_t i = 0; i < n / kQK; ++i) {
        const float* x = src + i * kQK;
        // The signed value of largest magnitude maps to −8, so the scale keeps its sign.
        float amax = 0, max = 0;
        for (int j = 0; j < kQK; ++j) {
          if (std::fabs(x[j]) > amax) {
            amax = std::fabs(x[j]);
            max = x[j];
          }
        }
        const float d = max / -8.f;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        b[i].d = f32_to_f16(d);
        for (int j = 0; j < kQK / 2; ++j) {
          const float x0 = x[j] * id, x1 = x[j + kQK / 2] * id;
          const int q0 = std::min(15, int(int8_t(x0 + 8.5f)));
          const int q1 = std::min(15, int(int8_t(x1 + 8.5f)));
          b[i].qs[j] = uint8_t(q0 | (q1 << 4));
        }
      }
      return;
    }
    default:
      break;
  }
  const int64_t be = int64_t(type_block_elems(t));
  EV_CHECK(be > 0 && n % be == 0, "cannot quantize %lld elements to tensor type %s", static_cast<long long>(n),
           type_name(t).c_str());
  const int64_t nb = n / be;
  switch (t) {
    case GGMLType::Q4_1: return quant_q4_1(src, static_cast<BlockQ4_1*>(dst), nb);
    case GGMLType::Q5_0: return quant_q5_0(src, static_cast<BlockQ5_0*>(dst), nb);
    case GGMLType::Q5_1: return quant_q5_1(src, static_cast<BlockQ5_1*>(dst), nb);
    case GGMLType::IQ4_NL: return quant_iq4_nl(src, static_cast<BlockIQ4_NL*>(dst), nb);
    case GGMLType::Q2_K: return quant_q2_k(src, static_cast<BlockQ2_K*>(dst), nb);
    case GGMLType::Q3_K: return quant_q3_k(src, static_cast<BlockQ3_K*>(dst), nb);
    case GGMLType::Q4_K: return quant_q4_k(src, static_cast<BlockQ4_K*>(dst), nb);
    case GGMLType::Q5_K: return quant_q5_k(src, static_cast<BlockQ5_K*>(dst), nb);
    case GGMLType::Q6_K: return quant_q6_k(src, static_cast<BlockQ6_K*>(dst), nb);
    case GGMLType::Q8_K: return quant_q8_k(src, static_cast<BlockQ8_K*>(dst), nb);
    case GGMLType::IQ4_XS: return quant_iq4_xs(src, static_cast<BlockIQ4_XS*>(dst), nb);
    default:
      fail("cannot quantize to tensor type %s", type_name(t).c_str());
  }
}

}  // namespace edgevlm
