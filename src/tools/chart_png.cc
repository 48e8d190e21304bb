#include "tools/chart_png.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "core/error.h"

#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#include "stb_image_write.h"
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace edgevlm {
namespace {

// 3×5 glyphs, 15 bits row-major from the top-left (bit 14). Lower case is drawn as upper case;
// characters without a glyph are drawn as blanks.
struct Glyph {
  char c;
  uint16_t bits;
};
constexpr Glyph kFont[] = {
    {'%', 0x52a5}, {'\'', 0x2400}, {'(', 0x2922}, {')', 0x224a}, {'*', 0x0aa8}, {'+', 0x05d0}, {',', 0x0014},
    {'-', 0x01c0}, {'.', 0x0002}, {'/', 0x12a4}, {'0', 0x7b6f}, {'1', 0x2c97}, {'2', 0x73e7}, {'3', 0x72cf},
    {'4', 0x5bc9}, {'5', 0x79cf}, {'6', 0x79ef}, {'7', 0x7292}, {'8', 0x7bef}, {'9', 0x7bcf}, {':', 0x0410},
    {'=', 0x0e38}, {'?', 0x7282}, {'A', 0x2bed}, {'B', 0x6bae}, {'C', 0x3923}, {'D', 0x6b6e}, {'E', 0x79a7},
    {'F', 0x79a4}, {'G', 0x396b}, {'H', 0x5bed}, {'I', 0x7497}, {'J', 0x126a}, {'K', 0x5bad}, {'L', 0x4927},
    {'M', 0x5fed}, {'N', 0x6b6d}, {'O', 0x2b6a}, {'P', 0x6ba4}, {'Q', 0x2b73}, {'R', 0x6bad}, {'S', 0x388e},
    {'T', 0x7492}, {'U', 0x5b6f}, {'V', 0x5b6a}, {'W', 0x5bfd}, {'X', 0x5aad}, {'Y', 0x5a92}, {'Z', 0x72a7},
    {'_', 0x0007}, {'|', 0x2492}};

constexpr int kScale = 2;                  // font pixels per glyph pixel
constexpr int kCharW = 4 * kScale;         // 3 columns + 1 of spacing
constexpr int kCharH = 5 * kScale;
constexpr uint8_t kPalette[][3] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189}};

struct Canvas {
  int w, h;
  std::vector<uint8_t>& px;
  void fill(int x0, int y0, int x1, int y1, const uint8_t* c) {
    x0 = std::max(x0, 0), y0 = std::max(y0, 0), x1 = std::min(x1, w), y1 = std::min(y1, h);
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) std::copy(c, c + 3, &px[(size_t(y) * w + x) * 3]);
  }
  void text(int x, int y, const std::string& s, const uint8_t* c) {
    for (char ch : s) {
      const char u = char(std::toupper(static_cast<unsigned char>(ch)));
      for (const Glyph& g : kFont)
        if (g.c == u)
          for (int r = 0; r < 5; ++r)
            for (int col = 0; col < 3; ++col)
              if (g.bits >> (14 - (r * 3 + col)) & 1)
                fill(x + col * kScale, y + r * kScale, x + (col + 1) * kScale, y + (r + 1) * kScale, c);
      x += kCharW;
    }
  }
};

int text_width(const std::string& s) { return int(s.size()) * kCharW; }

std::string format_value(double v) {
  char b[32];
  if (v >= 100) std::snprintf(b, sizeof b, "%.0f", v);
  else if (v >= 10) std::snprintf(b, sizeof b, "%.1f", v);
  else if (v >= 1) std::snprintf(b, sizeof b, "%.2f", v);
  else std::snprintf(b, sizeof b, "%.2g", v);
  return b;
}

}  // namespace

