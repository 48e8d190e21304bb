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

// PIL's Lanczos (a = 3): sinc(x)·sinc(x/3) on [-3, 3).
double sinc(double x) {
  if (x == 0.0) return 1.0;
  x *= 3.14159265358979323846;
  return std::sin(x) / x;
}
double lanczos_filter(double x) {
  if (-3.0 <= x && x < 3.0) return sinc(x) * sinc(x / 3.0);
  return 0.0;
}

// PIL's bilinear: the triangle 1 − |x| on [-1, 1].
double bilinear_filter(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

struct Filter {
  double (*f)(double);
  double support;
};
constexpr Filter kBicubic{bicubic_filter, 2.0};
constexpr Filter kLanczos{lanczos_filter, 3.0};
constexpr Filter kBilinear{bilinear_filter, 1.0};

// Mirrors PIL's precompute_coeffs, in the same floating-point order.
ResampleTaps taps_of(int in_size, int out_size, const Filter& flt) {
  const double scale = double(float(in_size) - 0.0f) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = flt.support * filterscale;
  ResampleTaps t;
  t.ksize = int(std::ceil(support)) * 2 + 1;
  t.first.resize(size_t(out_size));
  t.count.resize(size_t(out_size));
  t.w.assign(size_t(out_size) * t.ksize, 0.0);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = 0.0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = int(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = int(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double* w = &t.w[size_t(xx) * t.ksize];
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      w[x] = flt.f((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    for (int x = 0; x < xmax; ++x) w[x] = ww != 0.0 ? w[x] / ww : w[x];
    t.first[size_t(xx)] = xmin;
    t.count[size_t(xx)] = xmax;
  }
  return t;
}

struct Coeffs {
  int ksize = 0;
  std::vector<int> bounds;  // per output pixel: first tap, number of taps
  std::vector<int32_t> k;   // per output pixel: ksize fixed-point weights
};

const Filter& filter_of(ResampleFilter f) {
  switch (f) {
    case ResampleFilter::Bicubic: return kBicubic;
    case ResampleFilter::Lanczos: return kLanczos;
    case ResampleFilter::Bilinear: return kBilinear;
    default: fail("resampling filter %s has no separable weights", resample_filter_name(f));
  }
}

// PIL's normalize_coeffs_8bpc: the weights of resample_taps in fixed point.
Coeffs precompute(int in_size, int out_size, const Filter& flt) {
  const ResampleTaps t = taps_of(in_size, out_size, flt);
  Coeffs c;
  c.ksize = t.ksize;
  c.bounds.resize(size_t(out_size) * 2);
  c.k.assign(size_t(out_size) * c.ksize, 0);
  for (int xx = 0; xx < out_size; ++xx) {
    int32_t* k = &c.k[size_t(xx) * c.ksize];
    const double* w = &t.w[size_t(xx) * t.ksize];
    for (int x = 0; x < t.count[size_t(xx)]; ++x)
      k[x] = w[x] < 0 ? int32_t(-0.5 + w[x] * (1 << kPrecisionBits)) : int32_t(0.5 + w[x] * (1 << kPrecisionBits));
    c.bounds[size_t(xx) * 2] = t.first[size_t(xx)];
    c.bounds[size_t(xx) * 2 + 1] = t.count[size_t(xx)];
  }
  return c;
}

inline uint8_t clip8(int32_t v) {
  v >>= kPrecisionBits;
  return uint8_t(v < 0 ? 0 : v > 255 ? 255 : v);
}

void pass_horizontal(const uint8_t* src, int w, int h, int C, uint8_t* dst, int out_w, const Filter& flt) {
  Coeffs c = precompute(w, out_w, flt);
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

void pass_vertical(const uint8_t* src, int w, int h, int C, uint8_t* dst, int out_h, const Filter& flt) {
  Coeffs c = precompute(h, out_h, flt);
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

void resize_pil_u8(const uint8_t* src, int w, int h, int C, uint8_t* dst, int out_w, int out_h, const Filter& flt) {
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
    pass_horizontal(src, w, h, C, tmp.data(), out_w, flt);
    pass_vertical(tmp.data(), out_w, h, C, dst, out_h, flt);
  } else if (need_h) {
    pass_horizontal(src, w, h, C, dst, out_w, flt);
  } else {
    pass_vertical(src, w, h, C, dst, out_h, flt);
  }
}

// llama.cpp's clip bicubic (see resize.h): per output pixel, a cubic through 4 source columns on
// each of 4 rows, then through those 4 values vertically, in float, rounded and clamped.
void resize_llama_cpp_bicubic(const Image& src, Image& dst) {
  const int nx = src.width, ny = src.height, ow = dst.width, oh = dst.height;
  const float tx = float(nx) / float(ow), ty = float(ny) / float(oh);
  auto px = [&](int x, int y, int c) -> float {
    x = std::clamp(x, 0, nx - 1);
    y = std::clamp(y, 0, ny - 1);
    return float(src.pixels[(size_t(y) * nx + x) * 3 + c]);
  };
  // The cubic through p(-1), p(0), p(1), p(2) at t (the coefficients in double, as written there).
  auto cubic = [](float pm1, float p0, float p1, float p2, float t) {
    const float d0 = pm1 - p0, d2 = p1 - p0, d3 = p2 - p0;
    const float a0 = p0;
    const float a1 = float(-1.0 / 3 * d0 + d2 - 1.0 / 6 * d3);
    const float a2 = float(1.0 / 2 * d0 + 1.0 / 2 * d2);
    const float a3 = float(-1.0 / 6 * d0 - 1.0 / 2 * d2 + 1.0 / 6 * d3);
    return a0 + a1 * t + a2 * t * t + a3 * t * t * t;  // left to right, as written there
  };
  for (int i = 0; i < oh; ++i)
    for (int j = 0; j < ow; ++j) {
      const int x = int(tx * float(j)), y = int(ty * float(i));
      const float dx = tx * float(j) - float(x), dy = ty * float(i) - float(y);
      uint8_t* out = &dst.pixels[(size_t(i) * ow + j) * 3];
      for (int c = 0; c < 3; ++c) {
        float col[4];
        for (int r = 0; r < 4; ++r) {
          const int yy = y - 1 + r;
          col[r] = cubic(px(x - 1, yy, c), px(x, yy, c), px(x + 1, yy, c), px(x + 2, yy, c), dx);
        }
        const float v = cubic(col[0], col[1], col[2], col[3], dy);
        out[c] = uint8_t(std::min(std::max(std::round(v), 0.0f), 255.0f));
      }
    }
}

// llama.cpp's clip bilinear (see resize.h): corners aligned, truncated.
void resize_llama_cpp_bilinear(const Image& src, Image& dst) {
  const int nx = src.width, ny = src.height, ow = dst.width, oh = dst.height;
  const float xr = ow > 1 ? float(nx - 1) / float(ow - 1) : 0.0f;
  const float yr = oh > 1 ? float(ny - 1) / float(oh - 1) : 0.0f;
  for (int y = 0; y < oh; ++y)
    for (int x = 0; x < ow; ++x) {
      const float fx = float(x) * xr, fy = float(y) * yr;
      const int x0 = std::min(int(fx), nx - 1), y0 = std::min(int(fy), ny - 1);
      const int x1 = std::min(x0 + 1, nx - 1), y1 = std::min(y0 + 1, ny - 1);
      const float xf = fx - float(x0), yf = fy - float(y0);
      const uint8_t* p00 = &src.pixels[(size_t(y0) * nx + x0) * 3];
      const uint8_t* p10 = &src.pixels[(size_t(y0) * nx + x1) * 3];
      const uint8_t* p01 = &src.pixels[(size_t(y1) * nx + x0) * 3];
      const uint8_t* p11 = &src.pixels[(size_t(y1) * nx + x1) * 3];
      uint8_t* out = &dst.pixels[(size_t(y) * ow + x) * 3];
      for (int c = 0; c < 3; ++c) {
        const float top = float(p00[c]) + (float(p10[c]) - float(p00[c])) * xf;
        const float bottom = float(p01[c]) + (float(p11[c]) - float(p01[c])) * xf;
        out[c] = uint8_t(top + (bottom - top) * yf);
      }
    }
}

}  // namespace

ResampleTaps resample_taps(int in_size, int out_size, ResampleFilter f) {
  EV_CHECK(in_size > 0 && out_size > 0, "resample_taps: invalid sizes %d -> %d", in_size, out_size);
  return taps_of(in_size, out_size, filter_of(f));
}

const char* resample_filter_name(ResampleFilter f) {
  switch (f) {
    case ResampleFilter::Bicubic: return "bicubic";
    case ResampleFilter::Lanczos: return "lanczos";
    case ResampleFilter::Bilinear: return "bilinear";
    case ResampleFilter::LlamaCppBicubic: return "llama-cpp-bicubic";
    case ResampleFilter::LlamaCppBilinear: return "llama-cpp-bilinear";
  }
  return "?";
}

ResampleFilter parse_resample_filter(std::string_view name) {
  if (name == "bicubic") return ResampleFilter::Bicubic;
  if (name == "lanczos") return ResampleFilter::Lanczos;
  if (name == "bilinear") return ResampleFilter::Bilinear;
  if (name == "llama-cpp-bicubic" || name == "llama.cpp-bicubic") return ResampleFilter::LlamaCppBicubic;
  if (name == "llama-cpp-bilinear" || name == "llama.cpp-bilinear") return ResampleFilter::LlamaCppBilinear;
  fail("unknown resampling filter '%.*s' (expected bicubic, lanczos, bilinear, llama-cpp-bicubic or llama-cpp-bilinear)",
       int(name.size()),
       name.data());
}

void resize_bicubic_u8(const uint8_t* src, int w, int h, int C, uint8_t* dst, int out_w, int out_h) {
  resize_pil_u8(src, w, h, C, dst, out_w, out_h, kBicubic);
}

Image resize_image(const Image& src, int out_w, int out_h, ResampleFilter f) {
  EV_CHECK(!src.empty(), "resize: empty source image (%d x %d)", src.width, src.height);
  EV_CHECK(out_w > 0 && out_h > 0 && int64_t(out_w) * out_h <= (int64_t(1) << 30),
           "resize: invalid target size %d x %d", out_w, out_h);
  Image out(out_w, out_h);
  if (out_w == src.width && out_h == src.height) {
    out.pixels = src.pixels;
    return out;
  }
  switch (f) {
    case ResampleFilter::Bicubic:
      resize_pil_u8(src.pixels.data(), src.width, src.height, 3, out.pixels.data(), out_w, out_h, kBicubic);
      break;
    case ResampleFilter::Lanczos:
      resize_pil_u8(src.pixels.data(), src.width, src.height, 3, out.pixels.data(), out_w, out_h, kLanczos);
      break;
    case ResampleFilter::Bilinear:
      resize_pil_u8(src.pixels.data(), src.width, src.height, 3, out.pixels.data(), out_w, out_h, kBilinear);
      break;
    case ResampleFilter::LlamaCppBicubic: resize_llama_cpp_bicubic(src, out); break;
    case ResampleFilter::LlamaCppBilinear: resize_llama_cpp_bilinear(src, out); break;
  }
  return out;
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
