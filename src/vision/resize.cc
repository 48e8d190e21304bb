#include "vision/resize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"

namespace edgevlm {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // PIL: room for 8-bit samples times weights in int32

double bicubic_filter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

struct Coeffs {
  int ksize = 0;
  std::vector<int> bounds;  // per output pixel: first tap, number of taps
  std::vector<int32_t> k;   // per output pixel: ksize fixed-point weights
};

// Mirrors precompute_coeffs + normalize_coeffs_8bpc, in the same floating-point order.
Coeffs precompute(int in_size, int out_size) {
  const double scale = double(float(in_size) - 0.0f) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 2.0 * filterscale;
  Coeffs c;
  c.ksize = int(std::ceil(support)) * 2 + 1;
  c.bounds.resize(size_t(out_size) * 2);
  c.k.assign(size_t(out_size) * c.ksize, 0);
  std::vector<double> w(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = 0.0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = int(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = int(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      w[x] = bicubic_filter((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    int32_t* k = &c.k[size_t(xx) * c.ksize];
    for (int x = 0; x < xmax; ++x) {
      double v = ww != 0.0 ? w[x] / ww : w[x];
      k[x] = v < 0 ? int32_t(-0.5 + v * (1 << kPrecisionBits)) : int32_t(0.5 + v * (1 << kPrecisionBits));
    }
    c.bounds[size_t(xx) * 2] = xmin;
    c.bounds[size_t(xx) * 2 + 1] = xmax;
  }
  return c;
}

inline uint8_t clip8(int32_t v) {
  v >>= kPrecisionBits;
  return uint8_t(v < 0 ? 0 : v > 255 ? 255 : v);
}

void pass_horizontal(const uint8_t* src, int w, int h, int C, uint8_t* dst, int out_w) {
  Coeffs c = precompute(w, out_w);
  for (int y = 0; y < h; ++y) {
    const uint8_t* s = src + size_t(y) * w * C;
    uint8_t* d = dst + size_t(y) * out_w * C;
    for (int xx = 0; xx < out_w; ++xx) {
      const int xmin = c.bounds[size_t(xx) * 2], n = c.bounds[size_t(xx) * 2 + 1];
      const int32_t* k = &c.k[size_t(xx) * c.ksize];
      // All channels per tap: one pass over the source pixels (integer sums, so order is exact).
      int32_t acc[4] = {1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1),
                        1 << (kPrecisionBits - 1)};
      const uint8_t* px = s + size_t(xmin) * C;
      if (C == 3) {
        for (int x = 0; x < n; ++x, px += 3) {
          acc[0] += int32_t(px[0]) * k[x];
          acc[1] += int32_t(px[1]) * k[x];
          acc[2] += int32_t(px[2]) * k[x];
        }
      } else {
        for (int x = 0; x < n; ++x, px += C)
          for (int ch = 0; ch < C; ++ch) acc[ch] += int32_t(px[ch]) * k[x];
      }
      for (int ch = 0; ch < C; ++ch) d[size_t(xx) * C + ch] = clip8(acc[ch]);
    }
  }
}

void pass_vertical(const uint8_t* src, int w, int h, int C, uint8_t* dst, int out_h) {
  Coeffs c = precompute(h, out_h);
  const size_t stride = size_t(w) * C;
  std::vector<int32_t> acc(stride);
  for (int yy = 0; yy < out_h; ++yy) {
    const int ymin = c.bounds[size_t(yy) * 2], n = c.bounds[size_t(yy) * 2 + 1];
    const int32_t* k = &c.k[size_t(yy) * c.ksize];
    std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
    // Row-wise accumulation: same integer sums as PIL's per-pixel loop, cache-friendly.
    for (int y = 0; y < n; ++y) {
      const uint8_t* s = src + size_t(y + ymin) * stride;
      const int32_t ky = k[y];
      for (size_t i = 0; i < stride; ++i) acc[i] += int32_t(s[i]) * ky;
    }
    uint8_t* d = dst + size_t(yy) * stride;
    for (size_t i = 0; i < stride; ++i) d[i] = clip8(acc[i]);
  }
}

}  // namespace

void resize_bicubic_u8(const uint8_t* src, int w, int h, int C, uint8_t* dst, int out_w, int out_h) {
  EV_CHECK(src && dst && w > 0 && h > 0, "resize: empty source image (%d x %d)", w, h);
  EV_CHECK(out_w > 0 && out_h > 0, "resize: invalid target size %d x %d", out_w, out_h);
  EV_CHECK(C >= 1 && C <= 4, "resize: %d channels (1..4 supported)", C);
  const bool need_h = out_w != w, need_v = out_h != h;
  if (!need_h && !need_v) {
    std::memcpy(dst, src, size_t(w) * h * C);
    return;
  }
  if (need_h && need_v) {
    std::vector<uint8_t> tmp(size_t(out_w) * h * C);
    pass_horizontal(src, w, h, C, tmp.data(), out_w);
    pass_vertical(tmp.data(), out_w, h, C, dst, out_h);
  } else if (need_h) {
    pass_horizontal(src, w, h, C, dst, out_w);
  } else {
    pass_vertical(src, w, h, C, dst, out_h);
  }
}

Image resize_bicubic(const Image& src, int out_w, int out_h) {
  EV_CHECK(!src.empty(), "resize: empty source image (%d x %d)", src.width, src.height);
  EV_CHECK(out_w > 0 && out_h > 0 && int64_t(out_w) * out_h <= (int64_t(1) << 30),
           "resize: invalid target size %d x %d", out_w, out_h);
  Image out(out_w, out_h);
  resize_bicubic_u8(src.pixels.data(), src.width, src.height, 3, out.pixels.data(), out_w, out_h);
  return out;
}

}  // namespace edgevlm