ChartImage draw_bar_charts(const std::vector<BarChart>& panels, int width, int panel_height) {
  EV_CHECK(width >= 200 && panel_height >= 80, "chart: %d x %d pixels per panel is too small to draw", width,
           panel_height);
  EV_CHECK(!panels.empty() && panels.size() <= 64, "chart: %zu panels", panels.size());
  ChartImage img;
  img.width = width;
  img.height = panel_height * int(panels.size());
  img.rgb.assign(size_t(img.width) * img.height * 3, kChartBackground);
  Canvas cv{img.width, img.height, img.rgb};
  const uint8_t ink[3] = {0, 0, 0}, grey[3] = {110, 110, 110};

  for (size_t pi = 0; pi < panels.size(); ++pi) {
    const BarChart& p = panels[pi];
    const int ns = int(p.series.size()), ng = int(p.groups.size());
    EV_CHECK(ns >= 1 && ng >= 1 && int(p.values.size()) == ns, "chart %s: %zu value rows for %d series",
             p.title.c_str(), p.values.size(), ns);
    for (const auto& row : p.values)
      EV_CHECK(int(row.size()) == ng, "chart %s: %zu values for %d groups", p.title.c_str(), row.size(), ng);
    const int top = int(pi) * panel_height;
    // Title, then the legend on the same line, right-aligned.
    cv.text(8, top + 6, p.title, ink);
    int lx = width - 8;
    for (int s = ns - 1; s >= 0; --s) {
      lx -= text_width(p.series[size_t(s)]);
      cv.text(lx, top + 6, p.series[size_t(s)], ink);
      lx -= kCharH + 6;
      cv.fill(lx, top + 6, lx + kCharH, top + 6 + kCharH, kPalette[s % 5]);
      lx -= 14;
    }
    // Plot area: room for value labels above and group labels below.
    const int px0 = 12, px1 = width - 12, py0 = top + 6 + kCharH + 10 + kCharH + 6, py1 = top + panel_height - kCharH - 14;
    EV_CHECK(py1 - py0 >= 10, "chart: panels of %d pixels leave no room for bars", panel_height);
    double vmax = 0;
    for (const auto& row : p.values)
      for (double v : row)
        if (std::isfinite(v)) vmax = std::max(vmax, v);
    cv.fill(px0, py1, px1, py1 + 1, grey);  // x axis
    const double gw = double(px1 - px0) / ng;
    const int bw = std::max(1, int(gw * 0.8 / ns));
    for (int g = 0; g < ng; ++g) {
      const int gx = px0 + int(gw * g + (gw - bw * ns) / 2);
      const std::string& label = p.groups[size_t(g)];
      cv.text(px0 + int(gw * g + (gw - text_width(label)) / 2), py1 + 6, label, ink);
      for (int s = 0; s < ns; ++s) {
        const double v = p.values[size_t(s)][size_t(g)];
        ChartRect r;
        if (std::isfinite(v) && v > 0 && vmax > 0) {
          const int hgt = std::max(1, int(std::lround(v / vmax * (py1 - py0))));
          r = {gx + s * bw, py1 - hgt, gx + (s + 1) * bw - (bw > 3 ? 1 : 0), py1};
          cv.fill(r.x0, r.y0, r.x1, r.y1, kPalette[s % 5]);
          const std::string val = format_value(v);
          cv.text((r.x0 + r.x1 - text_width(val)) / 2, r.y0 - kCharH - 3, val, grey);
        }
        img.bars.push_back(r);
      }
    }
  }
  return img;
}

std::vector<uint8_t> encode_png(const ChartImage& img) {
  EV_CHECK(img.width > 0 && img.height > 0 && img.rgb.size() == size_t(img.width) * img.height * 3,
           "chart: no image to encode");
  std::vector<uint8_t> out;
  auto sink = [](void* ctx, void* data, int size) {
    auto* v = static_cast<std::vector<uint8_t>*>(ctx);
    v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
  };
  EV_CHECK(stbi_write_png_to_func(sink, &out, img.width, img.height, 3, img.rgb.data(), img.width * 3) != 0,
           "chart: PNG encoding failed");
  return out;
}

void write_png(const std::string& path, const ChartImage& img) {
  const std::vector<uint8_t> png = encode_png(img);
  FILE* f = std::fopen(path.c_str(), "wb");
  EV_CHECK(f != nullptr, "cannot write %s", path.c_str());
  const bool ok = std::fwrite(png.data(), 1, png.size(), f) == png.size();
  EV_CHECK(std::fclose(f) == 0 && ok, "cannot write %s", path.c_str());
}

}  // namespace edgevlm
